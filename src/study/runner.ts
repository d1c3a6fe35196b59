// Runs the study's cells through the engine: netperf-like stream runs and ping -f-like cells
// for one preset and direction, and the whole matrix (rows × stream g→h, stream h→g, ping g→h,
// ping h→g) with progress events. Node-only through the engine (worker threads); everything
// else in src/study is pure and not re-exported with this from index.ts. A cell that fails (the
// workload throws, the run times out) is recorded with its error and the study goes on. With
// `trace`, every engine run is traced into its own file (docs/tracing.md): FILE for a command's
// only run, else FILE with a `-<row>-<cell>-<run>` suffix before its extension.

import { Engine, runEnginePairs, type EngineOptions, type EngineResult, type WaitSettings } from '../engine/index.js';
import { TraceSession, type TraceOptions } from '../trace/session.js';
import { writeTraceFile, type TraceFileSummary } from '../trace/output.js';
import { type Direction, type Mechanism, type StreamRun, aggregatePairs, pingResultOf, streamRunOf } from './measure.js';
import { DEFAULT_PING_WORKLOAD, DEFAULT_STREAM_WORKLOAD, REPORT_SCHEMA, type PingCell, type ProgressEvent, type RowResult, type StreamCell, type StudyReport } from './report.js';
import { FAITHFUL_PLAN, estimatePingMs, estimateStreamRunMs, etaMs, type StudyPlan } from './plan.js';
import type { StudyMode, StudyPreset } from './presets-source.js';
import { rfcFiguresFor, RFC_SOURCE } from './rfc-figures.js';
import { judgeConclusions } from './conclusions.js';
import { summarize } from './stats.js';
import type { RingKind } from '../virtqueue/index.js';

/**
 * Runs one engine run; with `stopAfterReadyMs`, stops it that long after both sides passed the
 * start barrier (so a slow start never eats the measured window).
 */
export type RunEngine = (options: EngineOptions, stopAfterReadyMs?: number) => Promise<EngineResult>;

/** Word 0 of the engine's control block counts the sides that passed the start barrier (side.ts). */
const CTRL_READY = 0;

/** The default RunEngine: Engine.start, then a stop timed from the start barrier. */
export async function runEngineTimed(options: EngineOptions, stopAfterReadyMs?: number): Promise<EngineResult> {
  const engine = Engine.start(options);
  if (stopAfterReadyMs === undefined) return engine.done;
  const ready = new Int32Array(engine.setup.controlSab);
  let timer: NodeJS.Timeout | undefined;
  // Polls from the main thread (no Atomics.wait here): 2 ms granularity is plenty for seconds.
  const poll = setInterval(() => {
    // Pairs with the sides' Atomics.add in SideContext.arriveAndWait.
    if (Atomics.load(ready, CTRL_READY) >= 2) {
      clearInterval(poll);
      timer = setTimeout(() => engine.stop(), stopAfterReadyMs);
    }
  }, 2);
  try {
    return await engine.done;
  } finally {
    clearInterval(poll);
    clearTimeout(timer);
  }
}

/** What every cell needs besides its preset and direction. */
export interface CellOptions {
  /** Workload names (registered) or absolute paths / file URLs (tests use fakes). */
  streamWorkload?: string;
  pingWorkload?: string;
  /** Send size, bytes (netperf -m; default 16384). */
  msgBytes?: number;
  mtu?: number;
  /** Overrides the preset's ring size for both queues. */
  queueSize?: number;
  /** Ring layout of both queues (default split; packed = VIRTIO_F_RING_PACKED, §2.8). */
  ring?: RingKind;
  /** VIRTIO_F_IN_ORDER on both queues. */
  inOrder?: boolean;
  /** Informational: the preset itself (StudyPreset.policy) already says cumulative or alone. */
  mode?: StudyMode;
  wait?: WaitSettings;
  /** Injected for tests; default Engine.run. */
  runEngine?: RunEngine;
  /** Trace every engine run into its own file (see RunTrace). */
  trace?: RunTrace;
  /**
   * Stream cells: queue pairs run at once, each its own guest and host worker (runEnginePairs);
   * the run's figures are the pairs' summed (aggregatePairs). Default 1. Not with `trace`.
   */
  queuePairs?: number;
}

/** Tracing for the runs of a cell or a study: one TraceSession and one file per engine run. */
export interface RunTrace extends TraceOptions {
  /** The file for a single run; with several, the stem that gets `-<row>-<cell>-<run>` before its extension. */
  file: string;
  /** True when the command makes exactly one run: it writes `file` itself. Default false. */
  single?: boolean;
  /** Called after each trace file is written. */
  onWritten?(summary: TraceFileSummary): void;
}

