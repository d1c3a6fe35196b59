// virtio-net on the packed ring (virtio 1.2 §2.8) across two real worker threads: the one
// NetDevice and NetDriver, unchanged, over PackedDeviceQueue/PackedDriverQueue. net-stream both
// directions (GSO and mergeable buffers, big rx buffers in indirect tables, page-split tx, with
// and without IN_ORDER) with every payload byte verified and the exact byte count checked, and
// net-ping both directions with every echo answered.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../src/engine/index.js';

type Q = { size: number; ring: 'packed'; indirect?: boolean; inOrder?: boolean; eventIdx?: boolean };
const packed = (size: number, extra: Partial<Q> = {}): Q[] => [
  { size, ring: 'packed', ...extra },
  { size, ring: 'packed', ...extra },
];

const STREAMS: { name: string; params: Record<string, unknown>; queues: Q[] }[] = [
  { name: 'g2h gso mergeable', params: { direction: 'g2h', gso: true, mergeable: true, totalBytes: 6_000_000 }, queues: packed(256) },
  { name: 'h2g gso mergeable', params: { direction: 'h2g', gso: true, mergeable: true, totalBytes: 6_000_000 }, queues: packed(256) },
  { name: 'h2g small buffers, queue size 100', params: { direction: 'h2g', gso: false, mergeable: false, totalBytes: 2_000_000 }, queues: packed(100) },
  { name: 'g2h page-split tx frames in indirect tables', params: { direction: 'g2h', gso: true, txLayout: 'pages', totalBytes: 4_000_000 }, queues: packed(256, { indirect: true }) },
  { name: 'h2g big rx buffers in indirect tables', params: { direction: 'h2g', gso: true, mergeable: false, totalBytes: 4_000_000 }, queues: packed(256, { indirect: true }) },
  { name: 'g2h with IN_ORDER', params: { direction: 'g2h', gso: true, mergeable: true, totalBytes: 4_000_000 }, queues: packed(256, { inOrder: true }) },
  { name: 'h2g with IN_ORDER, mergeable', params: { direction: 'h2g', gso: true, mergeable: true, totalBytes: 4_000_000 }, queues: packed(256, { inOrder: true }) },
];

for (const s of STREAMS) {
  test(`packed net-stream ${s.name}: every payload byte arrives once, in order, intact`, async () => {
    const direction = s.params.direction as string;
    const total = s.params.totalBytes as number;
    const r = await Engine.run({ workload: 'net-stream', queues: s.queues, params: { ...s.params, verify: true, msgBytes: 50_000, windowBytes: 1 << 20 }, timeoutMs: 60_000 });
    const rx = direction === 'g2h' ? r.host : r.guest;
    const tx = direction === 'g2h' ? r.guest : r.host;
    assert.equal(rx.errors, 0, rx.firstError);
    assert.equal(tx.errors, 0, tx.firstError);
    assert.equal(rx.bytes, total, 'receiver counted every payload byte');
    assert.equal(rx.extra.payloadBytes, total);
    assert.equal(tx.extra.sentBytes, total);
    assert.ok((rx.extra.acksSent ?? 0) > 0, 'ACK frames flowed back');
    for (const side of [r.guest, r.host]) {
      for (const [k, v] of Object.entries(side.extra)) {
        if (/Drops|Dropped|rxErrors|queueErrors|parseErrors|controlDrops/.test(k)) assert.equal(v, 0, `${side.role} ${k}`);
      }
    }
  });
}

for (const direction of ['g2h', 'h2g']) {
  test(`packed net-ping ${direction}: every echo request is answered`, async () => {
    const count = 300;
    const r = await Engine.run({ workload: 'net-ping', queues: packed(64, { eventIdx: true }), params: { direction, count, timeoutMs: 10_000 }, timeoutMs: 30_000 });
    const pinger = direction === 'g2h' ? r.guest : r.host;
    assert.equal(pinger.errors, 0, pinger.firstError);
    assert.equal(pinger.extra.sent, count);
    assert.equal(pinger.extra.received, count);
    assert.equal(pinger.extra.lost, 0);
    assert.equal(pinger.extra.badData, 0);
  });
}
