// Tracing the virtio-net path across real worker threads (net-stream and net-ping through the
// engine): every complete traced tx frame has its required stages in time order and they add up
// to its end-to-end time; both sides agree on every frame's identity (no identity loss, no
// length mismatch); sampling 1 in N traces exactly the frames with seq % N === 0; the device's
// drops carry their reason and the frame's identity; policy events (notifications, tx timer)
// are recorded; an untraced run reports nothing about tracing.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineOptions, type EngineResult } from '../src/engine/index.js';
import { DROP_REASONS, PACKET_POINTS, REQUIRED_POINTS, TraceKind, TraceSession, stagesOf, type TraceCollected, type TraceOptions } from '../src/trace/index.js';
import type { WaitStrategy } from '../src/notify/index.js';

const QUEUES = [{ size: 256 }, { size: 256 }];
const TX_QUEUE = 1;

function streamOptions(params: Record<string, unknown>, strategy: WaitStrategy, trace?: TraceSession): EngineOptions {
  return {
    workload: 'net-stream',
    queues: QUEUES,
    params: { direction: 'g2h', gso: false, msgBytes: 16384, windowBytes: 1 << 20, totalBytes: 2_000_000, ...params },
    wait: { strategy },
    ...(trace ? { trace } : {}),
    timeoutMs: 30_000,
  };
}

async function tracedRun(o: EngineOptions, opts: TraceOptions): Promise<{ r: EngineResult; c: TraceCollected }> {
  const session = new TraceSession(opts);
  const r = await Engine.run({ ...o, trace: session });
  assert.equal(r.guest.errors, 0, r.guest.firstError);
  assert.equal(r.host.errors, 0, r.host.firstError);
  return { r, c: session.finish() };
}

/** Asserts the timeline invariants of every complete packet; returns how many had each optional point. */
function checkTimelines(c: TraceCollected): Record<string, number> {
  const seen: Record<string, number> = {};
  for (const p of c.packets) {
    for (const k of REQUIRED_POINTS) assert.ok(p.points[k] !== undefined, `seq ${p.seq} has ${k}`);
    let prev = -Infinity;
    for (const k of PACKET_POINTS) {
      const v = p.points[k];
      if (v === undefined) continue;
      assert.ok(v >= prev, `seq ${p.seq}: ${k} at ${v} before the previous point at ${prev}`);
      prev = v;
      seen[k] = (seen[k] ?? 0) + 1;
    }
    const stages = stagesOf(p);
    const sum = stages.reduce((a, s) => a + s.ns, 0);
    assert.ok(Math.abs(sum - p.e2eNs) < 1e-3, `seq ${p.seq}: stages sum ${sum} vs e2e ${p.e2eNs}`);
    assert.ok(stages.every((s) => s.ns >= 0));
    assert.equal(p.queue, TX_QUEUE, 'tx queue frames only');
  }
  return seen;
}

function eventsOf(c: TraceCollected, kind: TraceKind) {
  return c.events.filter((e) => e.kind === kind);
}

for (const strategy of ['block', 'hybrid'] as WaitStrategy[]) {
  test(`every complete traced tx frame of a net-stream g2h run has all required stages in order, adding up to its end-to-end time (${strategy} waits)`, async () => {
    const { r, c } = await tracedRun(streamOptions({}, strategy), { sample: 1 });
    const txFrames = r.guest.extra['drv.txFrames']!;
    assert.ok(txFrames > 1000, `frames sent: ${txFrames}`);
    assert.deepEqual(c.dropped, { guest: 0, host: 0 });
    assert.equal(r.guest.extra.traceIdentityLost, 0);
    assert.equal(r.host.extra.traceIdentityLost, 0);
    assert.equal(c.mismatched, 0, 'driver and device agree on every frame length');
    assert.equal(c.outOfOrder, 0, 'cross-thread points in causal order');
    // Every committed frame is a traced packet, complete or (in flight at the stop) incomplete.
    assert.equal(c.packets.length + c.incomplete, txFrames);
    assert.ok(c.incomplete <= QUEUES[TX_QUEUE]!.size, `incomplete ${c.incomplete}: at most a ring of frames in flight`);
    assert.equal(new Set(c.packets.map((p) => p.seq)).size, c.packets.length, 'each frame once');
    assert.ok(c.packets.every((p) => p.seq < txFrames));
    assert.ok(c.packets.every((p) => p.lenBytes >= 54 && p.lenBytes <= 1514), 'Ethernet frame lengths');
    const seen = checkTimelines(c);
    if (strategy === 'block') assert.ok((seen.kick ?? 0) > 0, 'some frames were carried by a kick');
    assert.ok(eventsOf(c, TraceKind.NotifyEnabled).length > 0, 'notification switches recorded');
    assert.ok(eventsOf(c, TraceKind.NotifyDisabled).length > 0);
  });
}

