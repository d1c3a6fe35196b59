// The RFC's five conclusions as verdicts: each conclusion is a claim about the ratio of two
// neighbouring rows' average throughput (later ÷ earlier, cumulative mode, as the RFC built its
// table). A stated rule per conclusion turns our ratios into "reproduced", "partly" or "not", the
// RFC's own ratios are carried beside ours, and each verdict says which rule decided it. Pure:
// reads a report, starts nothing.

import type { Direction, Mechanism } from './measure.js';
import type { ConclusionVerdict, PairRatios, StudyReport, Verdict } from './report.js';
// The verdict types live with the report they are part of; named here too for callers of judgeConclusions.
export type { ConclusionVerdict, PairRatios, Verdict } from './report.js';
import { RFC_CONCLUSIONS, rfcFiguresFor } from './rfc-figures.js';


/** One comparison behind a conclusion: numerator row ÷ denominator row. */
export interface ConclusionPair {
  conclusion: number;
  label: string;
  num: string;
  den: string;
}

/** The comparisons behind each RFC conclusion (row names as in the RFC). */
export const CONCLUSION_PAIRS: readonly ConclusionPair[] = [
  { conclusion: 0, label: '250 µs ÷ 50 µs timer', num: '250us tx timer + rearm', den: '50us tx timer + rearm' },
  { conclusion: 0, label: '150 µs ÷ 50 µs timer', num: '150us tx timer + rearm', den: '50us tx timer + rearm' },
  { conclusion: 1, label: 'GSO ÷ recv NO_NOTIFY', num: 'GSO', den: 'recv NO_NOTIFY' },
  { conclusion: 2, label: 'ring 256 ÷ GSO (128)', num: 'ring size == 256', den: 'GSO' },
  { conclusion: 2, label: 'ring 512 ÷ GSO (128)', num: 'ring size == 512', den: 'GSO' },
  { conclusion: 3, label: 'drop mutex ÷ ring 512', num: 'drop mutex during tapfd read', den: 'ring size == 512' },
  { conclusion: 4, label: 'zero-copy ÷ drop mutex', num: 'aligouri zero-copy', den: 'drop mutex during tapfd read' },
];

const DIRS: readonly Direction[] = ['g2h', 'h2g'];

/** A mechanism counter of a row's stream cell (NaN when absent: older reports, rows not run). */
function mech(report: Pick<StudyReport, 'rows'>, row: string, d: Direction, key: keyof Mechanism): number {
  const v = report.rows.find((r) => r.name === row)?.stream[d]?.mechanism?.[key];
  return typeof v === 'number' ? v : NaN;
}

const f1 = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '—');
const f2 = (v: number): string => (Number.isFinite(v) ? v.toFixed(2) : '—');
const pct = (v: number): string => (Number.isFinite(v) ? `${Math.round(v * 100)} %` : '—');
const arrow: Record<Direction, string> = { g2h: 'g→h', h2g: 'h→g' };

/** Batch (packets per flush) and the share of timer-mode flushes a kick forced, for rows in one direction. */
function batchLine(report: Pick<StudyReport, 'rows'>, rows: readonly { row: string; label: string }[], d: Direction): string {
  return `${arrow[d]} batch ${rows.map((r) => `${r.label} ${f1(mech(report, r.row, d, 'avgBatch'))}`).join(' / ')}, flushes forced by a kick (ring full) ${rows.map((r) => pct(mech(report, r.row, d, 'kickFlushShare'))).join(' / ')}`;
}

const TIMER_ROWS = [
  { row: '50us tx timer + rearm', label: '50 µs' },
  { row: '150us tx timer + rearm', label: '150 µs' },
  { row: '250us tx timer + rearm', label: '250 µs' },
];
const RING_ROWS = [
  { row: 'GSO', label: '128' },
  { row: 'ring size == 256', label: '256' },
  { row: 'ring size == 512', label: '512' },
];

/**
 * Per conclusion, the counters that show which mechanism decides it: the timer decides a batch
 * only when few flushes are forced by a full ring (C1, C3); the global lock matters only as far as
 * the device waits for it (C4); GSO and the copy show as packets per flush and host CPU per GB.
 */
