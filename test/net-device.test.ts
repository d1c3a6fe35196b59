// NetDevice over plain memory, driven by a spec-level mock driver: tx header validation drops
// with reasons and keeps the queue running, headers split across descriptors, software GSO and
// checksum completion for a backend without offloads, hostile headers and frames (property),
// ring violations; rx mergeable spreading with num_buffers, waiting for buffers, buffer minimums,
// big buffers, frames that do not fit, offloads the guest did not negotiate; config bytes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { makeNetRig, mockDrivers, RecordingBackend, BASE_FEATURES, ALL_OFFLOADS } from './support/net-pair.js';
import type { MockDriver } from './support/mock-driver.js';
import { NetF } from '../src/net/features.js';
import { encodeNetHdr, decodeNetHdr, emptyNetHdr, NetHdrFlags, GsoType, type VirtioNetHdr } from '../src/net/header.js';
import { NET_CONFIG_BYTES, decodeNetConfig, NetConfigOffset } from '../src/net/config.js';
import {
  buildTcpFrame,
  buildUdpFrame,
  newFrameLayout,
  parsePacket,
  macFromString,
  ipv4FromString,
  TcpFlags,
  type IpFields,
} from '../src/net/frames/index.js';
import { NetError } from '../src/net/errors.js';
import { MIN_SW_GSO_SIZE } from '../src/net/device.js';
import { GuestMemoryError, type GuestMemory } from '../src/memory/index.js';

const SEED = Number(process.env.FC_SEED ?? 4242);
const link = { srcMac: macFromString('52:54:00:12:34:56'), dstMac: macFromString('52:54:00:ab:cd:ef') };
const V4: IpFields = { version: 4, src: ipv4FromString('10.0.2.15'), dst: ipv4FromString('10.0.2.2') };
const HS = 12;

function payload(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 13 + seed) & 0xff);
}

function udpFrame(n: number, checksum: 'full' | 'partial' = 'full'): { frame: Uint8Array; l4: number } {
  const buf = new Uint8Array(n + 64);
  const layout = newFrameLayout();
  const len = buildUdpFrame(buf, 0, { link, ip: V4, srcPort: 1000, dstPort: 2000, payload: payload(n), checksum }, layout);
  return { frame: buf.slice(0, len), l4: layout.l4Offset };
}

function gsoFrame(payloadBytes: number): { frame: Uint8Array; hdr: VirtioNetHdr } {
  const buf = new Uint8Array(payloadBytes + 100);
  const layout = newFrameLayout();
  const len = buildTcpFrame(buf, 0, { link, ip: V4, srcPort: 40000, dstPort: 5001, seq: 1, ack: 1, flags: TcpFlags.ACK | TcpFlags.PSH, payload: payload(payloadBytes, 3), checksum: 'partial' }, layout);
  const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 1460, hdrLen: layout.payloadOffset, csumStart: layout.l4Offset, csumOffset: 16 };
  return { frame: buf.slice(0, len), hdr };
}

function hdrBytes(h: Partial<VirtioNetHdr>): Uint8Array {
  const b = new Uint8Array(HS);
  encodeNetHdr({ ...emptyNetHdr(), ...h }, 'v1', b, 0);
  return b;
}

/**
 * Writes `[hdr][frame]` contiguously at `addr` and makes it available as one chain whose
 * descriptors end at the byte offsets in `cuts` (default: header apart from the frame).
 */
function putTx(mem: GuestMemory, tx: MockDriver, desc: number, addr: number, hdr: Uint8Array, frame: Uint8Array, cuts?: number[]): number {
  const all = new Uint8Array(hdr.length + frame.length);
  all.set(hdr);
  all.set(frame, hdr.length);
  mem.copyIn(addr, all);
  const bounds = [0, ...(cuts ?? (frame.length > 0 ? [hdr.length] : [])), all.length].filter((v, i, a) => i === 0 || v > a[i - 1]!);
  const bufs = [];
  for (let i = 0; i + 1 < bounds.length; i++) bufs.push({ addr: addr + bounds[i]!, len: bounds[i + 1]! - bounds[i]! });
  tx.writeChain(desc, bufs);
  tx.makeAvailable(desc);
  return bufs.length;
}

