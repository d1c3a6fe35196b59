// virtio-net across two real worker threads through the Engine: net-stream both directions with
// and without GSO and mergeable buffers (big and small buffers otherwise), with every payload
// byte verified and the exact byte count checked, the device's software GSO path, page-split tx
// with indirect tables, a deadline-limited run, and net-ping both directions (IPv4 and IPv6).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, type EngineResult } from '../src/engine/index.js';

const QUEUES = [{ size: 256 }, { size: 256 }];

function receiverOf(r: EngineResult, direction: string): EngineResult['guest'] {
  return direction === 'g2h' ? r.host : r.guest;
}
function senderOf(r: EngineResult, direction: string): EngineResult['guest'] {
  return direction === 'g2h' ? r.guest : r.host;
}

const STREAMS: { name: string; params: Record<string, unknown>; queues?: { size: number; indirect?: boolean }[] }[] = [];
for (const direction of ['g2h', 'h2g']) {
  for (const gso of [true, false]) {
    for (const mergeable of [true, false]) {
      STREAMS.push({ name: `${direction} gso=${gso} mergeable=${mergeable}`, params: { direction, gso, mergeable, totalBytes: gso ? 6_000_000 : 2_000_000 } });
    }
  }
}
STREAMS.push({ name: 'g2h through the device software GSO (backend without TSO)', params: { direction: 'g2h', gso: true, backendGso: false, totalBytes: 3_000_000 } });
STREAMS.push({ name: 'g2h with page-split tx frames in indirect tables', params: { direction: 'g2h', gso: true, txLayout: 'pages', totalBytes: 4_000_000 }, queues: [{ size: 256, indirect: true }, { size: 256, indirect: true }] });
STREAMS.push({ name: 'h2g GSO into 64 KiB mergeable buffers (dataPath.mergeableBufBytes)', params: { direction: 'h2g', gso: true, mergeable: true, policy: { base: 'vhost', dataPath: { mergeableBufBytes: 65562 } }, totalBytes: 4_000_000 } });
STREAMS.push({ name: 'h2g into big rx buffers in indirect tables', params: { direction: 'h2g', gso: true, mergeable: false, totalBytes: 4_000_000 }, queues: [{ size: 256, indirect: true }, { size: 256, indirect: true }] });

for (const s of STREAMS) {
  test(`net-stream ${s.name}: every payload byte arrives once, in order, intact`, async () => {
    const direction = s.params.direction as string;
    const total = s.params.totalBytes as number;
    // A send window smaller than the transfer: the sender can only finish by processing ACKs
    // (with the default 4 MiB window a 3 MB run may end before the sender reads any).
    const r = await Engine.run({ workload: 'net-stream', queues: s.queues ?? QUEUES, params: { ...s.params, verify: true, msgBytes: 50_000, windowBytes: 1 << 20 }, timeoutMs: 30_000 });
    const rx = receiverOf(r, direction);
    const tx = senderOf(r, direction);
    assert.equal(rx.errors, 0, rx.firstError);
    assert.equal(tx.errors, 0, tx.firstError);
    assert.equal(rx.bytes, total, 'receiver counted every payload byte');
    assert.equal(rx.extra.payloadBytes, total);
    assert.equal(tx.extra.sentBytes, total);
    assert.ok((rx.extra.acksSent ?? 0) > 0, 'ACK frames flowed back');
    assert.ok((tx.extra.acksIn ?? 0) > 0);
    assert.equal(tx.extra.badAcks, 0);
    for (const side of [r.guest, r.host]) {
      for (const [k, v] of Object.entries(side.extra)) {
        if (/Drops|Dropped|rxErrors|queueErrors|parseErrors|controlDrops/.test(k)) assert.equal(v, 0, `${side.role} ${k}`);
      }
    }
    if (s.params.policy !== undefined) {
      // Every frame (at most 12 + 65550 bytes) fits one 65562-byte buffer: num_buffers is 1.
      assert.ok(rx.extra['drv.rxFrames']! > 0);
      assert.equal(rx.extra['drv.rxBuffersReaped'], rx.extra['drv.rxFrames'], 'one buffer per frame');
    }
    if (s.params.backendGso === false) assert.ok(r.host.extra['dev.txSwSegments']! > 0, 'the device segmented');
    if (s.params.gso === true) assert.ok((tx.extra.gsoFrames ?? 0) > 0, 'GSO frames were sent');
  });
}

