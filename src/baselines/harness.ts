// Main-thread side of one peer-benchmark run: spawns the producer and consumer workers, drives
// the phases (setup → warm-up → measured window → stop), samples the consumer's packet count at
// the window edges, and turns the two worker reports into a PeerCaseResult. Every wait here has
// a timeout and the workers are always terminated, so a broken case fails instead of hanging.

import { Worker, type MessagePort } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CTL_CONSUMED,
  CTL_INT32S,
  CTL_PHASE,
  PHASE_MEASURE,
  PHASE_STOP,
  PHASE_WARMUP,
  type PeerRole,
  type PeerWorkerData,
  type PeerWorkerMessage,
  type WorkerReport,
} from './control.js';
import type { PeerCaseResult } from './types.js';

const WORKER_URL = new URL('./peer-worker.js', import.meta.url);
const DEFAULT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;

/** One side of a pair: the entry exported by the case module, and what it gets. */
export interface PairSide {
  entry: string;
  params: unknown;
  /** A MessagePort transferred to this worker (postMessage cases). */
  port?: MessagePort;
}

/** A shared Int32 word a worker may sleep on; notified after the stop so the sleeper exits. */
export interface WakeWord {
  words: Int32Array;
  index: number;
}

export interface PairSpec {
  caseName: string;
  /** URL of the module exporting both entries (pass the case module's `import.meta.url`). */
  moduleUrl: string;
  producer: PairSide;
  consumer: PairSide;
  warmupMs: number;
  durationMs: number;
  wakeOnStop?: WakeWord[];
  readyTimeoutMs?: number;
  stopTimeoutMs?: number;
}

export interface PairOutcome {
  producer: WorkerReport;
  consumer: WorkerReport;
  /** Consumer packets between the window edges, as sampled by the main thread. */
  consumedPackets: number;
  seconds: number;
}

class PeerWorkerHandle {
  readonly worker: Worker;
  readonly ready: Promise<void>;
  readonly report: Promise<WorkerReport>;

