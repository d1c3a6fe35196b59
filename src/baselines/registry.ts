// The registry of peer cases and the scheduler of `virtq bench peers`. Every case × payload ×
// strategy runs once per run index, strictly one at a time, in a round-robin order rotated by
// the run index, so drift of the shared host hits all cases alike; results are then folded into
// min / median / max per case and divided by the bare ring of the same run. Cases added later
// (the virtq split ring) join through registerPeerCase and get the same treatment.

import { cpus } from 'node:os';
import { relative } from 'node:path';
import { runAtomicsPingPong, ATOMICS_PINGPONG_CASE, ATOMICS_PINGPONG_2LINES_CASE, ATOMICS_PINGPONG_3LINES_CASE } from './atomics-pingpong.js';
import { BARE_RING_CASE, runBareRing } from './bare-ring.js';
import { defaultWarmupMs, failedResult } from './harness.js';
import { packetGeometry } from './packets.js';
import {
  POSTMESSAGE_COPY_CASE,
  POSTMESSAGE_TRANSFER_CASE,
  runPostMessageCopy,
  runPostMessageTransfer,
} from './postmessage.js';
import { RINGBUF_JS_CASE, runRingbufJs } from './ringbuf-js.js';
import {
  VIRTQ_PACKED_CASE,
  VIRTQ_PACKED_INORDER_CASE,
  VIRTQ_PACKED_PINGPONG_CASE,
  VIRTQ_PINGPONG_CASE,
  VIRTQ_RING_CASE,
  VIRTQ_RING_INORDER_CASE,
  runVirtqPingPong,
  runVirtqRing,
} from './virtq-ring.js';
import {
  parseStrategy,
  REFERENCE_STRATEGY,
  type KickStrategy,
  type LatencyRunContext,
  type PeerCaseResult,
  type PeerCaseSummary,
  type PeerRunContext,
  type PeersBenchOptions,
  type PeersReport,
  type PingPongResult,
  type PingPongSummary,
  type Spread,
} from './types.js';

export type PeerCaseRunner = (ctx: PeerRunContext) => Promise<PeerCaseResult>;
export type LatencyCaseRunner = (ctx: LatencyRunContext) => Promise<PingPongResult>;

export interface ThroughputCaseEntry {
  kind: 'throughput';
  name: string;
  /** Runs once per kick strategy (ring-like cases), or once per payload only. */
  perStrategy: boolean;
  run: PeerCaseRunner;
}

export interface LatencyCaseEntry {
  kind: 'latency';
  name: string;
  run: LatencyCaseRunner;
}

export type PeerCaseEntry = ThroughputCaseEntry | LatencyCaseEntry;

export interface RegisterOptions {
  /** Run once per strategy in `strategies` (default false). */
  perStrategy?: boolean;
}

const registry = new Map<string, PeerCaseEntry>();

/** Every registered case by name, in registration order (bare-ring first). */
export const peerCases: ReadonlyMap<string, PeerCaseEntry> = registry;

function checkNewName(name: string): void {
  if (!/^[a-z0-9][a-z0-9+._-]*$/.test(name)) throw new RangeError(`peer case name "${name}": use [a-z0-9+._-]`);
  if (registry.has(name)) throw new Error(`peer case "${name}" is already registered`);
}

/** Adds a throughput case; it runs beside the built-in ones and gets a ratio vs bare-ring. */
export function registerPeerCase(name: string, runner: PeerCaseRunner, options: RegisterOptions = {}): void {
  checkNewName(name);
  registry.set(name, { kind: 'throughput', name, perStrategy: options.perStrategy ?? false, run: runner });
}

/** Adds a latency (ping-pong style) case; it runs once per strategy. */
export function registerLatencyCase(name: string, runner: LatencyCaseRunner): void {
  checkNewName(name);
  registry.set(name, { kind: 'latency', name, run: runner });
}

