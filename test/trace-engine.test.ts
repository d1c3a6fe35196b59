// Tracing across real worker threads (the stream workload through the engine): every traced
// packet has its stages in order and they add up to its end-to-end time; sampling 1 in N picks
// exactly the packets with seq % N === 0; "slower than" keeps only slow packets; levels filter
// events; a full buffer drops and counts records without failing the run; the written file
// reads back through the analyzer with the same counts.

import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine, type EngineOptions } from '../src/engine/index.js';
import { PACKET_POINTS, REQUIRED_POINTS, TraceSession, Tracer, stagesOf, type TraceOptions } from '../src/trace/index.js';
import { analyzeTraceFile, writeTraceFile } from '../src/trace/node.js';
import type { WaitStrategy } from '../src/notify/index.js';

const dir = mkdtempSync(join(tmpdir(), 'virtq-trace-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function streamRun(count: number, strategy: WaitStrategy, trace: TraceSession, size = 64): EngineOptions {
  return { workload: 'stream', queues: [{ size }], params: { payloadBytes: 256, count, publishEvery: 8, verify: 'seq' }, wait: { strategy }, trace, timeoutMs: 60_000 };
}

async function traced(count: number, strategy: WaitStrategy, opts: TraceOptions, size = 64) {
  const session = new TraceSession(opts);
  const r = await Engine.run(streamRun(count, strategy, session, size));
  assert.equal(r.host.errors, 0, r.host.firstError);
  assert.equal(r.host.packets, count);
  return { r, session, c: session.finish() };
}

for (const strategy of ['block', 'hybrid', 'spin'] as WaitStrategy[]) {
  test(`every traced packet has all required stages in time order and its stages add up to its end-to-end time (${strategy} waits)`, async () => {
    const count = 20_000;
    const { c } = await traced(count, strategy, { sample: 1 });
    assert.deepEqual(c.dropped, { guest: 0, host: 0 });
    assert.equal(c.incomplete, 0);
    assert.equal(c.outOfOrder, 0, 'cross-thread points in causal order');
    assert.equal(c.packets.length, count);
    const seqs = new Set(c.packets.map((p) => p.seq));
    assert.equal(seqs.size, count, 'each packet once');
    let kicks = 0;
    for (const p of c.packets) {
      for (const k of REQUIRED_POINTS) assert.ok(p.points[k] !== undefined, `seq ${p.seq} has ${k}`);
      let prev = -Infinity;
      for (const k of PACKET_POINTS) {
        const v = p.points[k];
        if (v === undefined) continue;
        assert.ok(v >= prev, `seq ${p.seq}: ${k} at ${v} before the previous point at ${prev}`);
        prev = v;
      }
      const stages = stagesOf(p);
      const sum = stages.reduce((a, s) => a + s.ns, 0);
      assert.ok(Math.abs(sum - p.e2eNs) < 1e-3, `seq ${p.seq}: stages sum ${sum} vs e2e ${p.e2eNs}`);
      assert.ok(stages.every((s) => s.ns >= 0));
      assert.equal(p.lenBytes, 256);
      if (p.points.kick !== undefined) kicks++;
    }
    // With suppression most batches go unkicked, but a run that sleeps must kick sometimes.
    if (strategy === 'block') assert.ok(kicks > 0, 'some packets were carried by a kick');
  });
}

test('the written trace reads back through the analyzer with the same packets and no order or sum faults', async () => {
  const count = 5000;
  const { session } = await traced(count, 'hybrid', { sample: 1 });
  const file = join(dir, 'every.ndjson');
  const s = writeTraceFile(session, file, { workload: 'stream' });
  assert.equal(s.packets, count);
  const rep = await analyzeTraceFile(file, { slowest: 5 });
  assert.equal(rep.packets, count);
  assert.equal(rep.outOfOrder, 0);
  assert.equal(rep.sumMismatches, 0);
  assert.equal(rep.e2e.count, count);
  assert.equal(rep.slowest.length, 5);
  assert.ok(rep.slowest[0]!.e2eNs >= rep.slowest[4]!.e2eNs);
  assert.ok(rep.slowest[0]!.e2eNs <= rep.e2e.maxNs);
  for (const name of ['add→publish', 'pop→done', 'done→used']) {
    const st = rep.stages.find((x) => x.name === name);
    assert.ok(st !== undefined && st.count === count, `stage ${name} counted for every packet`);
  }
  assert.equal(rep.run.workload, 'stream');
});

for (const block of [1, 32]) {
  test(`sampling 1 in N (blocks of ${block}) traces exactly the packets whose block of sequence numbers is a multiple of N`, async () => {
    const count = 20_000;
    const n = 37;
    const { c } = await traced(count, 'hybrid', { sample: n, sampleBlock: block });
    const expected = Array.from({ length: count }, (_, s) => s).filter((s) => Math.floor(s / block) % n === 0).length;
    assert.equal(c.incomplete, 0);
    assert.equal(c.outOfOrder, 0);
    assert.equal(c.packets.length, expected);
    assert.ok(c.packets.every((p) => Math.floor(p.seq / block) % n === 0));
    // Batch events are recorded only around sampled packets (policy events, one per sleep, are
    // not sampled): at most add, publish, kick, wake and reap per sampled packet.
    const guestPacketRecords = c.records.guest - c.events.filter((e) => e.side === 'guest').length;
    assert.ok(guestPacketRecords <= expected * 5, `guest packet records ${guestPacketRecords} for ${expected} sampled packets`);
  });
}

test('"slower than X µs" keeps only packets whose end-to-end time exceeds X and counts the rest', async () => {
  const count = 5000;
  const slowerThanUs = 20;
  const { c } = await traced(count, 'block', { sample: 1, slowerThanUs });
  assert.equal(c.packets.length + c.filteredFast, count);
  assert.ok(c.packets.every((p) => p.e2eNs > slowerThanUs * 1000));
});

test('level "warn" records no packet points and no events below warn', async () => {
  const { c } = await traced(5000, 'hybrid', { level: 'warn' });
  assert.equal(c.packets.length, 0);
  assert.equal(c.records.guest + c.records.host, 0, 'stream emits only trace/debug/info events');
});

test('a full trace buffer drops and counts records; the run still completes and kept packets stay consistent', async () => {
  const count = 20_000;
  const { r, c } = await traced(count, 'hybrid', { sample: 1, capacityRecords: 256 });
  assert.ok(c.dropped.guest > 0 && c.dropped.host > 0, `dropped ${JSON.stringify(c.dropped)}`);
  assert.equal(r.guest.extra.traceDroppedRecords, c.dropped.guest);
  assert.equal(r.host.extra.traceDroppedRecords, c.dropped.host);
  // 256 slots held far fewer records than the run made (a run record stands for many points).
  assert.ok(c.records.guest < 2 * count && c.records.host < 2 * count, `records ${JSON.stringify(c.records)}`);
  assert.equal(c.outOfOrder, 0);
  assert.ok(c.packets.length < count);
});

test('periodic draining by the main thread frees buffer space while the run goes', async () => {
  const count = 100_000;
  // 4096 records cannot hold 100 000 packets' records (about 2 per packet per thread); draining
  // every 2 ms frees space as the run goes (on a very busy machine some records may still be
  // dropped, and are counted).
  const { c } = await traced(count, 'block', { sample: 1, capacityRecords: 4096, drainEveryMs: 2 });
  assert.ok(c.records.guest > 4096 && c.records.host > 4096, `records ${JSON.stringify(c.records)} exceed one buffer`);
  assert.equal(c.outOfOrder, 0);
  assert.ok(c.packets.length > 0);
});

test('an untraced run hands the workload the disabled tracer', async () => {
  assert.equal(Tracer.off.enabled, false);
  Tracer.off.add(0); // no-ops, never throws
  Tracer.off.drop('ring-full');
  Tracer.off.flush();
  const r = await Engine.run({ workload: 'stream', queues: [{ size: 16 }], params: { payloadBytes: 64, count: 1000 }, timeoutMs: 30_000 });
  assert.equal(r.host.packets, 1000);
  assert.equal(r.host.extra.traceDroppedRecords, undefined);
});
