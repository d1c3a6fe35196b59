// Device-side busy polling (vhost_net busyloop_timeout, reference §2.3): when the device finds
// no work it keeps polling the rings with kicks off for up to `busyUs` before re-enabling kicks
// and sleeping. This module holds the budget and the counters; the loop does the polling.
// Browser-safe.

export class BusyPoll {
  /** Spins that found work before the budget ran out, and spins that ran out. */
  hits = 0;
  misses = 0;
  /** Total µs spent spinning. */
  spentUs = 0;
  private startUs = 0;

  constructor(readonly busyUs: number) {}

  get enabled(): boolean {
    return this.busyUs > 0;
  }

  begin(nowUs: number): void {
    this.startUs = nowUs;
  }

  /** True while the spin may go on. */
  keepSpinning(nowUs: number): boolean {
    return nowUs - this.startUs < this.busyUs;
  }

  /** The spin ended: `found` work or not. */
  end(nowUs: number, found: boolean): void {
    this.spentUs += nowUs - this.startUs;
    if (found) this.hits++;
    else this.misses++;
  }
}