registerPeerCase(BARE_RING_CASE, (ctx) => runBareRing(ctx), { perStrategy: true });
registerPeerCase(VIRTQ_RING_CASE, (ctx) => runVirtqRing(ctx), { perStrategy: true });
registerPeerCase(VIRTQ_PACKED_CASE, (ctx) => runVirtqRing(ctx, 'packed'), { perStrategy: true });
registerPeerCase(VIRTQ_RING_INORDER_CASE, (ctx) => runVirtqRing(ctx, 'split', true), { perStrategy: true });
registerPeerCase(VIRTQ_PACKED_INORDER_CASE, (ctx) => runVirtqRing(ctx, 'packed', true), { perStrategy: true });
registerPeerCase(POSTMESSAGE_COPY_CASE, runPostMessageCopy);
registerPeerCase(POSTMESSAGE_TRANSFER_CASE, runPostMessageTransfer);
registerPeerCase(RINGBUF_JS_CASE, runRingbufJs);
registerLatencyCase(ATOMICS_PINGPONG_CASE, (ctx) => runAtomicsPingPong(ctx));
registerLatencyCase(ATOMICS_PINGPONG_2LINES_CASE, (ctx) => runAtomicsPingPong(ctx, 2));
registerLatencyCase(ATOMICS_PINGPONG_3LINES_CASE, (ctx) => runAtomicsPingPong(ctx, 3));
registerLatencyCase(VIRTQ_PINGPONG_CASE, (ctx) => runVirtqPingPong(ctx));
registerLatencyCase(VIRTQ_PACKED_PINGPONG_CASE, (ctx) => runVirtqPingPong(ctx, 'packed'));

type Job =
  | { kind: 'throughput'; entry: ThroughputCaseEntry; payloadBytes: number; strategy?: KickStrategy }
  | { kind: 'latency'; entry: LatencyCaseEntry; strategy: KickStrategy };

export function spread(values: readonly number[]): Spread {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return { min: 0, median: 0, max: 0 };
  const mid = v.length >> 1;
  const median = v.length % 2 === 1 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { min: v[0]!, median, max: v[v.length - 1]! };
}

function commandLine(): string {
  const args = process.argv.slice(1).map((a, i) => (i === 0 ? relative(process.cwd(), a) || a : a));
  return ['node', ...args].join(' ');
}