  constructor(spec: PairSpec, role: PeerRole, side: PairSide, control: SharedArrayBuffer) {
    const data: PeerWorkerData = {
      caseName: spec.caseName,
      moduleUrl: spec.moduleUrl,
      entry: side.entry,
      role,
      control,
      params: side.params,
    };
    if (side.port !== undefined) data.port = side.port;
    this.worker = new Worker(WORKER_URL, {
      workerData: data,
      transferList: side.port !== undefined ? [side.port] : [],
    });
    let resolveReady!: () => void;
    let rejectReady!: (err: Error) => void;
    let resolveReport!: (r: WorkerReport) => void;
    let rejectReport!: (err: Error) => void;
    this.ready = new Promise<void>((res, rej) => { resolveReady = res; rejectReady = rej; });
    this.report = new Promise<WorkerReport>((res, rej) => { resolveReport = res; rejectReport = rej; });
    // Whoever awaits still sees the rejection; this only stops an unawaited one from being "unhandled".
    this.ready.catch(() => undefined);
    this.report.catch(() => undefined);
    const fail = (err: Error): void => { rejectReady(err); rejectReport(err); };
    this.worker.on('message', (msg: PeerWorkerMessage) => {
      if (msg.type === 'ready') resolveReady();
      else if (msg.type === 'report') resolveReport(msg.report);
      else fail(new Error(`${spec.caseName}: ${role} failed: ${msg.message}`));
    });
    this.worker.on('error', (err: Error) => fail(new Error(`${spec.caseName}: ${role} threw: ${err.message}`)));
    this.worker.on('exit', (code: number) => fail(new Error(`${spec.caseName}: ${role} exited (code ${code}) before reporting`)));
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const ac = new AbortController();
  const timer = sleep(ms, undefined, { signal: ac.signal }).then(
    () => { throw new Error(`${what} timed out after ${ms} ms`); },
    () => undefined as never,
  );
  try {
    return await Promise.race([promise, timer]);
  } finally {
    ac.abort();
  }
}

/**
 * Runs one producer/consumer pair through warm-up and a measured window of `durationMs`, then
 * stops it. Rejects (after terminating both workers) if either side fails or does not answer.
 */
export async function runWorkerPair(spec: PairSpec): Promise<PairOutcome> {
  const control = new SharedArrayBuffer(CTL_INT32S * Int32Array.BYTES_PER_ELEMENT);
  const ctl = new Int32Array(control);
  const setPhase = (phase: number): void => {
    // Release: everything the main thread set up is visible before the phase moves (pairs with
    // the workers' Atomics.load of CTL_PHASE); the notify wakes workers parked on the phase word.
    Atomics.store(ctl, CTL_PHASE, phase);
    Atomics.notify(ctl, CTL_PHASE);
  };
  const wakeSleepers = (): void => {
    // Wakes a worker parked in Atomics.wait on a case word so it sees the stop now rather than
    // at its WAIT_TIMEOUT_MS; a sleeper that races past this still wakes at the timeout.
    for (const w of spec.wakeOnStop ?? []) Atomics.notify(w.words, w.index);
  };
  const producer = new PeerWorkerHandle(spec, 'producer', spec.producer, control);
  const consumer = new PeerWorkerHandle(spec, 'consumer', spec.consumer, control);
  try {
    await withTimeout(Promise.all([producer.ready, consumer.ready]), spec.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      `${spec.caseName}: worker start-up`);
    setPhase(PHASE_WARMUP);
    await sleep(spec.warmupMs);
    const t0Ms = performance.now();
    // Acquire loads of the consumer's count (pairs with its Atomics.store of CTL_CONSUMED).
    const c0 = Atomics.load(ctl, CTL_CONSUMED);
    setPhase(PHASE_MEASURE);
    await sleep(spec.durationMs);
    const c1 = Atomics.load(ctl, CTL_CONSUMED);
    const t1Ms = performance.now();
    setPhase(PHASE_STOP);
    wakeSleepers();
    const [p, c] = await withTimeout(Promise.all([producer.report, consumer.report]),
      spec.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS, `${spec.caseName}: stop`);
    return { producer: p, consumer: c, consumedPackets: (c1 - c0) | 0, seconds: (t1Ms - t0Ms) / 1000 };
  } finally {
    setPhase(PHASE_STOP);
    wakeSleepers();
    await Promise.all([producer.worker.terminate(), consumer.worker.terminate()]);
  }
}

/** Warm-up used when none is given: a fifth of the window, 20…250 ms. */
export function defaultWarmupMs(durationMs: number): number {
  return Math.min(250, Math.max(20, Math.round(durationMs / 5)));
}

function per1000(count: number, packets: number): number {
  return packets > 0 ? (count * 1000) / packets : 0;
}

export interface ResultLabels {
  name: string;
  caseName: string;
  payloadBytes: number;
  strategy?: string;
  publishEvery?: number;
}

/** Turns a pair outcome into the typed per-run result. */
export function throughputResult(labels: ResultLabels, outcome: PairOutcome): PeerCaseResult {
  const { producer, consumer } = outcome;
  const packets = Math.max(0, outcome.consumedPackets);
  const bytes = packets * labels.payloadBytes;
  const seconds = outcome.seconds;
  const cpuSecondsProducer = producer.window.cpuNs / 1e9;
  const cpuSecondsConsumer = consumer.window.cpuNs / 1e9;
  // CPU over the consumer's own view of the window, so both sides of the ratio cover one interval.
  const consumerWindowBytes = consumer.window.packets * labels.payloadBytes;
  const result: PeerCaseResult = {
    name: labels.name,
    payloadBytes: labels.payloadBytes,
    packets,
    bytes,
    seconds,
    pps: seconds > 0 ? packets / seconds : 0,
    gbps: seconds > 0 ? (bytes * 8) / seconds / 1e9 : 0,
    cpuSecondsProducer,
    cpuSecondsConsumer,
    cpuSecondsPerGB: consumerWindowBytes > 0 ? (cpuSecondsProducer + cpuSecondsConsumer) / (consumerWindowBytes / 1e9) : 0,
    notifiesPer1000: per1000(producer.window.notifies + consumer.window.notifies, consumer.window.packets),
    consumerSleepsPer1000: per1000(consumer.window.sleeps, consumer.window.packets),
    verified: consumer.verified && producer.verified && packets > 0,
    caseName: labels.caseName,
    cpuProcessWide: producer.cpuSource === 'process' || consumer.cpuSource === 'process',
  };
  if (labels.strategy !== undefined) result.strategy = labels.strategy;
  if (labels.publishEvery !== undefined) result.publishEvery = labels.publishEvery;
  if (!consumer.verified && consumer.firstError !== undefined) result.error = consumer.firstError;
  return result;
}

/** A zeroed, unverified result carrying the error of a run that failed. */
export function failedResult(labels: ResultLabels, err: unknown): PeerCaseResult {
  const result: PeerCaseResult = {
    name: labels.name,
    payloadBytes: labels.payloadBytes,
    packets: 0,
    bytes: 0,
    seconds: 0,
    pps: 0,
    gbps: 0,
    cpuSecondsProducer: 0,
    cpuSecondsConsumer: 0,
    cpuSecondsPerGB: 0,
    notifiesPer1000: 0,
    consumerSleepsPer1000: 0,
    verified: false,
    caseName: labels.caseName,
    cpuProcessWide: false,
    error: err instanceof Error ? err.message : String(err),
  };
  if (labels.strategy !== undefined) result.strategy = labels.strategy;
  if (labels.publishEvery !== undefined) result.publishEvery = labels.publishEvery;
  return result;
}
