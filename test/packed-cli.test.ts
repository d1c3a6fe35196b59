// The packed ring (virtio 1.2 §2.8) and IN_ORDER from the command line and in the peer bench:
// `virtq bench ring` reports ns/chain for both layouts side by side, `virtq bench ping --ring
// packed` answers every request, and the virtq-packed cases of `virtq bench peers` verify every
// packet and time round trips. Tiny parameters: these check the plumbing, never a speed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseStrategy, peerCases, runVirtqPingPong, runVirtqRing } from '../src/baselines/index.js';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('bench ring reports ns per chain for the split and packed rings side by side, with and without IN_ORDER', { timeout: 60_000 }, async () => {
  for (const extra of [[], ['--in-order']]) {
    const { stdout } = await run(process.execPath, [CLI, 'bench', 'ring', '--runs', '1', '--chains', '2000', '--json', ...extra]);
    const r = JSON.parse(stdout) as { inOrder: boolean; results: { ring: string; case: string; nsPerChain: { median: number } }[] };
    assert.equal(r.inOrder, extra.length > 0);
    for (const ring of ['split', 'packed']) {
      const rows = r.results.filter((x) => x.ring === ring);
      assert.equal(rows.length, 4, `${ring}: every case`);
      assert.ok(rows.every((x) => Number.isFinite(x.nsPerChain.median) && x.nsPerChain.median > 0));
    }
  }
  await assert.rejects(run(process.execPath, [CLI, 'bench', 'ring', '--ring', 'ringy']), (e: { code?: number; stderr?: string }) => e.code === 2 && /--ring <kind>.*ringy/.test(e.stderr ?? ''));
});

test('bench ping --ring packed --in-order runs its flood ping through the packed ring', { timeout: 60_000 }, async () => {
  const { stdout } = await run(process.execPath, [CLI, 'bench', 'ping', '--count', '100', '--preset', 'vhost', '--ring', 'packed', '--in-order', '--json']);
  const cell = JSON.parse(stdout) as { command: string; result: { sent: number; received: number; errors: number } };
  assert.match(cell.command, /--ring packed --in-order/);
  assert.equal(cell.result.errors, 0);
  assert.equal(cell.result.sent, 100);
  // ping -f's schedule counts a reply later than its deadline as lost, which a loaded machine
  // may cause; every echo once is test/packed-net.test.ts's (10 s per echo).
  assert.ok(cell.result.received > 0 && cell.result.received <= 100, `received ${cell.result.received}`);
});

test('the virtq-packed peer cases verify every packet per strategy and time round trips', { timeout: 60_000 }, async () => {
  assert.equal(peerCases.get('virtq-packed')?.kind, 'throughput');
  assert.equal(peerCases.get('virtq-packed-pingpong')?.kind, 'latency');
  for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
    const r = await runVirtqRing({ payloadBytes: 1500, durationMs: 150, warmupMs: 30, quick: true, runIndex: 0, strategy: parseStrategy(strategy) }, 'packed');
    assert.equal(r.error, undefined, `${strategy}: ${r.error}`);
    assert.equal(r.verified, true);
    assert.ok(r.packets > 0);
    assert.equal(r.caseName, 'virtq-packed');
    const p = await runVirtqPingPong({ durationMs: 150, warmupMs: 30, strategy: parseStrategy(strategy), quick: true, runIndex: 0 }, 'packed');
    assert.equal(p.error, undefined, `${strategy}: ${p.error}`);
    assert.ok(p.rtts > 0);
    assert.equal(p.name, 'virtq-packed-pingpong');
  }
});

test('the IN_ORDER peer cases (split and packed) verify every packet per strategy', { timeout: 60_000 }, async () => {
  for (const [name, ring] of [['virtq-ring-inorder', 'split'], ['virtq-packed-inorder', 'packed']] as const) {
    assert.equal(peerCases.get(name)?.kind, 'throughput');
    for (const strategy of ['wait', 'spin2000+wait', 'spin']) {
      for (const payloadBytes of [64, 1500]) {
        const r = await runVirtqRing({ payloadBytes, durationMs: 150, warmupMs: 30, quick: true, runIndex: 0, strategy: parseStrategy(strategy) }, ring, true);
        assert.equal(r.error, undefined, `${name} ${strategy} ${payloadBytes} B: ${r.error}`);
        assert.equal(r.verified, true, `${name} ${strategy} ${payloadBytes} B: not verified`);
        assert.ok(r.packets > 0, `${name} ${strategy} ${payloadBytes} B: no packets`);
        assert.equal(r.caseName, name);
      }
    }
  }
});
