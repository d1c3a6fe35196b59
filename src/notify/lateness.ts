// Deadline lateness samples: a fixed-size, preallocated window of the most recent samples (ns)
// and percentiles over it. Owns no clock and no shared memory; recording is allocation-free so a
// timer loop can call it on every expiry. Reused by the doorbell, the mitigation policies and the
// timer benchmark.

import { DoorbellError } from './errors.js';

/** Percentile summary of the held samples, all in ns. `count` is every sample ever recorded. */
export interface LatenessSummary {
  readonly count: number;
  readonly held: number;
  readonly minNs: number;
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly maxNs: number;
  readonly meanNs: number;
}

/**
 * Nearest-rank percentile of the first `n` values of an ascending array (p in [0, 100]).
 * NaN when n is 0.
 */
export function percentileOfSorted(sorted: ArrayLike<number>, n: number, p: number): number {
  if (n <= 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  const i = Math.min(n - 1, Math.max(0, rank - 1));
  return sorted[i]!;
}

export class LatenessRecorder {
  readonly capacity: number;
  private readonly samplesNs: Float64Array;
  private readonly sortedNs: Float64Array;
  private next = 0;
  private total = 0;
  private sortedValid = false;

  /** Holds the most recent `capacity` samples; older ones are overwritten. */
  constructor(capacity = 4096) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new DoorbellError('bad-option', -1, `lateness capacity ${capacity} must be a positive integer`);
    }
    this.capacity = capacity;
    this.samplesNs = new Float64Array(capacity);
    this.sortedNs = new Float64Array(capacity);
  }

  /** Samples recorded since construction or reset (may exceed capacity). */
  get count(): number {
    return this.total;
  }

  /** Samples currently held (the window percentiles are computed over). */
  get held(): number {
    return this.total < this.capacity ? this.total : this.capacity;
  }

  /** Records one lateness sample in ns (achieved − requested). Allocation-free. */
  record(latenessNs: number): void {
    this.samplesNs[this.next] = latenessNs;
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1;
    this.total++;
    this.sortedValid = false;
  }

  /** Records achieved − requested for two times on the same millisecond clock. */
  recordDeadline(deadlineMs: number, achievedMs: number): void {
    this.record((achievedMs - deadlineMs) * 1e6);
  }

  /** Nearest-rank percentile (p in [0, 100]) of the held samples, in ns; NaN when empty. */
  percentile(p: number): number {
    const n = this.held;
    this.sort(n);
    return percentileOfSorted(this.sortedNs, n, p);
  }

  summary(): LatenessSummary {
    const n = this.held;
    this.sort(n);
    let sum = 0;
    for (let i = 0; i < n; i++) sum += this.sortedNs[i]!;
    return {
      count: this.total,
      held: n,
      minNs: n > 0 ? this.sortedNs[0]! : NaN,
      p50Ns: percentileOfSorted(this.sortedNs, n, 50),
      p99Ns: percentileOfSorted(this.sortedNs, n, 99),
      maxNs: n > 0 ? this.sortedNs[n - 1]! : NaN,
      meanNs: n > 0 ? sum / n : NaN,
    };
  }

  reset(): void {
    this.next = 0;
    this.total = 0;
    this.sortedValid = false;
  }

  private sort(n: number): void {
    if (this.sortedValid) return;
    // Sorting the scratch copy keeps the ring's insertion order intact for further records.
    this.sortedNs.set(this.samplesNs.subarray(0, n));
    this.sortedNs.subarray(0, n).sort();
    this.sortedValid = true;
  }
}