test('a valid frame reaches the backend with its header and the used element reports 0 bytes written', () => {
  const r = makeNetRig();
  const { tx } = mockDrivers(r);
  const { frame } = udpFrame(200);
  putTx(r.mem, tx, 0, r.dataBase, hdrBytes({}), frame);
  assert.equal(r.device.processTx(64), 1);
  assert.equal(r.device.flushTx(), true);
  const be = r.backend as RecordingBackend;
  assert.equal(be.sent.length, 1);
  assert.deepEqual(be.sent[0]!.frame, frame);
  assert.equal(tx.usedIdx(), 1);
  assert.deepEqual(tx.usedElem(0), { id: 0, len: 0 });
});

test('a header split across three descriptors and a frame split across two still arrive intact', () => {
  const r = makeNetRig();
  const { tx } = mockDrivers(r);
  const { frame } = udpFrame(300);
  assert.equal(putTx(r.mem, tx, 0, r.dataBase, hdrBytes({}), frame, [3, 7, 40]), 4);
  r.device.processTx(64);
  const be = r.backend as RecordingBackend;
  assert.equal(be.sent.length, 1);
  assert.deepEqual(be.sent[0]!.frame, frame);
  assert.equal(r.device.stats.txDropped, 0);
});

test('each bad header or frame is dropped with its reason and the queue keeps running', () => {
  const r = makeNetRig({ features: BASE_FEATURES | NetF.CSUM });
  const { tx } = mockDrivers(r);
  const { frame } = udpFrame(100);
  const cases: [string, Partial<VirtioNetHdr>, Uint8Array][] = [
    ['gso-type-not-negotiated', { flags: 1, gsoType: GsoType.TCPV4, gsoSize: 1460, csumStart: 34, csumOffset: 16 }, frame],
    ['csum-start-past-frame', { flags: 1, csumStart: 5000, csumOffset: 6 }, frame],
    ['csum-offset-past-frame', { flags: 1, csumStart: 34, csumOffset: 500 }, frame],
    ['frame-too-long', {}, udpFrame(1600).frame],
    ['frame-too-short', {}, frame.subarray(0, 10)],
    ['rx-only-flags', { flags: NetHdrFlags.DATA_VALID }, frame],
    ['gso-type-unknown', { flags: 1, gsoType: 2, gsoSize: 100, csumStart: 34, csumOffset: 6 }, frame],
  ];
  let d = 0;
  let addr = r.dataBase;
  for (const [, h, f] of cases) {
    d += putTx(r.mem, tx, d, addr, hdrBytes(h), f);
    addr += 4096;
  }
  // A chain holding only 8 bytes: less than the 12-byte header.
  r.mem.fill(addr, 8, 0);
  tx.writeChain(d, [{ addr, len: 8 }]);
  tx.makeAvailable(d);
  d += 1;
  addr += 4096;
  putTx(r.mem, tx, d, addr, hdrBytes({}), frame);
  assert.equal(r.device.processTx(64), cases.length + 2);
  r.device.flushTx();
  const drops = r.device.stats.txDrops as Record<string, number>;
  for (const [reason] of cases) assert.equal(drops[reason], 1, reason);
  assert.equal(drops['header-truncated'], 1);
  assert.equal(r.device.stats.txDropped, cases.length + 1);
  assert.equal((r.backend as RecordingBackend).sent.length, 1, 'the good frame after them went through');
  assert.equal(tx.usedIdx(), cases.length + 2, 'every chain, dropped or not, is returned');
  assert.equal(r.device.needsReset, false);
});

