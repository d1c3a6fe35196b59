// Two-part frames (PortRxFrame.tail): a port that hands the device a frame's headers and its
// payload apart gets the same bytes into the guest's buffers as one that hands it the frame
// whole — over mergeable and non-mergeable buffers of any size, and through the paths that read
// the frame as a whole (a checksum finished for a guest without GUEST_CSUM). The host stack's
// stream frames come in two parts to the device and whole to anyone else.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { makeNetRig, mockDrivers, RecordingBackend, BASE_FEATURES, ALL_OFFLOADS } from './support/net-pair.js';
import { NetF } from '../src/net/features.js';
import { decodeNetHdr, emptyNetHdr, NetHdrFlags, GsoType, type VirtioNetHdr } from '../src/net/header.js';
import { buildTcpFrame, newFrameLayout, TcpFlags, macFromString, ipv4FromString, parsePacket, type IpFields } from '../src/net/frames/index.js';
import { NetError } from '../src/net/errors.js';
import { HostStack } from '../src/backend/host-stack.js';
import type { MockDriver } from './support/mock-driver.js';
import type { NetRig } from './support/net-pair.js';

const SEED = Number(process.env.FC_SEED ?? 4242);
const link = { srcMac: macFromString('52:54:00:12:34:56'), dstMac: macFromString('52:54:00:ab:cd:ef') };
const V4: IpFields = { version: 4, src: ipv4FromString('10.0.2.15'), dst: ipv4FromString('10.0.2.2') };
const HS = 12;

function tcpFrame(payloadBytes: number, seed: number): { frame: Uint8Array; hdr: VirtioNetHdr; head: number } {
  const buf = new Uint8Array(payloadBytes + 100);
  const layout = newFrameLayout();
  const payload = Uint8Array.from({ length: payloadBytes }, (_, i) => (i * 31 + seed) & 0xff);
  const len = buildTcpFrame(buf, 0, { link, ip: V4, srcPort: 40000, dstPort: 5001, seq: seed, ack: 1, flags: TcpFlags.ACK, payload, checksum: 'partial' }, layout);
  const gso = payloadBytes > 1460;
  const hdr = {
    ...emptyNetHdr(),
    flags: NetHdrFlags.NEEDS_CSUM,
    gsoType: gso ? GsoType.TCPV4 : GsoType.NONE,
    gsoSize: gso ? 1460 : 0,
    hdrLen: gso ? layout.payloadOffset : 0,
    csumStart: layout.l4Offset,
    csumOffset: 16,
  };
  return { frame: buf.slice(0, len), hdr, head: layout.payloadOffset };
}

function postRx(rx: MockDriver, count: number, addr: number, len: number): void {
  for (let k = 0; k < count; k++) {
    rx.writeChain(k, [{ addr: addr + k * len, len, write: true }]);
    rx.makeAvailable(k);
  }
}

/** Every used buffer's bytes after the header, joined in used order (one frame). */
function received(r: NetRig, rx: MockDriver, bufBytes: number): { hdr: VirtioNetHdr; bytes: Uint8Array } {
  const used = rx.usedIdx();
  const parts: Uint8Array[] = [];
  for (let i = 0; i < used; i++) {
    const u = rx.usedElem(i);
    parts.push(r.mem.bytes(r.dataBase + u.id * bufBytes, u.len).slice());
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (all.set(p, at), (at += p.length));
  return { hdr: decodeNetHdr(all, 0, 'v1') as VirtioNetHdr, bytes: all.subarray(HS) };
}

function deliver(features: bigint, bufBytes: number, bufCount: number, offer: (be: RecordingBackend) => void): { r: NetRig; rx: MockDriver; be: RecordingBackend } {
  const r = makeNetRig({ features, size: 64 });
  const { rx } = mockDrivers(r);
  postRx(rx, bufCount, r.dataBase, bufBytes);
  const be = r.backend as RecordingBackend;
  offer(be);
  r.device.fillRx(1);
  r.device.flushRx();
  return { r, rx, be };
}

test('a frame in two parts reaches the guest byte for byte as it does whole, over mergeable and single buffers of any size', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.integer({ min: 1, max: 20000 }),
      fc.integer({ min: 1, max: 0xff }),
      fc.integer({ min: 0, max: 7 }),
      fc.integer({ min: 400, max: 5000 }), // 60 buffers of ≥ 400 B hold the largest frame
      (mergeable, payloadBytes, seed, tailAt, mrgBuf) => {
        const { frame, hdr, head } = tcpFrame(payloadBytes, seed);
        const features = BASE_FEATURES | ALL_OFFLOADS | (mergeable ? NetF.MRG_RXBUF : 0n);
        const bufBytes = mergeable ? mrgBuf : 32768;
        const count = mergeable ? 60 : 2;
        const whole = deliver(features, bufBytes, count, (be) => be.offer(frame, hdr));
        const parts = deliver(features, bufBytes, count, (be) => be.offerTwoPart(frame, head, hdr, tailAt));
        assert.equal(parts.be.twoPartPeeks > 0, true, 'the device asked for two parts');
        assert.equal(parts.r.device.stats.rxFrames, 1);
        assert.equal(whole.r.device.stats.rxFrames, 1);
        const a = received(whole.r, whole.rx, bufBytes);
        const b = received(parts.r, parts.rx, bufBytes);
        assert.deepEqual(b.bytes, frame);
        assert.deepEqual(b.bytes, a.bytes);
        assert.deepEqual(b.hdr, a.hdr);
      },
    ),
    { seed: SEED, numRuns: 150 },
  );
});

