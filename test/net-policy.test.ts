// net-stream and net-ping under every notification policy, across real worker threads: every
// preset moves every byte once, in order and intact, both ways, and each mechanism leaves its
// signature in the counters (timer fires, the timer's floor on a lone ping, fewer interrupts
// with event idx, rx kick suppression, the global lock only when modelled, the second rx copy,
// GSO frames, busy polling, coalescing, the adaptive walk). Short runs; counts, not durations,
// except where a duration is the signature (a timer's lower bound on RTT).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineResult } from '../src/engine/index.js';
import { PRESETS, RFC_ROWS, resolvePolicy, type PolicyConfig } from '../src/policy/index.js';
import { txLayoutOf } from '../src/engine/workloads/net-common.js';
import { notAppliedOf } from '../src/study/measure.js';

type Dir = 'g2h' | 'h2g';

function engineShape(p: PolicyConfig): { queues: { size: number; eventIdx: boolean }[]; arenaBytes: number } {
  const size = p.dataPath.txRingSize;
  const eventIdx = p.interrupts.mode === 'eventIdx';
  return { queues: [{ size, eventIdx }, { size, eventIdx }], arenaBytes: Math.max(8 << 20, 2 * size * (p.dataPath.gso ? 68 << 10 : 4 << 10)) };
}

const STREAM_BYTES = 300_000;

async function stream(preset: string | Record<string, unknown>, direction: Dir, totalBytes = STREAM_BYTES): Promise<EngineResult> {
  const p = resolvePolicy(preset);
  const params = { ...(typeof preset === 'string' ? { preset } : { policy: preset }), direction, totalBytes, verify: true, msgBytes: 16384 };
  return Engine.run({ workload: 'net-stream', ...engineShape(p), params, timeoutMs: 20_000 });
}

async function ping(preset: string | Record<string, unknown>, direction: Dir, count: number): Promise<EngineResult> {
  const p = resolvePolicy(preset);
  const params = { ...(typeof preset === 'string' ? { preset } : { policy: preset }), direction, count, timeoutMs: 10_000 };
  return Engine.run({ workload: 'net-ping', ...engineShape(p), params, timeoutMs: 20_000 });
}

function assertStreamIntact(r: EngineResult, direction: Dir, label: string, totalBytes = STREAM_BYTES): void {
  const rx = direction === 'g2h' ? r.host : r.guest;
  const tx = direction === 'g2h' ? r.guest : r.host;
  assert.equal(r.guest.errors + r.host.errors, 0, `${label}: ${r.guest.firstError ?? r.host.firstError}`);
  assert.equal(rx.extra.payloadBytes, totalBytes, `${label}: every payload byte arrived`);
  assert.equal(rx.extra.verifyErrors, 0, `${label}: no byte or checksum differed`);
  assert.equal(rx.extra.dataFrames, tx.extra.dataFrames, `${label}: frames received = frames sent (none lost or duplicated)`);
  assert.equal(r.host.extra['dev.txDropped'], 0, `${label}: the device dropped nothing`);
  assert.equal(r.host.extra['dev.rxDropped'], 0, `${label}: no rx frame dropped`);
}

function assertPingIntact(r: EngineResult, direction: Dir, count: number, label: string): number[] {
  const pinger = direction === 'g2h' ? r.guest : r.host;
  assert.equal(r.guest.errors + r.host.errors, 0, `${label}: ${r.guest.firstError ?? r.host.firstError}`);
  assert.equal(pinger.extra.sent, count, label);
  assert.equal(pinger.extra.received, count, `${label}: every echo answered`);
  assert.equal(pinger.extra.lost, 0, label);
  assert.equal(pinger.extra.late, 0, label);
  assert.equal(pinger.extra.badData, 0, label);
  return pinger.series!.rttUs!;
}

const isTimer = (p: PolicyConfig): boolean => p.tx.kind === 'timer' && (p.tx.intervalUs > 0 || p.tx.minRearmUs > 0);