test('a GSO frame goes whole to a GSO backend and as MSS segments with valid checksums to one without', () => {
  const { frame, hdr } = gsoFrame(20000);
  for (const acceptsGso of [true, false]) {
    const backend = new RecordingBackend(acceptsGso, acceptsGso);
    const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS, backend });
    const { tx } = mockDrivers(r);
    putTx(r.mem, tx, 0, r.dataBase, hdrBytes(hdr), frame);
    r.device.processTx(64);
    if (acceptsGso) {
      assert.equal(backend.sent.length, 1);
      assert.equal(backend.sent[0]!.hdr.gsoType, GsoType.TCPV4);
      assert.deepEqual(backend.sent[0]!.frame, frame);
    } else {
      assert.equal(backend.sent.length, Math.ceil(20000 / 1460));
      let total = 0;
      for (const s of backend.sent) {
        assert.equal(s.hdr.gsoType, GsoType.NONE);
        assert.equal(s.hdr.flags & NetHdrFlags.NEEDS_CSUM, 0);
        const p = parsePacket(s.frame, 0, s.frame.length, undefined, true);
        assert.ok(!(p instanceof NetError));
        assert.equal(p.l4ChecksumOk, true);
        assert.ok(s.frame.length <= 1514);
        total += p.l4End - p.tcp.payloadOffset;
      }
      assert.equal(total, 20000);
      assert.equal(r.device.stats.txSwSegments, backend.sent.length);
    }
  }
});

test('software GSO refuses a gso_size below MIN_SW_GSO_SIZE, so one notify of 64 KiB frames with gso_size 1 is bounded work', () => {
  const backend = new RecordingBackend(false, false);
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS, backend });
  const { tx } = mockDrivers(r);
  const { frame, hdr } = gsoFrame(60000);
  for (const [k, gsoSize] of [1, MIN_SW_GSO_SIZE - 1, MIN_SW_GSO_SIZE].entries()) {
    putTx(r.mem, tx, 2 * k, r.dataBase + 0x10000 * k, hdrBytes({ ...hdr, gsoSize }), frame);
  }
  assert.equal(r.device.processTx(64), 3);
  assert.equal(r.device.stats.txDrops['gso-size-too-small'], 2);
  // The frame at the floor is segmented: ceil(60000 / 48) segments, all of it delivered.
  assert.equal(r.device.stats.txSwSegments, Math.ceil(60000 / MIN_SW_GSO_SIZE));
  assert.equal(backend.sent.length, Math.ceil(60000 / MIN_SW_GSO_SIZE));
});

test('NEEDS_CSUM is completed for a backend without partial checksums and the guest buffer is left untouched', () => {
  const backend = new RecordingBackend(false, false);
  const r = makeNetRig({ features: BASE_FEATURES | NetF.CSUM, backend });
  const { tx } = mockDrivers(r);
  const { frame, l4 } = udpFrame(999, 'partial');
  putTx(r.mem, tx, 0, r.dataBase, hdrBytes({ flags: 1, csumStart: l4, csumOffset: 6 }), frame);
  const before = r.mem.bytes(r.dataBase, HS + frame.length).slice();
  r.device.processTx(64);
  const sent = backend.sent[0]!;
  const p = parsePacket(sent.frame, 0, sent.frame.length, undefined, true);
  assert.ok(!(p instanceof NetError));
  assert.equal(p.l4ChecksumOk, true);
  assert.equal(sent.hdr.flags, 0);
  assert.deepEqual(r.mem.bytes(r.dataBase, HS + frame.length), before, 'device never writes a device-readable buffer');
});

test('garbage headers, frames and descriptor splits never throw: every chain is returned, sent or dropped with a reason', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: HS, maxLength: HS }),
      fc.uint8Array({ minLength: 0, maxLength: 3000 }),
      fc.array(fc.integer({ min: 1, max: 3011 }), { maxLength: 4 }),
      (hdr, frame, cuts) => {
        const backend = new RecordingBackend(false, false);
        const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS, backend, dataBytes: 1 << 16, size: 8 });
        const { tx } = mockDrivers(r);
        const sorted = [...new Set(cuts)].sort((a, b) => a - b).filter((c) => c < HS + frame.length);
        if (frame.length === 0 && sorted.length === 0) sorted.push(HS);
        putTx(r.mem, tx, 0, r.dataBase, hdr, frame, sorted);
        assert.equal(r.device.processTx(8), 1);
        r.device.flushTx();
        const st = r.device.stats;
        assert.ok(st.txDropped === 1 || st.txFrames >= 1, 'sent or dropped');
        assert.equal(tx.usedIdx(), 1);
        assert.equal(r.device.needsReset, false);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('a ring violation breaks the tx queue without throwing, sets needsReset, and rx keeps working', () => {
  const r = makeNetRig({ features: BASE_FEATURES | NetF.MRG_RXBUF });
  const { tx, rx } = mockDrivers(r);
  tx.writeDesc(0, r.mem.regionTable[0]!.end + 4096, 64, 0, 0);
  tx.makeAvailable(0);
  assert.equal(r.device.processTx(64), 0);
  assert.equal(r.device.needsReset, true);
  assert.equal(r.device.error?.code, 'bad-address');
  assert.equal(r.device.stats.queueErrors, 1);
  assert.equal(r.device.processTx(64), 0, 'a broken queue does nothing');
  rx.writeChain(0, [{ addr: r.dataBase, len: 4096, write: true }]);
  rx.makeAvailable(0);
  (r.backend as RecordingBackend).offer(udpFrame(100).frame);
  assert.equal(r.device.fillRx(64), 1);
});

