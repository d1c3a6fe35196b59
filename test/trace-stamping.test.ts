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
import { allocateReleaseStamps, allocateTraceBuffer, clockOriginHere, decodeChunks, PACKET_POINTS, REQUIRED_POINTS, stagesOf, TraceKind, TraceReader, TraceSession, TraceWriter, Tracer, type TraceStamping } from '../src/trace/index.js';

/** A tracer on a fresh buffer; sampled runs keep single packets (seq % N === 0) unless `sampleBlock` says otherwise. */
function tracer(everyN: number, stamping: TraceStamping = 'interpolated', capacity = 1 << 16, sampleBlock = 1): { t: Tracer; sab: SharedArrayBuffer } {
  const sab = allocateTraceBuffer(capacity);
  return { t: new Tracer({ sab, origin: clockOriginHere(), everyN, level: 10, stamping, sampleBlock }), sab };
}

/** Whether identity `id` is kept sampling 1 in n in blocks of `block`. */
function kept(id: number, n: number, block: number): boolean {
  return Math.floor(id / block) % n === 0;
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

test('a run record reads back as its points, evenly timed between the reads around it', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  w.putUntimed(TraceKind.Reap, 0, 41, 9);
  w.putRun(TraceKind.Pop, TraceKind.Done, 2, 0xffff_ffff, 2, 1500); // ids wrap past 2^32 − 1
  w.putRun(TraceKind.Add, 0, 0, 7, 3, 0);
  w.stampUntimed(0, 900); // 1 + 4 + 3 = 8 points: 100 ns apart
  w.flush();
  const recs = decodeChunks('host', [new TraceReader(sab).read()]);
  assert.deepEqual(
    recs.map((r) => [r.kind, r.queue, r.id, r.tNs, r.arg]),
    [
      [TraceKind.Reap, 0, 41, 100, 9],
      [TraceKind.Pop, 2, 0xffff_ffff, 200, 0],
      [TraceKind.Done, 2, 0xffff_ffff, 300, 1500],
      [TraceKind.Pop, 2, 0, 400, 0],
      [TraceKind.Done, 2, 0, 500, 1500],
      [TraceKind.Add, 0, 7, 600, 0],
      [TraceKind.Add, 0, 8, 700, 0],
      [TraceKind.Add, 0, 9, 800, 0],
    ],
  );
});

test('a run that does not fit is dropped whole and counted as the points it stood for; a Gap marks it', () => {
  const sab = allocateTraceBuffer(256);
  const w = new TraceWriter(sab);
  const r = new TraceReader(sab);
  for (let i = 0; i < 255; i++) w.put(TraceKind.Kick, 0, 0xffff_ffff, i, 0);
  w.putRun(TraceKind.Pop, TraceKind.Done, 0, 100, 10, 64); // needs 2 slots, 1 free
  assert.equal(w.dropped, 20);
  w.flush();
  assert.equal(r.read().tNs.length, 255);
  w.putRun(TraceKind.Add, 0, 0, 5, 3, 0); // room again: a Gap (20) comes first
  w.stampUntimed(1000, 2000);
  w.flush();
  const recs = decodeChunks('guest', [r.read()]);
  assert.deepEqual(recs.map((x) => [x.kind, x.id ?? null, x.arg]), [[TraceKind.Gap, null, 20], [TraceKind.Add, 5, 0], [TraceKind.Add, 6, 0], [TraceKind.Add, 7, 0]]);
  assert.equal(r.dropped, 20);
});

