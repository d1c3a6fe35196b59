// The trace analyzer: reads the lines of a trace file (pino NDJSON written by output.ts) one at a
// time and reports, per stage and end to end, counts and latency percentiles (HdrHistogram, 3
// significant digits), a log2 histogram for the HTML view, the slowest packets with their full
// timelines, and event counts (drops by reason, errors, timer lateness). Pure: no I/O here.

import * as hdr from 'hdr-histogram-js';
import { PACKET_POINTS, type PacketPoint } from './schema.js';

/** Log2 histogram bins: bin i counts durations in [2^(i+MIN_LOG2), 2^(i+1+MIN_LOG2)) ns. */
export const BIN_MIN_LOG2 = 5; // 32 ns; shorter durations land in bin 0
export const BIN_COUNT = 27; // up to 2^32 ns ≈ 4.3 s; longer ones land in the last bin

export interface LatencyStats {
  name: string;
  count: number;
  minNs: number;
  meanNs: number;
  p50Ns: number;
  p90Ns: number;
  p99Ns: number;
  maxNs: number;
  /** Counts per log2 bin (see BIN_MIN_LOG2). */
  bins: number[];
}

export interface SlowPacket {
  seq: number;
  e2eNs: number;
  lenBytes: number;
  /** Points in path order, ns since the run's origin. */
  points: { point: PacketPoint; tNs: number }[];
  /** Stages (consecutive points), ns. */
  stages: { name: string; ns: number }[];
}

export interface TraceReport {
  /** Line 1 of the file (run configuration and recording counters), minus bulky fields. */
  run: Record<string, unknown>;
  packets: number;
  /** Packets whose points are not in time order (should be 0). */
  outOfOrder: number;
  /** Packets whose stage durations do not add up to e2eNs (should be 0). */
  sumMismatches: number;
  e2e: LatencyStats;
  /** Stages in path order. */
  stages: LatencyStats[];
  /** The slowest packets after the warm-up (seq ≥ warmupPackets); when no packet is past the
   * warm-up, the slowest of the warm-up itself (and `slowestInWarmup` is true). */
  slowest: SlowPacket[];
  /** Packets with seq below this are the warm-up: counted in every total, not listed as slowest. */
  warmupPackets: number;
  slowestInWarmup: boolean;
  events: Record<string, number>;
  drops: Record<string, number>;
  errors: Record<string, number>;
  timerLateness?: LatencyStats;
  /** Lines that were not trace lines (skipped). */
  skippedLines: number;
}

export class TraceFormatError extends Error {
  override readonly name = 'TraceFormatError';
  constructor(
    readonly code: 'not-a-trace' | 'bad-line',
    message: string,
  ) {
    super(message);
  }
}

class Latency {
  private readonly h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 2 ** 40, numberOfSignificantValueDigits: 3, autoResize: true });
  count = 0;
  min = Infinity;
  max = 0;
  sum = 0;
  readonly bins: number[] = new Array<number>(BIN_COUNT).fill(0);

  constructor(readonly name: string) {}

  record(ns: number): void {
    const v = Math.max(0, Math.round(ns));
    this.h.recordValue(v);
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    const b = v < 1 ? 0 : Math.floor(Math.log2(v)) - BIN_MIN_LOG2;
    this.bins[Math.min(BIN_COUNT - 1, Math.max(0, b))]!++;
  }

  stats(): LatencyStats {
    const pct = (p: number): number => (this.count === 0 ? 0 : Math.min(this.max, this.h.getValueAtPercentile(p)));
    return {
      name: this.name,
      count: this.count,
      minNs: this.count === 0 ? 0 : this.min,
      meanNs: this.count === 0 ? 0 : this.sum / this.count,
      p50Ns: pct(50),
      p90Ns: pct(90),
      p99Ns: pct(99),
      maxNs: this.max,
      bins: this.bins.slice(),
    };
  }
}

const POINT_INDEX = new Map<string, number>(PACKET_POINTS.map((p, i) => [p, i]));

interface PacketLine {
  msg: 'packet';
  seq: number;
  len?: number;
  e2eNs: number;
  t: Record<string, number>;
}

