// Tests of src/notify: control-block layout, ring/wait protocol within one thread and across real
// workers (test/workers/notify-worker.ts), stop, deadlines, precise-deadline lateness, waitAsync
// and the lateness recorder. Timing is only sanity-checked: the VM is noisy.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import {
  CACHE_LINE_BYTES,
  DOORBELL_SEQ_BYTE,
  DOORBELL_SLEEPERS_BYTE,
  DOORBELL_SLOT_BYTES,
  Doorbell,
  DoorbellBlock,
  DoorbellError,
  LatenessRecorder,
  controlBlockBytes,
  doorbellBlockBytes,
  percentileOfSorted,
  seqPassed,
  type DoorbellOptions,
  type WaitStrategy,
} from '../src/notify/index.js';
import type { NotifyWorkerData, NotifyWorkerJob, NotifyWorkerMessage } from './workers/notify-worker.js';

const WORKER_URL = new URL('./workers/notify-worker.js', import.meta.url);
type DoneMessage = Extract<NotifyWorkerMessage, { kind: 'done' }>;

/** A running test worker: resolves `done` with its final report, `waiting` once it is about to wait. */
interface Spawned {
  worker: Worker;
  waiting: Promise<void>;
  done: Promise<DoneMessage>;
  exit: Promise<number>;
}

function spawn(block: DoorbellBlock, job: NotifyWorkerJob): Spawned {
  const workerData: NotifyWorkerData = { sab: block.sab, controlByteOffset: block.controlByteOffset, job };
  const worker = new Worker(WORKER_URL, { workerData });
  let onWaiting: () => void = () => {};
  const waiting = new Promise<void>((resolve) => (onWaiting = resolve));
  const exit = new Promise<number>((resolve) => worker.once('exit', resolve));
  const done = new Promise<DoneMessage>((resolve, reject) => {
    worker.on('message', (msg: NotifyWorkerMessage) => {
      if (msg.kind === 'waiting') onWaiting();
      else resolve(msg);
    });
    worker.once('error', reject);
    void exit.then((code) => reject(new Error(`worker (${job.role}) exited with code ${code} before reporting`)));
  });
  done.catch(() => {}); // callers that care await it; a worker terminated early must not leak a rejection
  return { worker, waiting, done, exit };
}

/** Settles like `p`, or rejects once `ms` pass; the timer never outlives the call. */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

function epochNowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Polls `cond` on the event loop until it holds; throws after `ms`. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const endMs = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > endMs) throw new Error(`${what}: not reached after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function seqWord(block: DoorbellBlock, index: number): Int32Array {
  return new Int32Array(block.sab, block.doorbellByteOffset(index) + DOORBELL_SEQ_BYTE, 1);
}

function assertDoorbellError(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DoorbellError && e.code === code);
}

// ---------------------------------------------------------------------------------------------
// Layout

test('a contiguous block puts the stop word, each sequence word and each sleepers word on its own line', () => {
  const block = DoorbellBlock.allocate(2);
  assert.equal(block.sab.byteLength, doorbellBlockBytes(2));
  assert.equal(controlBlockBytes(2), CACHE_LINE_BYTES);
  const { controlByteOffset, doorbellByteOffsets } = block.layout;
  assert.equal(controlByteOffset, 0);
  assert.deepEqual(doorbellByteOffsets, [64, 64 + DOORBELL_SLOT_BYTES]);
  const lines = new Set<number>([controlByteOffset / 64]);
  for (const off of doorbellByteOffsets) {
    lines.add((off + DOORBELL_SEQ_BYTE) / 64);
    lines.add((off + DOORBELL_SLEEPERS_BYTE) / 64);
  }
  assert.equal(lines.size, 5);
});

test('doorbells placed at chosen offsets re-open from the buffer and the control offset alone', () => {
  const sab = new SharedArrayBuffer(8192);
  const block = DoorbellBlock.init(sab, 4096, [1024, 256]);
  const kick = block.doorbell(0);
  kick.ring();
  kick.ring();
  const again = DoorbellBlock.open(sab, 4096);
  assert.equal(again.count, 2);
  assert.equal(again.doorbellByteOffset(1), 256);
  assert.equal(again.doorbell(0).seq(), 2);
  assert.equal(Doorbell.open(sab, 1024).seq(), 2);
  assert.equal(Doorbell.open(sab, 256).seq(), 0);
  assert.equal(Doorbell.open(sab, 256).controlByteOffset, 4096);
});

test('bad placements and unknown memory are refused with a stable code', () => {
  const sab = new SharedArrayBuffer(4096);
  assertDoorbellError(() => DoorbellBlock.init(sab, 32, 1), 'misaligned');
  assertDoorbellError(() => DoorbellBlock.init(sab, 0, [64, 128]), 'overlap');
  assertDoorbellError(() => DoorbellBlock.init(sab, 0, [0]), 'overlap');
  assertDoorbellError(() => DoorbellBlock.init(sab, 0, [4032]), 'out-of-bounds');
  assertDoorbellError(() => DoorbellBlock.init(sab, 0, 0), 'bad-count');
  assertDoorbellError(() => DoorbellBlock.init(new ArrayBuffer(4096) as unknown as SharedArrayBuffer, 0, 1), 'not-shared');
  assertDoorbellError(() => DoorbellBlock.open(sab, 0), 'not-initialised');
  assertDoorbellError(() => Doorbell.open(sab, 128), 'not-initialised');
  const block = DoorbellBlock.init(sab, 0, 1);
  assertDoorbellError(() => block.doorbell(1), 'bad-index');
  assertDoorbellError(() => block.doorbell(0, { spinIterations: -1 }), 'bad-option');
  assertDoorbellError(() => block.doorbell(0, { strategy: 'nap' as WaitStrategy }), 'bad-option');
  assertDoorbellError(() => block.doorbell(0).wait(0, NaN), 'bad-option');
});

// ---------------------------------------------------------------------------------------------
// Protocol within one thread

test('ring skips Atomics.notify when the peer has not declared itself asleep', () => {
  const block = DoorbellBlock.allocate(1);
  const ringer = block.doorbell(0);
  for (let i = 0; i < 1000; i++) assert.equal(ringer.ring(), false);
  assert.equal(ringer.stats.rings, 1000);
  assert.equal(ringer.stats.notifies, 0);
  assert.equal(ringer.seq(), 1000);
});

test('ring notifies when a waiter is asleep, and the waiter sees it rung', async () => {
  const block = DoorbellBlock.allocate(1);
  const ringer = block.doorbell(0);
  const waiter = block.doorbell(0);
  const pending = waiter.waitAsync(waiter.seq());
  assert.equal(ringer.sleepers(), 1);
  assert.equal(ringer.ring(), true);
  assert.equal(await pending, 'rung');
  assert.equal(ringer.stats.notifies, 1);
  assert.equal(waiter.stats.sleeps, 1);
  assert.equal(waiter.stats.wakeups, 1);
  assert.equal(waiter.stats.spuriousWakeups, 0);
  assert.equal(ringer.sleepers(), 0);
});

test('wait returns at once when the sequence already moved past what was seen, across int32 wrap', () => {
  const block = DoorbellBlock.allocate(1);
  const db = block.doorbell(0, { strategy: 'block' });
  seqWord(block, 0)[0] = 0x7fffffff;
  const seen = db.seq();
  db.ring();
  assert.equal(db.seq(), -0x80000000);
  assert.ok(seqPassed(db.seq(), seen));
  assert.equal(db.wait(seen), 'rung');
  assert.equal(db.lastSeq, -0x80000000);
  assert.equal(db.stats.sleeps, 0);
  // A `seen` ahead of the sequence is not "passed": the wait times out rather than returning early.
  assert.equal(db.wait(db.seq() + 5, performance.now() + 2), 'timeout');
});

test('after stop every wait returns stopped at once, even when rung', async () => {
  const block = DoorbellBlock.allocate(2);
  const db = block.doorbell(1);
  const seen = db.seq();
  db.ring();
  block.stop();
  assert.equal(block.stopped, true);
  assert.equal(db.stopped, true);
  for (const strategy of ['block', 'spin', 'hybrid'] as const) {
    db.configure({ strategy });
    assert.equal(db.wait(seen), 'stopped');
    assert.equal(db.waitUntil(seen, performance.now() + 1000), 'stopped');
  }
  assert.equal(await db.waitAsync(seen), 'stopped');
  assert.equal(db.stats.stops, 7);
});

for (const strategy of ['block', 'spin', 'hybrid'] as const) {
  test(`an unrung ${strategy} wait returns timeout at or after its deadline and records the lateness`, () => {
    const lateness = new LatenessRecorder(16);
    const db = DoorbellBlock.allocate(1).doorbell(0, { strategy, lateness });
    for (let i = 0; i < 3; i++) {
      const deadlineMs = performance.now() + 2;
      assert.equal(db.wait(db.seq(), deadlineMs), 'timeout');
      assert.ok(performance.now() >= deadlineMs);
    }
    assert.equal(db.stats.timeouts, 3);
    assert.equal(lateness.count, 3);
    assert.ok(lateness.percentile(0) >= 0);
    assert.ok(db.stats.latenessMaxNs < 1e9, `max lateness ${db.stats.latenessMaxNs} ns`); // sane, not fast: a loaded machine stalls for ms
    if (strategy === 'spin') assert.equal(db.stats.sleeps, 0);
    else assert.ok(db.stats.sleeps >= 3);
  });
}

test('the precise-deadline mode times out at or after the deadline and records sane lateness', () => {
  const lateness = new LatenessRecorder(64);
  for (const strategy of ['block', 'hybrid', 'spin'] as const) {
    const db = DoorbellBlock.allocate(1).doorbell(0, { strategy, guardUs: 120, lateness });
    for (const intervalUs of [50, 150, 250, 1000]) {
      const deadlineMs = performance.now() + intervalUs / 1000;
      assert.equal(db.waitUntil(db.seq(), deadlineMs), 'timeout');
      assert.ok(performance.now() >= deadlineMs);
    }
  }
  const s = lateness.summary();
  assert.equal(s.count, 12);
  assert.ok(s.minNs >= 0, `min lateness ${s.minNs} ns`);
  assert.ok(s.maxNs < 1e9, `max lateness ${s.maxNs} ns`); // sane, not fast: a loaded machine stalls for ms
  assert.ok(s.minNs <= s.p50Ns && s.p50Ns <= s.p99Ns && s.p99Ns <= s.maxNs);
});

test('a hybrid spin ends at its µs budget (spinUs) and the wait then sleeps, timing out at or after the deadline', () => {
  // With 1e12 spin iterations only the µs budget (or the deadline) can end the spin; had the
  // budget not ended it, the spin would run to the deadline and the wait would never sleep.
  const db = DoorbellBlock.allocate(1).doorbell(0, { strategy: 'hybrid', spinIterations: 1e12, spinUs: 100 });
  const deadlineMs = performance.now() + 300;
  assert.equal(db.wait(db.seq(), deadlineMs), 'timeout');
  assert.ok(performance.now() >= deadlineMs);
  assert.ok(db.stats.sleeps >= 1, `sleeps ${db.stats.sleeps}`);
});

test('a timed spin reads the clock a few times, not once per 16 polls', () => {
  // performance.now() allocates a heap number per call; the spin closes in on its end with
  // geometrically shorter strides. A fixed 16-poll stride read the clock ~125 times in a
  // 2000-poll hybrid spin and 100s of times in a 150 µs guard spin (130-450 per wait here).
  const db = DoorbellBlock.allocate(1).doorbell(0, { strategy: 'hybrid', spinIterations: 2000, guardUs: 150 });
  const perf = globalThis.performance;
  const realNow = perf.now.bind(perf);
  let reads = 0;
  Object.defineProperty(perf, 'now', { value: () => (reads++, realNow()), configurable: true, writable: true });
  try {
    for (let i = 0; i < 5; i++) {
      const before = reads;
      const deadlineMs = realNow() + 5;
      assert.equal(db.waitUntil(db.seq(), deadlineMs), 'timeout');
      assert.ok(realNow() >= deadlineMs);
      assert.ok(reads - before < 100, `${reads - before} clock reads in one wait`);
    }
  } finally {
    delete (perf as unknown as { now?: unknown }).now;
  }
  assert.equal(typeof performance.now(), 'number');
});

test('waitAsync times out at or after its deadline', async () => {
  const db = DoorbellBlock.allocate(1).doorbell(0);
  const deadlineMs = performance.now() + 3;
  assert.equal(await db.waitAsync(db.seq(), deadlineMs), 'timeout');
  assert.ok(performance.now() >= deadlineMs);
  assert.equal(db.stats.timeouts, 1);
});

// ---------------------------------------------------------------------------------------------
// Across real workers

interface PingPongCase {
  name: string;
  rounds: number;
  first: DoorbellOptions;
  second: DoorbellOptions;
}

const PINGPONG_CASES: PingPongCase[] = [
  { name: 'block', rounds: 10_000, first: { strategy: 'block' }, second: { strategy: 'block' } },
  { name: 'hybrid (2000 spins)', rounds: 10_000, first: { strategy: 'hybrid' }, second: { strategy: 'hybrid' } },
  // A spin budget shorter than the partner's response keeps both sides racing into sleep.
  {
    name: 'hybrid (20 spins, sleep races)',
    rounds: 10_000,
    first: { strategy: 'hybrid', spinIterations: 20 },
    second: { strategy: 'hybrid', spinIterations: 20 },
  },
  // Few rounds: pure spin is catastrophic if the two workers ever share a vCPU.
  { name: 'spin', rounds: 2_000, first: { strategy: 'spin' }, second: { strategy: 'spin' } },
  { name: 'spin against block', rounds: 5_000, first: { strategy: 'spin' }, second: { strategy: 'block' } },
];

for (const c of PINGPONG_CASES) {
  test(`${c.rounds} ping-pong round trips between two workers (${c.name}) lose no wakeup`, { timeout: 30_000 }, async () => {
    const block = DoorbellBlock.allocate(2);
    const KICK = 0;
    const IRQ = 1;
    const a = spawn(block, { role: 'pingpong', side: 'first', rounds: c.rounds, ringIndex: KICK, waitIndex: IRQ, options: c.first });
    const b = spawn(block, { role: 'pingpong', side: 'second', rounds: c.rounds, ringIndex: IRQ, waitIndex: KICK, options: c.second });
    try {
      // A lost wakeup leaves both sides asleep for ever: stop them, then fail with their reports.
      const both = Promise.all([a.done, b.done]);
      let reports: [DoneMessage, DoneMessage];
      try {
        reports = await within(both, 20_000, 'ping-pong');
      } catch (e) {
        const peek = JSON.stringify(block.peek());
        block.stop();
        const after = await Promise.allSettled([within(a.done, 2_000, 'first'), within(b.done, 2_000, 'second')]);
        const said = after.map((x) => (x.status === 'fulfilled' ? x.value.error : String(x.reason)));
        throw new Error(`${String(e)}; doorbells ${peek}; first: ${said[0]}; second: ${said[1]}`);
      }
      const [ra, rb] = reports;
      assert.equal(ra.error, null);
      assert.equal(rb.error, null);
      assert.equal(ra.rounds, c.rounds);
      assert.equal(rb.rounds, c.rounds);
      // a's peerStats is its ringer (kick), b's is the irq ringer.
      assert.equal(ra.peerStats!.rings, c.rounds);
      assert.equal(rb.peerStats!.rings, c.rounds);
      for (const [side, r, peerOptions] of [['first', ra, c.second], ['second', rb, c.first]] as const) {
        assert.ok(r.peerStats!.notifies <= r.peerStats!.rings);
        if (peerOptions.strategy === 'spin') {
          assert.equal(r.peerStats!.notifies, 0, `${side}: the spinning peer never declared itself asleep`);
        }
      }
      if (c.first.strategy === 'spin') assert.equal(ra.stats.sleeps, 0);
      if (c.first.strategy === 'block') assert.ok(ra.stats.sleeps > 0);
    } finally {
      block.stop();
      await Promise.all([a.worker.terminate(), b.worker.terminate()]);
    }
  });
}

for (const strategy of ['block', 'hybrid', 'spin'] as const) {
  test(`stop wakes a ${strategy} waiter in another worker promptly`, { timeout: 10_000 }, async () => {
    const block = DoorbellBlock.allocate(2);
    const probe = block.doorbell(1);
    const w = spawn(block, { role: 'wait', index: 1, options: { strategy } });
    try {
      await within(w.waiting, 5_000, 'waiter start');
      if (strategy === 'spin') await new Promise((r) => setTimeout(r, 20));
      else await until(() => probe.sleepers() > 0, 5_000, 'waiter asleep');
      const stopMs = epochNowMs();
      block.stop();
      const r = await within(w.done, 5_000, 'stopped waiter');
      assert.equal(r.result, 'stopped');
      // Prompt = far below any timeout a caller would use; typical is tens of µs.
      assert.ok(r.epochMs - stopMs < 1000, `woke ${r.epochMs - stopMs} ms after stop`);
      if (strategy !== 'spin') assert.equal(r.stats.sleeps, 1);
    } finally {
      await w.worker.terminate();
    }
  });
}

test('a notify without a ring counts as a spurious wakeup and the waiter sleeps again', { timeout: 10_000 }, async () => {
  const block = DoorbellBlock.allocate(1);
  const ringer = block.doorbell(0);
  const w = spawn(block, { role: 'wait', index: 0, options: { strategy: 'block' } });
  try {
    await within(w.waiting, 5_000, 'waiter start');
    const seq = seqWord(block, 0);
    // The sleepers word is set just before Atomics.wait: retry until a notify finds it queued. A
    // second notify can only find it queued again after it counted the first wakeup and re-slept.
    await until(() => Atomics.notify(seq, 0) > 0, 5_000, 'bare notify reaching the waiter');
    await until(() => Atomics.notify(seq, 0) > 0, 5_000, 'bare notify reaching the re-slept waiter');
    ringer.ring();
    const r = await within(w.done, 5_000, 'rung waiter');
    assert.equal(r.result, 'rung');
    assert.ok(r.stats.spuriousWakeups >= 1);
    assert.ok(r.stats.wakeups >= 2);
    assert.ok(r.stats.sleeps >= 2);
  } finally {
    await w.worker.terminate();
  }
});

test('waitAsync on the main thread resolves rung when a worker rings', { timeout: 10_000 }, async () => {
  const block = DoorbellBlock.allocate(1);
  const db = block.doorbell(0);
  const pending = db.waitAsync(db.seq());
  const w = spawn(block, { role: 'ring', index: 0, delayMs: 20 });
  try {
    assert.equal(await within(pending, 5_000, 'waitAsync'), 'rung');
    const r = await w.done;
    assert.equal(r.stats.notifies, 1);
    assert.equal(db.stats.wakeups, 1);
  } finally {
    await w.worker.terminate();
  }
});

test('waitAsync on the main thread resolves stopped when a worker stops the engine', { timeout: 10_000 }, async () => {
  const block = DoorbellBlock.allocate(2);
  const db = block.doorbell(1);
  const pending = db.waitAsync(db.seq());
  const w = spawn(block, { role: 'stop', delayMs: 20 });
  try {
    assert.equal(await within(pending, 5_000, 'waitAsync'), 'stopped');
  } finally {
    await w.worker.terminate();
  }
});

test('a worker awaiting waitAsync stays alive until rung, then reports rung', { timeout: 10_000 }, async () => {
  const block = DoorbellBlock.allocate(1);
  const ringer = block.doorbell(0);
  const w = spawn(block, { role: 'wait-async', index: 0, keepAlive: true });
  let exited = false;
  void w.exit.then(() => (exited = true));
  try {
    await within(w.waiting, 5_000, 'waiter start');
    await until(() => ringer.sleepers() > 0, 5_000, 'waiter asleep');
    // Without the keep-alive handle Node 20 would end the worker here (exit code 13).
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(exited, false, 'worker exited with its waitAsync pending');
    ringer.ring();
    const r = await within(w.done, 5_000, 'rung waitAsync worker');
    assert.equal(r.result, 'rung');
    assert.equal(await w.exit, 0);
  } finally {
    await w.worker.terminate();
  }
});

test(
  'in Node 20 a pending waitAsync alone does not keep a worker alive (why keepAlive exists)',
  { timeout: 10_000, skip: process.versions.node.startsWith('20.') ? false : 'documents Node 20 behaviour' },
  async () => {
    const block = DoorbellBlock.allocate(1);
    const w = spawn(block, { role: 'wait-async', index: 0, keepAlive: false });
    w.done.catch(() => {});
    const code = await within(w.exit, 5_000, 'worker exit');
    assert.equal(code, 13); // unsettled top-level await
    assert.equal(block.doorbell(0).sleepers(), 1); // and it left its sleeping flag behind
  },
);

// ---------------------------------------------------------------------------------------------
// Lateness recorder

test('the lateness recorder keeps the most recent samples and gives nearest-rank percentiles', () => {
  const r = new LatenessRecorder(100);
  assert.ok(Number.isNaN(r.percentile(50)));
  for (let i = 1; i <= 100; i++) r.record(i * 1000);
  assert.equal(r.percentile(50), 50_000);
  assert.equal(r.percentile(99), 99_000);
  assert.equal(r.percentile(100), 100_000);
  assert.equal(r.percentile(0), 1000);
  for (let i = 0; i < 50; i++) r.record(1e9); // overwrites the 50 oldest
  const s = r.summary();
  assert.equal(s.count, 150);
  assert.equal(s.held, 100);
  assert.equal(s.minNs, 51_000);
  assert.equal(s.maxNs, 1e9);
  assert.equal(s.p50Ns, 100_000);
  r.recordDeadline(10, 10.000_5);
  assert.equal(r.count, 151);
  r.reset();
  assert.equal(r.count, 0);
  assert.ok(Number.isNaN(r.summary().p99Ns));
  assert.equal(percentileOfSorted([1, 2, 3, 4], 4, 50), 2);
});
