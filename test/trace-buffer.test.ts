// The per-thread trace buffer: records come out exactly as written, in order; a full buffer
// drops and counts instead of overwriting or throwing; space freed by the reader is reused
// across the wrap; the Tracer's 1-in-N sampling and lazily written wakes.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocateTraceBuffer, NO_ID, TraceBufferError, TraceReader, TraceWriter, Tracer, TraceKind, decodeChunks, clockOriginHere, DEFAULT_SAMPLE_BLOCK, TraceSetupError } from '../src/trace/index.js';

test('a record reads back with its time, argument, identity, kind and queue', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  w.put(TraceKind.Pop, 3, 12345, 1_000_000.5, 7);
  w.put(TraceKind.Kick, 1, NO_ID, 2_000_000, 0);
  w.flush();
  const recs = decodeChunks('host', [new TraceReader(sab).read()]);
  assert.deepEqual(recs, [
    { side: 'host', kind: TraceKind.Pop, queue: 3, id: 12345, tNs: 1_000_000.5, arg: 7 },
    { side: 'host', kind: TraceKind.Kick, queue: 1, id: undefined, tNs: 2_000_000, arg: 0 },
  ]);
});

test('a full buffer drops new records and counts them; it never overwrites or throws', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  for (let i = 0; i < 1000; i++) w.put(TraceKind.Add, 0, i, i, 0);
  w.flush();
  const r = new TraceReader(sab);
  const c = r.read();
  assert.equal(c.id.length, 256);
  assert.deepEqual([...c.id], Array.from({ length: 256 }, (_, i) => i), 'the oldest records are kept');
  assert.equal(w.dropped, 744);
  assert.equal(r.dropped, 744);
});

test('records are published to the reader only in batches or on flush', () => {
  const sab = allocateTraceBuffer(1024);
  const w = new TraceWriter(sab);
  const r = new TraceReader(sab);
  for (let i = 0; i < 300; i++) w.put(TraceKind.Add, 0, i, i, 0);
  assert.equal(r.read().id.length, 256, 'first batch of 256 published');
  w.flush();
  assert.equal(r.read().id.length, 44);
});

test('bad capacities are typed errors', () => {
  assert.throws(() => allocateTraceBuffer(100), (e: unknown) => e instanceof TraceBufferError && e.code === 'bad-capacity');
  assert.throws(() => new TraceWriter(new SharedArrayBuffer(1000)), (e: unknown) => e instanceof TraceBufferError && e.code === 'bad-buffer');
});

test('property: interleaved writes and reads across the wrap deliver every kept record once, in order, with every hole marked by a gap record', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 700 }), fc.boolean()), { minLength: 1, maxLength: 40 }), (steps) => {
      const sab = allocateTraceBuffer(256);
      const w = new TraceWriter(sab);
      const r = new TraceReader(sab);
      let next = 0;
      const got: { kind: number; id: number; arg: number }[] = [];
      const take = (): void => {
        const c = r.read();
        for (let i = 0; i < c.id.length; i++) got.push({ kind: c.meta[i]! & 0xff, id: c.id[i]!, arg: c.arg[i]! });
      };
      for (const [n, read] of steps) {
        for (let i = 0; i < n; i++) w.put(TraceKind.Add, 0, next++, next, 0);
        w.flush();
        if (read) take();
      }
      take();
      let expect = 0;
      let marked = 0;
      for (const g of got) {
        if (g.kind === TraceKind.Gap) {
          expect += g.arg; // the records the gap stands for
          marked += g.arg;
          continue;
        }
        assert.equal(g.id, expect, 'in order, and any hole before it was marked by a gap of its size');
        expect++;
      }
      const delivered = got.filter((g) => g.kind === TraceKind.Add).length;
      assert.equal(delivered + w.dropped, next, 'every record either delivered or counted as dropped');
      assert.equal(w.dropped - marked, next - expect, 'only drops after the last delivered record are unmarked');
    }),
    { numRuns: 200 },
  );
});

/** A tracer on a fresh buffer; sampled runs keep single packets (seq % N === 0) unless `sampleBlock` says otherwise. */
function tracerOn(everyN: number, capacity = 4096, sampleBlock = 1): { t: Tracer; sab: SharedArrayBuffer } {
  const sab = allocateTraceBuffer(capacity);
  return { t: new Tracer({ sab, origin: clockOriginHere(), everyN, level: 10, sampleBlock }), sab };
}

test('1-in-N sampling in blocks keeps whole blocks of consecutive packets, 1 block in N, and their batch events once per batch', () => {
  const { t, sab } = tracerOn(3, 4096, 4); // blocks of 4: keeps 0..3, 12..15, 24..27, …
  for (let batch = 0; batch < 4; batch++) {
    for (let i = 0; i < 4; i++) t.add(batch * 4 + i);
    t.publish(4);
    t.kick();
  }
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  const batchOf = (first: number): [number, number | undefined][] => [
    [TraceKind.Add, first],
    [TraceKind.Add, first + 1],
    [TraceKind.Add, first + 2],
    [TraceKind.Add, first + 3],
    [TraceKind.Publish, undefined],
    [TraceKind.Kick, undefined],
  ];
  assert.deepEqual(recs.map((x) => [x.kind, x.id]), [...batchOf(0), ...batchOf(12)]);
});