test('property: runs read back exactly as the same points written one by one, across wraps, drops and reads', () => {
  type Op = { t: 'run'; kind2: boolean; count: number } | { t: 'one' } | { t: 'stamp' } | { t: 'timed' } | { t: 'read' };
  const op = fc.oneof(
    fc.record({ t: fc.constant('run' as const), kind2: fc.boolean(), count: fc.integer({ min: 1, max: 40 }) }),
    fc.record({ t: fc.constant('one' as const) }),
    fc.record({ t: fc.constant('stamp' as const) }),
    fc.record({ t: fc.constant('timed' as const) }),
    fc.record({ t: fc.constant('read' as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops: Op[]) => {
      // The same points into a run-writing buffer and a point-by-point buffer big enough never
      // to drop; the run buffer is small (256 slots), so it wraps and may drop.
      const small = allocateTraceBuffer(256);
      const big = allocateTraceBuffer(1 << 16);
      const a = new TraceWriter(small);
      const b = new TraceWriter(big);
      const ra = new TraceReader(small);
      const got: ReturnType<typeof decodeChunks> = [];
      let clock = 0;
      let last = 0;
      let id = 0;
      for (const o of ops) {
        if (o.t === 'run') {
          a.putRun(TraceKind.Pop, o.kind2 ? TraceKind.Done : 0, 1, id, o.count, 64);
          for (let k = 0; k < o.count; k++) {
            b.putUntimed(TraceKind.Pop, 1, id + k, o.kind2 ? 0 : 64);
            if (o.kind2) b.putUntimed(TraceKind.Done, 1, id + k, 64);
          }
          id += o.count;
        } else if (o.t === 'one') {
          a.putUntimed(TraceKind.Reap, 1, id, 5);
          b.putUntimed(TraceKind.Reap, 1, id, 5);
          id++;
        } else if (o.t === 'stamp' || o.t === 'timed') {
          clock += 1000;
          a.stampUntimed(last, clock);
          b.stampUntimed(last, clock);
          last = clock;
          if (o.t === 'timed') {
            a.put(TraceKind.Used, 1, 0xffff_ffff, clock, 1);
            b.put(TraceKind.Used, 1, 0xffff_ffff, clock, 1);
          }
        } else got.push(...decodeChunks('host', [ra.read()]));
      }
      clock += 1000;
      a.stampUntimed(last, clock);
      b.stampUntimed(last, clock);
      a.flush();
      b.flush();
      got.push(...decodeChunks('host', [ra.read()]));
      const want = decodeChunks('host', [new TraceReader(big).read()]);
      assert.equal(b.dropped, 0);
      // Without drops the two read back the same (times equal up to rounding); with drops the
      // kept records are a subsequence of the wanted ones, each hole marked by a Gap whose
      // count matches, and kept + dropped = written.
      const key = (r: (typeof want)[number]): string => `${r.kind}/${r.id}/${r.arg}`;
      if (a.dropped === 0) {
        assert.equal(got.length, want.length);
        for (let i = 0; i < got.length; i++) {
          assert.equal(key(got[i]!), key(want[i]!));
          assert.ok(Math.abs(got[i]!.tNs - want[i]!.tNs) < 1e-6, `record ${i}: ${got[i]!.tNs} vs ${want[i]!.tNs}`);
        }
      } else {
        const kept = got.filter((r) => r.kind !== TraceKind.Gap);
        const gaps = got.filter((r) => r.kind === TraceKind.Gap).reduce((s, r) => s + r.arg, 0);
        assert.equal(kept.length + a.dropped, want.length, 'kept + dropped = written');
        assert.ok(gaps <= a.dropped);
        let j = 0;
        for (const r of kept) {
          while (j < want.length && key(want[j]!) !== key(r)) j++;
          assert.ok(j < want.length, `kept record ${key(r)} in written order`);
          j++;
        }
      }
      for (let i = 1; i < got.length; i++) assert.ok(got[i]!.tNs >= got[i - 1]!.tNs || got[i]!.kind === TraceKind.Gap || got[i - 1]!.kind === TraceKind.Gap);
    }),
    { numRuns: 300 },
  );
});

test('property: a sampled run (skipped points counted) times its kept points exactly as the full run does', () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ first: fc.nat({ max: 500 }), count: fc.integer({ min: 1, max: 64 }), pair: fc.boolean() }), { minLength: 1, maxLength: 8 }),
      fc.integer({ min: 2, max: 9 }),
      (ranges, n) => {
        const fullSab = allocateTraceBuffer(1 << 12);
        const thinSab = allocateTraceBuffer(1 << 12);
        const full = new TraceWriter(fullSab);
        const thin = new TraceWriter(thinSab);
        for (const r of ranges) {
          full.putRun(TraceKind.Pop, r.pair ? TraceKind.Done : 0, 0, r.first, r.count, 8);
          const per = r.pair ? 2 : 1;
          let done = 0;
          for (let k = 0; k < r.count; k++) {
            if ((r.first + k) % n !== 0) continue;
            thin.skipPoints((k - done) * per);
            thin.putRun(TraceKind.Pop, r.pair ? TraceKind.Done : 0, 0, r.first + k, 1, 8);
            done = k + 1;
          }
          thin.skipPoints((r.count - done) * per);
        }
        full.stampUntimed(1000, 9000);
        thin.stampUntimed(1000, 9000);
        full.flush();
        thin.flush();
        const want = decodeChunks('host', [new TraceReader(fullSab).read()]).filter((x) => x.id! % n === 0);
        const got = decodeChunks('host', [new TraceReader(thinSab).read()]);
        assert.equal(got.length, want.length);
        for (let i = 0; i < got.length; i++) {
          assert.equal(`${got[i]!.kind}/${got[i]!.id}`, `${want[i]!.kind}/${want[i]!.id}`);
          assert.ok(Math.abs(got[i]!.tNs - want[i]!.tNs) < 1e-6, `${got[i]!.tNs} vs ${want[i]!.tNs}`);
        }
      },
    ),
  );
});

