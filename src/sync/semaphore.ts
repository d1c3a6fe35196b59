// Semaphore: a counting semaphore over an Int32Array [value, waiters], API-compatible with
// atomics-sync's Semaphore. atomics-sync keeps only [value] and notifies only on a 0 → 1 post,
// so two posts arriving before the first woken sleeper decrements leave a second sleeper asleep
// while value > 0. Here sleepers count themselves in `waiters` and every post that sees a
// waiter wakes one (the glibc new-semaphore scheme); a post with no sleepers never notifies.
// The state is therefore 2 elements long, not 1; getValue reads element 0 as before.
//
// Blocking calls (wait, timedWait) use Atomics.wait: fine in workers and on Node's main thread,
// they throw TypeError on a browser's main thread (use tryWait there).

import { InvalidError } from './errors.js';
import { remainingMs } from './internal.js';
import { INT32_MAX_VALUE } from './limits.js';

const INDEX_VALUE = 0;
const INDEX_WAITERS = 1;

export class Semaphore {
  /**
   * A semaphore holding `value` permits: Int32Array [value, waiters = 0] over a new SharedArrayBuffer.
   * @throws {InvalidError} if `value` is not an integer
   * @throws {RangeError} if `value` is negative or above INT32_MAX_VALUE
   */
  static init(value: number): Int32Array<SharedArrayBuffer> {
    if (!Number.isInteger(value)) {
      throw new InvalidError(`initial semaphore value should be int32, got ${String(value)}`);
    }
    if (value < 0 || value > INT32_MAX_VALUE) {
      throw new RangeError(`initial semaphore value ${value} is outside [0, ${INT32_MAX_VALUE}]`);
    }
    const sem = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * 2));
    // Published to other threads by whatever hands them the array (postMessage / workerData).
    Atomics.store(sem, INDEX_VALUE, value);
    return sem;
  }

  /** Takes a permit, sleeping while there is none. */
  static wait(sem: Int32Array<SharedArrayBuffer>): void {
    while (!Semaphore.tryWait(sem)) {
      // Counted before sleeping so post sees us (pairs with the waiters load in post): either
      // post reads the count and notifies, or its increment precedes this add and so precedes
      // the value check inside Atomics.wait below, which then does not sleep.
      Atomics.add(sem, INDEX_WAITERS, 1);
      // Sleeps only while value is still 0; pairs with the notify in post.
      Atomics.wait(sem, INDEX_VALUE, 0);
      // Uncounted on any return; a stale count only costs post one needless notify.
      Atomics.sub(sem, INDEX_WAITERS, 1);
    }
  }

  /**
   * Like wait, but gives up at the absolute `timestamp` (ms, Date.now() clock).
   * @returns true if a permit was taken, false if the deadline passed first
   * @throws {InvalidError} for a NaN timestamp
   */
  static timedWait(sem: Int32Array<SharedArrayBuffer>, timestamp: number): boolean {
    remainingMs(timestamp);
    while (!Semaphore.tryWait(sem)) {
      const ms = remainingMs(timestamp);
      if (ms === 0) return false;
      // Counted before sleeping; see wait.
      Atomics.add(sem, INDEX_WAITERS, 1);
      // Sleeps while value is 0, at most until the deadline; pairs with the notify in post.
      Atomics.wait(sem, INDEX_VALUE, 0, ms);
      // Uncounted on any return; a stale count only costs post one needless notify.
      Atomics.sub(sem, INDEX_WAITERS, 1);
    }
    return true;
  }

  /** Takes a permit if one is available right now. @returns whether one was taken */
  static tryWait(sem: Int32Array<SharedArrayBuffer>): boolean {
    for (;;) {
      // Snapshot for the CAS below; 0 means no permit right now.
      const value = Atomics.load(sem, INDEX_VALUE);
      if (value <= 0) return false;
      // Acquire: takes the permit and sees the poster's earlier writes; pairs with post's CAS.
      if (Atomics.compareExchange(sem, INDEX_VALUE, value, value - 1) === value) return true;
    }
  }

  /**
   * Returns a permit and wakes one sleeper if any thread is counted as sleeping.
   * @throws {RangeError} if the value is already INT32_MAX_VALUE
   */
  static post(sem: Int32Array<SharedArrayBuffer>): void {
    for (;;) {
      // Snapshot for the CAS below; pairs with the CAS decrement in tryWait.
      const value = Atomics.load(sem, INDEX_VALUE);
      if (value >= INT32_MAX_VALUE) {
        throw new RangeError(`semaphore value is already at its maximum ${INT32_MAX_VALUE}`);
      }
      // Release: writes before post become visible to whoever takes this permit.
      if (Atomics.compareExchange(sem, INDEX_VALUE, value, value + 1) === value) break;
    }
    // Read after the increment; pairs with the waiters add in wait / timedWait.
    if (Atomics.load(sem, INDEX_WAITERS) > 0) Atomics.notify(sem, INDEX_VALUE, 1);
  }

  /** The number of permits available right now (a snapshot). */
  static getValue(sem: Int32Array<SharedArrayBuffer>): number {
    // Pairs with the CAS updates in post and tryWait.
    return Atomics.load(sem, INDEX_VALUE);
  }
}
