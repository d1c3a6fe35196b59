// Barrier: a reusable rendezvous for a fixed number of threads, API-compatible with
// atomics-sync's Barrier: init returns a BarrierObject { barrier: BigInt64Array [count, waited,
// generation], mutex, cond } built on src/sync's Mutex and Condition. The last thread to arrive
// in a round resets `waited`, bumps `generation` and broadcasts; the others sleep until the
// generation changes, so rounds can follow one another with no reinitialisation.
//
// wait blocks with Atomics.wait: workers and Node's main thread only, not a browser main thread.

import { Condition } from './condition.js';
import { InvalidError } from './errors.js';
import { Mutex } from './mutex.js';

/** Shared state of one barrier; ship all three arrays to every participating thread. */
export interface BarrierObject {
  /** [count, waited, generation]. */
  barrier: BigInt64Array<SharedArrayBuffer>;
  mutex: Int32Array<SharedArrayBuffer>;
  cond: Int32Array<SharedArrayBuffer>;
}

const INDEX_COUNT = 0;
const INDEX_WAITED = 1;
const INDEX_GENERATION = 2;

export class Barrier {
  /**
   * A barrier that releases every `count` arrivals.
   * @throws {InvalidError} if `count` is not an integer
   * @throws {RangeError} if `count` ≤ 0
   */
  static init(count: number): BarrierObject {
    if (!Number.isInteger(count)) {
      throw new InvalidError(`barrier count should be an integer, got ${String(count)}`);
    }
    if (count <= 0) throw new RangeError(`barrier count should be greater than zero, got ${count}`);
    const barrier = new BigInt64Array(new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT * 3));
    // Published to other threads by whatever hands them the object (postMessage / workerData).
    Atomics.store(barrier, INDEX_COUNT, BigInt(count));
    return { barrier, mutex: Mutex.init(), cond: Condition.init() };
  }

  /**
   * Waits until `count` threads (including this one) have called wait in this round.
   * @returns true in exactly one thread per round (the last to arrive), false in the others
   * @throws {InvalidError | RangeError} if `threadId` is not a non-zero int32
   */
  static wait(barrier: BarrierObject, threadId: number): boolean {
    Mutex.lock(barrier.mutex, threadId);
    try {
      // All three words are only written under barrier.mutex; Atomics for the BigInt64Array
      // access, the mutex orders them.
      const generation = Atomics.load(barrier.barrier, INDEX_GENERATION);
      const count = Atomics.load(barrier.barrier, INDEX_COUNT);
      const waited = Atomics.add(barrier.barrier, INDEX_WAITED, 1n) + 1n;
      if (waited >= count) {
        Atomics.store(barrier.barrier, INDEX_WAITED, 0n);
        Atomics.add(barrier.barrier, INDEX_GENERATION, 1n);
        Condition.broadcast(barrier.cond);
        return true;
      }
      // Loop: Condition wake-ups may be spurious. Under the mutex, pairs with the bump above.
      while (Atomics.load(barrier.barrier, INDEX_GENERATION) === generation) {
        Condition.wait(barrier.cond, barrier.mutex, threadId);
      }
      return false;
    } finally {
      Mutex.unlock(barrier.mutex, threadId);
    }
  }
}
