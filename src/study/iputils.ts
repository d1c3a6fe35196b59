// The `rtt min/avg/max/mdev` summary exactly as iputils ping computes it, from integer µs RTTs.
//
// Current iputils (ping/ping_output.c, ping_print_statistics): tsum and tsum2 are doubles
// accumulated from integer µs; avg = (long)(tsum / total); when tsum < INT_MAX the variance is
// (long long)((tsum2 − tsum·tsum/total) / total) ("this slightly clumsy computation order is
// important to avoid integer rounding errors for small ping times"), else
// (long long)(tsum2/total − avg·avg); mdev = llsqrt(variance), an integer Newton square root
// (floor of √ for non-negative input, the input itself when ≤ 0). total = received + duplicates.
// The 2008 iputils (s20071127, what the RFC ran) used integer long long sums instead:
// avg = tsum/total, mdev = llsqrt(tsum2/total − avg²), each division truncating. Both are here;
// 'current' is the default. Times print as `%ld.%03ld` ms: exact, never rounded.

export type IputilsVariant = 'current' | 's20071127';

/** What iputils prints in its summary, in integer µs (`line` is the exact text). */
export interface IputilsRtt {
  /** RTTs counted (received + duplicates). */
  count: number;
  minUs: number;
  avgUs: number;
  maxUs: number;
  mdevUs: number;
  /** `rtt min/avg/max/mdev = 0.060/0.459/7.602/0.846 ms` (empty string when count is 0). */
  line: string;
}

const INT_MAX = 2147483647;

/** iputils' llsqrt: Newton's iteration on integers (floor of the square root for a ≥ 0). */
export function llsqrt(a: bigint): bigint {
  let prev = BigInt('0x7fffffffffffffff');
  let x = a;
  if (x > 0n) {
    while (x < prev) {
      prev = x;
      x = (x + a / x) / 2n;
    }
  }
  return x;
}

/** Formats integer µs as iputils does: `%ld.%03ld` ms (C division truncates toward zero). */
export function msFromUs(us: number): string {
  const whole = Math.trunc(us / 1000);
  const frac = Math.abs(us % 1000);
  return `${us < 0 && whole === 0 ? '-' : ''}${whole}.${String(frac).padStart(3, '0')}`;
}

/**
 * iputils' summary of `rttsUs`. Each RTT is first truncated to an integer µs (iputils' triptime
 * is a difference of µs timestamps); negative RTTs count as 0, as iputils' "time of day goes
 * back" countermeasure does.
 */
export function iputilsRtt(rttsUs: readonly number[], variant: IputilsVariant = 'current'): IputilsRtt {
  const total = rttsUs.length;
  if (total === 0) return { count: 0, minUs: NaN, avgUs: NaN, maxUs: NaN, mdevUs: NaN, line: '' };
  let min = Infinity;
  let max = -Infinity;
  let avg: number;
  let mdev: number;
  if (variant === 'current') {
    let tsum = 0;
    let tsum2 = 0;
    for (const r of rttsUs) {
      const t = Math.max(0, Math.trunc(r));
      if (t < min) min = t;
      if (t > max) max = t;
      tsum += t;
      tsum2 += t * t; // (double)((long long)t * t): exact below 2^53, as in C
    }
    avg = Math.trunc(tsum / total);
    const variance = tsum < INT_MAX ? Math.trunc((tsum2 - (tsum * tsum) / total) / total) : Math.trunc(tsum2 / total - avg * avg);
    mdev = Number(llsqrt(BigInt(variance)));
  } else {
    let tsum = 0n;
    let tsum2 = 0n;
    for (const r of rttsUs) {
      const t = Math.max(0, Math.trunc(r));
      if (t < min) min = t;
      if (t > max) max = t;
      tsum += BigInt(t);
      tsum2 += BigInt(t) * BigInt(t);
    }
    const n = BigInt(total);
    const a = tsum / n;
    avg = Number(a);
    mdev = Number(llsqrt(tsum2 / n - a * a));
  }
  const line = `rtt min/avg/max/mdev = ${msFromUs(min)}/${msFromUs(avg)}/${msFromUs(max)}/${msFromUs(mdev)} ms`;
  return { count: total, minUs: min, avgUs: avg, maxUs: max, mdevUs: mdev, line };
}

/**
 * iputils' flood-mode RTT EWMA in integer µs: `rtt` holds 8 × the average, starts at the first
 * sample × 8 (and again whenever it falls to 0), then `rtt += sample − rtt/8` with C's
 * truncating division; the printed figure is rtt/8. NaN for no samples.
 */
export function iputilsEwmaUs(rttsUs: readonly number[]): number {
  if (rttsUs.length === 0) return NaN;
  let rtt = 0;
  for (const r of rttsUs) {
    const t = Math.max(0, Math.trunc(r));
    if (rtt === 0) rtt = t * 8;
    else rtt += t - Math.trunc(rtt / 8);
  }
  return Math.trunc(rtt / 8);
}