/** Posts `count` writable buffers of `len` bytes (one descriptor each) from `addr`. */
function postRx(rx: MockDriver, first: number, count: number, addr: number, len: number): void {
  for (let k = 0; k < count; k++) {
    rx.writeChain(first + k, [{ addr: addr + k * len, len, write: true }]);
    rx.makeAvailable(first + k);
  }
}

test('mergeable: a 64 KiB GSO frame spreads over page buffers with num_buffers in the first header, byte-exact', () => {
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 20, r.dataBase, 4096);
  const { frame, hdr } = gsoFrame(64240);
  (r.backend as RecordingBackend).offer(frame, hdr);
  assert.equal(r.device.fillRx(64), 1);
  assert.equal(r.device.flushRx(), true);
  const need = Math.ceil((HS + frame.length) / 4096);
  assert.equal(rx.usedIdx(), need);
  const h = decodeNetHdr(r.mem.bytes(r.dataBase, HS), 0, 'v1') as VirtioNetHdr;
  assert.equal(h.numBuffers, need);
  assert.equal(h.gsoType, GsoType.TCPV4);
  assert.equal(h.gsoSize, 1460);
  assert.equal(h.flags, NetHdrFlags.NEEDS_CSUM);
  const out = new Uint8Array(need * 4096);
  let n = 0;
  for (let i = 0; i < need; i++) {
    const u = rx.usedElem(i);
    assert.equal(u.id, i);
    out.set(r.mem.bytes(r.dataBase + u.id * 4096, u.len), n);
    n += u.len;
  }
  assert.equal(n, HS + frame.length);
  assert.deepEqual(out.subarray(HS, n), frame);
  assert.equal(r.device.stats.rxBuffers, need);
});

test('mergeable: a frame waits in the backend while too few buffers are posted, then goes out when more arrive', () => {
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 3, r.dataBase, 4096);
  const { frame, hdr } = gsoFrame(30000);
  const be = r.backend as RecordingBackend;
  be.offer(frame, hdr);
  assert.equal(r.device.fillRx(64), 0);
  assert.equal(r.device.rxWaitingForBuffers, true);
  assert.equal(be.queue.length, 1, 'the frame stays in the backend');
  assert.equal(rx.usedIdx(), 0);
  postRx(rx, 3, 10, r.dataBase + 3 * 4096, 4096);
  assert.equal(r.device.fillRx(64), 1);
  r.device.flushRx();
  assert.equal(rx.usedIdx(), Math.ceil((HS + frame.length) / 4096));
  assert.equal(r.device.stats.rxDropped, 0);
});

test('fillRx never throws when the memory table is replaced while rx chains are held: the rx queue breaks with bad-address, counted', () => {
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 3, r.dataBase, 4096);
  const { frame, hdr } = gsoFrame(30000);
  (r.backend as RecordingBackend).offer(frame, hdr);
  assert.equal(r.device.fillRx(64), 0, 'three chains are held, waiting for more');
  // SET_MEM_TABLE: the new table no longer maps the three held buffers, but maps new ones.
  const sab = r.mem.regionTable[0]!.buffer;
  const keep = r.dataBase + 3 * 4096;
  r.mem.setRegions([
    { guestAddr: 0, buffer: sab, byteOffset: 0, length: r.dataBase },
    { guestAddr: keep, buffer: sab, byteOffset: keep, length: sab.byteLength - keep },
  ]);
  postRx(rx, 3, 10, keep, 4096);
  let n = -1;
  assert.doesNotThrow(() => (n = r.device.fillRx(64)));
  assert.equal(n, 0);
  assert.equal(r.device.needsReset, true);
  assert.equal(r.device.error?.code, 'bad-address');
  assert.ok(r.device.error?.cause instanceof GuestMemoryError);
  assert.equal(r.rxq.broken, true);
  assert.equal(r.device.stats.queueErrors, 1);
  assert.equal(r.txq.broken, false, 'the tx queue is unaffected');
  assert.doesNotThrow(() => r.device.fillRx(64), 'a broken queue stays quiet');
});

