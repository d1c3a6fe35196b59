// The analyzer against hand-computed fixtures (nearest-rank percentiles, exact below 2048 ns at
// HdrHistogram's 3 significant digits), its fault counters, and the timeline builder's
// attribution of batch and cross-thread points.

import test from 'node:test';
import assert from 'node:assert/strict';
import { buildTimelines, TraceKind, type TraceRecord } from '../src/trace/index.js';
import { TraceAnalyzer, TraceFormatError, formatReport, renderHtml } from '../src/trace/node.js';

const RUN = { level: 30, msg: 'trace-run', traceVersion: 1, sample: 1, workload: 'fixture' };

/** Packet k (1..100): add→publish 7k, publish→pop 100, pop→done 50, done→used 20, used→reap 300. */
function fixturePacket(k: number): Record<string, unknown> {
  const add = 1_000_000 * k;
  const publish = add + 7 * k;
  const pop = publish + 100;
  const done = pop + 50;
  const used = done + 20;
  const reap = used + 300;
  return { level: 10, msg: 'packet', seq: k, q: 0, len: 1500, e2eNs: reap - add, t: { add, publish, pop, done, used, reap } };
}

test('per-stage and end-to-end percentiles match the hand-computed nearest-rank values', () => {
  const a = new TraceAnalyzer(3);
  a.add(RUN);
  // Shuffled order: the analyzer must not depend on file order.
  const ks = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
  for (const k of ks) a.add(fixturePacket(k));
  const r = a.report();
  assert.equal(r.packets, 100);
  const st = (name: string) => r.stages.find((s) => s.name === name)!;
  // add→publish = 7k: ranks 50, 90, 99 of 7..700.
  assert.deepEqual([st('add→publish').p50Ns, st('add→publish').p90Ns, st('add→publish').p99Ns, st('add→publish').maxNs, st('add→publish').minNs], [350, 630, 693, 700, 7]);
  assert.equal(st('add→publish').meanNs, 353.5);
  assert.deepEqual([st('publish→pop').p50Ns, st('publish→pop').p99Ns, st('publish→pop').count], [100, 100, 100]);
  // e2e = 7k + 470.
  assert.deepEqual([r.e2e.p50Ns, r.e2e.p90Ns, r.e2e.p99Ns, r.e2e.maxNs], [820, 1100, 1163, 1170]);
  assert.deepEqual(r.stages.map((s) => s.name), ['add→publish', 'publish→pop', 'pop→done', 'done→used', 'used→reap'], 'path order');
  assert.deepEqual(r.slowest.map((p) => p.seq), [100, 99, 98]);
  assert.deepEqual(r.slowest[0]!.stages.map((s) => s.ns), [700, 100, 50, 20, 300]);
  assert.equal(r.outOfOrder, 0);
  assert.equal(r.sumMismatches, 0);
  // log2 bins: 7k for k = 1..100 spans bins from <32 ns (bin 0) to [512, 1024).
  assert.equal(st('add→publish').bins.reduce((x, y) => x + y, 0), 100);
  assert.match(formatReport(r), /add→publish\s+100\s+350 ns\s+630 ns\s+693 ns\s+700 ns/);
});

test('packets out of time order and stage sums that miss the end-to-end time are counted', () => {
  const a = new TraceAnalyzer();
  a.add(RUN);
  a.add({ msg: 'packet', seq: 1, e2eNs: 50, t: { add: 0, publish: 30, pop: 20, done: 40, used: 45, reap: 50 } });
  a.add({ msg: 'packet', seq: 2, e2eNs: 99, t: { add: 0, publish: 10, pop: 20, done: 30, used: 40, reap: 50 } });
  a.add('not an object');
  a.add({ msg: 'something else' });
  const r = a.report();
  assert.equal(r.outOfOrder, 1);
  assert.equal(r.sumMismatches, 1);
  assert.equal(r.skippedLines, 2);
});

test('events are counted by name, drops by reason, and timer lateness gets percentiles', () => {
  const a = new TraceAnalyzer();
  a.add(RUN);
  for (const l of [1000, 2000, 3000, 4000]) a.add({ msg: 'event', ev: 'timer-fired', latenessNs: l });
  a.add({ msg: 'event', ev: 'drop', reason: 'too-long' });
  a.add({ msg: 'event', ev: 'drop', reason: 'too-long' });
  a.add({ msg: 'event', ev: 'error', code: 'verify' });
  const r = a.report();
  assert.deepEqual(r.events, { 'timer-fired': 4, drop: 2, error: 1 });
  assert.deepEqual(r.drops, { 'too-long': 2 });
  assert.deepEqual(r.errors, { verify: 1 });
  assert.equal(r.timerLateness!.p50Ns, 2000);
  assert.equal(r.timerLateness!.maxNs, 4000);
});

