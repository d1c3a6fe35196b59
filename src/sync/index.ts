// Public surface of src/sync: atomics-sync-compatible primitives (same names, argument orders
// and return types) with its lost-wakeup, missed-wakeup, notify-always and early-return-Once
// defects fixed. See README.md in this folder.

export { Mutex } from './mutex.js';
export { SpinLock } from './spinlock.js';
export { Semaphore } from './semaphore.js';
export { Condition } from './condition.js';
export { Barrier, type BarrierObject } from './barrier.js';
export { Once } from './once.js';
export { DeadlockError, PermissionError, InvalidError } from './errors.js';
export { INT32_MAX_VALUE, INT32_MIN_VALUE } from './limits.js';
