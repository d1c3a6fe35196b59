// Int32 bounds shared by every primitive in src/sync (thread ids, semaphore values). Same names
// and values as atomics-sync's `limits`, so code written for that package imports them unchanged.

/** Largest value an Int32Array element holds (2^31 − 1). */
export const INT32_MAX_VALUE = 2147483647;

/** Smallest value an Int32Array element holds (−2^31). */
export const INT32_MIN_VALUE = -2147483648;
