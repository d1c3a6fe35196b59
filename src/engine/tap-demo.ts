// The TAP demo (Node only): virtq's own guest behind a real Linux TAP (backend/tap.ts).
//
// runTapDemo() puts virtq's own guest behind a TAP on the one data path: guest worker =
// NetDriverService (NetDriver + the guest's NetEndpoint answering ARP/ICMP + DriverLoop) → split
// rings in guest RAM laid out by the engine's planSharedSetup → host worker = NetDeviceService
// (NetDevice + DeviceLoop) with a TapPort (optionally inside a PcapTeePort) → the TAP fd. Both
// loops run the same policy preset as the engine's workers. Kicks and interrupts are eventfds
// (FdDoorbell): the host sleeps in poll(2) on the kick eventfd and, while the guest has rx
// buffers posted, the TAP fd; the guest spins briefly, then sleeps on the call eventfd. A shared
// sequence word and asleep flag per direction (FdDoorbell's shared words) let a ring skip the
// eventfd while the other side is awake. Which queue a kick is for
// travels in a shared counter per queue (the QueueNotify register's payload, virtio 1.2
// §4.2.2.2), as in the engine. The main thread never blocks and keeps handling signals.

import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { NetF, VirtioF, negotiate } from '../net/features.js';
import { NET_DEVICE_FEATURES } from '../net/device.js';
import type { EndpointStats } from '../net/endpoint.js';
import { planSharedSetup } from './setup.js';
import type { SharedSetup } from './types.js';
import { resolvePolicy, type PolicyConfig } from '../policy/index.js';
import type { TraceSession } from '../trace/session.js';
import { check, loadIo, type IoAddon } from '../backend/native.js';
import { TapDevice } from '../backend/tap.js';
import type { TapPortStats } from '../backend/tap-port.js';
import { TAP_CTRL_BYTES, TAP_STOP_WORD, type TapWorkerData, type TapWorkerMessage } from './tap-demo-protocol.js';

