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
