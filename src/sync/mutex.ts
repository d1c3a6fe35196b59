// Mutex: a sleeping lock over an Int32Array [state, owner], API-compatible with atomics-sync's
// Mutex. Unlike atomics-sync it is a three-state futex mutex (Drepper, "Futexes Are Tricky",
// mutex #3): state 0 free, 1 locked, 2 locked and possibly contended. unlock calls Atomics.notify
// only when it finds state 2, so an uncontended lock/unlock pair costs two atomic RMWs and no
// notify (V8's notify takes a global lock; see anchors.md §7). The owner word is kept for
// DeadlockError / PermissionError. Not fair, not recursive.
//
// Blocking calls (lock, timedLock) use Atomics.wait: fine in workers and on Node's main thread,
// they throw TypeError on a browser's main thread (use tryLock there).

import { DeadlockError, PermissionError } from './errors.js';
import { OWNER_NONE, checkThreadId, remainingMs } from './internal.js';

const INDEX_STATE = 0;
const INDEX_OWNER = 1;
const STATE_FREE = 0;
const STATE_LOCKED = 1;
const STATE_CONTENDED = 2;

export class Mutex {
  /** A fresh unlocked mutex: Int32Array [state = 0, owner = 0] over a new SharedArrayBuffer. */
  static init(): Int32Array<SharedArrayBuffer> {
    // Zero-filled by the SharedArrayBuffer constructor: free, no owner.
    return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * 2));
  }

  /**
   * Acquires the mutex, sleeping while another thread holds it.
   * @throws {DeadlockError} if `threadId` already holds it
   * @throws {InvalidError | RangeError} if `threadId` is not a non-zero int32
   */
  static lock(mutex: Int32Array<SharedArrayBuffer>, threadId: number): void {
    checkBeforeLock(mutex, threadId);
    // Fast path; pairs with the exchange to FREE in unlock.
    let c = Atomics.compareExchange(mutex, INDEX_STATE, STATE_FREE, STATE_LOCKED);
    if (c !== STATE_FREE) {
      // Announce a sleeper before sleeping so unlock knows to notify. If the exchange returns
      // FREE we got the lock (in state CONTENDED: our unlock may notify nobody, which is harmless).
      if (c !== STATE_CONTENDED) c = Atomics.exchange(mutex, INDEX_STATE, STATE_CONTENDED);
      while (c !== STATE_FREE) {
        // Sleeps only while the state is still CONTENDED; woken by the notify in unlock.
        Atomics.wait(mutex, INDEX_STATE, STATE_CONTENDED);
        // Re-take, keeping CONTENDED: other sleepers may remain behind us.
        c = Atomics.exchange(mutex, INDEX_STATE, STATE_CONTENDED);
      }
    }
    // Only the holder writes the owner word; read by the deadlock and permission checks.
    Atomics.store(mutex, INDEX_OWNER, threadId);
  }

  /**
   * Like lock, but gives up at the absolute `timestamp` (ms, Date.now() clock).
   * @returns true if acquired, false if the deadline passed first
   * @throws {DeadlockError} if `threadId` already holds it
   * @throws {InvalidError | RangeError} for a bad `threadId`; InvalidError for a NaN timestamp
   */
  static timedLock(mutex: Int32Array<SharedArrayBuffer>, threadId: number, timestamp: number): boolean {
    checkBeforeLock(mutex, threadId);
    remainingMs(timestamp);
    // Fast path; pairs with the exchange to FREE in unlock.
    if (Atomics.compareExchange(mutex, INDEX_STATE, STATE_FREE, STATE_LOCKED) !== STATE_FREE) {
      for (;;) {
        // Announce a sleeper (see lock). Giving up later leaves the state CONTENDED, which costs
        // the holder one needless notify and nothing else.
        if (Atomics.exchange(mutex, INDEX_STATE, STATE_CONTENDED) === STATE_FREE) break;
        const ms = remainingMs(timestamp);
        if (ms === 0) return false;
        // Sleeps while still CONTENDED, at most until the deadline; pairs with unlock's notify.
        Atomics.wait(mutex, INDEX_STATE, STATE_CONTENDED, ms);
      }
    }
    // Only the holder writes the owner word; read by the deadlock and permission checks.
    Atomics.store(mutex, INDEX_OWNER, threadId);
    return true;
  }

  /**
   * Acquires the mutex only if it is free right now.
   * @returns true if acquired, false if another thread holds it
   * @throws {DeadlockError} if `threadId` already holds it
   */
  static tryLock(mutex: Int32Array<SharedArrayBuffer>, threadId: number): boolean {
    checkBeforeLock(mutex, threadId);
    // Pairs with the exchange to FREE in unlock.
    if (Atomics.compareExchange(mutex, INDEX_STATE, STATE_FREE, STATE_LOCKED) !== STATE_FREE) return false;
    // Only the holder writes the owner word.
    Atomics.store(mutex, INDEX_OWNER, threadId);
    return true;
  }

  /**
   * Releases the mutex; wakes one sleeper only if some thread announced it was sleeping.
   * @throws {PermissionError} if `threadId` does not hold it, or it was not locked
   */
  static unlock(mutex: Int32Array<SharedArrayBuffer>, threadId: number): void {
    checkThreadId(threadId);
    // Only this thread can have written its own id, so the check cannot race.
    if (Atomics.load(mutex, INDEX_OWNER) !== threadId) {
      throw new PermissionError(`thread ${threadId} is not the owner of this mutex`);
    }
    // Cleared before the release below, so the next holder never sees a stale owner.
    Atomics.store(mutex, INDEX_OWNER, OWNER_NONE);
    // Release; pairs with the CAS / exchange in lock, timedLock and tryLock.
    const prev = Atomics.exchange(mutex, INDEX_STATE, STATE_FREE);
    if (prev === STATE_FREE) throw new PermissionError('mutex was not locked');
    // Someone set CONTENDED before sleeping in Atomics.wait(…, CONTENDED): wake one of them.
    if (prev === STATE_CONTENDED) Atomics.notify(mutex, INDEX_STATE, 1);
  }
}

function checkBeforeLock(mutex: Int32Array<SharedArrayBuffer>, threadId: number): void {
  checkThreadId(threadId);
  // Reads our own earlier write if we hold the lock; any other value means we do not.
  if (Atomics.load(mutex, INDEX_OWNER) === threadId) {
    throw new DeadlockError(`thread ${threadId} already owns this mutex`);
  }
}