test('the default sample block is 32 consecutive packets; a bad block is a clear error', () => {
  const t = new Tracer({ sab: allocateTraceBuffer(256), origin: clockOriginHere(), everyN: 100, level: 10 });
  assert.equal(t.sampleBlock, DEFAULT_SAMPLE_BLOCK);
  assert.equal(DEFAULT_SAMPLE_BLOCK, 32);
  assert.deepEqual([0, 31, 32, 3199, 3200, 3231, 3232].map((s) => t.sampled(s)), [true, true, false, false, true, true, false]);
  for (const bad of [0, 3, 8192, 1.5, NaN]) {
    assert.throws(() => new Tracer({ sab: allocateTraceBuffer(256), origin: clockOriginHere(), everyN: 10, level: 10, sampleBlock: bad }), (e: unknown) => e instanceof TraceSetupError && /sampleBlock must be a power of two/.test(e.message));
  }
  // Every packet traced: the block does not matter.
  assert.equal(new Tracer({ sab: allocateTraceBuffer(256), origin: clockOriginHere(), everyN: 1, level: 10, sampleBlock: 64 }).sampled(7), true);
});

test('1-in-N sampling records only packets with seq % N === 0 and only the batch events around them', () => {
  const { t, sab } = tracerOn(10);
  for (let batch = 0; batch < 5; batch++) {
    for (let i = 0; i < 4; i++) t.add(batch * 4 + i);
    t.publish(4);
    t.kick();
  }
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  // Sampled: 0 (batch 0), 10 (batch 2), and nothing else; each batch gives add, publish, kick.
  assert.deepEqual(
    recs.map((x) => [x.kind, x.id]),
    [
      [TraceKind.Add, 0],
      [TraceKind.Publish, undefined],
      [TraceKind.Kick, undefined],
      [TraceKind.Add, 10],
      [TraceKind.Publish, undefined],
      [TraceKind.Kick, undefined],
    ],
  );
});

test('a wake is written, with its own time, just before the next sampled packet', () => {
  const { t, sab } = tracerOn(2);
  t.deviceWake();
  t.pop(1); // not sampled: nothing written, wake still pending
  t.pop(2);
  t.pop(4); // same wake: written once
  t.flush();
  const recs = decodeChunks('host', [new TraceReader(sab).read()]);
  assert.deepEqual(recs.map((x) => [x.kind, x.id]), [[TraceKind.DeviceWake, undefined], [TraceKind.Pop, 2], [TraceKind.Pop, 4]]);
  assert.ok(recs[0]!.tNs <= recs[1]!.tNs);
});

test('policy events respect the level; packet points need level trace', () => {
  const sab = allocateTraceBuffer(256);
  const t = new Tracer({ sab, origin: clockOriginHere(), everyN: 0, level: 40 });
  t.add(0);
  t.timerFired(5000);
  t.ringFull(3);
  t.drop('too-long', 9);
  t.error('verify');
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  assert.deepEqual(recs.map((x) => [x.kind, x.id, x.arg]), [[TraceKind.Drop, 9, 4], [TraceKind.Error, undefined, 1]]);
});

test('the clock of a worker-less thread counts from the run origin in ns', () => {
  const { t } = tracerOn(1);
  const a = t.now();
  assert.ok(a >= 0 && a < 60e9, `${a} ns since origin`);
  assert.ok(t.now() >= a);
});

test('property: the sampling test agrees with floor(seq / B) % N === 0 for any u32 seq, N and block B', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 0x7fff_ffff }),
      fc.integer({ min: 0, max: 12 }),
      fc.array(fc.nat({ max: 0xffff_ffff }), { maxLength: 50 }),
      fc.nat({ max: 1000 }),
      (n, log2Block, seqs, k) => {
        const block = 2 ** log2Block;
        const t = new Tracer({ sab: allocateTraceBuffer(256), origin: clockOriginHere(), everyN: n, level: 10, sampleBlock: block });
        const expected = (s: number): boolean => n === 1 || Math.floor(s / block) % n === 0;
        // The first identity of block n·k (within u32) must be sampled; arbitrary values must match.
        const start = n * k * block;
        if (start <= 0xffff_ffff) assert.equal(t.sampled(start), true, `${start} starts block ${n * k}`);
        for (const s of seqs) assert.equal(t.sampled(s), expected(s), `seq ${s}, N ${n}, block ${block}`);
      },
    ),
    { numRuns: 500 },
  );
});