/** Packets with seq below this are the JIT warm-up (always the slowest of a run otherwise). */
export const DEFAULT_WARMUP_PACKETS = 1000;

/** Keeps the n slowest packets, slowest first. */
function keepSlowest(list: SlowPacket[], n: number, e2eNs: number, make: () => SlowPacket): void {
  if (n > 0 && (list.length < n || e2eNs > list[list.length - 1]!.e2eNs)) {
    list.push(make());
    list.sort((a, b) => b.e2eNs - a.e2eNs);
    if (list.length > n) list.length = n;
  }
}

/** Feed it parsed lines (`add`), then ask for the `report`. */
export class TraceAnalyzer {
  private run: Record<string, unknown> | undefined;
  private readonly e2e = new Latency('end-to-end');
  private readonly stages = new Map<string, Latency>();
  private readonly timer = new Latency('timer lateness');
  private readonly slow: SlowPacket[] = [];
  private readonly warmupSlow: SlowPacket[] = [];
  private packets = 0;
  private outOfOrder = 0;
  private sumMismatches = 0;
  private skipped = 0;
  private readonly events: Record<string, number> = {};
  private readonly drops: Record<string, number> = {};
  private readonly errors: Record<string, number> = {};

  constructor(
    readonly slowestN = 10,
    readonly warmupPackets = DEFAULT_WARMUP_PACKETS,
  ) {}

  /** Adds one parsed line of a trace file. */
  add(line: unknown): void {
    if (typeof line !== 'object' || line === null) {
      this.skipped++;
      return;
    }
    const o = line as Record<string, unknown>;
    if (o.msg === 'trace-run') {
      const { points: _p, kinds: _k, ...rest } = o;
      this.run = rest;
    } else if (o.msg === 'packet' && typeof o.t === 'object' && o.t !== null && typeof o.seq === 'number') {
      this.addPacket(o as unknown as PacketLine);
    } else if (o.msg === 'event' && typeof o.ev === 'string') {
      this.events[o.ev] = (this.events[o.ev] ?? 0) + 1;
      if (o.ev === 'drop') this.drops[String(o.reason)] = (this.drops[String(o.reason)] ?? 0) + 1;
      if (o.ev === 'error') this.errors[String(o.code)] = (this.errors[String(o.code)] ?? 0) + 1;
      if (o.ev === 'timer-fired' && typeof o.latenessNs === 'number') this.timer.record(o.latenessNs);
    } else {
      this.skipped++;
    }
  }

  private addPacket(p: PacketLine): void {
    const pts = Object.entries(p.t)
      .filter(([k, v]) => POINT_INDEX.has(k) && typeof v === 'number')
      .sort((a, b) => POINT_INDEX.get(a[0])! - POINT_INDEX.get(b[0])!) as [PacketPoint, number][];
    if (pts.length < 2) {
      this.skipped++;
      return;
    }
    this.packets++;
    const stages: { name: string; ns: number }[] = [];
    let sum = 0;
    let ordered = true;
    for (let i = 1; i < pts.length; i++) {
      const ns = pts[i]![1] - pts[i - 1]![1];
      if (ns < 0) ordered = false;
      const name = `${pts[i - 1]![0]}→${pts[i]![0]}`;
      stages.push({ name, ns });
      sum += ns;
      let l = this.stages.get(name);
      if (l === undefined) this.stages.set(name, (l = new Latency(name)));
      l.record(ns);
    }
    if (!ordered) this.outOfOrder++;
    const e2eNs = typeof p.e2eNs === 'number' ? p.e2eNs : pts[pts.length - 1]![1] - pts[0]![1];
    if (sum !== e2eNs) this.sumMismatches++;
    this.e2e.record(e2eNs);
    keepSlowest(p.seq < this.warmupPackets ? this.warmupSlow : this.slow, this.slowestN, e2eNs, () => ({ seq: p.seq, e2eNs, lenBytes: p.len ?? 0, points: pts.map(([point, tNs]) => ({ point, tNs })), stages }));
  }

