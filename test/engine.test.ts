// The engine across real worker threads: a million-plus sequence-numbered, fully verified
// chains per wait strategy over queue sizes 2..1024, a deadline stop, and failures of one side
// surfacing as a rejected promise instead of a hang.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Engine, EngineError, type Runner } from '../src/engine/index.js';
import type { WaitStrategy } from '../src/notify/index.js';

const FAILING = new URL('./workers/failing-workload.js', import.meta.url).href;

// Smaller queues hand off more often (a wake-up per couple of packets), so they get fewer chains.
const PLAN: { size: number; count: number; eventIdx: boolean; payloadBytes: number }[] = [
  { size: 2, count: 40_000, eventIdx: false, payloadBytes: 64 },
  { size: 16, count: 160_000, eventIdx: true, payloadBytes: 64 },
  { size: 128, count: 400_000, eventIdx: false, payloadBytes: 64 },
  { size: 1024, count: 420_000, eventIdx: true, payloadBytes: 256 },
];

for (const strategy of ['block', 'hybrid', 'spin'] as WaitStrategy[]) {
  test(`stress (${strategy}): ${PLAN.reduce((a, p) => a + p.count, 0)} chains over queue sizes 2..1024 arrive once, in order, intact`, async () => {
    let total = 0;
    for (const p of PLAN) {
      const r = await Engine.run({
        workload: 'stream',
        queues: [{ size: p.size, eventIdx: p.eventIdx }],
        params: { count: p.count, payloadBytes: p.payloadBytes, publishEvery: Math.max(1, p.size / 4), verify: 'full' },
        wait: { strategy },
        timeoutMs: 120_000,
      });
      assert.equal(r.host.errors, 0, `size ${p.size}: ${r.host.firstError}`);
      assert.equal(r.host.packets, p.count, `size ${p.size}: host received every chain`);
      assert.equal(r.guest.packets, p.count);
      total += r.host.packets;
    }
    assert.ok(total >= 1_000_000);
  });
}

for (const runner of ['piscina', 'worker'] as Runner[]) {
  test(`a run with a deadline stops both sides (${runner})`, async () => {
    const r = await Engine.run({ workload: 'stream', queues: [{ size: 64 }], params: { payloadBytes: 64 }, durationMs: 200, runner, timeoutMs: 20_000 });
    assert.ok(r.host.packets > 0);
    assert.equal(r.host.errors, 0);
    assert.ok(r.elapsedMs >= 200);
    assert.ok(Number.isFinite(r.startupMs) && r.startupMs > 0);
  });

  for (const failMode of ['throw', 'exit']) {
    test(`a host that ${failMode === 'throw' ? 'throws' : 'exits'} rejects the run with its error and the guest does not hang (${runner})`, async () => {
      const t0 = performance.now();
      await assert.rejects(
        Engine.run({ workload: FAILING, queues: [{ size: 16 }], params: { payloadBytes: 64, failMode }, runner, timeoutMs: 20_000 }),
        (e: unknown) => {
          assert.ok(e instanceof EngineError);
          assert.equal(e.code, 'side-failed');
          assert.equal(e.side, 'host');
          if (failMode === 'throw') assert.match(e.message, /host exploded on purpose/);
          return true;
        },
      );
      assert.ok(performance.now() - t0 < 15_000, 'failure surfaced promptly');
    });
  }
}

test('a side that ignores the stop word is terminated after the timeout and the run rejects', async () => {
  const t0 = performance.now();
  await assert.rejects(
    Engine.run({ workload: FAILING, queues: [{ size: 16 }], params: { payloadBytes: 64, failMode: 'hang' }, timeoutMs: 500 }),
    (e: unknown) => e instanceof EngineError && e.code === 'timeout',
  );
  assert.ok(performance.now() - t0 < 10_000);
});

test('an unknown workload is a clear error', async () => {
  await assert.rejects(Engine.run({ workload: 'nope', queues: [{ size: 8 }], timeoutMs: 10_000 }), /unknown workload "nope"/);
});
