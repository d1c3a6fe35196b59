// Tracing the virtio-net path across real worker threads (net-stream and net-ping through the
// engine): every complete traced tx frame has its required stages in time order and they add up
// to its end-to-end time; both sides agree on every frame's identity (no identity loss, no
// length mismatch); sampling 1 in N traces exactly the frames with seq % N === 0; the device's
// drops carry their reason and the frame's identity; policy events (notifications, tx timer)
// are recorded; an untraced run reports nothing about tracing. In one thread: a side whose count
// no longer matches its ring position stops tracing and records an identity error (its frames
// end incomplete, never paired with another frame); a packet whose two sides disagree on the
// length is counted mismatched and left out.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineOptions, type EngineResult } from '../src/engine/index.js';
import {
  DROP_REASONS,
  ERROR_CODES,
  PACKET_POINTS,
  REQUIRED_POINTS,
  TraceKind,
  TraceReader,
  TraceSession,
  Tracer,
  allocateTraceBuffer,
  buildTimelines,
  clockOriginHere,
  decodeChunks,
  stagesOf,
  type TraceCollected,
  type TraceOptions,
  type TraceRecord,
} from '../src/trace/index.js';
import type { WaitStrategy } from '../src/notify/index.js';
import { makeNetRig, netDriver } from './support/net-pair.js';
import { emptyNetHdr } from '../src/net/header.js';

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

for (const block of [1, 32]) {
  test(`sampling 1 in N (blocks of ${block}) traces exactly the tx frames whose block of sequence numbers is a multiple of N`, async () => {
    const n = 7;
    const { r, c } = await tracedRun(streamOptions({}, 'hybrid'), { sample: n, sampleBlock: block });
    const txFrames = r.guest.extra['drv.txFrames']!;
    const kept = (s: number): boolean => Math.floor(s / block) % n === 0;
    const expected = Array.from({ length: txFrames }, (_, s) => s).filter(kept).length;
    assert.equal(c.mismatched, 0);
    assert.equal(c.outOfOrder, 0);
    assert.ok(c.packets.every((p) => kept(p.seq)));
    assert.equal(c.packets.length + c.incomplete, expected, 'every sampled frame, and no other');
    assert.ok(c.packets.length > 0);
    checkTimelines(c);
    // Batch points only around sampled frames: at most add, publish, kick, wake and reap each.
    const guestPacketRecords = c.records.guest - c.events.filter((e) => e.side === 'guest').length;
    assert.ok(guestPacketRecords <= expected * 5, `guest packet records ${guestPacketRecords}`);
  });
}

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
  const r = await Engine.run({ workload: 'net-ping', queues: QUEUES, params: { direction: 'g2h', count, timeoutMs: 10_000 }, wait: { strategy: 'block' }, trace: session, timeoutMs: 30_000 });
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

// ---- identity checks, in one thread (NetDriver and NetDevice over plain memory) ----

function tracerPair(): { guest: Tracer; host: Tracer; read: () => { guest: TraceRecord[]; host: TraceRecord[] } } {
  const origin = clockOriginHere();
  const gs = allocateTraceBuffer(1024);
  const hs = allocateTraceBuffer(1024);
  const guest = new Tracer({ sab: gs, origin, everyN: 1, level: 10 });
  const host = new Tracer({ sab: hs, origin, everyN: 1, level: 10 });
  return {
    guest,
    host,
    read: () => {
      guest.flush();
      host.flush();
      return { guest: decodeChunks('guest', [new TraceReader(gs).read()]), host: decodeChunks('host', [new TraceReader(hs).read()]) };
    },
  };
}

const frame = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i < 12 ? 0x52 : i & 0xff));

