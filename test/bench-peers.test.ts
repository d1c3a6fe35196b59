// Smoke test of the peer baselines (`virtq bench peers`): every throughput case runs once for
// ~150 ms at 1500 B and at 64 KiB through real worker pairs and must deliver verified packets
// with sane CPU figures; the ping-pong case runs a few hundred round trips per strategy. Nothing
// here asserts a speed (the box may be busy); every run is bounded by the harness's timeouts and
// by the test timeouts below.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatPeersTable,
  parseStrategy,
  peerCases,
  runAtomicsPingPong,
  runBareRing,
  runPeersBench,
  runVirtqPingPong,
  runVirtqRing,
  type PeerCaseResult,
  type PeerRunContext,
} from '../src/baselines/index.js';
import { threadCpuNs, threadCpuSource } from '../src/engine/thread-cpu.js';

const WINDOW_MS = 150;
const WARMUP_MS = 30;
const PAYLOADS = [1500, 65536];

function ctx(payloadBytes: number, strategy?: string): PeerRunContext {
  const c: PeerRunContext = { payloadBytes, durationMs: WINDOW_MS, warmupMs: WARMUP_MS, quick: true, runIndex: 0 };
  if (strategy !== undefined) c.strategy = parseStrategy(strategy);
  return c;
}

function assertSane(r: PeerCaseResult, label: string): void {
  assert.equal(r.error, undefined, `${label}: ${r.error}`);
  assert.equal(r.verified, true, `${label}: not verified`);
  assert.ok(r.packets > 0, `${label}: no packets`);
  assert.equal(r.bytes, r.packets * r.payloadBytes, `${label}: bytes`);
  for (const key of ['cpuSecondsProducer', 'cpuSecondsConsumer', 'cpuSecondsPerGB', 'notifiesPer1000', 'consumerSleepsPer1000'] as const) {
    assert.ok(Number.isFinite(r[key]) && r[key] >= 0, `${label}: ${key} = ${r[key]}`);
  }
  assert.ok(r.seconds > 0 && Number.isFinite(r.pps) && Number.isFinite(r.gbps), `${label}: rates`);
}

test('thread CPU time is per thread and grows while the thread computes', () => {
  const before = threadCpuNs();
  let x = 0;
  for (let i = 0; i < 5_000_000; i++) x += i & 7;
  const after = threadCpuNs();
  assert.ok(x > 0);
  assert.ok(Number.isFinite(before) && after >= before, `${before} → ${after}`);
  assert.ok(['schedstat', 'stat', 'process'].includes(threadCpuSource()));
});

test('the bare ring delivers every packet in order with each kick strategy', { timeout: 30_000 }, async () => {
  for (const payloadBytes of PAYLOADS) {
    for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
      const r = await runBareRing(ctx(payloadBytes, strategy));
      assertSane(r, `${r.name} ${payloadBytes} B`);
      assert.equal(r.strategy, strategy);
      assert.equal(r.publishEvery, payloadBytes === 1500 ? 32 : 1, 'batching rule');
    }
  }
});

test('the bare ring also verifies with publish batches larger than a 64 KiB ring holds', { timeout: 10_000 }, async () => {
  // 32 × 64 KiB is 4× the ring: both sides must publish when blocked or they deadlock.
  const r = await runBareRing(ctx(65536, 'spin2000+wait'), { publishEvery: 32 });
  assertSane(r, 'bare-ring b32 64 KiB');
});

test('postMessage (copy and transfer) and ringbuf.js deliver every packet in order', { timeout: 30_000 }, async () => {
  for (const name of ['postmessage-copy', 'postmessage-transfer', 'ringbuf-js']) {
    const entry = peerCases.get(name);
    assert.ok(entry !== undefined && entry.kind === 'throughput', `${name} is registered`);
    for (const payloadBytes of PAYLOADS) {
      const r = await entry.run(ctx(payloadBytes));
      assertSane(r, `${name} ${payloadBytes} B`);
    }
  }
});

test('the virtq ring case runs the split ring through the engine and verifies every packet, per strategy', { timeout: 60_000 }, async () => {
  for (const payload of PAYLOADS) {
    for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
      const r = await runVirtqRing(ctx(payload, strategy));
      assertSane(r, `virtq-ring ${payload} B ${strategy}`);
      assert.equal(r.caseName, 'virtq-ring');
      assert.equal(r.strategy, strategy);
    }
  }
});

