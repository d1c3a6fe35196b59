// Interpolated stamping (src/trace/tracer.ts): untimed records take times strictly between the
// clock reads around them, in write order, and are never visible to the reader untimed; the
// tracer reads the clock at batch points and at the first pop/reap after a fresh index fetch,
// not per packet; nextSampled names the next traced identity; sampled runs sample debug events
// too. The cross-thread causality of interpolated timelines is checked across real workers in
// trace-engine.test.ts (interpolated is the default there) and here for exact stamps.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine } from '../src/engine/index.js';
import { allocateTraceBuffer, clockOriginHere, decodeChunks, PACKET_POINTS, REQUIRED_POINTS, stagesOf, TraceKind, TraceReader, TraceSession, TraceWriter, Tracer, type TraceStamping } from '../src/trace/index.js';

function tracer(everyN: number, stamping: TraceStamping = 'interpolated', capacity = 1 << 16): { t: Tracer; sab: SharedArrayBuffer } {
  const sab = allocateTraceBuffer(capacity);
  return { t: new Tracer({ sab, origin: clockOriginHere(), everyN, level: 10, stamping }), sab };
}

test('untimed records get evenly spread times strictly between the two clock reads, in write order', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  w.put(TraceKind.Publish, 0, 0xffff_ffff, 1000, 3);
  for (let i = 0; i < 3; i++) w.putUntimed(TraceKind.Add, 0, i, 0);
  assert.equal(w.untimed, 3);
  w.stampUntimed(1000, 1400);
  assert.equal(w.untimed, 0);
  w.flush();
  const c = new TraceReader(sab).read();
  assert.deepEqual([...c.tNs], [1000, 1100, 1200, 1300]);
  assert.deepEqual([...c.id].slice(1), [0, 1, 2]);
});

test('untimed records are never published before they have a time (not even by flush)', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  const r = new TraceReader(sab);
  for (let i = 0; i < 300; i++) w.putUntimed(TraceKind.Pop, 0, i, 0);
  w.flush();
  assert.equal(r.read().id.length, 0, 'nothing published while untimed records wait');
  w.stampUntimed(0, 301);
  w.flush();
  const c = r.read();
  assert.equal(c.id.length, 256, 'the buffer held 256; the rest were dropped and counted');
  assert.ok([...c.tNs].every((t, i) => Number.isFinite(t) && (i === 0 || t > c.tNs[i - 1]!)));
});

test('a timed record written after untimed ones gives them its time, never an earlier one', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  w.putUntimed(TraceKind.Done, 0, 7, 100);
  w.put(TraceKind.Used, 0, 0xffff_ffff, 5000, 1);
  w.flush();
  const c = new TraceReader(sab).read();
  assert.deepEqual([...c.tNs], [5000, 5000]);
});

test('property: interleaved timed, untimed, stamps and reads deliver every kept record once, timed, in time order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.oneof(fc.constant('untimed' as const), fc.constant('timed' as const), fc.constant('stamp' as const), fc.constant('read' as const)), { maxLength: 600 }),
      (ops) => {
        const sab = allocateTraceBuffer(256);
        const w = new TraceWriter(sab);
        const r = new TraceReader(sab);
        const times: number[] = [];
        let clock = 0;
        let last = 0;
        let id = 0;
        for (const op of ops) {
          if (op === 'untimed') w.putUntimed(TraceKind.Add, 0, id++, 0);
          else if (op === 'timed') {
            clock += 10;
            w.stampUntimed(last, clock);
            last = clock;
            w.put(TraceKind.Kick, 0, id++, clock, 0);
          } else if (op === 'stamp') {
            clock += 10;
            w.stampUntimed(last, clock);
            last = clock;
          } else times.push(...r.read().tNs);
        }
        clock += 10;
        w.stampUntimed(last, clock);
        w.flush();
        times.push(...r.read().tNs);
        for (let i = 0; i < times.length; i++) {
          assert.ok(Number.isFinite(times[i]!), `record ${i} has a time`);
          if (i > 0) assert.ok(times[i]! >= times[i - 1]!, `record ${i} at ${times[i]} before ${times[i - 1]}`);
        }
        // Kept + dropped (gap records mark holes) account for every record written.
        assert.ok(times.length <= id + Math.ceil(id / 2));
      },
    ),
    { numRuns: 200 },
  );
});

test('every packet traced: the clock is read at batch points and fresh fetches, not per packet', () => {
  const { t, sab } = tracer(1);
  const packets = 32 * 100;
  let fetch = 0;
  const before = t.clockReads;
  for (let base = 0; base < packets; base += 32) {
    for (let i = 0; i < 32; i++) t.add(base + i);
    t.publish(32);
    fetch++; // the driver saw used.idx move once per batch
    for (let i = 0; i < 32; i++) t.reap(base + i, 100, 0, fetch);
  }
  t.flush();
  const reads = t.clockReads - before;
  assert.ok(reads <= (packets / 32) * 2 + 2, `${reads} clock reads for ${packets} packets`);
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  assert.equal(recs.filter((r) => r.kind === TraceKind.Add).length, packets);
  assert.equal(recs.filter((r) => r.kind === TraceKind.Reap).length, packets);
  // Write order is time order: add(k) < publish < reap(k) for every batch.
  const add = new Map<number, number>();
  for (const r of recs) {
    if (r.kind === TraceKind.Add) add.set(r.id!, r.tNs);
    if (r.kind === TraceKind.Reap) assert.ok(r.tNs > add.get(r.id!)!, `reap ${r.id} after its add`);
  }
});

test('exact stamping reads the clock at every point', () => {
  const { t } = tracer(1, 'exact');
  const before = t.clockReads;
  for (let i = 0; i < 100; i++) t.add(i);
  assert.equal(t.clockReads - before, 100);
});