test('a driver whose frame count no longer matches its tx avail position stops tracing and records an identity error', () => {
  const t = tracerPair();
  const r = makeNetRig({ device: { tracer: t.host } });
  const d = netDriver(r, { tracer: t.guest });
  /** One loop round as the loops do it: publish point, publish, device drain, used point, publish used, reap. */
  const round = (reap: boolean): void => {
    t.guest.publish(1, TX_QUEUE);
    d.flushTx();
    const n = r.device.processTx(64);
    t.host.used(n, TX_QUEUE);
    r.txq.publishUsed();
    // (The stray chain's buffer is not the driver's: it is not reaped into its pool.)
    if (reap) d.reapTx();
  };
  for (let k = 0; k < 3; k++) assert.ok(d.transmit(frame(100 + k), 0, 100 + k, emptyNetHdr()));
  round(true);
  assert.equal(d.traceIdentityLost, false);
  // A chain added to the tx queue around the driver: the driver's count falls behind.
  d.txq.add1(r.dataBase + r.dataBytes - 4096, 12 + 60, false, r.dataBase + r.dataBytes - 4096);
  assert.ok(d.transmit(frame(200), 0, 200, emptyNetHdr()));
  round(false);
  assert.equal(d.traceIdentityLost, true);
  assert.equal(r.device.traceIdentityLost, false, "the device's own count still matches its ring");
  const { guest, host } = t.read();
  const errors = guest.filter((e) => e.kind === TraceKind.Error);
  assert.equal(errors.length, 1);
  assert.equal(ERROR_CODES[errors[0]!.arg], 'identity');
  const c = buildTimelines(guest, host);
  assert.deepEqual(c.packets.map((p) => p.seq), [0, 1, 2], 'the frames before the fault are complete');
  assert.deepEqual(c.packets.map((p) => p.lenBytes), [100, 101, 102]);
  assert.equal(c.incomplete, 2, 'the stray chain and the frame after it: device points only');
  assert.equal(c.mismatched, 0);
});

test('a device whose pop count no longer matches its avail position stops tracing; the frames end incomplete', () => {
  const t = tracerPair();
  const r = makeNetRig({ device: { tracer: t.host } });
  const d = netDriver(r, { tracer: t.guest });
  for (let k = 0; k < 2; k++) assert.ok(d.transmit(frame(100), 0, 100, emptyNetHdr()));
  t.guest.publish(2, TX_QUEUE);
  d.flushTx();
  // A chain popped around the device: its count falls behind the ring.
  const c0 = r.txq.pop();
  assert.ok(c0);
  r.txq.addUsed(c0.head, 0);
  const n = r.device.processTx(64);
  assert.equal(n, 1);
  t.host.used(2, TX_QUEUE);
  r.txq.publishUsed();
  assert.equal(d.reapTx(), 2);
  assert.equal(r.device.traceIdentityLost, true);
  const { guest, host } = t.read();
  assert.ok(host.some((e) => e.kind === TraceKind.Error && ERROR_CODES[e.arg] === 'identity'));
  assert.equal(host.filter((e) => e.kind === TraceKind.Pop).length, 0, 'no pop recorded after the fault');
  const c = buildTimelines(guest, host);
  assert.equal(c.packets.length, 0);
  assert.equal(c.incomplete, 2);
});

test('a packet whose driver and device lengths differ is counted mismatched and left out', () => {
  const rec = (side: 'guest' | 'host', kind: TraceKind, tNs: number, id: number | undefined, arg = 0): TraceRecord => ({ side, kind, queue: 1, id, tNs, arg });
  const guest = [rec('guest', TraceKind.Add, 0, 1), rec('guest', TraceKind.Add, 1, 2), rec('guest', TraceKind.Publish, 2, undefined, 2), rec('guest', TraceKind.Reap, 50, 1, 100), rec('guest', TraceKind.Reap, 51, 2, 100)];
  const host = [rec('host', TraceKind.Pop, 10, 1), rec('host', TraceKind.Done, 11, 1, 100), rec('host', TraceKind.Pop, 12, 2), rec('host', TraceKind.Done, 13, 2, 60), rec('host', TraceKind.Used, 14, undefined, 2)];
  const c = buildTimelines(guest, host);
  assert.deepEqual(c.packets.map((p) => p.seq), [1]);
  assert.equal(c.mismatched, 1);
  assert.equal(c.incomplete, 0);
});