test('mergeable: a frame larger than the whole ring can hold is dropped with rx-no-room', () => {
  const r = makeNetRig({ size: 8, features: BASE_FEATURES | ALL_OFFLOADS | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 8, r.dataBase, 1024);
  const { frame, hdr } = gsoFrame(20000);
  const be = r.backend as RecordingBackend;
  be.offer(frame, hdr);
  be.offer(udpFrame(500).frame);
  assert.equal(r.device.fillRx(64), 1, 'the next frame still fits');
  assert.equal(r.device.stats.rxDrops['rx-no-room'], 1);
});

test('without MRG_RXBUF: num_buffers is 1, and a frame that does not fit the buffer is dropped while the buffer serves the next one', () => {
  const r = makeNetRig({ features: BASE_FEATURES });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 1, r.dataBase, 600);
  const be = r.backend as RecordingBackend;
  be.offer(udpFrame(1000).frame);
  const small = udpFrame(300).frame;
  be.offer(small);
  assert.equal(r.device.fillRx(64), 1);
  r.device.flushRx();
  assert.equal(r.device.stats.rxDrops['rx-buffer-too-small'], 1);
  assert.equal(rx.usedIdx(), 1);
  assert.deepEqual(rx.usedElem(0), { id: 0, len: HS + small.length });
  const h = decodeNetHdr(r.mem.bytes(r.dataBase, HS), 0, 'v1') as VirtioNetHdr;
  assert.equal(h.numBuffers, 1);
  assert.deepEqual(r.mem.bytes(r.dataBase + HS, small.length), small);
  assert.equal(r.device.stats.rxSmallBuffers, 1, 'a 600-byte buffer is below the 1526-byte minimum');
});

test('without MRG_RXBUF but with GUEST_TSO: big buffers of page descriptors take a 64 KiB frame; 1526-byte ones count as small', () => {
  const r = makeNetRig({ features: BASE_FEATURES | ALL_OFFLOADS });
  const { rx } = mockDrivers(r);
  const pages = Math.ceil(65562 / 4096);
  const bufs = Array.from({ length: pages }, (_, k) => ({ addr: r.dataBase + k * 4096, len: Math.min(4096, 65562 - k * 4096), write: true }));
  rx.writeChain(0, bufs);
  rx.makeAvailable(0);
  const { frame, hdr } = gsoFrame(64240);
  (r.backend as RecordingBackend).offer(frame, hdr);
  assert.equal(r.device.fillRx(64), 1);
  r.device.flushRx();
  assert.deepEqual(rx.usedElem(0), { id: 0, len: HS + frame.length });
  assert.deepEqual(r.mem.bytes(r.dataBase + HS, frame.length), frame);
  assert.equal(r.device.stats.rxSmallBuffers, 0);
  postRx(rx, pages, 1, r.dataBase + 20 * 4096, 1526);
  (r.backend as RecordingBackend).offer(udpFrame(100).frame);
  r.device.fillRx(64);
  assert.equal(r.device.stats.rxSmallBuffers, 1, 'below 65562 bytes with GUEST_TSO');
});

