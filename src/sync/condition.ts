// Condition: a condition variable over an Int32Array [seq, waiters], used with src/sync's Mutex
// and API-compatible with atomics-sync's Condition. atomics-sync sleeps on a word that never
// changes, so a signal landing between the waiter's unlock and its Atomics.wait is lost. Here
// signal/broadcast bump a sequence number and the waiter sleeps on the value it read *before*
// unlocking: a signal in that window changes seq and the sleep returns at once. `waiters` lets
// signal/broadcast skip Atomics.notify when nobody sleeps. The state is therefore 2 elements
// long, not 1 (atomics-sync's length); treat it as opaque.
//
// As with pthreads, wake-ups may be spurious (one signal can release several waiters that were
// between reading seq and sleeping): always wait in a loop on your predicate, under the mutex.
// Blocking calls use Atomics.wait: fine in workers and on Node's main thread, they throw
// TypeError on a browser's main thread.

import { remainingMs } from './internal.js';
import { Mutex } from './mutex.js';

const INDEX_SEQ = 0;
const INDEX_WAITERS = 1;

export class Condition {
  /** A fresh condition variable: Int32Array [seq = 0, waiters = 0] over a new SharedArrayBuffer. */
  static init(): Int32Array<SharedArrayBuffer> {
    return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * 2));
  }

  /** Wakes at least one thread waiting on `cond`, if any. */
  static signal(cond: Int32Array<SharedArrayBuffer>): void {
    Condition.wake(cond, 1);
  }

  /** Wakes every thread waiting on `cond`. */
  static broadcast(cond: Int32Array<SharedArrayBuffer>): void {
    Condition.wake(cond, Infinity);
  }

  /**
   * Releases `mutex`, sleeps until signalled, then re-acquires `mutex` before returning.
   * @throws {PermissionError} if `threadId` does not hold `mutex` (then nothing else happens)
   */
  static wait(cond: Int32Array, mutex: Int32Array<SharedArrayBuffer>, threadId: number): void {
    // Read while still holding the mutex; pairs with the add in wake(). Any signal issued after
    // this point changes seq, so the sleep below cannot miss it.
    const seq = Atomics.load(cond, INDEX_SEQ);
    Mutex.unlock(mutex, threadId);
    try {
      Condition.sleep(cond, seq, Infinity);
    } finally {
      Mutex.lock(mutex, threadId);
    }
  }

  /**
   * Like wait, but gives up at the absolute `timestamp` (ms, Date.now() clock). The mutex is
   * held again on return either way.
   * @returns false only if the deadline passed without a signal
   * @throws {PermissionError} if `threadId` does not hold `mutex` (then nothing else happens)
   * @throws {InvalidError} for a NaN timestamp
   */
  static timedWait(
    cond: Int32Array<SharedArrayBuffer>,
    mutex: Int32Array<SharedArrayBuffer>,
    threadId: number,
    timestamp: number,
  ): boolean {
    remainingMs(timestamp);
    // Read while still holding the mutex; pairs with the add in wake() (see wait).
    const seq = Atomics.load(cond, INDEX_SEQ);
    // Outside the try: if we do not own the mutex we must not lock it in `finally` either.
    Mutex.unlock(mutex, threadId);
    try {
      return Condition.sleep(cond, seq, remainingMs(timestamp)) !== 'timed-out';
    } finally {
      Mutex.lock(mutex, threadId);
    }
  }

  private static sleep(cond: Int32Array, seq: number, ms: number): 'ok' | 'not-equal' | 'timed-out' {
    // Counted before sleeping; pairs with the waiters load in wake(). If wake() reads 0, its seq
    // add preceded this add, hence precedes the check inside Atomics.wait, which then returns.
    Atomics.add(cond, INDEX_WAITERS, 1);
    try {
      // Sleeps only while seq is unchanged; pairs with the notify in wake().
      return Atomics.wait(cond, INDEX_SEQ, seq, ms);
    } finally {
      // Uncounted whether woken, timed out or never slept; a stale count only costs a notify.
      Atomics.sub(cond, INDEX_WAITERS, 1);
    }
  }

  private static wake(cond: Int32Array, count: number): void {
    // Wraps at 2^32, harmless: a waiter would have to sleep through exactly 2^32 signals.
    Atomics.add(cond, INDEX_SEQ, 1);
    // Read after the seq bump; pairs with the waiters add in sleep().
    if (Atomics.load(cond, INDEX_WAITERS) > 0) Atomics.notify(cond, INDEX_SEQ, count);
  }
}
