// Worker side of test/sync-threads.test.ts: one job per worker, chosen by workerData.kind.
// Each job runs a src/sync primitive under real contention and leaves its findings in shared
// arrays; a thrown error surfaces as the Worker's 'error' event and fails the test.

import { workerData } from 'node:worker_threads';
import { Barrier, type BarrierObject, Condition, Mutex, Once, Semaphore, SpinLock } from '../../src/sync/index.js';

type I32 = Int32Array<SharedArrayBuffer>;

export type SyncJob =
  /** Adds 1 to counter[0] with a plain (non-atomic) read-modify-write, `iterations` times. */
  | { kind: 'mutex-increment' | 'spin-increment'; lock: I32; counter: I32; threadId: number; iterations: number }
  /** Holds one of `sem`'s permits per iteration; stats = [inUse, maxInUse, entries]. */
  | { kind: 'semaphore-resource'; sem: I32; stats: I32; iterations: number }
  /** Sleeps in Semaphore.timedWait; results[index] = 1 woken in time, 2 timed out, 3 got it only at `deadline`. */
  | { kind: 'semaphore-sleeper'; sem: I32; results: I32; index: number; deadline: number }
  /** Blocks in Mutex.lock on a mutex the main thread holds; flags[0] = 1 once acquired. */
  | { kind: 'mutex-contender'; mutex: I32; flags: I32; threadId: number }
  /** One side of a single-slot handoff; slot = [full, value, mismatches]. */
  | {
      kind: 'condition-producer' | 'condition-consumer';
      mutex: I32;
      notFull: I32;
      notEmpty: I32;
      slot: I32;
      threadId: number;
      rounds: number;
      timed: boolean;
    }
  /**
   * Calls Once.execute while another thread's fn is running; shared =
   * [entering, sideEffect, observed, executedSeen, ranOwnFn].
   */
  | { kind: 'once-loser'; once: I32; shared: I32 }
  /** Races Once.execute; fn counts runs in shared[0], sleeps, then writes 42 to shared[1]. */
  | { kind: 'once-racer'; once: I32; shared: I32; observed: I32; index: number }
  /** `rounds` rounds of Barrier.wait; arrivals/serials per round, failures[0] counts early exits. */
  | {
      kind: 'barrier';
      barrier: BarrierObject;
      threadId: number;
      parties: number;
      rounds: number;
      arrivals: I32;
      serials: I32;
      failures: I32;
    };

const sleepWord = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  // Pairs with nothing: a plain timed sleep.
  Atomics.wait(sleepWord, 0, 0, ms);
}

function run(job: SyncJob): void {
  switch (job.kind) {
    case 'mutex-increment':
      for (let i = 0; i < job.iterations; i++) {
        Mutex.lock(job.lock, job.threadId);
        job.counter[0] = job.counter[0]! + 1;
        Mutex.unlock(job.lock, job.threadId);
      }
      return;
    case 'spin-increment':
      for (let i = 0; i < job.iterations; i++) {
        SpinLock.lock(job.lock, job.threadId);
        job.counter[0] = job.counter[0]! + 1;
        SpinLock.unlock(job.lock, job.threadId);
      }
      return;
    case 'semaphore-resource':
      for (let i = 0; i < job.iterations; i++) {
        Semaphore.wait(job.sem);
        // Counts holders; the test reads it after every worker has exited.
        const inUse = Atomics.add(job.stats, 0, 1) + 1;
        // Keeps the running maximum of holders.
        for (let max = Atomics.load(job.stats, 1); inUse > max; max = Atomics.load(job.stats, 1)) {
          if (Atomics.compareExchange(job.stats, 1, max, inUse) === max) break;
        }
        // Counts entries, and un-counts this holder before the permit goes back.
        Atomics.add(job.stats, 2, 1);
        Atomics.sub(job.stats, 0, 1);
        Semaphore.post(job.sem);
      }
      return;
    case 'semaphore-sleeper': {
      const acquired = Semaphore.timedWait(job.sem, job.deadline);
      // A sleeper that missed its wake-up still finds the permit once its own deadline wakes it.
      const result = !acquired ? 2 : Date.now() < job.deadline ? 1 : 3;
      // Read by the test after the worker exits.
      Atomics.store(job.results, job.index, result);
      return;
    }
    case 'mutex-contender':
      Mutex.lock(job.mutex, job.threadId);
      // Read by the test after the worker exits.
      Atomics.store(job.flags, 0, 1);
      Mutex.unlock(job.mutex, job.threadId);
      return;
    case 'condition-producer':
    case 'condition-consumer':
      return handoff(job);
    case 'once-loser': {
      const { once, shared } = job;
      // Tells the runner (main thread) we are about to call execute; pairs with its wait.
      Atomics.store(shared, 0, 1);
      Atomics.notify(shared, 0);
      Once.execute(once, () => {
        Atomics.store(shared, 4, 1);
        shared[1] = 7;
      });
      // Plain read: Once.execute must have made the runner's plain write visible already.
      Atomics.store(shared, 2, shared[1]!);
      Atomics.store(shared, 3, Once.isExecuted(once) ? 1 : 0);
      return;
    }
    case 'once-racer': {
      const { once, shared } = job;
      Once.execute(once, () => {
        // Counts how many threads ran fn (must be exactly one).
        Atomics.add(shared, 0, 1);
        sleepMs(50);
        shared[1] = 42;
      });
      // Plain read, as above; published to the test by Atomics.store.
      Atomics.store(job.observed, job.index, shared[1]!);
      return;
    }
    case 'barrier':
      for (let round = 0; round < job.rounds; round++) {
        // Counts arrivals in this round before entering the barrier.
        Atomics.add(job.arrivals, round, 1);
        const serial = Barrier.wait(job.barrier, job.threadId);
        // Counts serial threads; the test expects exactly one per round.
        if (serial) Atomics.add(job.serials, round, 1);
        // Nobody may leave a round before every party has arrived in it.
        if (Atomics.load(job.arrivals, round) !== job.parties) Atomics.add(job.failures, 0, 1);
      }
      return;
  }
}

function handoff(job: Extract<SyncJob, { kind: 'condition-producer' | 'condition-consumer' }>): void {
  const producing = job.kind === 'condition-producer';
  const { mutex, slot, threadId } = job;
  // The producer waits on notFull and signals notEmpty; the consumer the other way round.
  const waitOn = producing ? job.notFull : job.notEmpty;
  const signalTo = producing ? job.notEmpty : job.notFull;
  for (let round = 1; round <= job.rounds; round++) {
    Mutex.lock(mutex, threadId);
    // slot is only touched under the mutex, so plain accesses suffice.
    while ((slot[0] === 1) === producing) {
      if (!job.timed) {
        Condition.wait(waitOn, mutex, threadId);
      } else if (!Condition.timedWait(waitOn, mutex, threadId, Date.now() + 2000)) {
        Mutex.unlock(mutex, threadId);
        throw new Error(`${job.kind}: no signal within 2 s in round ${round} (lost wake-up)`);
      }
    }
    if (producing) {
      slot[1] = round;
      slot[0] = 1;
    } else {
      if (slot[1] !== round) slot[2] = slot[2]! + 1;
      slot[0] = 0;
    }
    Condition.signal(signalTo);
    Mutex.unlock(mutex, threadId);
  }
}

run(workerData as SyncJob);
