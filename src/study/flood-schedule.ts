// The `ping -f` send rule of iputils as a pure state machine over a caller's clock (ms), so a
// ping workload and a test with a fake clock run the same code. No threads, no timers here.
//
// iputils (ping_common.c `pinger`, interval 0 and preload 1 under -f): a request is held back
// only while one is in flight AND less than MIN_INTERVAL_MS (10 ms) passed since the previous
// send; so the next request leaves as soon as the reply arrives, or 10 ms after the previous
// request when no reply came ("as fast as they come back or one hundred times per second").
// In flight = sent − highest sequence acknowledged (`in_flight()` with `acked`). After the last
// request, ping lingers 2 × the largest RTT seen so far (10 s when nothing came back:
// `__schedule_exit`) and ends early once received + errors reach the count (`main_loop`).

export const FLOOD_MIN_INTERVAL_MS = 10;
/** iputils MAXWAIT: linger when no reply was ever received, s. */
export const FLOOD_MAX_WAIT_MS = 10_000;

export type ReplyKind = 'new' | 'duplicate' | 'unknown';

export class FloodPingSchedule {
  /** Requests sent; the last one sent carries sequence `sent` (1-based, like iputils). */
  sent = 0;
  /** Distinct replies received. */
  received = 0;
  duplicates = 0;
  /** Highest sequence acknowledged so far (iputils `acked`). */
  highestAcked = 0;
  /** Largest RTT seen, µs (iputils `tmax`). */
  maxRttUs = 0;
  private lastSendMs = -Infinity;
  private lingerUntilMs = Infinity;
  private readonly seen: Uint8Array;

  constructor(
    readonly count: number,
    readonly minIntervalMs: number = FLOOD_MIN_INTERVAL_MS,
  ) {
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`ping count must be a positive integer (got ${count})`);
    if (!(minIntervalMs > 0)) throw new RangeError(`ping timeout must be positive (got ${minIntervalMs} ms)`);
    this.seen = new Uint8Array(count + 1);
  }

  get inFlight(): number {
    return this.sent - this.highestAcked;
  }

  /** ms until a request may leave: 0 = now; Infinity = every request was sent. */
  delayMs(nowMs: number): number {
    if (this.sent >= this.count) return Infinity;
    if (this.inFlight === 0) return 0;
    const since = nowMs - this.lastSendMs;
    return since >= this.minIntervalMs ? 0 : this.minIntervalMs - since;
  }

  /** Records a request leaving now; returns its sequence number (1-based). */
  onSent(nowMs: number): number {
    if (this.sent >= this.count) throw new RangeError(`all ${this.count} requests were already sent`);
    this.sent++;
    this.lastSendMs = nowMs;
    if (this.sent === this.count) {
      // __schedule_exit: the linger is fixed when the last request leaves.
      this.lingerUntilMs = nowMs + (this.received > 0 ? (2 * this.maxRttUs) / 1000 : FLOOD_MAX_WAIT_MS);
    }
    return this.sent;
  }

  /** Records the reply to `seq` with its RTT; says whether it was new, a duplicate, or not ours. */
  onReply(seq: number, rttUs: number): ReplyKind {
    if (!Number.isInteger(seq) || seq < 1 || seq > this.sent) return 'unknown';
    if (rttUs > this.maxRttUs) this.maxRttUs = rttUs;
    if (seq > this.highestAcked) this.highestAcked = seq;
    if (this.seen[seq] !== 0) {
      this.duplicates++;
      return 'duplicate';
    }
    this.seen[seq] = 1;
    this.received++;
    return 'new';
  }

  /** True when ping would exit: every reply came back, or the linger after the last send ran out. */
  done(nowMs: number): boolean {
    return this.received >= this.count || (this.sent >= this.count && nowMs >= this.lingerUntilMs);
  }

  /** The absolute time (ms) the caller should next look: the next send or the end of the linger. */
  nextDeadlineMs(nowMs: number): number {
    const d = this.delayMs(nowMs);
    return d === Infinity ? this.lingerUntilMs : nowMs + d;
  }
}