  report(): TraceReport {
    if (this.run === undefined) throw new TraceFormatError('not-a-trace', 'no "trace-run" line: not a virtq trace file');
    const order = (name: string): number => {
      const [a, b] = name.split('→');
      return POINT_INDEX.get(a!)! * 100 + POINT_INDEX.get(b!)!;
    };
    const r: TraceReport = {
      run: this.run,
      packets: this.packets,
      outOfOrder: this.outOfOrder,
      sumMismatches: this.sumMismatches,
      e2e: this.e2e.stats(),
      stages: [...this.stages.values()].map((l) => l.stats()).sort((a, b) => order(a.name) - order(b.name)),
      slowest: this.slow.length > 0 ? this.slow : this.warmupSlow,
      warmupPackets: this.warmupPackets,
      slowestInWarmup: this.slow.length === 0 && this.warmupSlow.length > 0,
      events: this.events,
      drops: this.drops,
      errors: this.errors,
      skippedLines: this.skipped,
    };
    if (this.timer.count > 0) r.timerLateness = this.timer.stats();
    return r;
  }
}

/** Formats ns for people: 850 ns, 12.3 µs, 4.56 ms. */
export function fmtNs(ns: number): string {
  if (ns < 1000) return `${Math.round(ns)} ns`;
  if (ns < 1e6) return `${(ns / 1e3).toFixed(ns < 1e4 ? 2 : 1)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(2)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

/** "slowest 10 packets after the first 1000 (warm-up)", or why the list is from the warm-up. */
export function slowestTitle(r: TraceReport): string {
  const n = `slowest ${r.slowest.length} packets`;
  if (r.warmupPackets <= 0) return n;
  if (r.slowestInWarmup) return `${n} (all in the warm-up: no packet past seq ${r.warmupPackets - 1})`;
  return `${n} after the first ${r.warmupPackets} (warm-up, counted in the totals above)`;
}

/** The report as a plain-text table. */
export function formatReport(r: TraceReport): string {
  const rows = [r.e2e, ...r.stages];
  const w = Math.max(...rows.map((s) => s.name.length), 5);
  const col = (s: string): string => s.padStart(10);
  const lines = [
    `trace: ${r.packets} packets (sample 1 in ${String(r.run.sample)}${Number(r.run.sampleBlock ?? 1) > 1 ? ` in blocks of ${String(r.run.sampleBlock)}` : ''}${r.run.stamping === 'interpolated' ? ', per-packet points interpolated between clock reads' : ''}, workload ${String(r.run.workload ?? '?')}), ` +
      `incomplete ${String(r.run.incomplete ?? 0)}, out of order ${r.outOfOrder}, ` +
      `${Number(r.run.mismatched ?? 0) > 0 ? `mismatched ${String(r.run.mismatched)}, ` : ''}dropped records ${JSON.stringify(r.run.droppedRecords ?? {})}`,
    `${'stage'.padEnd(w)} ${col('count')}${col('p50')}${col('p90')}${col('p99')}${col('max')}`,
  ];
  for (const s of rows) lines.push(`${s.name.padEnd(w)} ${col(String(s.count))}${col(fmtNs(s.p50Ns))}${col(fmtNs(s.p90Ns))}${col(fmtNs(s.p99Ns))}${col(fmtNs(s.maxNs))}`);
  if (r.slowest.length > 0) {
    lines.push('', `${slowestTitle(r)}:`);
    for (const p of r.slowest) lines.push(`  seq ${p.seq}: ${fmtNs(p.e2eNs)} = ${p.stages.map((s) => `${s.name} ${fmtNs(s.ns)}`).join(', ')}`);
  }
  const ev = Object.entries(r.events);
  if (ev.length > 0) lines.push('', `events: ${ev.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (Object.keys(r.drops).length > 0) lines.push(`drops by reason: ${Object.entries(r.drops).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (r.timerLateness) lines.push(`timer lateness: p50 ${fmtNs(r.timerLateness.p50Ns)}, p99 ${fmtNs(r.timerLateness.p99Ns)}, max ${fmtNs(r.timerLateness.maxNs)} (${r.timerLateness.count} fires)`);
  return lines.join('\n') + '\n';
}