test('property: sampled ranges and reap runs record exactly the sampled identities, in order (consecutive or not, any block, across 2^32)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 50 }),
      fc.integer({ min: 0, max: 5 }),
      fc.array(fc.record({ gap: fc.integer({ min: -3, max: 40 }), count: fc.integer({ min: 1, max: 40 }), reap: fc.boolean(), shuffle: fc.boolean() }), { maxLength: 30 }),
      fc.oneof(fc.constant(0), fc.constant(0xffff_ffff - 200)),
      (n, log2Block, ranges, start) => {
        const block = 2 ** log2Block;
        const { t, sab } = tracer(n, 'interpolated', 1 << 14, block);
        const want: number[] = [];
        let next = start;
        for (const r of ranges) {
          const first = (next + r.gap) >>> 0;
          const ids = Array.from({ length: r.count }, (_, k) => (first + k) >>> 0);
          if (r.reap && r.shuffle) ids.reverse();
          for (const id of ids) if (kept(id, n, block)) want.push(id);
          if (r.reap) t.reapRun(Uint32Array.from(ids), ids.length, 1);
          else t.addRange(first, r.count);
          next = (first + r.count) >>> 0;
        }
        t.flush();
        const got = decodeChunks('guest', [new TraceReader(sab).read()])
          .filter((x) => x.kind === TraceKind.Add || x.kind === TraceKind.Reap)
          .map((x) => x.id);
        assert.deepEqual(got, want);
      },
    ),
  );
});

test('sampled runs: addRange, popDoneRange and reapRun keep exactly the sampled packets; batch events follow them', () => {
  const { t, sab } = tracer(10);
  assert.equal(t.batched, true, 'interpolated stamping records runs at any sampling');
  t.addRange(95, 20); // 100 and 110
  t.publish(20);
  t.addRange(115, 3); // none
  t.publish(3);
  t.popDoneRange(98, 5, 64); // 100
  t.used(5);
  t.reapRun(Uint32Array.from([99, 100, 7, 110, 111]), 5, 64); // 100, 110
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  assert.deepEqual(
    recs.map((r) => [r.kind, r.id ?? null]),
    [
      [TraceKind.Add, 100],
      [TraceKind.Add, 110],
      [TraceKind.Publish, null],
      [TraceKind.Pop, 100],
      [TraceKind.Done, 100],
      [TraceKind.Used, null],
      [TraceKind.Reap, 100],
      [TraceKind.Reap, 110],
    ],
  );
  assert.equal(tracer(10, 'exact').t.batched, false, 'exact stamps: a call per sampled point');
});

