// FdDoorbell over real eventfds (the native addon): ring(queue) signals that queue's eventfd,
// wait() wakes on any queue's eventfd and counts the writes it coalesced per queue, an input fd
// is polled only while wantInput() says so, a readable control fd ends the wait as 'stopped',
// and a kick written by another thread wakes a sleeping wait. Skips without the addon.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { FdDoorbell } from '../src/backend/fd-doorbell.js';
import { loadIo, nativeDir, nativeUnavailable, type IoAddon } from '../src/backend/native.js';

const missing = nativeUnavailable();

function eventfds(io: IoAddon, n: number): number[] {
  return Array.from({ length: n }, () => io.eventfd(0, true));
}

function closeAll(io: IoAddon, fds: number[]): void {
  for (const fd of fds) io.close(fd);
}

test('ring(queue) signals that queue only; ring() signals each distinct fd once', { skip: missing ?? false }, () => {
  const io = loadIo();
  const calls = eventfds(io, 2);
  try {
    const d = new FdDoorbell({ io, waitFds: () => [], ringFds: () => [calls[0]!, calls[1]!, calls[1]!], stopped: () => false });
    assert.equal(d.ring(0), true);
    assert.equal(io.eventfdRead(calls[0]!), 1);
    assert.equal(io.eventfdRead(calls[1]!), -io.constants.EAGAIN, 'queue 1 was not rung');
    assert.equal(d.ring(5), false, 'a queue without an fd is not rung');
    d.ring();
    assert.equal(io.eventfdRead(calls[0]!), 1);
    assert.equal(io.eventfdRead(calls[1]!), 1, 'an fd shared by two queues is written once');
  } finally {
    closeAll(io, calls);
  }
});

test('wait() wakes on a kick, counts coalesced writes per queue, and times out at a deadline', { skip: missing ?? false }, () => {
  const io = loadIo();
  const kicks = eventfds(io, 2);
  try {
    const d = new FdDoorbell({ io, waitFds: () => kicks, ringFds: () => [], stopped: () => false });
    const seen = d.seq();
    io.eventfdWrite(kicks[1]!, 1);
    io.eventfdWrite(kicks[1]!, 1);
    io.eventfdWrite(kicks[1]!, 1);
    assert.equal(d.wait(seen), 'rung');
    assert.notEqual(d.seq(), seen);
    assert.equal(d.count(1), 3, 'three writes coalesced into one wake-up are three kicks');
    assert.equal(d.count(0), 0);
    // A moved sequence returns at once, without polling.
    assert.equal(d.wait(seen), 'rung');
    assert.equal(d.wait(d.seq(), performance.now() + 5), 'timeout');
    assert.equal(d.waitUntil(d.seq(), performance.now() + 3), 'timeout');
  } finally {
    closeAll(io, kicks);
  }
});

test('the input fd is polled only while wantInput(); control input ends the wait as stopped', { skip: missing ?? false }, () => {
  const io = loadIo();
  const [kick, input, control] = eventfds(io, 3) as [number, number, number];
  try {
    let want = false;
    const d = new FdDoorbell({ io, waitFds: () => [kick], ringFds: () => [], inputFd: input, wantInput: () => want, stopped: () => false });
    io.eventfdWrite(input, 1); // readable from now on: the doorbell never reads an input fd
    assert.equal(d.wait(d.seq(), performance.now() + 5), 'timeout', 'no room for input: the readable input fd is not polled');
    want = true;
    assert.equal(d.wait(d.seq(), performance.now() + 1000), 'rung');
    assert.equal(d.inputWakes, 1);
    assert.equal(d.count(0), 0, 'input is not a kick');

    const c = new FdDoorbell({ io, waitFds: () => [kick], ringFds: () => [], controlFd: control, stopped: () => false });
    io.eventfdWrite(control, 1);
    assert.equal(c.wait(c.seq()), 'stopped');
    assert.equal(c.controlReady, true);
    assert.equal(c.wait(c.seq()), 'stopped', 'stays stopped until the caller handles the input');
    io.eventfdRead(control);
    c.controlReady = false;
    assert.equal(c.wait(c.seq(), performance.now() + 5), 'timeout');
  } finally {
    closeAll(io, [kick, input, control]);
  }
});

test('a kick from another thread wakes a sleeping wait()', { skip: missing ?? false, timeout: 30_000 }, async () => {
  const io = loadIo();
  const [kick] = eventfds(io, 1) as [number];
  const go = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `const { workerData } = require('node:worker_threads');
     const io = require(workerData.addon);
     const w = new Int32Array(workerData.go);
     Atomics.wait(w, 0, 0); // pairs with the main thread's Atomics.store + notify
     io.eventfdWrite(workerData.kick, 1);`,
    { eval: true, workerData: { addon: join(nativeDir(), 'virtq_io.node'), kick, go: go.buffer } },
  );
  const exited = new Promise<void>((res, rej) => {
    worker.on('exit', () => res());
    worker.on('error', rej);
  });
  try {
    const d = new FdDoorbell({ io, waitFds: () => [kick], ringFds: () => [], stopped: () => false, idlePollMs: 20 });
    const seen = d.seq();
    Atomics.store(go, 0, 1); // pairs with the worker's Atomics.wait: it kicks after this
    Atomics.notify(go, 0);
    // Whether the kick lands before or during the sleep, the eventfd stays readable until read.
    assert.equal(d.wait(seen), 'rung');
    assert.equal(d.count(0), 1);
    await exited;
  } finally {
    await worker.terminate();
    io.close(kick);
  }
});