test('sampling 1 in N traces exactly the tx frames whose sequence number is a multiple of N', async () => {
  const n = 7;
  const { r, c } = await tracedRun(streamOptions({}, 'hybrid'), { sample: n });
  const txFrames = r.guest.extra['drv.txFrames']!;
  assert.equal(c.mismatched, 0);
  assert.equal(c.outOfOrder, 0);
  assert.ok(c.packets.every((p) => p.seq % n === 0));
  assert.equal(c.packets.length + c.incomplete, Math.ceil(txFrames / n), 'every sampled frame, and no other');
  assert.ok(c.packets.length > 0);
  checkTimelines(c);
  // Batch points only around sampled frames: at most add, publish, kick, wake and reap each.
  const guestPacketRecords = c.records.guest - c.events.filter((e) => e.side === 'guest').length;
  assert.ok(guestPacketRecords <= Math.ceil(txFrames / n) * 5, `guest packet records ${guestPacketRecords}`);
});

test('malformed tx frames are traced through the ring and each drop event names its reason and frame', async () => {
  const { r, c } = await tracedRun(streamOptions({ injectBadTxEvery: 5 }, 'hybrid'), { sample: 1 });
  const dropped = r.host.extra['dev.txDropped']!;
  assert.ok(dropped > 10);
  const drops = eventsOf(c, TraceKind.Drop).filter((e) => e.queue === TX_QUEUE);
  assert.equal(drops.length, dropped, 'one drop event per dropped frame');
  const txFrames = r.guest.extra['drv.txFrames']!;
  const bySeq = new Map(c.packets.map((p) => [p.seq, p]));
  for (const d of drops) {
    assert.ok(d.id !== undefined && d.id < txFrames, 'the drop names the frame');
    assert.notEqual(DROP_REASONS[d.arg], 'other', 'a reason');
    const p = bySeq.get(d.id);
    if (p !== undefined) assert.ok(d.tNs >= p.points.pop! && d.tNs <= p.points.done!, `seq ${d.id}: dropped between its pop and done`);
  }
  assert.equal(c.mismatched, 0);
  checkTimelines(c);
});

test('a tx timer policy records timer armed and fired events with their lateness', async () => {
  const { c } = await tracedRun(streamOptions({ preset: 'rfc-timer-50us' }, 'block'), { sample: 1 });
  const armed = eventsOf(c, TraceKind.TimerArmed);
  const fired = eventsOf(c, TraceKind.TimerFired);
  assert.ok(armed.length > 0, 'timer armed');
  assert.ok(fired.length > 0, 'timer fired');
  assert.ok(armed.every((e) => e.arg <= 60_000), 'due at most 50 µs ahead (less once the pass that armed it went on)');
  assert.ok(fired.every((e) => e.arg >= 0), 'lateness is never negative');
  assert.equal(c.mismatched, 0);
  checkTimelines(c);
});

test('a traced net-stream h2g run traces the guest ACK frames on the tx queue', async () => {
  const { r, c } = await tracedRun(streamOptions({ direction: 'h2g' }, 'hybrid'), { sample: 1 });
  assert.ok(c.packets.length > 0);
  assert.equal(c.packets.length + c.incomplete, r.guest.extra['drv.txFrames']);
  assert.equal(c.mismatched, 0);
  assert.equal(c.outOfOrder, 0);
  checkTimelines(c);
});

test('a traced net-ping g2h run traces every echo request with its stages', async () => {
  const count = 200;
  const session = new TraceSession({ sample: 1 });
  const r = await Engine.run({ workload: 'net-ping', queues: QUEUES, params: { direction: 'g2h', count, timeoutMs: 1000 }, wait: { strategy: 'block' }, trace: session, timeoutMs: 30_000 });
  assert.equal(r.guest.errors, 0, r.guest.firstError);
  assert.equal(r.guest.extra.received, count);
  const c = session.finish();
  // The ARP request and every echo request went out on the tx queue.
  assert.equal(c.packets.length + c.incomplete, r.guest.extra['drv.txFrames']);
  assert.ok(c.packets.length >= count - 1, `packets ${c.packets.length}`);
  assert.equal(c.mismatched, 0);
  assert.equal(c.outOfOrder, 0);
  const seen = checkTimelines(c);
  assert.ok((seen['driver-wake'] ?? 0) > 0, 'the driver slept between echoes');
});

test('an untraced net-stream run reports nothing about tracing', async () => {
  const r = await Engine.run(streamOptions({ totalBytes: 500_000 }, 'hybrid'));
  assert.equal(r.host.bytes, 500_000);
  for (const side of [r.guest, r.host]) {
    assert.equal(side.extra.traceIdentityLost, undefined);
    assert.equal(side.extra.traceDroppedRecords, undefined);
  }
});