for (const [stamping, block] of [['exact', 1], ['exact', 32], ['interpolated', 1], ['interpolated', 32]] as const) {
  test(`sampling 1 in N (${stamping} stamps, blocks of ${block}) across real workers traces exactly the kept packets, complete and in causal order`, async () => {
    const count = 20_000;
    const n = 7;
    const session = new TraceSession({ sample: n, sampleBlock: block, stamping });
    const r = await Engine.run({ workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 256, count, publishEvery: 8, verify: 'seq' }, wait: { strategy: 'hybrid' }, trace: session, timeoutMs: 60_000 });
    assert.equal(r.host.errors, 0, r.host.firstError);
    const c = session.finish();
    assert.equal(c.incomplete, 0);
    assert.equal(c.outOfOrder, 0);
    const want = Array.from({ length: count }, (_, s) => s).filter((s) => kept(s, n, block));
    assert.deepEqual(c.packets.map((p) => p.seq).sort((a, b) => a - b), want);
    for (const p of c.packets) {
      const st = stagesOf(p);
      const sum = st.reduce((a, s) => a + s.ns, 0);
      assert.ok(Math.abs(sum - p.e2eNs) < 1e-3, `seq ${p.seq}: stages ${sum} ns vs end to end ${p.e2eNs} ns`);
      assert.ok(st.every((s) => s.ns >= 0), `seq ${p.seq}: a negative stage`);
    }
  });
}

test('kept points with ordinals take their place among the skipped points between two clock reads', () => {
  const { t, sab } = tracer(10); // blocks of 1: keeps 10, 20, …
  assert.equal(t.sparse, true);
  assert.equal(tracer(1).t.sparse, false, 'every packet: runs, not kept points');
  assert.equal(tracer(10, 'exact').t.sparse, false, 'exact stamps: a read per point');
  t.addKept(10, 10); // the first call: nothing known before it
  t.addsUpTo(32);
  t.publish(32); // clock read P1
  t.addKept(40, 40); // 8 adds skipped before it (32..39)
  t.addsUpTo(64); // 23 after it (41..63)
  t.publish(32); // clock read P2
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  assert.deepEqual(
    recs.map((r) => [r.kind, r.id ?? null]),
    [
      [TraceKind.Add, 10],
      [TraceKind.Publish, null],
      [TraceKind.Add, 40],
      [TraceKind.Publish, null],
    ],
  );
  const p1 = recs[1]!.tNs;
  const p2 = recs[3]!.tNs;
  // 8 + 1 + 23 points between P1 and P2, spread evenly: add 40 is the 9th of 32.
  const want = p1 + ((p2 - p1) * 9) / 33;
  assert.ok(Math.abs(recs[2]!.tNs - want) < 1e-6, `add 40 at ${recs[2]!.tNs}, want ${want}`);
  assert.ok(recs[0]!.tNs < p1 && p1 < recs[2]!.tNs && recs[2]!.tNs < p2);
});

test('kept points: the points counted up to an acquire are timed before the release stamp that bounds the next kept point', () => {
  const rs = allocateReleaseStamps();
  const origin = clockOriginHere();
  const mk = (side: 0 | 1): { t: Tracer; sab: SharedArrayBuffer } => {
    const sab = allocateTraceBuffer(256);
    return { t: new Tracer({ sab, origin, everyN: 100, sampleBlock: 1, level: 10, releaseStamps: { sab: rs, side } }), sab };
  };
  const drv = mk(0);
  const dev = mk(1);
  dev.t.popKept(0, 0); // kept pop 0, then 99 pops skipped (unsampled batches before the next fetch)
  dev.t.doneKept(0, 64);
  drv.t.addKept(100, 100);
  drv.t.addsUpTo(101);
  drv.t.publish(1); // the release stamp the device's next acquire sees
  const publish = decodeChunks('guest', [(drv.t.flush(), new TraceReader(drv.sab).read())]).find((r) => r.kind === TraceKind.Publish)!.tNs;
  // The device's fresh fetch came when it had popped 100; it then pops packet 100.
  dev.t.popsUpTo(100);
  dev.t.fetched();
  dev.t.popKept(100, 100);
  dev.t.doneKept(100, 64);
  dev.t.popsUpTo(101);
  dev.t.used(1);
  dev.t.flush();
  const host = decodeChunks('host', [new TraceReader(dev.sab).read()]);
  const at = (kind: TraceKind, id: number): number => host.find((r) => r.kind === kind && r.id === id)!.tNs;
  assert.ok(at(TraceKind.Done, 0) < publish, 'packet 0 and the 99 skipped pops are timed before the publish');
  assert.ok(at(TraceKind.Pop, 100) > publish, 'the pop of packet 100 after it');
  // Without the skipped points in between, packet 100's pop and done sit next to each other in
  // the span after the publish, not squeezed against the used read.
  const used = host.find((r) => r.kind === TraceKind.Used)!.tNs;
  const span = used - publish;
  assert.ok(Math.abs(at(TraceKind.Pop, 100) - (publish + span / 3)) < 1e-6 * span + 1e-6, 'pop, done, used evenly spread');
});