test('shared words: a ring writes no eventfd while the peer is awake, one while it sleeps, and the peer sees both', { skip: missing ?? false }, () => {
  const io = loadIo();
  const [kick] = eventfds(io, 1) as [number];
  const words = new Int32Array(new SharedArrayBuffer(16));
  try {
    // Two ends of one direction in one thread: `ringer` rings word 0, `waiter` waits on it.
    const ringer = new FdDoorbell({ io, waitFds: () => [], ringFds: () => [kick], stopped: () => false, shared: { words, waitSeq: 2, waitSleeping: 3, ringSeq: 0, ringSleeping: 1, spinUs: 0 } });
    const waiter = new FdDoorbell({ io, waitFds: () => [kick], ringFds: () => [], stopped: () => false, shared: { words, waitSeq: 0, waitSleeping: 1, ringSeq: 2, ringSleeping: 3, spinUs: 50 } });
    const seen = waiter.seq();
    assert.equal(ringer.ring(0), true);
    assert.equal(ringer.ringsWithoutWrite, 1);
    assert.equal(io.eventfdRead(kick), -io.constants.EAGAIN, 'the waiter was not asleep: no eventfd write');
    assert.equal(waiter.wait(seen), 'rung');
    assert.equal(waiter.spinWakes, 1, 'seen while spinning, before any poll');
    // Declared asleep (as a waiter in poll(2) is): the ring writes the eventfd.
    Atomics.store(words, 1, 1);
    ringer.ring(0);
    assert.equal(io.eventfdRead(kick), 1, 'the waiter was asleep: the eventfd was written');
    Atomics.store(words, 1, 0);
    // Nothing rang: the spin gives up and the poll times out; the flag is down afterwards.
    assert.equal(waiter.wait(waiter.seq(), performance.now() + 5), 'timeout');
    assert.equal(Atomics.load(words, 1), 0, 'not asleep after the wait');
    assert.throws(() => new FdDoorbell({ io, waitFds: () => [], ringFds: () => [], stopped: () => false, shared: { words, waitSeq: 4, waitSleeping: 1, ringSeq: 2, ringSleeping: 3, spinUs: 0 } }), /shared\.waitSeq 4 is not a word/);
  } finally {
    io.close(kick);
  }
});

for (const spin of [0, 50]) {
  test(`shared words across two threads: 3000 round trips, none lost, whether the waits spin or sleep (spin ${spin} µs)`, { skip: missing ?? false, timeout: 60_000 }, async (t) => {
    const io = loadIo();
    const [kick, call] = eventfds(io, 2) as [number, number];
    const words = new Int32Array(new SharedArrayBuffer(16));
    const rounds = 3000;
    const worker = new Worker(new URL('./support/fd-doorbell-peer.js', import.meta.url), { workerData: { words: words.buffer, kick, call, rounds, spin } });
    const messages: unknown[] = [];
    let failed: unknown = null;
    let wake: (() => void) | null = null;
    worker.on('message', (m) => (messages.push(m), wake?.()));
    worker.on('error', (e) => ((failed = e), wake?.()));
    const next = async (): Promise<unknown> => {
      while (messages.length === 0 && failed === null) await new Promise<void>((res) => (wake = res));
      if (failed !== null) throw failed;
      return messages.shift();
    };
    try {
      // Blocking waits below starve this thread's event loop: start them once the peer runs.
      assert.equal(await next(), 'ready');
      const db = new FdDoorbell({ io, waitFds: () => [call], ringFds: () => [kick], stopped: () => false, idlePollMs: 50, shared: { words, waitSeq: 2, waitSleeping: 3, ringSeq: 0, ringSleeping: 1, spinUs: spin } });
      let seen = db.seq();
      let timeouts = 0;
      for (let i = 0; i < rounds; i++) {
        db.ring(0);
        // A lost wake-up would leave both sides waiting: each wait is bounded, and a round that
        // needed more than 2 s fails the test.
        const until = performance.now() + 2000;
        while (db.seq() === seen) {
          if (db.wait(seen, until) === 'timeout') timeouts++;
          assert.ok(performance.now() < until + 100, `round ${i}: no answer within 2 s`);
        }
        seen = db.seq();
      }
      const peer = (await next()) as { spinWakes: number; ringsWithoutWrite: number; rings: number };
      assert.equal(timeouts, 0);
      // Each ring either wrote the eventfd or found the other side awake (how often which
      // depends on the scheduling: reported, not asserted).
      assert.equal(peer.rings + peer.ringsWithoutWrite, rounds);
      assert.equal(db.rings + db.ringsWithoutWrite, rounds);
      t.diagnostic(`rings without an eventfd write: main ${db.ringsWithoutWrite}, peer ${peer.ringsWithoutWrite}; waits ended spinning: main ${db.spinWakes}, peer ${peer.spinWakes}`);
    } finally {
      await worker.terminate();
      closeAll(io, [kick, call]);
    }
  });
}