test('a file without a trace-run line is not a trace', () => {
  const a = new TraceAnalyzer();
  a.add(fixturePacket(1));
  assert.throws(() => a.report(), (e: unknown) => e instanceof TraceFormatError && e.code === 'not-a-trace');
});

test('the HTML view has a row per stage, the end-to-end row and a timeline per slow packet', () => {
  const a = new TraceAnalyzer(2);
  a.add(RUN);
  for (let k = 1; k <= 10; k++) a.add(fixturePacket(k));
  const html = renderHtml(a.report(), 'fixture <&>');
  assert.equal((html.match(/class="stage-row"/g) ?? []).length, 5);
  assert.match(html, /class="e2e-row" data-stage="end-to-end"/);
  assert.equal((html.match(/<details[^>]*class="packet"/g) ?? []).length, 2);
  assert.match(html, /<title>fixture &#60;&#38;&#62;<\/title>/, 'escaped');
  assert.doesNotMatch(html, /<script|https?:\/\//, 'self-contained, no scripts or links');
});

const rec = (side: 'guest' | 'host', kind: TraceKind, tNs: number, id?: number): TraceRecord => ({ side, kind, queue: 0, id, tNs, arg: 0 });

test('timelines attribute batch events by order and keep optional points only when causal', () => {

  const guest = [
    rec('guest', TraceKind.Add, 0, 1),
    rec('guest', TraceKind.Add, 10, 2),
    rec('guest', TraceKind.Publish, 20),
    rec('guest', TraceKind.Kick, 30),
    rec('guest', TraceKind.DriverWake, 110),
    rec('guest', TraceKind.Reap, 120, 1),
    rec('guest', TraceKind.Reap, 130, 2),
    // Packet 3: the device pops it before the guest's kick; the device's last wake (40) predates
    // its publish. Neither kick nor wake is part of its timeline.
    rec('guest', TraceKind.Add, 200, 3),
    rec('guest', TraceKind.Publish, 210),
    rec('guest', TraceKind.Kick, 220),
    rec('guest', TraceKind.Reap, 260, 3),
    // Packet 4: popped "before" it was published: a clock fault, counted.
    rec('guest', TraceKind.Add, 300, 4),
    rec('guest', TraceKind.Publish, 310),
    rec('guest', TraceKind.Reap, 400, 4),
    // Packet 5: never reaped.
    rec('guest', TraceKind.Add, 500, 5),
    rec('guest', TraceKind.Publish, 510),
  ];
  const host = [
    rec('host', TraceKind.DeviceWake, 40),
    rec('host', TraceKind.Pop, 50, 1),
    rec('host', TraceKind.Done, 60, 1),
    rec('host', TraceKind.Pop, 70, 2),
    rec('host', TraceKind.Done, 80, 2),
    rec('host', TraceKind.Used, 90),
    rec('host', TraceKind.Interrupt, 100),
    rec('host', TraceKind.Pop, 215, 3),
    rec('host', TraceKind.Done, 230, 3),
    rec('host', TraceKind.Used, 240),
    rec('host', TraceKind.Pop, 305, 4),
    rec('host', TraceKind.Done, 320, 4),
    rec('host', TraceKind.Used, 330),
    rec('host', TraceKind.Pop, 520, 5),
    rec('host', TraceKind.Done, 530, 5),
    { ...rec('host', TraceKind.Drop, 540, 5), arg: 4 },
  ];
  const t = buildTimelines(guest, host);
  assert.equal(t.incomplete, 1, 'packet 5');
  assert.equal(t.outOfOrder, 1, 'packet 4');
  const p = new Map(t.packets.map((x) => [x.seq, x]));
  assert.deepEqual(p.get(1)!.points, { add: 0, publish: 20, kick: 30, 'device-wake': 40, pop: 50, done: 60, used: 90, interrupt: 100, 'driver-wake': 110, reap: 120 });
  assert.deepEqual(p.get(2)!.points, { add: 10, publish: 20, kick: 30, 'device-wake': 40, pop: 70, done: 80, used: 90, interrupt: 100, 'driver-wake': 110, reap: 130 });
  assert.deepEqual(p.get(3)!.points, { add: 200, publish: 210, pop: 215, done: 230, used: 240, reap: 260 });
  assert.equal(p.get(3)!.e2eNs, 60);
  assert.equal(t.events.length, 1);
  assert.equal(t.events[0]!.kind, TraceKind.Drop);
});

test('a gap (records dropped) ends the batches in progress instead of giving their packets a later batch time', () => {
  const guest = [
    rec('guest', TraceKind.Add, 0, 1),
    { ...rec('guest', TraceKind.Gap, 50), arg: 3 }, // packet 1's publish was among the dropped records
    rec('guest', TraceKind.Add, 60, 2),
    rec('guest', TraceKind.Publish, 70),
    rec('guest', TraceKind.Reap, 200, 1),
    rec('guest', TraceKind.Reap, 210, 2),
  ];
  const host = [
    rec('host', TraceKind.Pop, 40, 1),
    rec('host', TraceKind.Done, 45, 1),
    { ...rec('host', TraceKind.Gap, 100), arg: 1 }, // the used covering packet 1 was dropped
    rec('host', TraceKind.Pop, 110, 2),
    rec('host', TraceKind.Done, 120, 2),
    rec('host', TraceKind.Used, 130),
  ];
  const t = buildTimelines(guest, host);
  assert.deepEqual(t.packets.map((p) => p.seq), [2]);
  assert.equal(t.incomplete, 1);
  assert.equal(t.outOfOrder, 0, 'packet 1 did not get publish 70 (after its pop at 40)');
  assert.equal(t.events.filter((e) => e.kind === TraceKind.Gap).length, 2);
});

test('the slowest list skips the warm-up: packets 0–9 are slowest of all, yet the list shows the later packets slower than the median, and the totals still count the warm-up', () => {
  const a = new TraceAnalyzer(3, 1000);
  a.add(RUN);
  const pkt = (seq: number, e2eNs: number) => ({ level: 10, msg: 'packet', seq, q: 0, len: 64, e2eNs, t: { add: seq * 10_000, reap: seq * 10_000 + e2eNs } });
  for (let seq = 0; seq < 3000; seq++) {
    // The JIT warm-up: packets 0–9 take 1 ms; the rest 1 µs, except three slow ones later.
    const e2eNs = seq < 10 ? 1_000_000 - seq : seq === 1500 ? 50_000 : seq === 2200 ? 40_000 : seq === 2999 ? 30_000 : 1000;
    a.add(pkt(seq, e2eNs));
  }
  const r = a.report();
  assert.deepEqual(r.slowest.map((p) => p.seq), [1500, 2200, 2999]);
  assert.equal(r.slowestInWarmup, false);
  assert.equal(r.e2e.count, 3000, 'the warm-up is in the totals');
  assert.equal(r.e2e.maxNs, 1_000_000, 'and its slowest packet is the maximum');
  assert.match(formatReport(r), /slowest 3 packets after the first 1000 \(warm-up/);
});

test('a trace shorter than the warm-up lists its slowest packets and says they are all in the warm-up', () => {
  const a = new TraceAnalyzer(2, 1000);
  a.add(RUN);
  for (let k = 1; k <= 5; k++) a.add(fixturePacket(k));
  const r = a.report();
  assert.deepEqual(r.slowest.map((p) => p.seq), [5, 4]);
  assert.equal(r.slowestInWarmup, true);
  assert.match(formatReport(r), /all in the warm-up/);
});

test('multiqueue: two transmit queues numbering frames from 0 each make separate packets, with each queue its own publish, used and interrupt', () => {
  const q = (r: TraceRecord, queue: number): TraceRecord => ({ ...r, queue });
  const guest = [
    q(rec('guest', TraceKind.Add, 0, 0), 1),
    q(rec('guest', TraceKind.Add, 5, 0), 3),
    q(rec('guest', TraceKind.Publish, 10), 1),
    q(rec('guest', TraceKind.Publish, 15), 3),
    q(rec('guest', TraceKind.Reap, 100, 0), 1),
    q(rec('guest', TraceKind.Reap, 110, 0), 3),
  ];
  const host = [
    q(rec('host', TraceKind.Pop, 20, 0), 3),
    q(rec('host', TraceKind.Done, 25, 0), 3),
    q(rec('host', TraceKind.Pop, 30, 0), 1),
    q(rec('host', TraceKind.Done, 35, 0), 1),
    q(rec('host', TraceKind.Used, 40), 3),
    q(rec('host', TraceKind.Interrupt, 45), 3),
    q(rec('host', TraceKind.Used, 50), 1),
  ];
  const t = buildTimelines(guest, host);
  assert.equal(t.incomplete, 0);
  const byQueue = new Map(t.packets.map((p) => [p.queue, p]));
  assert.equal(t.packets.length, 2);
  assert.deepEqual(byQueue.get(1)!.points, { add: 0, publish: 10, pop: 30, done: 35, used: 50, reap: 100 });
  assert.deepEqual(byQueue.get(3)!.points, { add: 5, publish: 15, pop: 20, done: 25, used: 40, interrupt: 45, reap: 110 });
});