for (const name of Object.keys(PRESETS)) {
  test(`${name}: net-stream both ways and net-ping both ways deliver everything once, intact, with the policy's counters`, async () => {
    const p = PRESETS[name]!;
    let busyPolls = 0;
    for (const direction of ['g2h', 'h2g'] as const) {
      const s = await stream(name, direction);
      assertStreamIntact(s, direction, `${name} stream ${direction}`);
      const h = s.host.extra;
      const g = s.guest.extra;
      assert.equal(h.policyNotApplied, undefined);
      assert.ok(!Object.keys(h).some((k) => k.startsWith('policyNotApplied.')), `${name}: every setting applied (${Object.keys(h).filter((k) => k.startsWith('policyNotApplied.'))})`);
      assert.ok(h.devFlushes! > 0 && h.devFlushPackets! >= h.devFlushes!, `${name}: flush batches are reported`);
      if (p.tx.kind === 'bh') assert.equal(h.timerFires, 0, `${name}: bh never arms a timer`);
      // The global lock is taken only when the policy models it, on both sides.
      if (p.dataPath.lock === 'none') {
        assert.equal(h.devLockAcquisitions, undefined);
        assert.equal(g.drvLockAcquisitions, undefined);
      } else {
        assert.ok(h.devLockAcquisitions! > 0 && g.drvLockAcquisitions! > 0, `${name}: both sides took the lock`);
      }
      if (p.dataPath.lock === 'dropped' && direction === 'h2g') {
        assert.ok(h.devLockAcquisitions! >= h['dev.rxFrames']!, `${name}: the lock is retaken after every backend read`);
      }
      // Two copies host → guest: every rx frame went through the staging buffer; one copy: none.
      if (p.dataPath.copies === 2) assert.ok(h['dev.rxStagedFrames']! >= h['dev.rxFrames']!, `${name}: ${h['dev.rxStagedFrames']} staged for ${h['dev.rxFrames']} frames`);
      else assert.equal(h['dev.rxStagedFrames'], 0);
      const sender = direction === 'g2h' ? g : h;
      if (p.dataPath.gso) assert.ok(sender.gsoFrames! > 0, `${name}: GSO frames sent`);
      else assert.equal(sender.gsoFrames, 0, `${name}: no GSO frames without GSO`);
      if (p.interrupts.mode === 'flags' || p.interrupts.mode === 'eventIdx') assert.equal(h.irqForced, 0, `${name}: the driver's suppression is honoured`);
      // A stream on a loaded machine may never find the ring empty (nothing to busy-poll for);
      // the pings below must, between echoes, so busy polling is asserted over all runs.
      busyPolls += h.busyPollHits! + h.busyPollMisses!;
      if (p.adaptive !== null && direction === 'g2h') assert.ok(h.adaptiveSamples !== undefined, `${name}: the adaptive walk reports`);
    }
    for (const direction of ['g2h', 'h2g'] as const) {
      const count = 20;
      const r = await ping(name, direction, count);
      const rtts = assertPingIntact(r, direction, count, `${name} ping ${direction}`);
      const h = r.host.extra;
      busyPolls += h.busyPollHits! + h.busyPollMisses!;
      if (isTimer(p)) {
        // A lone echo on the tx ring arms the timer and waits for it (the request for g2h, the
        // reply for h2g). Only the first may leave early: it follows the ARP reply/request
        // closely, and a second kick while armed flushes at once under 'flushNow'.
        assert.ok(h.timerArms! >= count, `${name} ping ${direction}: ${h.timerArms} timer arms for ${count} echoes`);
        assert.ok(h.timerFires! >= count - 1, `${name} ping ${direction}: ${h.timerFires} timer fires for ${count} echoes`);
        assert.ok(h.timerLatenessMeanUs! >= 0);
      } else assert.equal(h.timerFires, 0);
      if (p.tx.kind === 'timer' && p.tx.minRearmUs === 0 && p.tx.intervalUs > 0) {
        const min = Math.min(...rtts.slice(1)); // the first may leave with the ARP frame's flush (above)
        assert.ok(min >= p.tx.intervalUs, `${name} ping ${direction}: min RTT ${min.toFixed(1)} µs below the ${p.tx.intervalUs} µs timer`);
      }
    }
    if (p.busyPoll.busyUs > 0) assert.ok(busyPolls > 0, `${name}: the device busy-polled`);
    else assert.equal(busyPolls, 0);
  });
}

test('each RFC row applied alone runs net-stream intact with the row change in effect', async () => {
  for (const name of RFC_ROWS.slice(1)) {
    const s = await stream(`${name}-alone`, 'h2g', STREAM_BYTES);
    assertStreamIntact(s, 'h2g', `${name}-alone`);
  }
});