/** `runs.ndjson` → `runs-<row>-<cell>-<run>.ndjson` (the suffix goes before the last extension, if any). */
export function traceFileFor(file: string, row: string, cell: string, run: number): string {
  const suffix = `-${row}-${cell}-${run}`;
  const slash = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
  const dot = file.lastIndexOf('.');
  return dot > slash + 1 ? file.slice(0, dot) + suffix + file.slice(dot) : file + suffix;
}

/** Runs one engine run, traced into its own file when `o.trace` asks. */
async function runOne(options: EngineOptions, stopAfterReadyMs: number | undefined, o: CellOptions, preset: StudyPreset, cell: string, run: number): Promise<EngineResult> {
  const runEngine = o.runEngine ?? runEngineTimed;
  const t = o.trace;
  if (t === undefined) return runEngine(options, stopAfterReadyMs);
  const session = new TraceSession(t);
  const r = await runEngine({ ...options, trace: session }, stopAfterReadyMs);
  const file = t.single === true ? t.file : traceFileFor(t.file, preset.slug, cell, run);
  const meta = { workload: options.workload, params: options.params, queues: options.queues, wait: options.wait, preset: preset.name, cell, run };
  const written = writeTraceFile(session, file, meta);
  t.onWritten?.(written);
  return r;
}