/** A TAP demo that could not come up or finish (a worker failed; its own error is the cause). */
export class TapDemoError extends Error {
  override readonly name = 'TapDemoError';
  constructor(
    readonly code: 'worker-failed' | 'no-counters',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What the TAP demo's device offers: everything a TAP can carry (the kernel takes GSO frames
 * and partial checksums from a vnet-header TAP, and sends them when TUNSETOFFLOAD allows).
 */
export const TAP_DEVICE_FEATURES: bigint = NET_DEVICE_FEATURES;

/**
 * What the demo's guest accepts under `policy`: event idx with the eventIdx interrupt mode,
 * mergeable rx buffers and GSO as the policy's data path says, and the checksum and
 * segmentation offloads unless `offload` is false (then the TAP gets TUNSETOFFLOAD 0).
 */
export function tapGuestFeatures(policy: PolicyConfig, offload: boolean): bigint {
  const d = policy.dataPath;
  let f = VirtioF.VERSION_1 | VirtioF.INDIRECT_DESC | NetF.MAC | NetF.MTU | NetF.STATUS;
  if (policy.interrupts.mode === 'eventIdx') f |= VirtioF.EVENT_IDX;
  if (d.mergeableRxBuffers) f |= NetF.MRG_RXBUF;
  if (offload) {
    f |= NetF.CSUM | NetF.GUEST_CSUM;
    if (d.gso) f |= NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN;
  }
  return f;
}

/** The feature set the demo runs with: the device's offer ∩ what the guest accepts (virtio 1.2 §3.1.1). */
export function tapDemoFeatures(policy: PolicyConfig, offload: boolean): bigint {
  const r = negotiate(TAP_DEVICE_FEATURES, tapGuestFeatures(policy, offload));
  if (!r.ok) throw r.error;
  return r.features;
}

export interface TapDemoOptions {
  name: string;
  /** Host-side address with prefix, e.g. 10.77.0.1/24 (set with `ip`); omit to leave it down. */
  address?: string;
  /** The address virtq's guest answers for. */
  guestAddress: string;
  guestMac?: string;
  /** Notification policy of both loops: a preset name, JSON, or a config (default 'vhost'). */
  preset?: string | PolicyConfig;
  /** Ring size of both queues (default: the policy's rx and tx ring sizes). */
  queueSize?: number;
  /** The guest accepts checksum and segmentation offloads (and so the TAP's TUNSETOFFLOAD). Default true. */
  offload?: boolean;
  mtu?: number;
  /** Record every frame crossing the TAP into this pcap file. */
  pcapPath?: string;
  /** Trace both workers into this session (write it with writeTraceFile after stop()). Queue pairs 1 only. */
  trace?: TraceSession;
  /**
   * Queue pairs (default 1): a multiqueue TAP (IFF_MULTI_QUEUE) with one queue per pair, each
   * pair its own rings, eventfds and guest and host worker; the kernel spreads the frames it
   * sends to the guest over the queues by flow. Every pair's guest answers for the same address.
   */
  queues?: number;
}

/** Most queue pairs `virtq tap` starts (each costs two worker threads). */
export const MAX_TAP_DEMO_QUEUES = 16;

export interface TapDemoStats {
  /** NetDevice counters (`dev.` prefix) and DeviceLoop counters (interrupts, kicksSeen, ...). */
  device: Record<string, number>;
  /** The TAP fd's own counters (write errors, bad headers read). */
  tap: TapPortStats;
  /** NetDriver counters (`drv.` prefix) and DriverLoop counters (kicks, interruptsTaken, ...). */
  guest: Record<string, number>;
  /** The guest's stack: ARP and echo requests answered, frames ignored. */
  endpoint: EndpointStats;
  /** Frames recorded into the pcap file (with pcapPath). */
  pcap?: { recorded: number; errors: number };
  /** The ring violation that broke a queue (DEVICE_NEEDS_RESET), or null. */
  failure: string | null;
  /** With several queue pairs: each pair's counters (the fields above are their sums). */
  pairs?: { device: Record<string, number>; guest: Record<string, number>; endpoint: EndpointStats; tap: TapPortStats }[];
}

export interface TapDemo {
  readonly name: string;
  readonly features: bigint;
  readonly hdrBytes: number;
  readonly offloadFlags: number;
  readonly policy: PolicyConfig;
  readonly queueSizes: { rx: number; tx: number };
  /** Queue pairs (TAP queues) running. */
  readonly queues: number;
  /** Stops both workers, closes the TAP and eventfds; resolves with the counters. */
  stop(): Promise<TapDemoStats>;
}

/** Guest RAM for the guest's buffers (rx and tx pools, NetDriver's 4 MiB budgets) plus room for alignment. */
const RX_MEMORY_BYTES = 4 << 20;
const TX_MEMORY_BYTES = 4 << 20;
const ARENA_BYTES = RX_MEMORY_BYTES + TX_MEMORY_BYTES + (1 << 20);

/** One queue pair of the demo: its rings, eventfds, TAP queue fd and its guest and host workers. */
interface Lane {
  /** Sets the lane's stop word and rings both eventfds (both workers' poll(2) ends at once). */
  stop(): void;
  /** Both workers up (true), or one ended before (false). */
  up: Promise<boolean>;
  /** Both workers ended (rejects with a worker's error). */
  finished: Promise<void>;
  results: Map<'guest' | 'host', Extract<TapWorkerMessage, { kind: 'stats' }>>;
  /** Closes the eventfds (the TAP queue is closed by the caller). */
  close(): void;
}

function startLane(io: IoAddon, tap: TapDevice, o: TapDemoOptions, features: bigint, policy: PolicyConfig, rxSize: number, txSize: number): Lane {
  const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
  const indirect = (features & VirtioF.INDIRECT_DESC) !== 0n;
  // Queue 0 rx, queue 1 tx (virtio 1.2 §5.1.2), then the indirect tables, then the arena.
  const setup: SharedSetup = planSharedSetup(
    [
      { size: rxSize, eventIdx, indirect },
      { size: txSize, eventIdx, indirect },
    ],
    ARENA_BYTES,
  );
  const kickFd = check(io.eventfd(0, true), 'eventfd (kick)');
  let callFd: number;
  try {
    callFd = check(io.eventfd(0, true), 'eventfd (call)');
  } catch (e) {
    io.close(kickFd);
    throw e;
  }
  const ctrl = new SharedArrayBuffer(TAP_CTRL_BYTES);
  const stopWord = new Int32Array(ctrl);
  const common: Omit<TapWorkerData, 'role'> = {
    setup,
    ctrl,
    kickFd,
    callFd,
    features,
    policy,
    guestAddress: o.guestAddress,
    guestMac: o.guestMac ?? '52:54:00:12:34:56',
    hostAddress: o.address !== undefined ? o.address.split('/')[0]! : '0.0.0.0',
    mtu: o.mtu ?? 1500,
    rxMemoryBytes: RX_MEMORY_BYTES,
    txMemoryBytes: TX_MEMORY_BYTES,
  };
  const url = new URL('./tap-demo-worker.js', import.meta.url);
  const guest = new Worker(url, { workerData: { ...common, role: 'guest', ...(o.trace ? { trace: o.trace.setupFor('guest') } : {}) } satisfies TapWorkerData });
  const host = new Worker(url, {
    workerData: { ...common, role: 'host', tapFd: tap.fd, tapName: tap.name, ...(o.pcapPath !== undefined ? { pcapPath: o.pcapPath } : {}), ...(o.trace ? { trace: o.trace.setupFor('host') } : {}) } satisfies TapWorkerData,
  });
  const results = new Map<'guest' | 'host', Extract<TapWorkerMessage, { kind: 'stats' }>>();
  const seen = new Set<string>();
  let upResolve: (v: boolean) => void = () => {};
  const up = new Promise<boolean>((resolve) => (upResolve = resolve));
  const stop = (): void => {
    // Pairs with the Atomics.load in both workers' stopped(); the eventfd writes end their poll(2) at once.
    Atomics.store(stopWord, TAP_STOP_WORD, 1);
    io.eventfdWrite(kickFd, 1);
    io.eventfdWrite(callFd, 1);
  };
  const done = (w: Worker, role: 'guest' | 'host'): Promise<void> =>
    new Promise((resolve, reject) => {
      w.on('message', (m: TapWorkerMessage) => {
        if (m.kind === 'up') {
          seen.add(role);
          if (seen.size === 2) upResolve(true);
        } else results.set(role, m);
      });
      w.on('error', reject);
      w.on('exit', () => resolve());
    });
  const finished = Promise.all([done(guest, 'guest'), done(host, 'host')]).then(() => undefined);
  // One side failed (or both ended early): stop the other and give up waiting for 'up'.
  finished.then(
    () => upResolve(seen.size === 2),
    () => {
      stop();
      upResolve(false);
    },
  );
  return {
    stop,
    up,
    finished,
    results,
    close: () => {
      io.close(kickFd);
      io.close(callFd);
    },
  };
}

/** Sums the numeric counters of each pair (a multiqueue demo reports them as one device). */
function sumRecords<T extends object>(rs: readonly T[]): T {
  const out: Record<string, number> = {};
  for (const r of rs) for (const [k, v] of Object.entries(r)) if (typeof v === 'number') out[k] = (out[k] ?? 0) + v;
  return out as T;
}

export async function runTapDemo(o: TapDemoOptions): Promise<TapDemo> {
  const io = loadIo();
  const policy = typeof o.preset === 'object' ? o.preset : resolvePolicy(o.preset ?? 'vhost');
  const features = tapDemoFeatures(policy, o.offload ?? true);
  const rxSize = o.queueSize ?? policy.dataPath.rxRingSize;
  const txSize = o.queueSize ?? policy.dataPath.txRingSize;
  const queues = o.queues ?? 1;
  if (!Number.isInteger(queues) || queues < 1 || queues > MAX_TAP_DEMO_QUEUES) throw new RangeError(`queues ${String(o.queues)}: 1..${MAX_TAP_DEMO_QUEUES}`);
  if (queues > 1 && (o.trace !== undefined || o.pcapPath !== undefined)) throw new RangeError('tracing and pcap record one queue pair: use queues 1');
  const taps = TapDevice.openQueues(o.name, features, queues);
  const tap = taps[0]!;
  try {
    if (o.address !== undefined) execFileSync('ip', ['addr', 'add', o.address, 'dev', tap.name]);
    execFileSync('ip', ['link', 'set', tap.name, 'up']);
  } catch (e) {
    for (const t of taps) t.close();
    throw e;
  }
  o.trace?.start();
  const lanes: Lane[] = [];
  try {
    for (const t of taps) lanes.push(startLane(io, t, o, features, policy, rxSize, txSize));
  } catch (e) {
    for (const l of lanes) l.stop();
    await Promise.allSettled(lanes.map((l) => l.finished));
    for (const l of lanes) l.close();
    for (const t of taps) t.close();
    o.trace?.stop();
    throw e;
  }
  const finished = Promise.all(lanes.map((l) => l.finished));
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    for (const t of taps) t.close();
    for (const l of lanes) l.close();
    o.trace?.stop();
  };
  const stopAll = (): void => {
    for (const l of lanes) l.stop();
  };
  const ups = await Promise.all(lanes.map((l) => l.up));
  if (ups.includes(false)) {
    stopAll();
    try {
      await finished;
    } finally {
      close();
    }
    throw new TapDemoError('worker-failed', 'virtq tap: a worker ended before the data path came up');
  }
  return {
    name: tap.name,
    features,
    hdrBytes: tap.hdrBytes,
    offloadFlags: tap.offloadFlags,
    policy,
    queueSizes: { rx: rxSize, tx: txSize },
    queues,
    async stop(): Promise<TapDemoStats> {
      stopAll();
      try {
        await finished;
      } finally {
        close();
      }
      const pairs = lanes.map((l) => {
        const h = l.results.get('host');
        const g = l.results.get('guest');
        if (h === undefined || h.role !== 'host' || g === undefined || g.role !== 'guest') throw new TapDemoError('no-counters', 'virtq tap: a worker ended without its counters');
        return { device: h.device, tap: h.tap, guest: g.guest, endpoint: g.endpoint, pcap: h.pcap, failure: h.failure };
      });
      const first = pairs[0]!;
      if (pairs.length === 1) {
        return { device: first.device, tap: first.tap, guest: first.guest, endpoint: first.endpoint, ...(first.pcap !== undefined ? { pcap: first.pcap } : {}), failure: first.failure };
      }
      const tapSum = sumRecords(pairs.map((p) => p.tap));
      // kernelTxDropped is the interface's counter, the same for every queue (-1: unreadable).
      tapSum.kernelTxDropped = first.tap.kernelTxDropped;
      return {
        device: sumRecords(pairs.map((p) => p.device)),
        tap: tapSum,
        guest: sumRecords(pairs.map((p) => p.guest)),
        endpoint: sumRecords(pairs.map((p) => p.endpoint)),
        failure: pairs.find((p) => p.failure !== null)?.failure ?? null,
        pairs: pairs.map((p) => ({ device: p.device, guest: p.guest, endpoint: p.endpoint, tap: p.tap })),
      };
    },
  };
}