test('net-stream runs until the deadline without totalBytes and reports payload bytes in the window', async () => {
  // Worker start-up counts against durationMs, so leave room for a loaded machine.
  const r = await Engine.run({ workload: 'net-stream', queues: QUEUES, params: { direction: 'h2g', warmupMs: 50 }, durationMs: 1500, timeoutMs: 20_000 });
  assert.equal(r.guest.errors, 0, r.guest.firstError);
  assert.ok(r.guest.windowBytes > 0, 'payload arrived inside the window');
  assert.ok(r.guest.windowBytes <= r.guest.bytes, 'the window excludes the warm-up');
  assert.ok(r.guest.windowMs > 0 && r.guest.windowMs < r.elapsedMs);
  assert.ok(r.host.bytes >= r.guest.bytes, 'the sender sent at least what arrived');
});

for (const direction of ['g2h', 'h2g']) {
  for (const v6 of [false, true]) {
    test(`net-ping ${direction}${v6 ? ' over ICMPv6' : ''}: every echo request is answered and timed`, async () => {
      const count = 400;
      const r = await Engine.run({ workload: 'net-ping', queues: QUEUES, params: { direction, count, v6, timeoutMs: 10_000 }, timeoutMs: 30_000 });
      const pinger = direction === 'g2h' ? r.guest : r.host;
      const other = direction === 'g2h' ? r.host : r.guest;
      assert.equal(pinger.errors, 0, pinger.firstError);
      assert.equal(pinger.extra.sent, count);
      assert.equal(pinger.extra.received, count);
      assert.equal(pinger.extra.lost, 0);
      assert.equal(pinger.extra.badData, 0);
      assert.equal(pinger.extra.arpRepliesIn, 1, 'the ARP request was answered');
      const rtts = pinger.series?.rttUs ?? [];
      assert.equal(rtts.length, count);
      assert.ok(rtts.every((x) => x > 0 && x < 1_000_000));
      assert.equal(other.extra[direction === 'g2h' ? 'host.echoRequestsIn' : 'guest.echoRequestsIn'], count);
    });
  }
}

test('net-ping counts a lost request when the reply does not come within timeoutMs', async () => {
  // A 1 µs timeout is shorter than any round trip through two threads, so requests time out.
  const r = await Engine.run({ workload: 'net-ping', queues: QUEUES, params: { direction: 'g2h', count: 50, timeoutMs: 0.001 }, wait: { strategy: 'block' }, timeoutMs: 30_000 });
  const g = r.guest;
  assert.equal(g.extra.sent, 50);
  assert.equal((g.extra.received ?? 0) + (g.extra.lost ?? 0), 50);
  assert.ok((g.extra.lost ?? 0) > 0, 'a 1 µs timeout loses requests');
});

test('net-ping with a 9000-byte MTU carries 8952-byte echo payloads', async () => {
  const r = await Engine.run({ workload: 'net-ping', queues: QUEUES, params: { direction: 'g2h', count: 50, mtu: 9000, payloadBytes: 8952, timeoutMs: 10_000 }, timeoutMs: 30_000 });
  assert.equal(r.guest.extra.received, 50);
  assert.equal(r.guest.errors, 0, r.guest.firstError);
});

for (const gso of [true, false]) {
  test(`malformed tx frames mixed into a ${gso ? 'GSO' : 'MSS'} stream are dropped with reasons while every stream byte still arrives`, async () => {
    const total = 3_000_000;
    const r = await Engine.run({ workload: 'net-stream', queues: QUEUES, params: { direction: 'g2h', gso, totalBytes: total, verify: true, injectBadTxEvery: 3 }, timeoutMs: 30_000 });
    assert.equal(r.host.errors, 0, r.host.firstError);
    assert.equal(r.host.bytes, total);
    const injected = r.guest.extra.injectedBadTx!;
    assert.ok(injected > 10);
    assert.equal(r.host.extra['dev.txDropped'], injected, 'every malformed frame dropped, nothing else');
    const reasons = Object.keys(r.host.extra).filter((k) => k.startsWith('dev.txDrops.'));
    assert.ok(reasons.length >= 4, `several reasons counted: ${reasons.join(', ')}`);
    assert.equal(r.host.extra['dev.queueErrors'], 0, 'the queue kept running');
  });
}
