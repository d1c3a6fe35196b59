// NetDriver over plain memory against NetDevice in one thread: tx descriptor layouts (one
// descriptor, header apart, page pieces, indirect), completions and a full ring, loopback of
// frames byte-exact in mergeable/big/small rx modes, the NAPI budget, the refill threshold, and
// a hostile device (bad num_buffers, used length below the header, missing buffers).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeNetRig, netDriver, RecordingBackend, BASE_FEATURES, ALL_OFFLOADS } from './support/net-pair.js';
import { NetF } from '../src/net/features.js';
import { emptyNetHdr, encodeNetHdr, GsoType, NetHdrFlags, type VirtioNetHdr } from '../src/net/header.js';
import { writeToChain } from '../src/virtqueue/index.js';
import type { TxLayout, RxBufferMode } from '../src/net/driver.js';
import { NetError } from '../src/net/errors.js';

const HS = 12;

function frameOf(n: number, seed: number): Uint8Array {
  const f = Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
  f.set([0x52, 0x54, 0, 0xab, 0xcd, 0xef, 0x52, 0x54, 0, 0x12, 0x34, 0x56, 0x08, 0x00]);
  return f;
}

const NO_OFFLOAD: VirtioNetHdr = emptyNetHdr();

for (const [layout, indirect, want] of [
  ['inline', false, 1],
  ['header-apart', false, 2],
  ['pages', false, 1 + Math.ceil(10000 / 4096)],
  ['pages', true, 1 + Math.ceil(10000 / 4096)],
] as [TxLayout, boolean, number][]) {
  test(`tx layout ${layout}${indirect ? ' through an indirect table' : ''}: ${want} buffers, and the device gets the frame intact`, () => {
    const backend = new RecordingBackend();
    const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS, backend, indirect });
    const d = netDriver(r, { txLayout: layout });
    const f = frameOf(10000, 7);
    // A GSO frame (the backend takes GSO), so 10000 bytes are within the device's limit.
    const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 1460, csumStart: 34, csumOffset: 16 };
    assert.equal(d.transmit(f, 0, f.length, hdr), true);
    d.flushTx();
    const c = r.txq.pop();
    assert.ok(c);
    assert.equal(c.count, want);
    assert.equal(c.indirect, indirect);
    assert.equal(c.descriptors, indirect ? want + 1 : want);
    assert.equal(c.readableBytes, HS + f.length);
    assert.equal(c.writableBytes, 0);
    r.txq.addUsed(c.head, 0);
    // The same frame again, this time through the device.
    d.transmit(f, 0, f.length, hdr);
    d.flushTx();
    r.device.processTx(8);
    assert.deepEqual(backend.sent[0]!.frame, f);
    assert.equal(backend.sent[0]!.hdr.csumStart, 34);
    assert.equal(backend.sent[0]!.hdr.numBuffers, 0);
  });
}

test('a full tx ring refuses with txBusy until completions are reaped, then buffers are reused', () => {
  const r = makeNetRig({ size: 8, features: BASE_FEATURES });
  const d = netDriver(r, { txLayout: 'header-apart' });
  const f = frameOf(500, 1);
  let sent = 0;
  while (d.transmit(f, 0, f.length, NO_OFFLOAD)) sent++;
  assert.equal(sent, 4, '8 descriptors / 2 per frame');
  assert.equal(d.stats.txBusy, 1);
  d.flushTx();
  assert.equal(r.device.processTx(64), 4);
  r.device.flushTx();
  assert.equal(d.reapTx(), 4);
  assert.equal(d.txOutstanding, 0);
  assert.equal(d.transmit(f, 0, f.length, NO_OFFLOAD), true);
});

for (const [mode, features] of [
  ['mergeable', BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF],
  ['big', BASE_FEATURES | ALL_OFFLOADS],
  ['small', BASE_FEATURES],
] as [RxBufferMode, bigint][]) {
  test(`loopback in ${mode} rx mode: every frame arrives once, byte-exact, with its offload header`, () => {
    const backend = new RecordingBackend();
    const r = makeNetRig({ size: 256, features, backend });
    const got: { frame: Uint8Array; hdr: VirtioNetHdr }[] = [];
    const d = netDriver(r, { rxMode: mode, onReceive: (b, o, n, h) => got.push({ frame: b.slice(o, o + n), hdr: { ...h } }) });
    d.fillRx();
    d.flushRx();
    const gso = mode !== 'small';
    const sizes = gso ? [60, 1514, 4000, 4096 - HS, 4096 - HS + 1, 30000, 64294] : [60, 1000, 1514, 1518];
    sizes.forEach((n, i) => backend.offer(frameOf(n, i), n > 1518 ? { flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 16, gsoType: GsoType.TCPV4, gsoSize: 1460 } : {}));
    let rounds = 0;
    while (backend.queue.length > 0 && rounds++ < 50) {
      r.device.fillRx(64);
      r.device.flushRx();
      d.pollRx();
      d.flushRx();
    }
    assert.equal(got.length, sizes.length);
    sizes.forEach((n, i) => {
      assert.deepEqual(got[i]!.frame, frameOf(n, i), `frame ${i} (${n} bytes)`);
      assert.equal(got[i]!.hdr.gsoType, n > 1518 ? GsoType.TCPV4 : GsoType.NONE);
    });
    assert.equal(r.device.stats.rxDropped, 0);
    assert.deepEqual(d.stats.rxErrors, {});
    // The offload flags as received are counted (a peer's checksum offload shows in the counters).
    assert.equal(d.stats.rxNeedsCsum, sizes.filter((n) => n > 1518).length);
    assert.equal(d.stats.rxDataValid, 0);
  });
}

