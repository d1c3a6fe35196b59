// Test rig for the virtio-mmio transport: guest memory, the one virtio-net device (NetDevice under
// the DeviceLoop, a LoopbackPort behind it unless told otherwise) behind the transport, inline or
// on a worker, an MMIO guest (register-level init, then NetDriver) whose received frames are
// checked as sequence-numbered test frames, and a recorder of every ignored access and interrupt
// edge.

import { GuestMemory } from '../../src/memory/index.js';
import {
  InlineRunner,
  MmioNetGuest,
  MmioTransport,
  Status,
  VirtioNetBackend,
  VirtioNetFrontend,
  checkSeqFrame,
  makeSeqFrame,
  type DeviceRunner,
  type MmioIssue,
  type MmioNetGuestOptions,
  type MmioSnapshot,
  type VirtioNetOptions,
} from '../../src/transport/index.js';
import { startNodeDeviceWorker } from '../../src/transport/node-worker.js';
import type { WorkerRunner } from '../../src/transport/worker-runner.js';

export const MEM_BYTES = 16 << 20;
export const ARENA_BASE = 0x10000;
export const ARENA_BYTES = 12 << 20;

/** What waiting on a device needs: its transport and its runner (an MmioRig, or a test's own rig). */
export interface DeviceUnderTest {
  runner: DeviceRunner;
  t: MmioTransport;
}

export interface MmioRig {
  mem: GuestMemory;
  front: VirtioNetFrontend;
  runner: DeviceRunner;
  t: MmioTransport;
  issues: MmioIssue[];
  edges: boolean[];
  /** The inline backend (null on a worker). */
  backend: VirtioNetBackend | null;
  close(): Promise<void>;
}

export interface RigOptions {
  worker?: boolean;
  /** Device options; the port defaults to a loopback. */
  device?: VirtioNetOptions;
  mem?: GuestMemory;
  restore?: MmioSnapshot;
}

export async function makeRig(o: RigOptions = {}): Promise<MmioRig> {
  const mem = o.mem ?? GuestMemory.allocate(MEM_BYTES);
  const device: VirtioNetOptions = { backend: { type: 'loopback' }, ...o.device };
  const front = new VirtioNetFrontend(device);
  let runner: DeviceRunner;
  let backend: VirtioNetBackend | null = null;
  if (o.worker) {
    runner = await startNodeDeviceWorker({ mem, kind: 'virtio-net', options: device, watchInterrupts: false });
  } else {
    backend = new VirtioNetBackend(device);
    runner = new InlineRunner(backend, mem, { timers: 'manual' });
  }
  const issues: MmioIssue[] = [];
  const edges: boolean[] = [];
  const opts = { mem, device: front, runner, onIssue: (i: MmioIssue) => issues.push(i), onInterrupt: (a: boolean) => edges.push(a) };
  const t = o.restore ? MmioTransport.restore(o.restore, opts) : new MmioTransport(opts);
  return { mem, front, runner, t, issues, edges, backend, close: () => runner.close() };
}

/** An MMIO guest whose received frames are checked as makeSeqFrame frames (results in order) with their header flags. */
export type SeqGuest = MmioNetGuest & { received: (number | string)[]; rxFlags: number[] };

export function guestFor(rig: MmioRig, opts: Partial<MmioNetGuestOptions> = {}): SeqGuest {
  const received: (number | string)[] = [];
  const rxFlags: number[] = [];
  const g = new MmioNetGuest(rig.t, rig.mem, {
    arenaBase: ARENA_BASE,
    arenaBytes: ARENA_BYTES,
    onReceive: (bytes, off, len, hdr) => {
      received.push(checkSeqFrame(bytes, off, len));
      rxFlags.push(hdr.flags);
    },
    ...opts,
  });
  return Object.assign(g, { received, rxFlags });
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Waits for the device: a worker is awaited on its irq doorbell; an inline device has done its
 * work in the notify already, but a policy's timers (a tx timer, a deferred interrupt) need a
 * poll at their deadline, as an emulator's timer would.
 */
const pauseCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Waits until the device set DEVICE_NEEDS_RESET, bounded by wall time (default 20 s) rather than
 * by a count of waits: waitDevice returns at once while the interrupt line is still asserted,
 * and a loaded machine may run the device late. Returns whether the bit was seen.
 */
export function waitNeedsReset(rig: DeviceUnderTest, timeoutMs = 20_000): boolean {
  const until = performance.now() + timeoutMs;
  while ((rig.t.status & Status.DEVICE_NEEDS_RESET) === 0 && performance.now() < until) {
    waitDevice(rig, 10);
    Atomics.wait(pauseCell, 0, 0, 1); // a plain 1 ms sleep: nothing notifies this cell
  }
  return (rig.t.status & Status.DEVICE_NEEDS_RESET) !== 0;
}

export function waitDevice(rig: DeviceUnderTest, ms = 50): void {
  const r = rig.runner as Partial<WorkerRunner> & Partial<InlineRunner>;
  if (typeof r.waitForInterrupt === 'function') {
    r.waitForInterrupt(ms);
    return;
  }
  if (typeof r.poll === 'function') {
    const inline = rig.runner as InlineRunner;
    inline.poll();
    // Without a deadline only the guest's next notify can bring work: nothing to wait for.
    if (rig.t.interruptAsserted || inline.deadlineMs === Infinity) return;
    const wait = Math.min(ms, inline.deadlineMs - performance.now());
    if (wait > 0) Atomics.wait(sleepCell, 0, 0, wait); // a plain sleep: nothing notifies this cell
    inline.poll();
  }
}

/**
 * Sends frames `from`..`to-1` and receives them, checking each arrives once, in order and intact.
 * Returns the next expected sequence number. Throws on loss, duplication or corruption.
 */
export function pump(rig: MmioRig, g: SeqGuest, from: number, to: number, expectFrom: number, frameBytes = (s: number) => 60 + ((s * 97) % 1455), deadlineMs = 30_000): number {
  let sent = from;
  let expect = expectFrom;
  const end = performance.now() + deadlineMs;
  while (expect < to) {
    if (performance.now() > end) throw new Error(`pump: stuck at frame ${expect} (sent ${sent})`);
    while (sent < to && sent - expect < 128 && g.send(makeSeqFrame(g.mac, sent, frameBytes(sent)))) sent++;
    g.flushTx();
    g.acknowledgeInterrupt();
    g.receive();
    const got = g.received.splice(0);
    for (const s of got) {
      if (s !== expect) throw new Error(`expected frame ${expect}, got ${String(s)}`);
      expect++;
    }
    if (got.length === 0) waitDevice(rig, 20);
  }
  return expect;
}
