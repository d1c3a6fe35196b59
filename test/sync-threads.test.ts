// Cross-thread tests for src/sync with real worker_threads (jobs in workers/sync-worker.ts):
// exact totals under Mutex and SpinLock, a Semaphore that never over-admits, the regression
// tests for the four atomics-sync defects under real concurrency, and a multi-round Barrier.
// Every run has a deadline: on expiry all its workers are terminated (which interrupts
// Atomics.wait) and the test fails instead of hanging. The main thread only ever blocks in
// timed waits.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { Barrier, Condition, Mutex, Once, Semaphore, SpinLock } from '../src/sync/index.js';
import type { SyncJob } from './workers/sync-worker.js';

const WORKER_URL = new URL('./workers/sync-worker.js', import.meta.url);

/** Starts one worker per job; resolves when all exit cleanly, rejects on error or deadline. */
function startWorkers(jobs: SyncJob[], timeoutMs = 5000): Promise<void> {
  const workers = jobs.map((job) => new Worker(WORKER_URL, { workerData: job }));
  const exits = workers.map(
    (w, i) =>
      new Promise<void>((resolve, reject) => {
        w.once('error', (err) => reject(new Error(`worker ${i} (${jobs[i]!.kind}) threw: ${String(err)}`)));
        w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker ${i} exited with ${code}`))));
      }),
  );
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`workers still running after ${timeoutMs} ms (hang)`)), timeoutMs);
  });
  return Promise.race([Promise.all(exits).then(() => undefined), deadline]).finally(() => {
    clearTimeout(timer);
    for (const w of workers) void w.terminate();
  });
}

function i32(length: number): Int32Array<SharedArrayBuffer> {
  return new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT * length));
}

/** Polls `ready` without blocking the event loop; fails after `timeoutMs`. */
async function until(what: string, ready: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await delay(1);
  }
}

/** Blocks this thread for `ms` (used inside Once fns, which are synchronous). */
function sleepMs(ms: number): void {
  // Pairs with nothing: a plain timed sleep.
  Atomics.wait(i32(1), 0, 0, ms);
}

const WORKERS = 4;

test('4 workers incrementing a plain shared counter under Mutex reach exactly the expected total', async () => {
  const lock = Mutex.init();
  const counter = i32(1);
  const iterations = 5000;
  await startWorkers(
    Array.from({ length: WORKERS }, (_, i) => ({ kind: 'mutex-increment', lock, counter, threadId: i + 1, iterations })),
  );
  assert.equal(counter[0], WORKERS * iterations);
  assert.deepEqual([...lock], [0, 0], 'free, no owner, no contended mark left behind');
});

test('4 workers incrementing a plain shared counter under SpinLock reach exactly the expected total', async () => {
  const lock = SpinLock.init();
  const counter = i32(1);
  const iterations = 5000;
  await startWorkers(
    Array.from({ length: WORKERS }, (_, i) => ({ kind: 'spin-increment', lock, counter, threadId: i + 1, iterations })),
  );
  assert.equal(counter[0], WORKERS * iterations);
  assert.deepEqual([...lock], [0, 0]);
});

test('a Semaphore of 2 used as a bounded resource by 6 workers never admits more than 2', async () => {
  const sem = Semaphore.init(2);
  const stats = i32(3);
  const iterations = 2000;
  await startWorkers(Array.from({ length: 6 }, () => ({ kind: 'semaphore-resource', sem, stats, iterations })));
  assert.equal(stats[2], 6 * iterations, 'every acquisition happened');
  assert.ok(stats[1]! <= 2, `max holders ${stats[1]} exceeded the count`);
  assert.ok(stats[1]! >= 1);
  assert.equal(stats[0], 0);
  assert.deepEqual([...sem], [2, 0], 'all permits back, no sleeper still counted');
});

test('regression (Semaphore missed wake-up): 4 sleepers are all woken by 4 back-to-back posts', async () => {
  const sem = Semaphore.init(0);
  const results = i32(4);
  const deadline = Date.now() + 3000;
  const run = startWorkers(
    Array.from({ length: 4 }, (_, index) => ({ kind: 'semaphore-sleeper', sem, results, index, deadline })),
  );
  // sem[1] is the documented sleeper count: wait until all four are inside timedWait.
  await until('4 threads sleep on the semaphore', () => Atomics.load(sem, 1) === 4);
  // atomics-sync notified only on the first (0 → 1) post; the other three sleepers stayed asleep.
  const postedAt = Date.now();
  for (let i = 0; i < 4; i++) Semaphore.post(sem);
  await run;
  assert.deepEqual([...results], [1, 1, 1, 1], '1 = woken by a post, 2 = timed out, 3 = slept to the deadline');
  assert.ok(Date.now() - postedAt < 1000, `sleepers took ${Date.now() - postedAt} ms to wake`);
  assert.deepEqual([...sem], [0, 0]);
});

test('regression (Mutex notify on every unlock): unlock notifies exactly when a thread sleeps', async () => {
  const mutex = Mutex.init();
  const flags = i32(1);
  Mutex.lock(mutex, 1);
  const run = startWorkers([{ kind: 'mutex-contender', mutex, flags, threadId: 2 }]);
  // State 2 = "locked, someone sleeps": the contender announced itself before Atomics.wait.
  await until('the contender marks the mutex contended', () => Atomics.load(mutex, 0) === 2);
  const real = Atomics.notify;
  let notifies = 0;
  Atomics.notify = ((view: Int32Array, index: number, count?: number) => {
    notifies++;
    return real(view, index, count);
  }) as typeof Atomics.notify;
  try {
    Mutex.unlock(mutex, 1);
  } finally {
    Atomics.notify = real;
  }
  assert.equal(notifies, 1);
  await run;
  assert.equal(flags[0], 1, 'the contender got the mutex');
  assert.deepEqual([...mutex], [0, 0], 'state word back to 0 after the contended round');
  // And with nobody contending, no notify at all.
  notifies = 0;
  Atomics.notify = ((view: Int32Array, index: number, count?: number) => {
    notifies++;
    return real(view, index, count);
  }) as typeof Atomics.notify;
  try {
    Mutex.lock(mutex, 1);
    Mutex.unlock(mutex, 1);
  } finally {
    Atomics.notify = real;
  }
  assert.equal(notifies, 0);
  assert.deepEqual([...mutex], [0, 0]);
});

for (const timed of [false, true]) {
  test(`regression (Condition lost wake-up): 3000-round producer/consumer handoff with ${timed ? 'timedWait' : 'wait'} completes`, async () => {
    const mutex = Mutex.init();
    const notFull = Condition.init();
    const notEmpty = Condition.init();
    const slot = i32(3);
    const rounds = 3000;
    const common = { mutex, notFull, notEmpty, slot, rounds, timed };
    await startWorkers([
      { kind: 'condition-producer', threadId: 1, ...common },
      { kind: 'condition-consumer', threadId: 2, ...common },
    ]);
    assert.equal(slot[2], 0, 'the consumer saw every value in order');
    assert.equal(slot[0], 0, 'the last value was consumed');
    assert.deepEqual([...mutex], [0, 0]);
    assert.equal(notFull[1], 0, 'no waiter left counted');
    assert.equal(notEmpty[1], 0, 'no waiter left counted');
  });
}

test('regression (Once returns early): a loser returns only after the winner fn completed', async () => {
  const once = Once.init();
  const shared = i32(5);
  const run = startWorkers([{ kind: 'once-loser', once, shared }]);
  let executedInside: boolean | undefined;
  Once.execute(once, () => {
    // Block until the worker is about to call execute; pairs with its store + notify.
    if (Atomics.wait(shared, 0, 0, 3000) === 'timed-out') throw new Error('worker never reached execute');
    // Give the worker time to enter execute while fn is still running.
    sleepMs(100);
    executedInside = Once.isExecuted(once);
    shared[1] = 42;
  });
  await run;
  assert.equal(executedInside, false, 'isExecuted is false while fn runs');
  assert.equal(shared[2], 42, "the loser saw fn's side effect when execute returned");
  assert.equal(shared[3], 1, 'the loser saw isExecuted true');
  assert.equal(shared[4], 0, "the loser did not run its own fn");
});

test('Once: when the winner fn throws, a blocked loser runs its own fn', async () => {
  const once = Once.init();
  const shared = i32(5);
  const run = startWorkers([{ kind: 'once-loser', once, shared }]);
  assert.throws(
    () =>
      Once.execute(once, () => {
        // Block until the worker is about to call execute; pairs with its store + notify.
        if (Atomics.wait(shared, 0, 0, 3000) === 'timed-out') throw new Error('worker never reached execute');
        sleepMs(100);
        throw new Error('first init failed');
      }),
    /first init failed/,
  );
  await run;
  assert.equal(shared[4], 1, 'the loser retried and ran its fn');
  assert.equal(shared[2], 7, "the loser saw its own fn's side effect");
  assert.equal(shared[3], 1);
  assert.equal(Once.isExecuted(once), true);
});

test('Once: 4 racing workers run fn exactly once and all see its side effect', async () => {
  const once = Once.init();
  const shared = i32(2);
  const observed = i32(4);
  await startWorkers(Array.from({ length: 4 }, (_, index) => ({ kind: 'once-racer', once, shared, observed, index })));
  assert.equal(shared[0], 1, 'fn ran exactly once');
  assert.deepEqual([...observed], [42, 42, 42, 42]);
  assert.deepEqual([...once], [1], 'done, nobody left marked asleep');
});

test('a Barrier of 4 runs 50 rounds with exactly one serial thread per round and nobody leaving early', async () => {
  const parties = 4;
  const rounds = 50;
  const barrier = Barrier.init(parties);
  const arrivals = i32(rounds);
  const serials = i32(rounds);
  const failures = i32(1);
  await startWorkers(
    Array.from({ length: parties }, (_, i) => ({
      kind: 'barrier',
      barrier,
      threadId: i + 1,
      parties,
      rounds,
      arrivals,
      serials,
      failures,
    })),
  );
  assert.deepEqual([...serials], new Array(rounds).fill(1));
  assert.equal(failures[0], 0);
  assert.deepEqual([...barrier.barrier], [BigInt(parties), 0n, BigInt(rounds)]);
});