test('a two-part frame for a guest without GUEST_CSUM is joined, its checksum finished, and arrives intact', () => {
  const { frame, hdr, head } = tcpFrame(900, 7);
  const { r, rx } = deliver(BASE_FEATURES | NetF.MRG_RXBUF, 4096, 4, (be) => be.offerTwoPart(frame, head, hdr));
  assert.equal(r.device.stats.rxCsumCompleted, 1);
  const got = received(r, rx, 4096);
  assert.equal(got.hdr.flags, 0);
  const p = parsePacket(got.bytes, 0, got.bytes.length, undefined, true);
  assert.ok(!(p instanceof NetError));
  assert.equal(p.l4ChecksumOk, true);
  assert.deepEqual(got.bytes.subarray(head), frame.subarray(head), 'the payload');
});

test('a tail that does not fit its buffer or its frame is refused with a RangeError naming it', () => {
  const { frame, hdr, head } = tcpFrame(500, 1);
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 4, r.dataBase, 4096);
  assert.throws(() => r.device.deliverRx(frame, 0, frame.length, hdr, { bytes: new Uint8Array(10), offset: 0, lenBytes: frame.length - head }), /tail of 500 bytes/);
  assert.throws(() => r.device.deliverRx(frame, 0, frame.length, hdr, { bytes: frame, offset: 0, lenBytes: frame.length }), RangeError);
  assert.equal(r.device.stats.rxFrames, 0);
});

test('the host stack hands the device stream frames in two parts (payload aligned to where it lands) and anyone else whole', () => {
  const opts = {
    mac: link.dstMac,
    ip: V4.dst,
    peerMac: link.srcMac,
    peerIp: V4.src,
    partialCsum: true,
    gso: true,
  };
  const a = new HostStack(opts);
  const b = new HostStack(opts);
  for (const h of [a, b]) h.endpoint.startSource({ srcPort: 5001, dstPort: 40000, msgBytes: 16384 });
  a.negotiated(BASE_FEATURES | NetF.MRG_RXBUF);
  b.negotiated(BASE_FEATURES | NetF.MRG_RXBUF);
  for (let i = 0; i < 6; i++) {
    const two = a.peekRx(true);
    const one = b.peekRx();
    assert.ok(two !== null && one !== null);
    assert.ok(one.tail == null, 'whole when not asked');
    const t = two.tail;
    assert.ok(t != null && t.lenBytes > 0, 'two parts when asked');
    const headLen = two.lenBytes - t.lenBytes;
    assert.equal((t.bytes.byteOffset + t.offset) & 7, (two.bytes.byteOffset + two.offset + headLen) & 7, 'payload aligned as it would lie behind the headers');
    const joined = new Uint8Array(two.lenBytes);
    joined.set(two.bytes.subarray(two.offset, two.offset + headLen));
    joined.set(t.bytes.subarray(t.offset, t.offset + t.lenBytes), headLen);
    assert.deepEqual(joined, one.bytes.subarray(one.offset, one.offset + one.lenBytes));
    assert.deepEqual(two.hdr, one.hdr);
    if (i === 3) {
      // Peeked in two parts, then by a reader that takes frames whole: joined in place.
      const again = a.peekRx();
      assert.ok(again !== null && again.tail == null);
      assert.deepEqual(again.bytes.subarray(again.offset, again.offset + again.lenBytes), joined);
    }
    a.consumeRx();
    b.consumeRx();
  }
});

test('buildTcpFrame refuses a payload apart from the headers with a full checksum or a payload given too', () => {
  const buf = new Uint8Array(200);
  const f = { link, ip: V4, srcPort: 1, dstPort: 2, seq: 0, ack: 0, flags: TcpFlags.ACK };
  assert.throws(() => buildTcpFrame(buf, 0, { ...f, payload: new Uint8Array(0), payloadApart: 100, checksum: 'full' }), NetError);
  assert.throws(() => buildTcpFrame(buf, 0, { ...f, payload: new Uint8Array(4), payloadApart: 100, checksum: 'partial' }), NetError);
  assert.equal(buildTcpFrame(buf, 0, { ...f, payload: new Uint8Array(0), payloadApart: 100, checksum: 'partial' }), 54 + 100);
});
