// The QEMU-2008 global lock ("qemu_mutex", DESIGN "Two threading models"): a futex mutex in
// shared memory that the host's I/O loop holds while it processes (dropping it only to sleep, and
// during backend reads when the policy says so) and that the guest takes for each synchronous
// exit (a kick, an interrupt acknowledgement). Counts acquisitions, contended ones and wait time.
// Browser-safe (Atomics.wait: workers only).

import { Mutex } from '../sync/index.js';
import { performanceClock, type Clock } from './clock.js';
import type { DataPathConfig } from './config.js';

/** Int32 words a lock needs in shared memory (state, owner). */
export const BIG_LOCK_WORDS = 2;

export class BigLock {
  acquisitions = 0;
  contended = 0;
  waitUs = 0;
  private held = false;

  /** `words`: BIG_LOCK_WORDS zeroed Int32 words in a SharedArrayBuffer; `threadId` non-zero, one per side. */
  constructor(
    private readonly words: Int32Array<SharedArrayBuffer>,
    private readonly threadId: number,
    private readonly clock: Clock,
    /** µs a waiter retries the lock before it sleeps (PolicyConfig dataPath.lockSpinUs; 0 = sleeps at once). */
    private readonly spinUs = 0,
  ) {}

  get isHeld(): boolean {
    return this.held;
  }

  lock(): void {
    this.acquisitions++;
    // Fast path without a clock read; Mutex's own Atomics pair with the holder's unlock.
    if (!Mutex.tryLock(this.words, this.threadId)) {
      this.contended++;
      const t0 = this.clock.nowUs();
      if (!this.spin(t0)) Mutex.lock(this.words, this.threadId);
      this.waitUs += this.clock.nowUs() - t0;
    }
    this.held = true;
  }

  /**
   * Retries the lock for up to spinUs from t0; true when it got it. No state change while
   * spinning, so the holder's unlock wakes no one (the CAS in tryLock pairs with its exchange).
   */
  private spin(t0: number): boolean {
    if (this.spinUs <= 0) return false;
    for (let i = 1; ; i++) {
      if (Mutex.tryLock(this.words, this.threadId)) return true;
      // The clock only every 32 tries: a clock read costs more than a try.
      if ((i & 31) === 0 && this.clock.nowUs() - t0 >= this.spinUs) return false;
    }
  }

  unlock(): void {
    this.held = false;
    Mutex.unlock(this.words, this.threadId);
  }
}

/**
 * The global lock a policy's data path asks for, over `words` (BIG_LOCK_WORDS zeroed Int32 words
 * both sides share), or null when it holds none ('none'); waiters spin dataPath.lockSpinUs first.
 */
export function bigLockFor(
  dataPath: Pick<DataPathConfig, 'lock' | 'lockSpinUs'>,
  words: Int32Array<SharedArrayBuffer>,
  threadId: number,
  clock: Clock = performanceClock,
): BigLock | null {
  return dataPath.lock === 'none' ? null : new BigLock(words, threadId, clock, dataPath.lockSpinUs ?? 0);
}
