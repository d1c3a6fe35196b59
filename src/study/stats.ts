// Summary statistics for the study: min/avg/max with both standard deviations (the RFC does not
// say which one netperf-collect.py printed, so both are kept) and nearest-rank percentiles. Pure
// functions over plain arrays; no clock, no I/O.

/** min/avg/max and both standard deviations of a sample. All NaN when the sample is empty. */
export interface Summary {
  n: number;
  min: number;
  avg: number;
  max: number;
  /** Population standard deviation: √(Σ(x−avg)²/n). */
  stddevPop: number;
  /** Sample standard deviation: √(Σ(x−avg)²/(n−1)); NaN for n < 2. */
  stddevSample: number;
}

/** Summarises `values` (non-finite values are ignored and not counted). */
export function summarize(values: readonly number[]): Summary {
  const xs = values.filter((v) => Number.isFinite(v));
  const n = xs.length;
  if (n === 0) return { n: 0, min: NaN, avg: NaN, max: NaN, stddevPop: NaN, stddevSample: NaN };
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const x of xs) {
    if (x < min) min = x;
    if (x > max) max = x;
    sum += x;
  }
  const avg = sum / n;
  // Two passes: Σ(x−avg)² does not cancel catastrophically the way Σx² − n·avg² does.
  let ss = 0;
  for (const x of xs) ss += (x - avg) * (x - avg);
  return { n, min, avg, max, stddevPop: Math.sqrt(ss / n), stddevSample: n > 1 ? Math.sqrt(ss / (n - 1)) : NaN };
}

/** Nearest-rank percentile (p in [0, 100]) of an unsorted sample; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Median (average of the two middle values for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** a / b, or NaN when b is 0 or either is not finite (so "per packet" never divides by zero). */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}
