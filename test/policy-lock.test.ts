// The QEMU-2008 global lock (BigLock) across real worker threads: with a waiter that spins before
// it sleeps (dataPath.lockSpinUs) on one side and one that sleeps at once on the other, every
// increment made under the lock survives; and bigLockFor builds a lock only when the policy's
// data path holds one.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { BIG_LOCK_WORDS, bigLockFor, resolvePolicy } from '../src/policy/index.js';
import type { BigLockJob } from './workers/biglock-worker.js';

const WORKER_URL = new URL('./workers/biglock-worker.js', import.meta.url);

function i32(n: number): Int32Array<SharedArrayBuffer> {
  return new Int32Array(new SharedArrayBuffer(4 * n));
}

function run(job: BigLockJob, timeoutMs: number): Promise<void> {
  const w = new Worker(WORKER_URL, { workerData: job });
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error(`worker ${job.threadId} still running after ${timeoutMs} ms (hang)`));
    }, timeoutMs);
    w.once('error', (e) => reject(new Error(`worker ${job.threadId} threw: ${String(e)}`)));
    w.once('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`worker ${job.threadId} exited with ${code}`));
    });
  });
}

for (const [a, b] of [
  [500, 0],
  [100_000, 100_000],
] as const) {
  test(`two threads under one BigLock (waiters spin ${a} µs and ${b} µs before sleeping) lose no increment`, async () => {
    const words = i32(BIG_LOCK_WORDS);
    const counter = i32(2);
    const stats = i32(3);
    const iterations = 20_000;
    await Promise.all([
      run({ words, counter, stats, threadId: 1, spinUs: a, iterations }, 60_000),
      run({ words, counter, stats, threadId: 2, spinUs: b, iterations }, 60_000),
    ]);
    assert.equal(Atomics.load(counter, 0), 2 * iterations);
    assert.equal(Atomics.load(words, 0), 0, 'the lock is free at the end');
  });
}

test('bigLockFor: a lock for held and dropped, none for none; the spin comes from the data path', () => {
  const words = i32(BIG_LOCK_WORDS);
  assert.equal(bigLockFor(resolvePolicy('vhost').dataPath, words, 1), null);
  const held = bigLockFor(resolvePolicy('rfc-baseline').dataPath, words, 1);
  assert.ok(held !== null);
  held.lock();
  assert.equal(held.isHeld, true);
  held.unlock();
  assert.ok(bigLockFor(resolvePolicy({ base: 'rfc-drop-mutex', dataPath: { lockSpinUs: 0 } }).dataPath, words, 1) !== null);
});