test('pollRx takes at most the NAPI budget; the rest waits for the next poll', () => {
  const backend = new RecordingBackend();
  const r = makeNetRig({ size: 256, features: BASE_FEATURES | NetF.MRG_RXBUF, backend });
  let got = 0;
  // rxPollBuffers above the budget: only the frame budget bounds this poll.
  const d = netDriver(r, { napiBudget: 64, rxPollBuffers: 256, onReceive: () => got++ });
  d.fillRx();
  d.flushRx();
  for (let i = 0; i < 100; i++) backend.offer(frameOf(200, i));
  assert.equal(r.device.fillRx(1000), 100);
  r.device.flushRx();
  assert.equal(d.pollRx(), 64);
  assert.equal(got, 64);
  assert.equal(d.stats.rxBudgetExhausted, 1);
  assert.equal(d.pollRx(), 36);
  assert.equal(got, 100);
});

test('mergeable rx: a poll takes back at most rxPollBuffers buffers (default refillThreshold), never splitting a frame; the rest waits for the next poll', () => {
  const backend = new RecordingBackend();
  const r = makeNetRig({ size: 256, features: BASE_FEATURES | NetF.MRG_RXBUF, backend });
  const seen: number[] = [];
  const d = netDriver(r, { napiBudget: 64, mergeableBufBytes: 512, onReceive: (_b, _off, len) => seen.push(len) });
  assert.equal(d.rxPollBuffers, d.refillThreshold);
  assert.equal(d.refillThreshold, 32);
  d.fillRx();
  d.flushRx();
  // 20 frames of 1400 bytes: 3 buffers of 512 bytes each (with the 12-byte header), 60 in all.
  for (let i = 0; i < 20; i++) backend.offer(frameOf(1400, i));
  assert.equal(r.device.fillRx(1000), 20);
  r.device.flushRx();
  const polls: number[] = [];
  for (let n = d.pollRx(); n > 0; n = d.pollRx()) polls.push(n);
  // 32 buffers cap: 11 frames (33 buffers: the frame that crosses the cap is finished), then 9.
  assert.deepEqual(polls, [11, 9]);
  assert.equal(seen.length, 20);
  assert.ok(seen.every((len) => len === 1400), 'every frame whole');
  assert.throws(() => netDriver(makeNetRig({ size: 16, features: BASE_FEATURES | NetF.MRG_RXBUF }), { rxPollBuffers: 0 }), NetError);
});

test('the rx ring is refilled only once refillThreshold descriptors are free', () => {
  const backend = new RecordingBackend();
  const r = makeNetRig({ size: 64, features: BASE_FEATURES | NetF.MRG_RXBUF, backend });
  const d = netDriver(r, { refillThreshold: 16 });
  assert.equal(d.fillRx(), 64);
  d.flushRx();
  const deliver = (n: number): void => {
    for (let i = 0; i < n; i++) backend.offer(frameOf(100, i));
    r.device.fillRx(1000);
    r.device.flushRx();
  };
  deliver(10);
  d.pollRx();
  assert.equal(d.rxq.numFree, 10, 'below the threshold: no refill');
  assert.equal(d.stats.rxRefills, 1);
  deliver(6);
  d.pollRx();
  assert.equal(d.rxq.numFree, 0, 'threshold reached: refilled');
  assert.equal(d.stats.rxRefills, 2);
});