const MECHANISMS: readonly ((r: Pick<StudyReport, 'rows'>) => string)[] = [
  (r) => `${batchLine(r, TIMER_ROWS, 'g2h')}; ${batchLine(r, TIMER_ROWS, 'h2g')} — where a row's flushes are mostly forced by a full ring, the ring (not the timer) sets its batch, and a longer timer only delays the flushes it does decide`,
  (r) => `packets per flush g→h ${f1(mech(r, 'recv NO_NOTIFY', 'g2h', 'avgBatch'))} → ${f1(mech(r, 'GSO', 'g2h', 'avgBatch'))}, h→g ${f1(mech(r, 'recv NO_NOTIFY', 'h2g', 'avgBatch'))} → ${f1(mech(r, 'GSO', 'h2g', 'avgBatch'))} (a GSO packet carries up to 64 KiB)`,
  (r) => `${batchLine(r, RING_ROWS, 'g2h')}; ${batchLine(r, RING_ROWS, 'h2g')} — a larger ring changes throughput as far as it changes the batch: a ring the timer never fills leaves it alone`,
  (r) =>
    `global-lock wait per packet (µs, both sides) h→g ${f2(mech(r, 'ring size == 512', 'h2g', 'lockWaitUsPerPacket'))} → ${f2(mech(r, 'drop mutex during tapfd read', 'h2g', 'lockWaitUsPerPacket'))}, g→h ${f2(mech(r, 'ring size == 512', 'g2h', 'lockWaitUsPerPacket'))} → ${f2(mech(r, 'drop mutex during tapfd read', 'g2h', 'lockWaitUsPerPacket'))}; contended acquisitions per packet h→g ${f2(mech(r, 'ring size == 512', 'h2g', 'lockContendedPerPacket'))} → ${f2(mech(r, 'drop mutex during tapfd read', 'h2g', 'lockContendedPerPacket'))} — dropping the lock can only help as much wait as there was to remove`,
  (r) => `host→guest packets per flush ${f1(mech(r, 'drop mutex during tapfd read', 'h2g', 'avgBatch'))} → ${f1(mech(r, 'aligouri zero-copy', 'h2g', 'avgBatch'))} (the copy is a memcpy per frame, small beside the per-frame costs)`,
];

/** Our average Gb/s for a row and direction (NaN when the row or cell did not run). */
function oursGbps(report: StudyReport, row: string, d: Direction): number {
  return report.rows.find((r) => r.name === row)?.stream[d]?.gbps.avg ?? NaN;
}

function rfcGbps(row: string, d: Direction): number {
  return rfcFiguresFor(row)?.throughputGbps[d][1] ?? NaN;
}

/** Ours and the RFC's throughput ratio for each comparison. */
export function pairRatios(report: StudyReport, pair: ConclusionPair): PairRatios {
  const ratio = (f: (row: string, d: Direction) => number, d: Direction): number => f(pair.num, d) / f(pair.den, d);
  const ours = { g2h: ratio((r, d) => oursGbps(report, r, d), 'g2h'), h2g: ratio((r, d) => oursGbps(report, r, d), 'h2g') };
  const rfc = { g2h: ratio(rfcGbps, 'g2h'), h2g: ratio(rfcGbps, 'h2g') };
  return { label: pair.label, ours, rfc };
}

const x2 = (v: number): string => `${v.toFixed(2)}×`;
/** The larger of a ratio and its inverse: how far from "no change" (1.00) a ratio is. */
const spread = (v: number): number => (v >= 1 ? v : 1 / v);

interface Rule {
  rule: string;
  judge(pairs: PairRatios[]): { verdict: Exclude<Verdict, 'not measured'>; why: string };
}

