// Worker side of test/policy-lock.test.ts: adds 1 to counter[0] with a plain (non-atomic)
// read-modify-write under a BigLock, `iterations` times, holding the lock a little while each
// time so the other side finds it held; stats[threadId] = the contended acquisitions it counted.

import { workerData } from 'node:worker_threads';
import { BigLock, performanceClock } from '../../src/policy/index.js';

export interface BigLockJob {
  words: Int32Array<SharedArrayBuffer>;
  counter: Int32Array<SharedArrayBuffer>;
  stats: Int32Array<SharedArrayBuffer>;
  threadId: number;
  spinUs: number;
  iterations: number;
}

const job = workerData as BigLockJob;
const lock = new BigLock(job.words, job.threadId, performanceClock, job.spinUs);
for (let i = 0; i < job.iterations; i++) {
  lock.lock();
  // A plain read-modify-write: only mutual exclusion keeps the total exact.
  const v = job.counter[0]!;
  for (let k = 0; k < 50; k++) job.counter[1] = (job.counter[1]! + k) | 0;
  job.counter[0] = v + 1;
  lock.unlock();
}
// Read by the main thread after this worker exits.
Atomics.store(job.stats, job.threadId, lock.contended);