test('a hostile device: num_buffers 0 or too large, a used length below the header and missing buffers are counted, buffers recycled', () => {
  const r = makeNetRig({ size: 16, features: BASE_FEATURES | NetF.MRG_RXBUF });
  let got = 0;
  const d = netDriver(r, { refillThreshold: 1, rxPollBuffers: 16, onReceive: () => got++ });
  d.fillRx();
  d.flushRx();
  const hdr = new Uint8Array(HS);
  const put = (numBuffers: number, len: number): void => {
    const c = r.rxq.pop()!;
    encodeNetHdr({ ...emptyNetHdr(), numBuffers }, 'v1', hdr, 0);
    writeToChain(r.mem, c, hdr);
    r.rxq.addUsed(c.head, len);
  };
  put(0, 100);
  put(1000, 100);
  put(1, 5);
  put(3, 100); // promises two more buffers, publishes none
  r.rxq.publishUsed();
  assert.equal(d.pollRx(), 0);
  assert.equal(got, 0);
  assert.deepEqual(d.stats.rxErrors, { 'rx-bad-num-buffers': 2, 'rx-len-below-header': 1, 'rx-missing-buffers': 1 });
  assert.equal(d.rxq.numFree, 0, 'every buffer was recycled and re-posted');
});

test('mergeable rx: frames over adjacent buffers are handed on in place, others copied together; every frame arrives intact across pool wraps', () => {
  const backend = new RecordingBackend();
  const r = makeNetRig({ size: 64, features: BASE_FEATURES | NetF.MRG_RXBUF, backend });
  const seen: Uint8Array[] = [];
  // The receive callback's bytes are valid only during the call: keep a copy.
  const d = netDriver(r, { mergeableBufBytes: 512, onReceive: (b, off, len) => seen.push(b.slice(off, off + len)) });
  d.fillRx();
  d.flushRx();
  const sent: Uint8Array[] = [];
  let multi = 0;
  for (let i = 0; i < 300; i++) {
    const f = frameOf(60 + ((i * 397) % 1450), i); // up to 1509 bytes: within the 1500-byte MTU
    if (HS + f.length > 512) multi++;
    sent.push(f);
    backend.offer(f);
    r.device.fillRx(1000);
    r.device.flushRx();
    d.pollRx();
    d.flushRx();
  }
  // Frames the device had no buffers for wait in the backend: let them through.
  for (let k = 0; k < 20 && seen.length < sent.length; k++) {
    r.device.fillRx(1000);
    r.device.flushRx();
    d.pollRx();
    d.flushRx();
  }
  assert.equal(seen.length, sent.length);
  for (let i = 0; i < sent.length; i++) assert.deepEqual(seen[i], sent[i], `frame ${i}`);
  // 64 buffers of 512 bytes cycle many times: most multi-buffer frames sit in adjacent buffers,
  // the ones that cross the end of the pool do not.
  assert.ok(d.stats.rxInPlace > 0, 'some frames in place');
  assert.ok(d.stats.rxInPlace < multi, `some frames copied together (${d.stats.rxInPlace} of ${multi} in place)`);
});

test('mergeable rx: a frame whose buffers come back out of address order is copied together intact', () => {
  const r = makeNetRig({ size: 16, features: BASE_FEATURES | NetF.MRG_RXBUF });
  const seen: Uint8Array[] = [];
  const d = netDriver(r, { mergeableBufBytes: 512, onReceive: (b, off, len) => seen.push(b.slice(off, off + len)) });
  d.fillRx();
  d.flushRx();
  const c0 = r.rxq.pop()!;
  const c1 = r.rxq.pop()!;
  const f = frameOf(800, 3);
  const first = new Uint8Array(512);
  encodeNetHdr({ ...emptyNetHdr(), numBuffers: 2 }, 'v1', first, 0);
  first.set(f.subarray(0, 500), HS);
  // The header and the frame's start in the later buffer, the rest in the earlier one.
  writeToChain(r.mem, c1, first);
  writeToChain(r.mem, c0, f.subarray(500));
  r.rxq.addUsed(c1.head, 512);
  r.rxq.addUsed(c0.head, 300);
  r.rxq.publishUsed();
  assert.equal(d.pollRx(), 1);
  assert.equal(d.stats.rxInPlace, 0);
  assert.deepEqual(seen[0], f);
});

test('NetDevice.fillRx with a buffer budget ends the batch after the frame that reaches it (vhost-net counts used heads), never splitting a frame', () => {
  const backend = new RecordingBackend();
  const r = makeNetRig({ size: 64, features: BASE_FEATURES | NetF.MRG_RXBUF, backend });
  let got = 0;
  const d = netDriver(r, { mergeableBufBytes: 512, onReceive: () => got++ });
  d.fillRx();
  d.flushRx();
  // 1400-byte frames take 3 buffers of 512 (with the 12-byte header).
  for (let i = 0; i < 10; i++) backend.offer(frameOf(1400, i));
  assert.equal(r.device.fillRx(100, 5), 2, 'the second frame reaches 5 buffers (6 used)');
  assert.equal(r.device.fillRx(100, 3), 1, 'exactly at the budget');
  assert.equal(r.device.fillRx(100, 1), 1, 'a frame larger than the budget still goes whole');
  assert.equal(r.device.fillRx(100), 6, 'no buffer budget: frames only');
  r.device.flushRx();
  d.pollRx();
  assert.equal(got, 10);
});
