// The clock every policy state machine reads: microseconds on one thread's monotonic clock.
// Injected so that unit tests drive the machines with a fake clock and no sleeps. Browser-safe.

export interface Clock {
  /** Monotonic time in µs (fractional allowed). Only comparable within one thread. */
  nowUs(): number;
}

/** performance.now() in µs: the clock the loops and the Doorbell's deadlines share. */
export const performanceClock: Clock = {
  nowUs: () => performance.now() * 1000,
};

/** A clock that moves only when told (tests). */
export class FakeClock implements Clock {
  constructor(private t = 0) {}
  nowUs(): number {
    return this.t;
  }
  advance(us: number): number {
    this.t += us;
    return this.t;
  }
  set(us: number): number {
    this.t = us;
    return this.t;
  }
}