test('event idx interrupts fewer times per packet than the per-buffer legacy rule on the same data path', async () => {
  const common = { base: 'vhost', dataPath: { gso: false, mergeableRxBuffers: false } };
  const per = (r: EngineResult): number => r.host.rings / r.host.extra.dataFrames!;
  // The per-buffer rule interrupts for every completion while the guest has tx interrupts on,
  // which it has only while it waits for completions: a run in which the guest never waited
  // (scheduling) gives both rules the same few interrupts. So up to three pairs of runs, each
  // intact; event idx must come out lower in one of them.
  const seen: string[] = [];
  for (let attempt = 0; attempt < 3; attempt++) {
    const legacy = await stream({ ...common, interrupts: { mode: 'legacyPerBuffer', publishBatch: 1, driverEnable: 'immediate', coalesce: null } }, 'g2h', 1_000_000);
    const evidx = await stream({ ...common, interrupts: { mode: 'eventIdx', publishBatch: 1, driverEnable: 'delayed', coalesce: null } }, 'g2h', 1_000_000);
    assert.equal(legacy.guest.errors + legacy.host.errors + evidx.guest.errors + evidx.host.errors, 0);
    seen.push(`event idx ${per(evidx).toFixed(3)} vs per-buffer ${per(legacy).toFixed(3)}`);
    if (per(evidx) < per(legacy)) return;
  }
  assert.fail(`event idx never interrupted less per packet: ${seen.join('; ')}`);
});

test('rx kicks: the always rule never suppresses a refill kick, the only-when-starved rule does', async () => {
  // A ping: one rx buffer per echo, so the device always still has buffers when the guest
  // refills (at 32 free of 128): the only-when-starved rule keeps refill kicks off throughout.
  const base = { base: 'rfc-notify-on-empty' };
  const always = await ping({ ...base, rxKicks: 'always' }, 'g2h', 200);
  const starved = await ping({ ...base, rxKicks: 'onlyWhenStarved' }, 'g2h', 200);
  assertPingIntact(always, 'g2h', 200, 'always');
  assertPingIntact(starved, 'g2h', 200, 'onlyWhenStarved');
  assert.equal(always.guest.extra.rxKicksSuppressed, 0);
  assert.ok(always.guest.extra.rxKicks! > 0);
  assert.ok(starved.guest.extra.rxKicksSuppressed! > 0, `suppressed refill kicks: ${starved.guest.extra.rxKicksSuppressed}`);
});

test('coalescing fires by packet count or by time under vhost-coalesce', async () => {
  const r = await stream('vhost-coalesce', 'h2g', 1_000_000);
  assert.ok(r.host.extra.coalescePacketFires! + r.host.extra.coalesceTimeFires! > 0);
});

test('a setting the net path cannot apply is reported, never silently dropped', async () => {
  const r = await stream({ base: 'rfc-baseline', dataPath: { segmentBytes: 2048 } }, 'g2h');
  assert.equal(r.host.extra['policyNotApplied.dataPath.segmentBytes'], 1);
  assert.equal(r.guest.extra['policyNotApplied.dataPath.segmentBytes'], 1);
  const e = await Engine.run({ workload: 'net-stream', queues: [{ size: 256 }, { size: 256 }], params: { preset: 'vhost', eventIdx: false, direction: 'g2h', totalBytes: 100_000 }, timeoutMs: 20_000 });
  assert.equal(e.host.extra['policyNotApplied.interrupts.mode'], 1, 'eventIdx: false overrides the eventIdx rule');
  assert.equal(e.host.extra.irqForced, 0);
});

test('the policy data path picks the tx layout: header apart, 4 KiB pages or inline', () => {
  assert.equal(txLayoutOf(PRESETS['rfc-baseline']!), 'pages');
  assert.equal(txLayoutOf(resolvePolicy({ base: 'rfc-baseline', dataPath: { segmentBytes: 0 } })), 'header-apart');
  assert.equal(txLayoutOf(PRESETS.vhost!), 'inline');
});

test('the study lists the policy settings a row did not apply, from either side of any cell', () => {
  assert.deepEqual(notAppliedOf([{ 'guest.policyNotApplied.dataPath.txRingSize': 1, 'host.kicks': 3 }, undefined, { 'host.policyNotApplied.dataPath.segmentBytes': 1, 'host.policyNotApplied.dataPath.txRingSize': 1 }]), [
    'dataPath.segmentBytes',
    'dataPath.txRingSize',
  ]);
  assert.deepEqual(notAppliedOf([{ 'host.timerFires': 2 }]), []);
});
