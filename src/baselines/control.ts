// The control block shared by the main thread and the two workers of one peer-benchmark run,
// and the worker-side view of it (PeerWorkerContext). The main thread owns the phase word; the
// consumer owns the consumed-packets word; each sits on its own 64-byte line so the consumer's
// stores never invalidate the line the workers poll for the phase. Imports nothing from
// node:worker_threads but a type, so case modules can use it on either side.

import type { MessagePort } from 'node:worker_threads';
import { threadCpuNs, threadCpuSource, type ThreadCpuSource } from '../engine/thread-cpu.js';

/** Int32 index of the phase word (written by the main thread only). */
export const CTL_PHASE = 0;
/** Int32 index of the consumer's running packet count (written by the consumer only). */
export const CTL_CONSUMED = 16;
export const CTL_INT32S = 32;

export const PHASE_SETUP = 0;
export const PHASE_WARMUP = 1;
export const PHASE_MEASURE = 2;
export const PHASE_STOP = 3;

/**
 * Every Atomics.wait in the peer workers is bounded by this, so a missed wake-up or a stop that
 * races a sleeper costs at most this much instead of a hang.
 */
export const WAIT_TIMEOUT_MS = 50;
const START_DEADLINE_MS = 60_000;

export type PeerRole = 'producer' | 'consumer';

/** What the main thread hands each worker (structured-clonable). */
export interface PeerWorkerData {
  caseName: string;
  /** URL of the module that exports `entry`; the worker imports it. */
  moduleUrl: string;
  entry: string;
  role: PeerRole;
  control: SharedArrayBuffer;
  params: unknown;
  port?: MessagePort;
}

/** Counters over one worker's view of the measured window. */
export interface WorkerWindow {
  packets: number;
  notifies: number;
  sleeps: number;
  cpuNs: number;
  wallMs: number;
}

export interface LatencyReport {
  rtts: number;
  p50Ns: number;
  p99Ns: number;
  maxNs: number;
  meanNs: number;
}

/** What a worker entry returns; the generic worker posts it to the main thread. */
export interface WorkerReport {
  role: PeerRole;
  window: WorkerWindow;
  totalPackets: number;
  verified: boolean;
  errors: number;
  firstError?: string;
  cpuSource: ThreadCpuSource;
  latency?: LatencyReport;
}

/** Messages a peer worker sends to the main thread. */
export type PeerWorkerMessage =
  | { type: 'ready' }
  | { type: 'report'; report: WorkerReport }
  | { type: 'error'; message: string };

/** Signature of a worker entry exported by a case module. */
export type PeerWorkerEntry = (ctx: PeerWorkerContext) => WorkerReport | Promise<WorkerReport>;

interface Snapshot {
  packets: number;
  notifies: number;
  sleeps: number;
  cpuNs: number;
  wallMs: number;
}

/** Final totals and verdict a worker entry passes to {@link PeerWorkerContext.report}. */
export interface WorkerOutcome {
  packets: number;
  notifies: number;
  sleeps: number;
  verified: boolean;
  errors: number;
  firstError?: string;
  latency?: LatencyReport;
}

/**
 * Worker side of the control block. A loop polls `Atomics.load(ctx.ctl, CTL_PHASE)` at batch
 * boundaries and in its wait paths, and hands every change to {@link onPhase}, which snapshots
 * CPU time and counters at the start and the end of the measured window.
 */
export class PeerWorkerContext {
  readonly ctl: Int32Array;
  readonly role: PeerRole;
  readonly params: unknown;
  readonly port: MessagePort | undefined;
  private readonly signalReady: () => void;
  private startSnap: Snapshot | null = null;
  private measureSnap: Snapshot | null = null;
  private stopSnap: Snapshot | null = null;

  constructor(data: PeerWorkerData, signalReady: () => void) {
    this.ctl = new Int32Array(data.control, 0, CTL_INT32S);
    this.role = data.role;
    this.params = data.params;
    this.port = data.port;
    this.signalReady = signalReady;
  }

  /** Tells the main thread this side is set up, then blocks until the run starts. Returns the phase. */
  waitForStart(): number {
    this.signalReady();
    const deadlineMs = performance.now() + START_DEADLINE_MS;
    // Acquire: pairs with the main thread's Atomics.store of PHASE_WARMUP (and its notify).
    let phase = Atomics.load(this.ctl, CTL_PHASE);
    while (phase === PHASE_SETUP) {
      if (performance.now() > deadlineMs) throw new Error(`${this.role}: run never started (${START_DEADLINE_MS} ms)`);
      // Woken by the main thread's notify on CTL_PHASE; re-load as above.
      Atomics.wait(this.ctl, CTL_PHASE, PHASE_SETUP, WAIT_TIMEOUT_MS);
      phase = Atomics.load(this.ctl, CTL_PHASE);
    }
    this.startSnap = this.snap(0, 0, 0);
    return this.onPhase(phase, 0, 0, 0);
  }

  /** Current phase (acquire load; pairs with the main thread's phase stores). */
  phase(): number {
    return Atomics.load(this.ctl, CTL_PHASE);
  }

  /** Records the window edges for a newly seen phase; returns the phase for the caller to keep. */
  onPhase(phase: number, packets: number, notifies: number, sleeps: number): number {
    if (phase >= PHASE_MEASURE && this.measureSnap === null) {
      this.measureSnap = this.snap(packets, notifies, sleeps);
    }
    if (phase >= PHASE_STOP && this.stopSnap === null) {
      this.stopSnap = this.snap(packets, notifies, sleeps);
    }
    return phase;
  }

  /** Blocks up to WAIT_TIMEOUT_MS while the phase is still `seen` (for idle sides). */
  sleepWhilePhase(seen: number): void {
    // Pairs with the main thread's Atomics.notify on CTL_PHASE after each phase store.
    Atomics.wait(this.ctl, CTL_PHASE, seen, WAIT_TIMEOUT_MS);
  }

  /** Publishes the consumer's running packet count for the main thread's window sampling. */
  publishConsumed(packets: number): void {
    // Relaxed would do; Atomics.store keeps the main thread's Atomics.load well-defined.
    Atomics.store(this.ctl, CTL_CONSUMED, packets);
  }

  /** Builds the report from the window snapshots and the loop's final totals. */
  report(outcome: WorkerOutcome): WorkerReport {
    const end = this.stopSnap ?? this.snap(outcome.packets, outcome.notifies, outcome.sleeps);
    const begin = this.measureSnap ?? this.startSnap ?? end;
    const report: WorkerReport = {
      role: this.role,
      window: {
        packets: end.packets - begin.packets,
        notifies: end.notifies - begin.notifies,
        sleeps: end.sleeps - begin.sleeps,
        cpuNs: Math.max(0, end.cpuNs - begin.cpuNs),
        wallMs: end.wallMs - begin.wallMs,
      },
      totalPackets: outcome.packets,
      verified: outcome.verified,
      errors: outcome.errors,
      cpuSource: threadCpuSource(),
    };
    if (outcome.firstError !== undefined) report.firstError = outcome.firstError;
    if (outcome.latency !== undefined) report.latency = outcome.latency;
    return report;
  }

  private snap(packets: number, notifies: number, sleeps: number): Snapshot {
    return { packets, notifies, sleeps, cpuNs: threadCpuNs(), wallMs: performance.now() };
  }
}
