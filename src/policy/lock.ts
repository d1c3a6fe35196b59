// The QEMU-2008 global lock ("qemu_mutex", DESIGN "Two threading models"): a futex mutex in
// shared memory that the host's I/O loop holds while it processes (dropping it only to sleep, and
// during backend reads when the policy says so) and that the guest takes for each synchronous
// exit (a kick, an interrupt acknowledgement). Counts acquisitions, contended ones and wait time.
// Browser-safe (Atomics.wait: workers only).

import { Mutex } from '../sync/index.js';
import type { Clock } from './clock.js';

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
      Mutex.lock(this.words, this.threadId);
      this.waitUs += this.clock.nowUs() - t0;
    }
    this.held = true;
  }

  unlock(): void {
    this.held = false;
    Mutex.unlock(this.words, this.threadId);
  }
}