test('kept pops carry their done; a wake waits for the next kept pop; an ordinal behind the count skips nothing and does not move it back', () => {
  const { t, sab } = tracer(4);
  t.deviceWake(0, true);
  t.fetched();
  t.popKept(4, 4);
  t.doneKept(4, 64);
  t.popsUpTo(6);
  t.used(2);
  t.popKept(8, 2); // behind the count (6): no skip, still written, the count stays at 6
  t.doneKept(8, 64);
  t.used(1);
  t.popKept(12, 7); // one packet (2 points) skipped since 6, not 4 since a count moved back to 3
  t.doneKept(12, 64);
  t.used(1);
  t.flush();
  const recs = decodeChunks('host', [new TraceReader(sab).read()]);
  assert.deepEqual(
    recs.map((r) => [r.kind, r.id ?? null]),
    [
      [TraceKind.DeviceWake, null],
      [TraceKind.Pop, 4],
      [TraceKind.Done, 4],
      [TraceKind.Used, null],
      [TraceKind.Pop, 8],
      [TraceKind.Done, 8],
      [TraceKind.Used, null],
      [TraceKind.Pop, 12],
      [TraceKind.Done, 12],
      [TraceKind.Used, null],
    ],
  );
  for (let i = 1; i < recs.length; i++) assert.ok(recs[i]!.tNs > recs[i - 1]!.tNs, `record ${i} in time order`);
  // Between the last two used reads: 2 skipped points, pop 12, done 12 — pop 12 is the 3rd of 4.
  const u1 = recs[6]!.tNs;
  const u2 = recs[9]!.tNs;
  assert.ok(Math.abs(recs[7]!.tNs - (u1 + ((u2 - u1) * 3) / 5)) < 1e-6 * (u2 - u1) + 1e-6, `pop 12 at ${recs[7]!.tNs}`);
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

test('fetched(): the release stamp of the other side bounds the points after an acquire, without a clock read', () => {
  const rs = allocateReleaseStamps();
  const origin = clockOriginHere(); // one origin for both sides, as in a run (times compare across them)
  const mk = (side: 0 | 1): { t: Tracer; sab: SharedArrayBuffer } => {
    const sab = allocateTraceBuffer(256);
    return { t: new Tracer({ sab, origin, everyN: 1, level: 10, releaseStamps: { sab: rs, side } }), sab };
  };
  const drv = mk(0);
  const dev = mk(1);
  dev.t.popDoneRange(0, 2, 64); // points of an earlier fetch, still untimed
  drv.t.addRange(2, 3);
  drv.t.publish(3); // stamps, and stores its time for the device
  const reads = dev.t.clockReads;
  dev.t.fetched(); // as right after the device's acquire of avail.idx
  assert.equal(dev.t.clockReads, reads, 'no clock read');
  dev.t.popDoneRange(2, 3, 64);
  dev.t.used(5);
  drv.t.flush();
  dev.t.flush();
  const publish = decodeChunks('guest', [new TraceReader(drv.sab).read()]).find((r) => r.kind === TraceKind.Publish)!.tNs;
  const host = decodeChunks('host', [new TraceReader(dev.sab).read()]);
  for (const r of host.filter((x) => x.kind === TraceKind.Pop || x.kind === TraceKind.Done)) {
    if (r.id! < 2) assert.ok(r.tNs <= publish, `earlier point ${r.id} at ${r.tNs} ≤ the publish ${publish}`);
    else assert.ok(r.tNs > publish, `point of packet ${r.id} at ${r.tNs} after the publish ${publish}`);
  }
});

test('property: nextSampled is the smallest traced identity at or after seq (any block, wrapping at 2^32), −1 when off', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 0, max: 12 }),
      fc.oneof(fc.nat({ max: 0xffff_ffff }), fc.integer({ min: 0xffff_ffff - 300_000, max: 0xffff_ffff })), // near the wrap too
      (n, log2Block, seq) => {
        const block = 2 ** log2Block;
        const { t } = tracer(n, 'exact', 256, block);
        const next = t.nextSampled(seq);
        if (n * block <= 1 << 16) {
          // Brute force: step identities (wrapping at 2^32) until one is kept.
          let x = seq;
          while (!kept(x, n, block)) x = (x + 1) >>> 0;
          assert.equal(next, x, `seq ${seq}, N ${n}, block ${block}`);
        } else {
          const b = Math.floor(seq / block);
          const want = kept(seq, n, block) ? seq : (b + n - (b % n)) * block;
          assert.equal(next, want > 0xffff_ffff ? 0 : want);
        }
        assert.ok(t.sampled(next));
      },
    ),
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