function summariseThroughput(results: PeerCaseResult[], referenceStrategy: string): PeerCaseSummary[] {
  const groups = new Map<string, PeerCaseResult[]>();
  for (const r of results) {
    // Not by name: a run that failed before its runner could name it (bare-ring's /bN) still
    // belongs with its case and strategy.
    const key = `${r.payloadBytes}|${r.caseName}|${r.strategy ?? ''}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [r]);
    else list.push(r);
  }
  const summaries: PeerCaseSummary[] = [];
  for (const list of groups.values()) {
    const ok = list.filter((r) => r.error === undefined || r.packets > 0);
    const first = ok[0] ?? list[0]!;
    const s: PeerCaseSummary = {
      name: first.name,
      caseName: first.caseName,
      payloadBytes: first.payloadBytes,
      runs: list.length,
      pps: spread(ok.map((r) => r.pps)),
      gbps: spread(ok.map((r) => r.gbps)),
      cpuSecondsPerGB: spread(ok.map((r) => r.cpuSecondsPerGB)),
      notifiesPer1000: spread(ok.map((r) => r.notifiesPer1000)),
      consumerSleepsPer1000: spread(ok.map((r) => r.consumerSleepsPer1000)),
      allVerified: list.every((r) => r.verified),
      ppsRatioVsBareRing: null,
      ratioReference: null,
      results: list,
    };
    if (first.strategy !== undefined) s.strategy = first.strategy;
    if (first.publishEvery !== undefined) s.publishEvery = first.publishEvery;
    summaries.push(s);
  }
  summaries.sort((a, b) => a.payloadBytes - b.payloadBytes);
  for (const s of summaries) {
    const refs = summaries.filter((r) => r.caseName === BARE_RING_CASE && r.payloadBytes === s.payloadBytes);
    const ref = refs.find((r) => s.strategy !== undefined && r.strategy === s.strategy)
      ?? refs.find((r) => r.strategy === referenceStrategy)
      ?? refs[0];
    if (ref !== undefined && ref.pps.median > 0) {
      s.ppsRatioVsBareRing = s.pps.median / ref.pps.median;
      s.ratioReference = ref.name;
    }
  }
  return summaries;
}

function summariseLatency(results: PingPongResult[]): PingPongSummary[] {
  const groups = new Map<string, PingPongResult[]>();
  for (const r of results) {
    const key = `${r.name}|${r.strategy}`;
    const list = groups.get(key);
    if (list === undefined) groups.set(key, [r]);
    else list.push(r);
  }
  return [...groups.values()].map((list) => {
    const ok = list.filter((r) => r.rtts > 0);
    return {
      name: list[0]!.name,
      strategy: list[0]!.strategy,
      runs: list.length,
      rtts: list.reduce((n, r) => n + r.rtts, 0),
      p50Us: spread(ok.map((r) => r.p50Us)),
      p99Us: spread(ok.map((r) => r.p99Us)),
      maxUs: spread(ok.map((r) => r.maxUs)),
      meanUs: spread(ok.map((r) => r.meanUs)),
      results: list,
    };
  });
}

/**
 * Runs every selected case × payload (× strategy) `runs` times, one at a time, and folds the
 * results into a JSON-serialisable report. A run that throws is kept as an unverified, zeroed
 * result carrying its error; the bench goes on.
 */
export async function runPeersBench(opts: PeersBenchOptions): Promise<PeersReport> {
  const startedMs = performance.now();
  if (!Number.isInteger(opts.runs) || opts.runs < 1) throw new RangeError(`runs ${opts.runs}: must be a positive integer`);
  if (!(opts.durationMs > 0)) throw new RangeError(`durationMs ${opts.durationMs}: must be positive`);
  for (const payload of opts.payloads) packetGeometry(payload);
  const strategies: KickStrategy[] = [];
  for (const text of opts.strategies) {
    const s = parseStrategy(text);
    if (!strategies.some((x) => x.name === s.name)) strategies.push(s);
  }
  if (strategies.length === 0) throw new RangeError('no kick strategies given');
  const caseNames = opts.cases ?? [...registry.keys()];
  const entries = caseNames.map((name) => {
    const e = registry.get(name);
    if (e === undefined) throw new RangeError(`unknown peer case "${name}" (known: ${[...registry.keys()].join(', ')})`);
    return e;
  });
  const warmupMs = opts.warmupMs ?? (opts.quick ? Math.min(40, defaultWarmupMs(opts.durationMs)) : defaultWarmupMs(opts.durationMs));
  const referenceStrategy = strategies.some((s) => s.name === REFERENCE_STRATEGY) ? REFERENCE_STRATEGY : strategies[0]!.name;

  const jobs: Job[] = [];
  for (const payloadBytes of opts.payloads) {
    for (const entry of entries) {
      if (entry.kind !== 'throughput') continue;
      if (entry.perStrategy) for (const strategy of strategies) jobs.push({ kind: 'throughput', entry, payloadBytes, strategy });
      else jobs.push({ kind: 'throughput', entry, payloadBytes });
    }
  }
  for (const entry of entries) {
    if (entry.kind !== 'latency') continue;
    for (const strategy of strategies) jobs.push({ kind: 'latency', entry, strategy });
  }

  const throughput: PeerCaseResult[] = [];
  const latency: PingPongResult[] = [];
  const total = jobs.length * opts.runs;
  let done = 0;
  for (let runIndex = 0; runIndex < opts.runs; runIndex++) {
    for (let j = 0; j < jobs.length; j++) {
      const job = jobs[(j + runIndex) % jobs.length]!;
      let result: PeerCaseResult | PingPongResult;
      if (job.kind === 'throughput') {
        const ctx: PeerRunContext = {
          payloadBytes: job.payloadBytes,
          durationMs: opts.durationMs,
          warmupMs,
          quick: opts.quick,
          runIndex,
        };
        if (job.strategy !== undefined) ctx.strategy = job.strategy;
        try {
          result = await job.entry.run(ctx);
        } catch (err) {
          const labels = { name: job.entry.name, caseName: job.entry.name, payloadBytes: job.payloadBytes };
          result = failedResult(job.strategy !== undefined ? { ...labels, name: `${job.entry.name}/${job.strategy.name}`, strategy: job.strategy.name } : labels, err);
        }
        throughput.push(result);
      } else {
        try {
          result = await job.entry.run({ durationMs: opts.durationMs, warmupMs, strategy: job.strategy, quick: opts.quick, runIndex });
        } catch (err) {
          result = {
            name: job.entry.name,
            strategy: job.strategy.name,
            rtts: 0,
            p50Us: 0,
            p99Us: 0,
            maxUs: 0,
            meanUs: 0,
            error: err instanceof Error ? err.message : String(err),
          };
        }
        latency.push(result);
      }
      opts.onResult?.(result, ++done, total);
    }
  }

  return {
    generatedAt: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    command: commandLine(),
    options: {
      payloads: [...opts.payloads],
      durationMs: opts.durationMs,
      warmupMs,
      runs: opts.runs,
      strategies: strategies.map((s) => s.name),
      quick: opts.quick,
      cases: entries.map((e) => e.name),
    },
    reference: `${BARE_RING_CASE} at the same payload: same strategy, else ${referenceStrategy}`,
    throughput: summariseThroughput(throughput, referenceStrategy),
    latency: summariseLatency(latency),
    totalSeconds: (performance.now() - startedMs) / 1000,
  };
}
