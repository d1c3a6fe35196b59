// SpinLock: a busy-waiting lock over an Int32Array [state, owner] (state 0 free, 1 locked),
// API-compatible with atomics-sync's SpinLock: same layout, checks and errors; unlock never
// calls Atomics.notify. For critical sections of a few hundred nanoseconds.
//
// lock is test-and-test-and-set with bounded exponential backoff: bursts of at most
// MAX_BACKOFF pause hints (Atomics.pause where the engine has it) between plain loads, and after
// SPINS_BEFORE_YIELD failed attempts a YIELD_MS sleep per attempt, so a holder preempted on an
// oversubscribed machine gets the CPU back. On a browser main thread, where Atomics.wait throws,
// it never sleeps and keeps spinning, so it stays usable there.

import { DeadlockError, PermissionError } from './errors.js';
import { OWNER_NONE, checkThreadId, cpuRelax, yieldWhile } from './internal.js';

const INDEX_STATE = 0;
const INDEX_OWNER = 1;
const STATE_FREE = 0;
const STATE_LOCKED = 1;

/** Longest burst of pause hints between two looks at the state word. */
const MAX_BACKOFF = 64;
/** Failed attempts before each further attempt is preceded by a short sleep. */
const SPINS_BEFORE_YIELD = 256;
/** Sleep length once spinning has gone on too long: about one scheduler tick's worth of work. */
const YIELD_MS = 0.05;

export class SpinLock {
  /** A fresh unlocked lock: Int32Array [state = 0, owner = 0] over a new SharedArrayBuffer. */
  static init(): Int32Array<SharedArrayBuffer> {
    // Zero-filled by the SharedArrayBuffer constructor: free, no owner.
    return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * 2));
  }

  /**
   * Acquires the lock, spinning (then briefly sleeping) until it is free.
   * @throws {DeadlockError} if `threadId` already holds it
   * @throws {InvalidError | RangeError} if `threadId` is not a non-zero int32
   */
  static lock(lock: Int32Array<SharedArrayBuffer>, threadId: number): void {
    checkBeforeLock(lock, threadId);
    let backoff = 1;
    for (let attempt = 0; ; attempt++) {
      // Acquire; pairs with the exchange to FREE in unlock.
      if (Atomics.compareExchange(lock, INDEX_STATE, STATE_FREE, STATE_LOCKED) === STATE_FREE) break;
      if (attempt >= SPINS_BEFORE_YIELD && yieldWhile(lock, INDEX_STATE, STATE_LOCKED, YIELD_MS)) continue;
      // Spin on a load rather than the CAS, so waiters do not keep stealing the cache line.
      for (let i = 0; i < backoff && Atomics.load(lock, INDEX_STATE) !== STATE_FREE; i++) cpuRelax(i);
      if (backoff < MAX_BACKOFF) backoff <<= 1;
    }
    // Only the holder writes the owner word; read by the deadlock and permission checks.
    Atomics.store(lock, INDEX_OWNER, threadId);
  }

  /**
   * Acquires the lock only if it is free right now.
   * @returns true if acquired, false if another thread holds it
   * @throws {DeadlockError} if `threadId` already holds it
   */
  static tryLock(lock: Int32Array<SharedArrayBuffer>, threadId: number): boolean {
    checkBeforeLock(lock, threadId);
    // Pairs with the exchange to FREE in unlock.
    if (Atomics.compareExchange(lock, INDEX_STATE, STATE_FREE, STATE_LOCKED) !== STATE_FREE) return false;
    // Only the holder writes the owner word.
    Atomics.store(lock, INDEX_OWNER, threadId);
    return true;
  }

  /**
   * Releases the lock. Never notifies: spinners poll, and sleepers wake on their own timeout.
   * @throws {PermissionError} if `threadId` does not hold it, or it was not locked
   */
  static unlock(lock: Int32Array<SharedArrayBuffer>, threadId: number): void {
    checkThreadId(threadId);
    // Only this thread can have written its own id, so the check cannot race.
    if (Atomics.load(lock, INDEX_OWNER) !== threadId) {
      throw new PermissionError(`thread ${threadId} is not the owner of this lock`);
    }
    // Cleared before the release below, so the next holder never sees a stale owner.
    Atomics.store(lock, INDEX_OWNER, OWNER_NONE);
    // Release; pairs with the CAS in lock and tryLock.
    if (Atomics.exchange(lock, INDEX_STATE, STATE_FREE) === STATE_FREE) {
      throw new PermissionError('lock was not locked');
    }
  }
}

function checkBeforeLock(lock: Int32Array<SharedArrayBuffer>, threadId: number): void {
  checkThreadId(threadId);
  // Reads our own earlier write if we hold the lock; any other value means we do not.
  if (Atomics.load(lock, INDEX_OWNER) === threadId) {
    throw new DeadlockError(`thread ${threadId} already owns this lock`);
  }
}