test('the first pop after a fresh avail fetch reads the clock; later pops of the same fetch are interpolated', () => {
  const { t, sab } = tracer(1);
  const before = t.clockReads;
  t.pop(0, 0, 1);
  t.pop(1, 0, 1);
  t.pop(2, 0, 1);
  assert.equal(t.clockReads - before, 1, 'one read for the fetch');
  t.pop(3, 0, 2);
  assert.equal(t.clockReads - before, 2, 'a new fetch reads again');
  t.pop(4); // unknown fetch: always read
  assert.equal(t.clockReads - before, 3);
  t.flush();
  const recs = decodeChunks('host', [new TraceReader(sab).read()]);
  assert.deepEqual(recs.map((r) => r.id), [0, 1, 2, 3, 4]);
});

test('property: nextSampled is the smallest traced identity at or after seq (wrapping at 2^32), −1 when off', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 5000 }), fc.nat({ max: 0xffff_ffff }), (n, seq) => {
      const { t } = tracer(n, 'exact', 256);
      const next = t.nextSampled(seq);
      const mod = (x: number): number => x % n;
      if (seq + ((n - mod(seq)) % n) > 0xffff_ffff) assert.equal(next, 0);
      else {
        assert.ok(next >= seq && next - seq < n);
        assert.equal(mod(next), 0);
        assert.ok(t.sampled(next));
      }
    }),
  );
  assert.equal(Tracer.off.nextSampled(0), -1);
  assert.equal(tracer(0, 'exact', 256).t.nextSampled(5), -1, 'level above trace: no packet points');
});

test('sampling 1 in N samples debug events 1 in N per kind; info and above are always recorded', () => {
  const { t, sab } = tracer(4, 'exact', 256);
  for (let i = 0; i < 40; i++) {
    t.notifications(true);
    t.notifications(false);
  }
  for (let i = 0; i < 5; i++) t.ringFull(3);
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  assert.equal(recs.filter((r) => r.kind === TraceKind.NotifyEnabled).length, 10);
  assert.equal(recs.filter((r) => r.kind === TraceKind.NotifyDisabled).length, 10);
  assert.equal(recs.filter((r) => r.kind === TraceKind.RingFull).length, 5);
  const every = tracer(1, 'interpolated', 256);
  for (let i = 0; i < 40; i++) every.t.notifications(true);
  every.t.flush();
  assert.equal(decodeChunks('guest', [new TraceReader(every.sab).read()]).length, 40, 'every packet traced: every event');
});

test('exact stamps across real workers: every packet complete, in causal order, stages summing to end-to-end', async () => {
  const count = 10_000;
  const session = new TraceSession({ sample: 1, stamping: 'exact' });
  const r = await Engine.run({ workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 256, count, publishEvery: 8, verify: 'seq' }, wait: { strategy: 'hybrid' }, trace: session, timeoutMs: 60_000 });
  assert.equal(r.host.errors, 0, r.host.firstError);
  const c = session.finish();
  assert.equal(c.incomplete, 0);
  assert.equal(c.outOfOrder, 0);
  assert.equal(c.packets.length, count);
  for (const p of c.packets) {
    for (const k of REQUIRED_POINTS) assert.ok(p.points[k] !== undefined, `seq ${p.seq} has ${k}`);
    let prev = -Infinity;
    for (const k of PACKET_POINTS) {
      const v = p.points[k];
      if (v === undefined) continue;
      assert.ok(v >= prev, `seq ${p.seq}: ${k} before the previous point`);
      prev = v;
    }
    assert.ok(Math.abs(stagesOf(p).reduce((a, s) => a + s.ns, 0) - p.e2eNs) < 1e-3);
  }
  // Interpolated runs read the clock far less than once per packet; exact runs at every point.
  assert.ok(r.host.extra.traceClockReads! >= count, `exact: ${r.host.extra.traceClockReads} host clock reads for ${count} packets`);
});

test('interpolated stamps read the clock on each side less than once per packet across real workers', async () => {
  const count = 20_000;
  const session = new TraceSession({ sample: 1 });
  const r = await Engine.run({ workload: 'stream', queues: [{ size: 256 }], params: { payloadBytes: 256, count, publishEvery: 32, verify: 'seq' }, wait: { strategy: 'hybrid' }, trace: session, timeoutMs: 60_000 });
  assert.equal(r.host.errors, 0, r.host.firstError);
  const c = session.finish();
  assert.equal(c.outOfOrder, 0);
  assert.equal(c.packets.length, count);
  for (const side of [r.guest, r.host]) assert.ok(side.extra.traceClockReads! < count, `${side.extra.traceClockReads} clock reads for ${count} packets`);
});

test('stream param traceToggleMs alternates tracing within one run and reports both kinds of slice', async () => {
  const session = new TraceSession({ sample: 1 });
  const r = await Engine.run({ workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 256, verify: 'seq', traceToggleMs: 5 }, durationMs: 300, wait: { strategy: 'hybrid' }, trace: session, timeoutMs: 60_000 });
  assert.equal(r.host.errors, 0, r.host.firstError);
  const x = r.host.extra;
  assert.ok(x.traceOnMs! > 0 && x.traceOffMs! > 0, `on ${x.traceOnMs} ms, off ${x.traceOffMs} ms`);
  assert.ok(x.traceOnPackets! > 0 && x.traceOffPackets! > 0);
  assert.ok(x.traceOnPackets! + x.traceOffPackets! <= r.host.packets);
  const c = session.finish();
  assert.ok(c.packets.length > 0 && c.packets.length < r.host.packets, 'only packets of on-slices are traced');
});