function meanMechanism(runs: StreamRun[]): Mechanism | null {
  if (runs.length === 0) return null;
  const out: Record<string, number> = {};
  for (const k of Object.keys(runs[0]!.mechanism)) {
    out[k] = runs.reduce((a, r) => a + (r.mechanism as unknown as Record<string, number>)[k]!, 0) / runs.length;
  }
  return out as unknown as Mechanism;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function queuesFor(preset: StudyPreset, o: CellOptions): EngineOptions['queues'] {
  const size = o.queueSize ?? preset.ringSize;
  const layout = { ...(o.ring !== undefined ? { ring: o.ring } : {}), ...(o.inOrder === true ? { inOrder: true } : {}) };
  return [
    { size, eventIdx: preset.eventIdx, ...layout },
    { size, eventIdx: preset.eventIdx, ...layout },
  ];
}

/**
 * Guest RAM for driver buffers: room for every descriptor of both queues to hold a 64 KiB GSO
 * frame plus header (or a 4 KiB page without GSO), at least the engine's default 8 MiB.
 */
export function arenaBytesFor(preset: StudyPreset, o: CellOptions): number {
  const size = o.queueSize ?? preset.ringSize;
  return Math.max(8 << 20, 2 * size * (preset.gso ? 68 << 10 : 4 << 10));
}

function commonParams(preset: StudyPreset, o: CellOptions): Record<string, unknown> {
  return { preset: preset.policy };
}

/** One netperf-like run: sender on one side, receiver counts payload in the measured window. */
export async function runStreamOnce(preset: StudyPreset, direction: Direction, plan: Pick<StudyPlan, 'seconds' | 'warmupMs'>, o: CellOptions = {}, runNo = 1): Promise<StreamRun> {
  const stopAfterMs = plan.warmupMs + plan.seconds * 1000;
  const pairs = o.queuePairs ?? 1;
  const options: EngineOptions = {
    workload: o.streamWorkload ?? DEFAULT_STREAM_WORKLOAD,
    queues: queuesFor(preset, o),
    arenaBytes: arenaBytesFor(preset, o),
    params: {
      ...commonParams(preset, o),
      direction,
      msgBytes: o.msgBytes ?? 16384,
      gso: preset.gso,
      mergeable: preset.mergeable,
      mtu: o.mtu ?? 1500,
      warmupMs: plan.warmupMs,
    },
    ...(o.wait ? { wait: o.wait } : {}),
    timeoutMs: stopAfterMs + 60_000,
  };
  if (pairs > 1) {
    if (o.trace !== undefined) throw new RangeError('tracing a multi-pair stream is not supported: trace one pair');
    const r = await runEnginePairs(options, pairs, stopAfterMs);
    return aggregatePairs(r.pairs.map((p) => streamRunOf(direction, p.guest, p.host)));
  }
  const r = await runOne(options, stopAfterMs, o, preset, `stream-${direction}`, runNo);
  return streamRunOf(direction, r.guest, r.host);
}

/** A stream cell: `plan.runs` runs, summarised; a failed run ends the cell with its error. */
export async function runStreamCell(
  preset: StudyPreset,
  direction: Direction,
  plan: Pick<StudyPlan, 'runs' | 'seconds' | 'warmupMs'>,
  o: CellOptions = {},
  onRun?: (run: number) => void,
): Promise<StreamCell> {
  const runs: StreamRun[] = [];
  let error: string | undefined;
  for (let i = 0; i < plan.runs; i++) {
    onRun?.(i + 1);
    try {
      runs.push(await runStreamOnce(preset, direction, plan, o, i + 1));
    } catch (e) {
      error = `run ${i + 1}: ${errText(e)}`;
      break;
    }
  }
  const cell: StreamCell = {
    kind: 'stream',
    direction,
    preset: preset.name,
    queueSize: o.queueSize ?? preset.ringSize,
    msgBytes: o.msgBytes ?? 16384,
    gso: preset.gso,
    ...((o.queuePairs ?? 1) > 1 ? { queuePairs: o.queuePairs } : {}),
    runs,
    gbps: summarize(runs.map((r) => r.gbps)),
    guestCpuSPerGB: summarize(runs.map((r) => r.guestCpuSPerGB)),
    hostCpuSPerGB: summarize(runs.map((r) => r.hostCpuSPerGB)),
    mechanism: meanMechanism(runs),
    errors: runs.reduce((a, r) => a + r.errors, 0),
  };
  if (error !== undefined) cell.error = error;
  return cell;
}

/** A ping -f cell: `count` echo requests, 56-byte payload, next on reply or after 10 ms. */
export async function runPingCell(preset: StudyPreset, direction: Direction, plan: Pick<StudyPlan, 'count' | 'pingCapMs'>, o: CellOptions = {}): Promise<PingCell> {
  const cell: PingCell = { kind: 'ping', direction, preset: preset.name, queueSize: o.queueSize ?? preset.ringSize, count: plan.count, result: null };
  try {
    const r = await runOne({
      workload: o.pingWorkload ?? DEFAULT_PING_WORKLOAD,
      queues: queuesFor(preset, o),
      arenaBytes: arenaBytesFor(preset, o),
      params: { ...commonParams(preset, o), direction, count: plan.count, payloadBytes: 56, timeoutMs: 10 },
      ...(o.wait ? { wait: o.wait } : {}),
      // Worst case every request waits the full 10 ms.
      timeoutMs: (plan.pingCapMs ?? plan.count * 11) + 60_000,
    }, plan.pingCapMs ?? undefined, o, preset, `ping-${direction}`, 1);
    cell.result = pingResultOf(direction, r.guest, r.host);
  } catch (e) {
    cell.error = errText(e);
  }
  return cell;
}

export interface StudyOptions extends CellOptions {
  rows: StudyPreset[];
  plan?: StudyPlan;
  command?: string;
  /** Where it ran (the CLI fills it from node:os). */
  machine?: StudyReport['machine'];
  onProgress?: (e: ProgressEvent) => void;
  /** Checked before each cell: once aborted, nothing more runs and the report so far comes back (`interrupted`). */
  signal?: AbortSignal;
  /** After every finished cell, the report so far (the CLI writes it, so a crash or Ctrl-C loses at most the cell in flight). */
  onCell?: (soFar: StudyReport) => void;
  /**
   * An earlier (interrupted) report of the same plan: its cells that finished without an error are
   * taken as they are, by row slug, and only the others run. Check the plans match first
   * (`resumeMismatch`).
   */
  resumeFrom?: StudyReport;
}

/** Why `earlier` cannot be resumed under `now` (a plan field that differs), or null when it can. */
export function resumeMismatch(earlier: StudyReport, now: StudyReport['plan']): string | null {
  const a = earlier.plan as unknown as Record<string, unknown>;
  const b = now as unknown as Record<string, unknown>;
  for (const k of Object.keys(b)) if (JSON.stringify(a[k]) !== JSON.stringify(b[k])) return `plan.${k} was ${JSON.stringify(a[k])}, now ${JSON.stringify(b[k])}`;
  return null;
}

/** The plan a study with these options records in its report (what a resumed study must match). */
export function studyPlanOf(o: StudyOptions): StudyReport['plan'] {
  return {
    ...(o.plan ?? FAITHFUL_PLAN),
    mode: o.mode ?? 'cumulative',
    msgBytes: o.msgBytes ?? 16384,
    mtu: o.mtu ?? 1500,
    streamWorkload: o.streamWorkload ?? DEFAULT_STREAM_WORKLOAD,
    pingWorkload: o.pingWorkload ?? DEFAULT_PING_WORKLOAD,
    waitStrategy: o.wait?.strategy ?? 'engine default (hybrid)',
    ...(o.ring === 'packed' ? { ring: 'packed' as const } : {}),
    ...(o.inOrder === true ? { inOrder: true as const } : {}),
    // Stream cells run this many pairs at once (ping cells one: a round trip uses one pair).
    ...(o.queuePairs !== undefined && o.queuePairs > 1 ? { queuePairs: o.queuePairs } : {}),
  };
}

/** The whole matrix, row by row in order: stream g→h, stream h→g, ping g→h, ping h→g. */
export async function runStudy(o: StudyOptions): Promise<StudyReport> {
  const plan = o.plan ?? FAITHFUL_PLAN;
  const t0 = performance.now();
  const streamMs = estimateStreamRunMs(plan);
  const pingMs = estimatePingMs(plan);
  const rowPlannedMs = 2 * plan.runs * streamMs + 2 * pingMs;
  const totalPlannedMs = rowPlannedMs * o.rows.length;
  let plannedDone = 0;
  const rows: RowResult[] = [];
  let interrupted = false;
  const stopNow = (): boolean => (interrupted ||= o.signal?.aborted === true);
  const report = (): StudyReport => ({
    schema: REPORT_SCHEMA,
    generatedAt: new Date().toISOString(),
    command: o.command ?? '',
    machine: o.machine ?? { node: process.version, platform: `${process.platform} ${process.arch}`, cpus: NaN, cpuModel: 'unknown' },
    plan: studyPlanOf(o),
    rfcSource: RFC_SOURCE,
    rows: rows.map((r) => ({ ...r, stream: { ...r.stream }, ping: { ...r.ping } })),
    totalSeconds: (performance.now() - t0) / 1000,
    conclusions: judgeConclusions({ rows, plan: { mode: o.mode ?? 'cumulative' } }),
    ...(interrupted ? { interrupted: true as const } : {}),
  });
  allRows: for (let ri = 0; ri < o.rows.length; ri++) {
    if (stopNow()) break;
    const p = o.rows[ri]!;
    const progress = (cell: string, run: number, runs: number): void => {
      if (!o.onProgress) return;
      const elapsed = performance.now() - t0;
      o.onProgress({ rowIndex: ri, rowCount: o.rows.length, row: p.name, cell, run, runs, elapsedMs: elapsed, etaMs: etaMs(plannedDone, elapsed, totalPlannedMs - plannedDone) });
    };
    const row: RowResult = {
      name: p.name,
      slug: p.slug,
      kind: p.kind,
      description: p.description,
      dataPath: { ringSize: o.queueSize ?? p.ringSize, gso: p.gso, mergeable: p.mergeable, eventIdx: p.eventIdx },
      rfc: p.kind === 'rfc' ? rfcFiguresFor(p.name) : null,
      stream: { g2h: null, h2g: null },
      ping: { g2h: null, h2g: null },
    };
    rows.push(row);
    const earlier = o.resumeFrom?.rows.find((r) => r.slug === p.slug);
    for (const d of ['g2h', 'h2g'] as Direction[]) {
      if (stopNow()) break allRows;
      const cellStart = plannedDone;
      const kept = earlier?.stream[d];
      if (kept != null && kept.error === undefined && kept.errors === 0) {
        row.stream[d] = kept;
        plannedDone = cellStart + plan.runs * streamMs;
        continue;
      }
      row.stream[d] = await runStreamCell(p, d, plan, o, (run) => {
        plannedDone = cellStart + (run - 1) * streamMs;
        progress(`stream ${d}`, run, plan.runs);
      });
      plannedDone = cellStart + plan.runs * streamMs;
      o.onCell?.(report());
    }
    for (const d of ['g2h', 'h2g'] as Direction[]) {
      if (stopNow()) break allRows;
      const kept = earlier?.ping[d];
      if (kept != null && kept.error === undefined && kept.result !== null && kept.result.errors === 0) {
        row.ping[d] = kept;
        plannedDone += pingMs;
        continue;
      }
      progress(`ping ${d}`, 1, 1);
      row.ping[d] = await runPingCell(p, d, plan, o);
      plannedDone += pingMs;
      o.onCell?.(report());
    }
  }
  return report();
}
