// N queue pairs in one process (runEnginePairs): every pair its own guest and host worker, all
// started together; a verified net-stream on each pair delivers every payload byte once, in order
// and intact, with traffic on every pair; a duration run stops every pair together; the stream
// cell aggregates pairs (Gb/s summed, each pair's in extra); bad pair counts are typed errors; the
// scaling bench script runs with tiny parameters.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runEnginePairs } from '../src/engine/index.js';
import { aggregatePairs, type StreamRun } from '../src/study/measure.js';

const QUEUES = [{ size: 256 }, { size: 256 }];

for (const { direction, gso } of [
  { direction: 'g2h', gso: true },
  { direction: 'h2g', gso: false },
]) {
  test(`two queue pairs on four workers: a verified net-stream ${direction} (gso=${gso}) on each pair, every payload byte once and intact`, { timeout: 120_000 }, async () => {
    const total = gso ? 4_000_000 : 1_500_000;
    const r = await runEnginePairs({ workload: 'net-stream', queues: QUEUES, params: { direction, gso, verify: true, totalBytes: total, msgBytes: 50_000, windowBytes: 1 << 20 }, timeoutMs: 90_000 }, 2);
    assert.equal(r.pairs.length, 2);
    r.pairs.forEach((p, i) => {
      const rx = direction === 'g2h' ? p.host : p.guest;
      const tx = direction === 'g2h' ? p.guest : p.host;
      assert.equal(rx.errors + tx.errors, 0, `pair ${i}: ${rx.firstError ?? tx.firstError}`);
      assert.equal(rx.bytes, total, `pair ${i}: the receiver counted every payload byte`);
      assert.equal(rx.extra.payloadBytes, total);
      for (const side of [p.guest, p.host]) {
        for (const [k, v] of Object.entries(side.extra)) {
          if (/Drops|Dropped|rxErrors|queueErrors|parseErrors|controlDrops/.test(k)) assert.equal(v, 0, `pair ${i} ${side.role} ${k}`);
        }
      }
    });
  });
}

test('a duration run of three pairs stops every pair together, each with traffic in its window', { timeout: 120_000 }, async () => {
  const r = await runEnginePairs({ workload: 'net-stream', queues: QUEUES, params: { direction: 'g2h', verify: true, warmupMs: 50 }, timeoutMs: 90_000 }, 3, 1500);
  assert.ok(r.startupMs > 0);
  for (const [i, p] of r.pairs.entries()) {
    assert.equal(p.host.errors + p.guest.errors, 0, `pair ${i}`);
    assert.ok(p.host.windowBytes > 0, `pair ${i} moved payload in its window`);
  }
});

test('bad pair counts are refused with a RangeError', async () => {
  await assert.rejects(runEnginePairs({ workload: 'net-stream', queues: QUEUES }, 0), RangeError);
  await assert.rejects(runEnginePairs({ workload: 'net-stream', queues: QUEUES }, 17), RangeError);
});

test('aggregatePairs sums Gb/s and bytes, weighs CPU per GB by bytes, and keeps each pair in extra', () => {
  const run = (gbps: number, bytes: number, cpu: number): StreamRun => ({ gbps, windowMs: 1000, windowBytes: bytes, guestCpuSPerGB: cpu, hostCpuSPerGB: cpu, errors: 0, mechanism: { kicksPerPacket: 1 } as never, extra: { 'host.x': 1 } });
  const a = aggregatePairs([run(2, 250e6, 1), run(6, 750e6, 2)]);
  assert.equal(a.gbps, 8);
  assert.equal(a.windowBytes, 1e9);
  assert.equal(a.hostCpuSPerGB, 1.75);
  assert.equal(a.extra['pair1.gbps'], 6);
  assert.equal(a.extra['host.x'], 2);
});

test('bench/mq-scaling.js runs with tiny parameters and reports every configuration (no figure asserted)', { timeout: 180_000 }, () => {
  const script = fileURLToPath(new URL('../bench/mq-scaling.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, '--quick', '--pairs', '1,2', '--json'], { encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const out = JSON.parse(r.stdout) as { schema: string; cores: number; cells: { case: string; pairs: number; gbps: number[]; perPairGbps: number[][]; errors: number }[] };
  assert.equal(out.schema, 'virtq-bench-mq-scaling/1');
  assert.ok(out.cores >= 1);
  assert.equal(out.cells.length, 6, '3 cases × 2 pair counts');
  for (const c of out.cells) {
    assert.equal(c.errors, 0, `${c.case} × ${c.pairs}`);
    assert.ok(c.gbps[0]! > 0, `${c.case} × ${c.pairs} moved data`);
    assert.equal(c.perPairGbps[0]!.length, c.pairs);
  }
});
