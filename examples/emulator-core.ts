// A tiny "emulator" around the virtio-mmio device, shared by the Node examples and the browser
// page: guest RAM is one SharedArrayBuffer at guest-physical 0, the device's register window is
// mapped at MMIO_BASE, and the guest CPU's loads and stores are decoded by physical address —
// RAM or device — exactly where a real emulator's memory bus would call transport.read/write.
// The device is the one virtio-net device (NetDevice under the DeviceLoop); by default a
// loopback port stands behind it, so every frame the guest sends comes back. The "guest
// program" is MmioNetGuest: the §3.1.1 init through that bus in Linux order, then NetDriver.
// Runs in Node and in browser Web Workers.

import { GuestMemory } from '../src/memory/index.js';
import {
  InlineRunner,
  MMIO_WINDOW_BYTES,
  MmioNetGuest,
  MmioTransport,
  VirtioNetFrontend,
  checkSeqFrame,
  makeSeqFrame,
  type DeviceRunner,
  type MmioBus,
  type MmioSnapshot,
  type VirtioDeviceFrontend,
  type WorkerRunner,
} from '../src/transport/index.js';

export const RAM_BYTES = 16 << 20;
/** Where the device's registers sit in guest-physical space (above RAM, like a board's MMIO hole). */
export const MMIO_BASE = 0x0a00_0000;
const ARENA_BASE = 0x10_0000;
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

export class TinyEmulator {
  readonly ram: GuestMemory;
  transport: MmioTransport | null = null;
  runner: DeviceRunner | null = null;
  irqLine = false;
  irqEdges = 0;

  constructor(ramBytes = RAM_BYTES) {
    this.ram = GuestMemory.allocate(ramBytes);
  }

  /**
   * Plugs a device in (a fresh one, or one restored from a snapshot). `device` is its frontend
   * (default: the virtio-net device with a loopback port).
   */
  attach(runner: DeviceRunner, snapshot?: MmioSnapshot, device: VirtioDeviceFrontend = new VirtioNetFrontend({ backend: { type: 'loopback' } })): MmioTransport {
    const opts = {
      mem: this.ram,
      device,
      runner,
      onInterrupt: (asserted: boolean) => {
        this.irqLine = asserted; // an interrupt controller would latch this line
        if (asserted) this.irqEdges++;
      },
    };
    this.runner = runner;
    this.transport = snapshot ? MmioTransport.restore(snapshot, opts) : new MmioTransport(opts);
    return this.transport;
  }

  /** The guest CPU's physical load: MMIO window → device registers, anything else → RAM. */
  load(addr: number, size: number): number {
    if (addr >= MMIO_BASE && addr < MMIO_BASE + MMIO_WINDOW_BYTES) return this.transport!.read(addr - MMIO_BASE, size);
    if (size === 4) return this.ram.readU32(addr);
    if (size === 2) return this.ram.readU16(addr);
    return this.ram.readU8(addr);
  }

  /** The guest CPU's physical store. */
  store(addr: number, value: number, size: number): void {
    if (addr >= MMIO_BASE && addr < MMIO_BASE + MMIO_WINDOW_BYTES) return this.transport!.write(addr - MMIO_BASE, value, size);
    if (size === 4) this.ram.writeU32(addr, value);
    else if (size === 2) this.ram.writeU16(addr, value);
    else this.ram.writeU8(addr, value);
  }

  /** What the guest's virtio_mmio driver sees: its device window, through the physical bus. */
  deviceWindow(): MmioBus {
    return { read: (off, size) => this.load(MMIO_BASE + off, size), write: (off, v, size) => this.store(MMIO_BASE + off, v, size) };
  }

  /** A guest virtio-net driver over the device window, owning RAM from 1 MiB up. */
  newGuestDriver(opts: Partial<ConstructorParameters<typeof MmioNetGuest>[2]> = {}): MmioNetGuest {
    return new MmioNetGuest(this.deviceWindow(), this.ram, { arenaBase: ARENA_BASE, arenaBytes: this.ram.regionTable[0]!.length - ARENA_BASE, ...opts });
  }

  /**
   * The guest's HLT: sleep until the device interrupts or `ms` pass. A device on a worker is
   * awaited on its irq doorbell; an inline device did its work inside the notify, but a policy's
   * timers (tx mitigation, coalescing) need a poll at their deadline, as an emulator's timer would.
   */
  halt(ms: number): void {
    const r = this.runner as (Partial<WorkerRunner> & Partial<InlineRunner>) | null;
    if (r === null) return;
    if (typeof r.waitForInterrupt === 'function') {
      r.waitForInterrupt(ms);
    } else if (r instanceof InlineRunner) {
      r.poll();
      // Without a deadline only the guest's next notify can bring work: nothing to wait for.
      if (this.irqLine || r.deadlineMs === Infinity) return;
      const wait = Math.min(ms, r.deadlineMs - performance.now());
      if (wait > 0) Atomics.wait(sleepCell, 0, 0, wait); // a plain sleep: nothing notifies this cell
      r.poll();
    }
  }
}

export interface TrafficResult {
  frames: number;
  bytes: number;
  ms: number;
  kicks: number;
  interrupts: number;
}

/**
 * Runs verified loopback traffic: frames `from`..`to-1` go out, come back, and must arrive once
 * each, in order, intact (`expectFrom` is the next sequence number due). `halt(ms)` is the
 * guest's HLT: sleep until an interrupt or the timeout.
 */
export function runTraffic(g: MmioNetGuest, halt: (ms: number) => void, from: number, to: number, expectFrom: number, frameBytes: number): TrafficResult & { next: number } {
  const t0 = performance.now();
  const k0 = g.stats.kicks;
  const i0 = g.stats.interrupts;
  let sent = from;
  let expect = expectFrom;
  let bytes = 0;
  const frame = new Uint8Array(frameBytes);
  const d = g.net;
  d.onReceive = (b, off, len) => {
    const s = checkSeqFrame(b, off, len);
    if (s !== expect) throw new Error(`expected frame ${expect}, got ${String(s)}`);
    bytes += len;
    expect++;
  };
  while (expect < to) {
    while (sent < to && sent - expect < 192 && g.send(makeSeqFrame(g.mac, sent, frameBytes, frame))) sent++;
    g.flushTx();
    g.acknowledgeInterrupt();
    // NAPI: interrupts off while polling; on again (with a re-check) only before a halt.
    d.disableRxInterrupts();
    const n = g.receive();
    if (n === 0 && !d.enableRxInterrupts()) halt(50);
  }
  return { frames: expect - expectFrom, bytes, ms: performance.now() - t0, kicks: g.stats.kicks - k0, interrupts: g.stats.interrupts - i0, next: expect };
}

/** Sends `count` frames without receiving, so some wait in the device when a snapshot is taken. */
export function sendWithoutReceiving(g: MmioNetGuest, halt: (ms: number) => void, from: number, count: number, frameBytes: number): number {
  let sent = from;
  const end = performance.now() + 5000;
  while (sent < from + count && performance.now() < end) {
    if (g.send(makeSeqFrame(g.mac, sent, frameBytes))) {
      sent++;
      g.flushTx();
    } else halt(5);
  }
  return sent;
}
