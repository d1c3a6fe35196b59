// Plain-data types shared by the engine (main thread) and the processors (workers): what a side
// is told at start, and what it reports at the end. Everything here survives structured clone.

import type { RegionSpec } from '../memory/index.js';
import type { WaitStrategy } from '../notify/index.js';
import type { TracerSetup } from '../trace/tracer.js';
import type { RingKind } from '../virtqueue/index.js';

/** Where one virtqueue lives in guest memory and what was negotiated for it. */
export interface QueuePlan {
  index: number;
  size: number;
  descAddr: number;
  availAddr: number;
  usedAddr: number;
  eventIdx: boolean;
  indirect: boolean;
  /** Driver-side indirect tables: size × indirectMaxSegments × 16 bytes at this address. */
  indirectArea: number;
  indirectMaxSegments: number;
  /** Ring layout: split (§2.7) or packed (§2.8, VIRTIO_F_RING_PACKED). Absent = split. */
  ring?: RingKind;
  /** VIRTIO_F_IN_ORDER: used returns in order, batched on the device side. */
  inOrder?: boolean;
}

/** Doorbell indices inside the engine's DoorbellBlock. */
export const KICK_DOORBELL = 0; // guest → host (available buffers)
export const IRQ_DOORBELL = 1; // host → guest (used buffers)
export const ENGINE_DOORBELLS = 2;

/** Everything a processor needs to attach to the shared state; sent once as task data. */
export interface SharedSetup {
  regions: RegionSpec[];
  doorbellSab: SharedArrayBuffer;
  doorbellControlOffset: number;
  /** Int32 words: [0] ready count (start barrier). */
  controlSab: SharedArrayBuffer;
  queues: QueuePlan[];
  /** Guest-memory range the driver may allocate buffers from. */
  arenaBase: number;
  arenaBytes: number;
}

export type Role = 'guest' | 'host';

export interface WaitSettings {
  strategy: WaitStrategy;
  spinIterations?: number;
}

/** The task a processor runs (piscina task data, or plain worker data). */
export interface ProcessorTask {
  role: Role;
  /** Workload name in the registry, or a file URL / path of a user module. */
  workload: string;
  setup: SharedSetup;
  wait: WaitSettings;
  /** Workload parameters (plain data). */
  params: Record<string, unknown>;
  /** Trace buffer of this side, when the run is traced. */
  trace?: TracerSetup;
  /** Operational log level of this side (pino level name). */
  logLevel?: string;
}

/** What a side reports when it ends. Counters are per side. */
export interface SideStats {
  role: Role;
  packets: number;
  bytes: number;
  /** Window the rates are computed over (after warm-up), ms. */
  windowMs: number;
  windowPackets: number;
  windowBytes: number;
  /** Thread CPU during the window, ns. */
  windowCpuNs: number;
  /** Doorbell rings this side made (kicks for the guest, interrupts for the host). */
  rings: number;
  /** Rings that had to call Atomics.notify because the peer slept. */
  notifies: number;
  /** Waits this side made on its incoming doorbell, and how they went. */
  waits: number;
  sleeps: number;
  wakeups: number;
  spuriousWakeups: number;
  /** Verification failures (lost, duplicated, reordered, corrupted). Must be 0. */
  errors: number;
  firstError?: string;
  /** Workload-specific extra counters. */
  extra: Record<string, number>;
  /** Workload-specific sample series (e.g. per-packet RTTs in µs), when a workload keeps them. */
  series?: Record<string, number[]>;
}

export function emptySideStats(role: Role): SideStats {
  return {
    role,
    packets: 0,
    bytes: 0,
    windowMs: 0,
    windowPackets: 0,
    windowBytes: 0,
    windowCpuNs: 0,
    rings: 0,
    notifies: 0,
    waits: 0,
    sleeps: 0,
    wakeups: 0,
    spuriousWakeups: 0,
    errors: 0,
    extra: {},
  };
}
