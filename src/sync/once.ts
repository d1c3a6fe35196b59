// Once: runs a function at most once to completion across threads, over an Int32Array [state],
// API-compatible with atomics-sync's Once. atomics-sync flips a flag and lets every other caller
// return at once, possibly before fn has finished. Here, as with pthread_once and C++
// std::call_once, callers that lose the race sleep until fn has completed, and isExecuted turns
// true only after completion. If fn throws, the error reaches the caller that ran it, the state
// goes back to "not run" and a blocked or later caller runs its own fn (std::call_once's rule):
// initialisation that failed is retried rather than silently treated as done.
//
// Losers block with Atomics.wait: workers and Node's main thread only; on a browser main thread a
// loser gets the engine's TypeError. fn must not call execute on the same Once (DeadlockError).

import { DeadlockError } from './errors.js';

const INDEX_STATE = 0;
const STATE_NEW = 0;
/** Same value as atomics-sync's "executed", so a DONE word reads the same in both. */
const STATE_DONE = 1;
const STATE_RUNNING = 2;
/** Running, and at least one loser sleeps: the runner must notify when it finishes. */
const STATE_RUNNING_WAITED = 3;

// Once words whose fn this thread is running now, to turn self-waiting into DeadlockError.
const runningHere: Int32Array[] = [];

export class Once {
  /** A fresh Once: Int32Array [state = 0] over a new SharedArrayBuffer. */
  static init(): Int32Array<SharedArrayBuffer> {
    return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));
  }

  /**
   * Runs `fn` if no call on `once` has completed yet; otherwise waits for the running call to
   * finish, or returns at once if one already has. Rethrows fn's error (and leaves the Once
   * not executed, so a later caller retries).
   * @throws {DeadlockError} if called from inside fn for the same Once
   */
  static execute(once: Int32Array<SharedArrayBuffer>, fn: () => void): void {
    for (;;) {
      // Claim the run; pairs with the exchange to DONE / NEW in run(). Seeing DONE here also
      // makes fn's writes visible to us (the exchange released them).
      let state = Atomics.compareExchange(once, INDEX_STATE, STATE_NEW, STATE_RUNNING);
      if (state === STATE_NEW) return run(once, fn);
      if (state === STATE_DONE) return;
      if (runningHere.some((o) => sameWord(o, once))) {
        throw new DeadlockError('Once.execute called from inside its own fn');
      }
      if (state === STATE_RUNNING) {
        // Tell the runner somebody sleeps; pairs with its exchange in run().
        state = Atomics.compareExchange(once, INDEX_STATE, STATE_RUNNING, STATE_RUNNING_WAITED);
        if (state === STATE_RUNNING) state = STATE_RUNNING_WAITED;
      }
      // Sleeps only while still running with sleepers announced; pairs with the notify in run().
      // Any other state (done, or reset after a throw) loops back to the CAS.
      if (state === STATE_RUNNING_WAITED) Atomics.wait(once, INDEX_STATE, STATE_RUNNING_WAITED);
    }
  }

  /** True once some call's fn has returned normally. */
  static isExecuted(once: Int32Array<SharedArrayBuffer>): boolean {
    // Pairs with the exchange to DONE in run().
    return Atomics.load(once, INDEX_STATE) === STATE_DONE;
  }
}

function run(once: Int32Array<SharedArrayBuffer>, fn: () => void): void {
  runningHere.push(once);
  let finalState = STATE_NEW;
  try {
    fn();
    finalState = STATE_DONE;
  } finally {
    runningHere.pop();
    // Release fn's writes with the final state; pairs with the CAS / load in execute and
    // isExecuted. Notify only if a loser announced it sleeps.
    if (Atomics.exchange(once, INDEX_STATE, finalState) === STATE_RUNNING_WAITED) {
      // Wakes every loser: on DONE they return, on NEW they race to run fn again.
      Atomics.notify(once, INDEX_STATE);
    }
  }
}

function sameWord(a: Int32Array, b: Int32Array): boolean {
  return a.buffer === b.buffer && a.byteOffset === b.byteOffset;
}