for (const [label, stamping, sample] of [['sampled, kept points', 'interpolated', 3], ['sampled, exact stamps', 'exact', 3], ['every packet', 'interpolated', 1]] as const) {
  test(`toggled tracing (${label}): reaps keep the ring's FIFO order (no identity left from an earlier slice)`, async () => {
    const toggleMs = 5;
    const session = new TraceSession({ sample, sampleBlock: 4, stamping });
    const r = await Engine.run({ workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 256, verify: 'seq', traceToggleMs: toggleMs }, durationMs: 300, wait: { strategy: 'hybrid' }, trace: session, timeoutMs: 60_000 });
    assert.equal(r.host.errors, 0, r.host.firstError);
    const c = session.finish();
    assert.ok(c.packets.length > 0);
    assert.equal(c.outOfOrder, 0);
    // The device returns chains in order, so reaps come in identity order. A head reused after
    // an off-slice that kept the old packet's identity would record a late reap for it, after
    // the reaps of the packets that followed it.
    const bySeq = [...c.packets].sort((a, b) => a.seq - b.seq);
    const late = bySeq.filter((p, i) => i + 1 < bySeq.length && p.points.reap! > bySeq[i + 1]!.points.reap!);
    assert.deepEqual(late.map((p) => p.seq), [], `reaps out of FIFO order: ${late.length}`);
  });
}

test('mark(): points written before it are timed before its clock read, and kept-point counts start afresh after it', async () => {
  const { t, sab } = tracer(1);
  t.addRange(0, 4); // untimed
  t.mark(); // tracing switched off here
  await new Promise((r) => setTimeout(r, 20)); // an untraced stretch
  t.mark(); // and on again
  t.addRange(100, 4);
  t.publish(4);
  t.flush();
  const recs = decodeChunks('guest', [new TraceReader(sab).read()]);
  const adds = recs.filter((r) => r.kind === TraceKind.Add);
  const publish = recs.find((r) => r.kind === TraceKind.Publish)!.tNs;
  assert.equal(adds.length, 8);
  const gap = adds[4]!.tNs - adds[3]!.tNs;
  assert.ok(gap >= 19e6, `the untraced stretch lies between the two runs (${gap} ns), not spread over either`);
  assert.ok(publish - adds[4]!.tNs < 19e6, 'the second run is timed after the second mark');

  const { t: d, sab: dSab } = tracer(10);
  d.popKept(10, 10);
  d.doneKept(10, 64);
  d.popsUpTo(11);
  d.used(1);
  d.mark();
  d.popKept(5000, 5000); // 4989 pops since 11 happened while untraced: not counted after the mark
  d.doneKept(5000, 64);
  d.popsUpTo(5001);
  d.used(1);
  d.flush();
  const h = decodeChunks('host', [new TraceReader(dSab).read()]);
  const used = h.filter((r) => r.kind === TraceKind.Used).map((r) => r.tNs);
  const pop = h.find((r) => r.kind === TraceKind.Pop && r.id === 5000)!.tNs;
  // pop and done are the only points between the mark and the used read, so pop sits a third of
  // the way from the mark to the used; counted after 9978 skipped points it would sit against
  // the used read.
  assert.ok(pop > used[0]! && pop < used[1]!);
  const span = used[1]! - used[0]!;
  assert.ok(used[1]! - pop > span * 0.01, `pop 5000 ${used[1]! - pop} ns before the used read (of ${span})`);
});
