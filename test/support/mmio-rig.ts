// Test rig for the virtio-mmio transport: guest memory, a LoopbackNet device behind the
// transport (inline or on a worker), a Linux-order guest driver, and a recorder of every ignored
// access and interrupt edge.

import { GuestMemory } from '../../src/memory/index.js';
import {
  GuestNetDriver,
  InlineRunner,
  LoopbackNetBackend,
  LoopbackNetFrontend,
  MmioTransport,
  checkSeqFrame,
  makeSeqFrame,
  type DeviceRunner,
  type GuestNetOptions,
  type LoopbackNetOptions,
  type MmioIssue,
  type MmioSnapshot,
} from '../../src/transport/index.js';
import { startNodeDeviceWorker } from '../../src/transport/node-worker.js';
import type { WorkerRunner } from '../../src/transport/worker-runner.js';

export const MEM_BYTES = 4 << 20;
export const ARENA_BASE = 0x10000;
export const ARENA_BYTES = 3 << 20;

export interface MmioRig {
  mem: GuestMemory;
  front: LoopbackNetFrontend;
  runner: DeviceRunner;
  t: MmioTransport;
  issues: MmioIssue[];
  edges: boolean[];
  /** The inline backend (null on a worker). */
  backend: LoopbackNetBackend | null;
  close(): Promise<void>;
}

export interface RigOptions {
  worker?: boolean;
  device?: LoopbackNetOptions;
  mem?: GuestMemory;
  restore?: MmioSnapshot;
}

export async function makeRig(o: RigOptions = {}): Promise<MmioRig> {
  const mem = o.mem ?? GuestMemory.allocate(MEM_BYTES);
  const front = new LoopbackNetFrontend(o.device);
  let runner: DeviceRunner;
  let backend: LoopbackNetBackend | null = null;
  if (o.worker) {
    runner = await startNodeDeviceWorker({ mem, kind: 'net-loopback', options: o.device, watchInterrupts: false });
  } else {
    backend = new LoopbackNetBackend(o.device);
    runner = new InlineRunner(backend, mem);
  }
  const issues: MmioIssue[] = [];
  const edges: boolean[] = [];
  const opts = { mem, device: front, runner, onIssue: (i: MmioIssue) => issues.push(i), onInterrupt: (a: boolean) => edges.push(a) };
  const t = o.restore ? MmioTransport.restore(o.restore, opts) : new MmioTransport(opts);
  return { mem, front, runner, t, issues, edges, backend, close: () => runner.close() };
}

export function guestFor(rig: MmioRig, opts: Partial<GuestNetOptions> = {}): GuestNetDriver {
  return new GuestNetDriver(rig.t, rig.mem, { arenaBase: ARENA_BASE, arenaBytes: ARENA_BYTES, ...opts });
}

/** Waits for the device: inline devices are done already; a worker is awaited on its irq doorbell. */
export function waitDevice(rig: MmioRig, ms = 50): void {
  const r = rig.runner as Partial<WorkerRunner>;
  if (typeof r.waitForInterrupt === 'function') r.waitForInterrupt(ms);
}

/**
 * Sends frames `from`..`to-1` and receives them, checking each arrives once and in order.
 * Returns the next expected sequence number. Throws on loss, duplication or corruption.
 */
export function pump(rig: MmioRig, g: GuestNetDriver, from: number, to: number, expectFrom: number, frameBytes = (s: number) => 60 + ((s * 97) % 1455), deadlineMs = 20_000): number {
  let sent = from;
  let expect = expectFrom;
  const end = performance.now() + deadlineMs;
  while (expect < to) {
    if (performance.now() > end) throw new Error(`pump: stuck at frame ${expect} (sent ${sent})`);
    while (sent < to && sent - expect < 128 && g.send(makeSeqFrame(g.mac, sent, frameBytes(sent)), false)) sent++;
    g.flushTx();
    g.acknowledgeInterrupt();
    const n = g.receive((f) => {
      const s = checkSeqFrame(f);
      if (s !== expect) throw new Error(`expected frame ${expect}, got ${String(s)}`);
      expect++;
    });
    g.refillRx();
    if (n === 0) waitDevice(rig, 20);
  }
  return expect;
}