test('offloads the guest did not negotiate: a GSO frame is dropped, a partial checksum is completed, over-long frames are dropped', () => {
  const r = makeNetRig({ features: BASE_FEATURES | NetF.MRG_RXBUF });
  const { rx } = mockDrivers(r);
  postRx(rx, 0, 32, r.dataBase, 4096);
  const be = r.backend as RecordingBackend;
  const g = gsoFrame(10000);
  be.offer(g.frame, g.hdr);
  be.offer(udpFrame(1600).frame);
  const { frame, l4 } = udpFrame(700, 'partial');
  be.offer(frame, { flags: NetHdrFlags.NEEDS_CSUM, csumStart: l4, csumOffset: 6 });
  be.offer(udpFrame(10).frame.subarray(0, 12));
  assert.equal(r.device.fillRx(64), 1);
  r.device.flushRx();
  assert.equal(r.device.stats.rxDrops['rx-gso-not-negotiated'], 1);
  assert.equal(r.device.stats.rxDrops['rx-frame-too-long'], 1);
  assert.equal(r.device.stats.rxDrops['rx-frame-too-short'], 1);
  assert.equal(r.device.stats.rxCsumCompleted, 1);
  const u = rx.usedElem(0);
  const got = r.mem.bytes(r.dataBase + u.id * 4096 + HS, u.len - HS);
  const h = decodeNetHdr(r.mem.bytes(r.dataBase + u.id * 4096, HS), 0, 'v1') as VirtioNetHdr;
  assert.equal(h.flags, 0, 'no NEEDS_CSUM toward a guest without GUEST_CSUM');
  const p = parsePacket(got, 0, got.length, undefined, true);
  assert.ok(!(p instanceof NetError));
  assert.equal(p.l4ChecksumOk, true);
});

test('device config bytes carry the MAC, link up and the MTU at the virtio 1.2 §5.1.4 offsets', () => {
  const mac = macFromString('02:00:00:00:00:07');
  const r = makeNetRig({ device: { config: { mac, mtu: 9000, linkUp: true } } });
  const b = r.device.configBytes();
  assert.equal(b.length, NET_CONFIG_BYTES);
  assert.deepEqual(b.subarray(0, 6), mac);
  assert.equal(b[NetConfigOffset.STATUS], 1);
  assert.equal(b[NetConfigOffset.MTU]! | (b[NetConfigOffset.MTU + 1]! << 8), 9000);
  const c = decodeNetConfig(b);
  assert.equal(c.linkUp, true);
  assert.equal(c.mtu, 9000);
  assert.equal(c.maxVirtqueuePairs, 1);
});

test('an rx buffer too small for any frame is returned empty instead of blocking the queue', () => {
  for (const features of [BASE_FEATURES, BASE_FEATURES | NetF.MRG_RXBUF]) {
    const r = makeNetRig({ features });
    const { rx } = mockDrivers(r);
    postRx(rx, 0, 1, r.dataBase, 8);
    postRx(rx, 1, 1, r.dataBase + 4096, 2048);
    const f = udpFrame(100).frame;
    (r.backend as RecordingBackend).offer(f);
    assert.equal(r.device.fillRx(64), 1);
    r.device.flushRx();
    assert.deepEqual(rx.usedElem(0), { id: 0, len: 0 });
    assert.deepEqual(rx.usedElem(1), { id: 1, len: HS + f.length });
    assert.equal(r.device.stats.rxBuffersReturnedEmpty, 1);
  }
});

test('random rx buffer sizes and frames never throw; used lengths stay within each buffer', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 32 }),
      fc.array(fc.integer({ min: 0, max: 1600 }), { minLength: 1, maxLength: 20 }),
      (mergeable, bufSizes, frameSizes) => {
        const r = makeNetRig({ size: 32, features: BASE_FEATURES | (mergeable ? NetF.MRG_RXBUF : 0n), dataBytes: 32 * 5120 });
        const { rx } = mockDrivers(r);
        bufSizes.forEach((len, k) => {
          rx.writeChain(k, [{ addr: r.dataBase + k * 5120, len, write: true }]);
          rx.makeAvailable(k);
        });
        const be = r.backend as RecordingBackend;
        for (const n of frameSizes) be.offer(new Uint8Array(n).fill(0xab));
        r.device.fillRx(1000);
        r.device.flushRx();
        const st = r.device.stats;
        assert.equal(r.device.needsReset, false);
        assert.equal(st.rxFrames + st.rxDropped + be.queue.length, frameSizes.length);
        for (let i = 0; i < rx.usedIdx(); i++) {
          const u = rx.usedElem(i);
          assert.ok(u.len <= bufSizes[u.id]!, `used ${i}: ${u.len} bytes in a ${bufSizes[u.id]}-byte buffer`);
        }
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});