// One rule per conclusion. Thresholds: "quite a difference"/"nice speedup" need a change well
// beyond run-to-run noise (a quick study's cells vary by a few per cent); "small"/"barely
// measurable" need the opposite. "partly" is the band between.
const RULES: readonly Rule[] = [
  {
    // The RFC's direction: a longer timer batches more, so guest→host grows with it (250 ÷ 50 µs
    // = 1.62×); a change of the opposite sign is a different finding, not this one.
    rule: 'guest→host throughput grows with the timer: 250 ÷ 50 µs ≥ 1.20× g→h: reproduced; ≥ 1.10×, or a ≥ 20 % change in the RFC\'s sign in any timer pair: partly',
    judge(pairs) {
      const main = pairs[0]!;
      const inSign = pairs.flatMap((p) => DIRS.map((d) => ({ ours: p.ours[d], rfc: p.rfc[d] }))).filter((x) => (x.ours - 1) * (x.rfc - 1) > 0);
      const why = `250 ÷ 50 µs g→h ${x2(main.ours.g2h)} (RFC ${x2(main.rfc.g2h)}), h→g ${x2(main.ours.h2g)} (RFC ${x2(main.rfc.h2g)})`;
      if (main.ours.g2h >= 1.2) return { verdict: 'reproduced', why };
      return { verdict: main.ours.g2h >= 1.1 || inSign.some((x) => spread(x.ours) >= 1.2) ? 'partly' : 'not reproduced', why };
    },
  },
  {
    rule: 'GSO ÷ no GSO ≥ 2.0× both ways and larger host→guest: reproduced; ≥ 1.5× both ways (or ≥ 2.0× without the host→guest lead): partly',
    judge([p]) {
      const { g2h, h2g } = p!.ours;
      const why = `g→h ${x2(g2h)}, h→g ${x2(h2g)}`;
      if (g2h >= 2 && h2g >= 2 && h2g > g2h) return { verdict: 'reproduced', why };
      return { verdict: g2h >= 1.5 && h2g >= 1.5 ? 'partly' : 'not reproduced', why };
    },
  },
  {
    rule: 'every ring-size ratio within ±10 % (0.91–1.10) both ways: reproduced; within ±25 % (0.80–1.25): partly',
    judge(pairs) {
      const vals = pairs.flatMap((p) => DIRS.map((d) => p.ours[d]));
      const worst = Math.max(...vals.map(spread));
      const why = `ratios ${pairs.map((p) => `${p.label}: ${x2(p.ours.g2h)} / ${x2(p.ours.h2g)}`).join('; ')}`;
      return { verdict: worst <= 1.1 ? 'reproduced' : worst <= 1.25 ? 'partly' : 'not reproduced', why };
    },
  },
  {
    rule: 'dropping the mutex speeds host→guest by ≥ 10 % with guest→host not slower than 0.95×: reproduced; host→guest ≥ 3 % faster: partly',
    judge([p]) {
      const { g2h, h2g } = p!.ours;
      const why = `g→h ${x2(g2h)}, h→g ${x2(h2g)}`;
      if (h2g >= 1.1 && g2h >= 0.95) return { verdict: 'reproduced', why };
      return { verdict: h2g >= 1.03 ? 'partly' : 'not reproduced', why };
    },
  },
  {
    rule: 'zero-copy ÷ copy within ±5 % (0.95–1.05) both ways: reproduced; within ±10 %: partly',
    judge([p]) {
      const worst = Math.max(spread(p!.ours.g2h), spread(p!.ours.h2g));
      const why = `g→h ${x2(p!.ours.g2h)}, h→g ${x2(p!.ours.h2g)}`;
      return { verdict: worst <= 1.05 ? 'reproduced' : worst <= 1.1 ? 'partly' : 'not reproduced', why };
    },
  },
];

/**
 * The five verdicts for a report. Only a cumulative study builds the RFC's table (each row adds
 * one change to the previous), so another mode, or a comparison whose rows did not both run,
 * gives "not measured" and says why.
 */
export function judgeConclusions(report: Pick<StudyReport, 'rows'> & { plan: { mode: string } }): ConclusionVerdict[] {
  return RFC_CONCLUSIONS.map((text, i) => {
    const rule = RULES[i]!;
    const pairs = CONCLUSION_PAIRS.filter((p) => p.conclusion === i).map((p) => pairRatios(report as StudyReport, p));
    const base = { number: i + 1, text, rule: rule.rule, pairs };
    if (report.plan.mode !== 'cumulative') return { ...base, verdict: 'not measured' as const, why: `the study ran in ${report.plan.mode} mode; the RFC's ratios compare cumulative rows` };
    const missing = pairs.filter((p) => !DIRS.every((d) => Number.isFinite(p.ours[d]) && p.ours[d] > 0));
    if (missing.length > 0) return { ...base, verdict: 'not measured' as const, why: `not run: ${missing.map((p) => p.label).join(', ')}` };
    return { ...base, ...rule.judge(pairs), mechanism: MECHANISMS[i]!(report) };
  });
}