test('the virtq ping-pong case times round trips through the ring for each strategy', { timeout: 30_000 }, async () => {
  for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
    const r = await runVirtqPingPong({ durationMs: WINDOW_MS, warmupMs: WARMUP_MS, strategy: parseStrategy(strategy), quick: true, runIndex: 0 });
    assert.equal(r.error, undefined, `${strategy}: ${r.error}`);
    assert.ok(r.rtts > 0, `${strategy}: no round trips`);
    assert.ok(r.p50Us > 0 && r.p50Us <= r.p99Us && r.p99Us <= r.maxUs, `${strategy}: percentiles out of order ${r.p50Us} ${r.p99Us} ${r.maxUs}`);
  }
});

test('atomics ping-pong measures round trips for each strategy', { timeout: 20_000 }, async () => {
  for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
    const r = await runAtomicsPingPong({
      durationMs: 200,
      warmupMs: WARMUP_MS,
      strategy: parseStrategy(strategy),
      maxRtts: 300,
      quick: true,
      runIndex: 0,
    });
    assert.equal(r.error, undefined, `${strategy}: ${r.error}`);
    assert.equal(r.strategy, strategy);
    // A pure spin on a shared vCPU can take ms per round trip, so only "some" is guaranteed.
    assert.ok(r.rtts > 0 && r.rtts <= 300, `${strategy}: ${r.rtts} RTTs`);
    assert.ok(r.p50Us > 0 && r.p50Us <= r.p99Us && r.p99Us <= r.maxUs * 1.001, `${strategy}: ${JSON.stringify(r)}`);
    assert.ok(Number.isFinite(r.meanUs) && r.meanUs > 0);
  }
});

test('the line-floor ping-pongs carry a checked message across two worker threads for each strategy', { timeout: 30_000 }, async () => {
  for (const lines of [2, 3] as const) {
    for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
      const r = await runAtomicsPingPong({ durationMs: 150, warmupMs: WARMUP_MS, strategy: parseStrategy(strategy), maxRtts: 300, quick: true, runIndex: 0 }, lines);
      const what = `${lines} lines, ${strategy}`;
      assert.equal(r.error, undefined, `${what}: ${r.error}`);
      assert.equal(r.name, `atomics-pingpong-${lines}lines`);
      assert.ok(r.rtts > 0 && r.rtts <= 300, `${what}: ${r.rtts} RTTs`);
      assert.ok(r.p50Us > 0 && r.p50Us <= r.p99Us && r.p99Us <= r.maxUs * 1.001, `${what}: ${JSON.stringify(r)}`);
    }
  }
  assert.ok(peerCases.has('atomics-pingpong-2lines') && peerCases.has('atomics-pingpong-3lines'));
});

test('the bench folds runs into a JSON-serialisable report with a ratio against the bare ring', { timeout: 20_000 }, async () => {
  const report = await runPeersBench({
    payloads: [1500],
    durationMs: 60,
    runs: 1,
    strategies: ['spin2000+wait'],
    quick: true,
    cases: ['bare-ring', 'ringbuf-js'],
    warmupMs: 20,
  });
  assert.equal(report.throughput.length, 2);
  const bare = report.throughput.find((s) => s.caseName === 'bare-ring');
  const rb = report.throughput.find((s) => s.caseName === 'ringbuf-js');
  assert.ok(bare !== undefined && rb !== undefined);
  assert.equal(bare.ppsRatioVsBareRing, 1);
  assert.equal(rb.ratioReference, bare.name);
  assert.ok(rb.ppsRatioVsBareRing !== null && rb.ppsRatioVsBareRing > 0);
  const copy = JSON.parse(JSON.stringify(report)) as unknown;
  assert.deepEqual(copy, report);
  const text = formatPeersTable(report);
  assert.match(text, /ratio vs bare-ring/);
  assert.match(text, /ringbuf-js/);
});

test('an unknown case or strategy is refused before anything runs', async () => {
  await assert.rejects(
    runPeersBench({ payloads: [1500], durationMs: 10, runs: 1, strategies: ['wait'], quick: true, cases: ['nope'] }),
    /unknown peer case "nope"/,
  );
  assert.throws(() => parseStrategy('sometimes'), /unknown kick strategy "sometimes"/);
});
