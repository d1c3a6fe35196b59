// Helpers private to src/sync: argument checks shared by the primitives, deadline arithmetic on
// the Date.now() clock, and the CPU-relax / yield steps used while spinning. Not exported from
// index.ts. No `node:` imports: src/sync must also run in browser Web Workers.

import { InvalidError } from './errors.js';
import { INT32_MAX_VALUE, INT32_MIN_VALUE } from './limits.js';

/** Owner word value meaning "nobody holds the lock"; hence 0 is not a valid thread id. */
export const OWNER_NONE = 0;

/** Throws unless `threadId` is a non-zero int32 (atomics-sync's rule and error classes). */
export function checkThreadId(threadId: number): void {
  if (!Number.isInteger(threadId)) {
    throw new InvalidError(`threadId should be int32, got ${String(threadId)}`);
  }
  if (threadId < INT32_MIN_VALUE || threadId > INT32_MAX_VALUE) {
    throw new RangeError(`threadId ${threadId} is out of int32 range`);
  }
  if (threadId === OWNER_NONE) {
    throw new InvalidError('threadId 0 is reserved for "no owner"');
  }
}

/**
 * Milliseconds left until the absolute Date.now() timestamp, never negative; Infinity stays
 * Infinity (wait forever). NaN is rejected because Atomics.wait reads a NaN timeout as "forever",
 * which would turn a typo into a hang.
 */
export function remainingMs(timestamp: number): number {
  if (typeof timestamp !== 'number' || Number.isNaN(timestamp)) {
    throw new InvalidError(`timestamp should be a number of ms on the Date.now() clock, got ${String(timestamp)}`);
  }
  const ms = timestamp - Date.now();
  return ms > 0 ? ms : 0;
}

type AtomicsWithPause = typeof Atomics & { pause?: (iterationNumber?: number) => void };
// Atomics.pause (ES2025) is a spin-wait hint to the CPU; older engines (Node 20) lack it.
const pauseHint = (Atomics as AtomicsWithPause).pause;

/** One spin step: the engine's pause hint where it exists, otherwise nothing. */
export function cpuRelax(iteration: number): void {
  if (pauseHint !== undefined) pauseHint.call(Atomics, iteration);
}

// Whether this thread may block in Atomics.wait; learnt on first use (browser main threads throw).
let blockingAllowed = true;

/**
 * Gives the CPU away for about `ms` unless `view[index]` stops being `expected`. Returns false,
 * and never tries again on this thread, where blocking is forbidden (the browser main thread):
 * callers then keep spinning.
 */
export function yieldWhile(view: Int32Array, index: number, expected: number, ms: number): boolean {
  if (!blockingAllowed) return false;
  try {
    // Pairs with nothing: a bounded sleep that returns early ("not-equal") if the word already
    // changed. Callers that use it never rely on a notify.
    Atomics.wait(view, index, expected, ms);
    return true;
  } catch (err) {
    if (err instanceof TypeError) {
      blockingAllowed = false;
      return false;
    }
    throw err;
  }
}
