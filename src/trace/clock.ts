// The trace clock: nanoseconds since the run's origin, comparable across threads.
//
// Why performance.now(): it is monotonic, allocation-free and sub-µs here. Each thread's
// performance.now() counts from that thread's performance.timeOrigin, so a thread adds
// (its timeOrigin − the run's origin) once, computed in ms so both large epoch values cancel
// before scaling. In Node every worker shares the process's timeOrigin (measured: the offset
// difference is 0, and a process.hrtime bracket agrees to within 30 ns), so the offset is an
// exact 0 there; in a browser each worker has its own high-resolution timeOrigin and the offset
// carries that precision. process.hrtime.bigint() would be a shared clock too, but allocates a
// BigInt per call and does not exist in a browser.

export interface TraceClockOrigin {
  /** performance.timeOrigin of the thread that created the run (epoch ms, fractional). */
  timeOriginMs: number;
  /** performance.now() of that thread at the run's origin, ms. */
  nowMs: number;
}

/** The origin of a run, taken in the thread that creates it. */
export function clockOriginHere(): TraceClockOrigin {
  return { timeOriginMs: performance.timeOrigin, nowMs: performance.now() };
}

/** Offset (ns) a thread adds to performance.now() × 1e6 to get ns since the origin. */
export function clockOffsetNs(origin: TraceClockOrigin): number {
  return ((performance.timeOrigin - origin.timeOriginMs) - origin.nowMs) * 1e6;
}
