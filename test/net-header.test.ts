// virtio_net_hdr codec and tx validation (virtio 1.2 §5.1.6): every layout round-trips at any
// offset, bytes are little-endian and exact, short input is a typed error, and each rule of
// §5.1.6.2.1 maps to its drop reason.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  encodeNetHdr,
  decodeNetHdr,
  emptyNetHdr,
  headerLayout,
  headerSize,
  validateTxHeader,
  describeTxDrop,
  NET_HDR_BYTES,
  NetHdrFlags,
  GsoType,
  MAX_GSO_FRAME_BYTES,
  type NetHdrLayout,
  type VirtioNetHdr,
} from '../src/net/header.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { NetError } from '../src/net/errors.js';

const SEED = Number(process.env.FC_SEED ?? 5162);
const LAYOUTS: NetHdrLayout[] = ['legacy', 'legacy-mrg', 'v1', 'hash'];

test('headerSize follows the negotiated features: 10, 12, 12, 20 bytes', () => {
  assert.equal(headerSize(0n), 10);
  assert.equal(headerLayout(0n), 'legacy');
  assert.equal(headerSize(NetF.MRG_RXBUF), 12);
  assert.equal(headerLayout(NetF.MRG_RXBUF), 'legacy-mrg');
  assert.equal(headerSize(VirtioF.VERSION_1), 12);
  assert.equal(headerSize(VirtioF.VERSION_1 | NetF.MRG_RXBUF), 12);
  assert.equal(headerLayout(VirtioF.VERSION_1 | NetF.MRG_RXBUF), 'v1');
  assert.equal(headerSize(VirtioF.VERSION_1 | NetF.HASH_REPORT), 20);
  assert.equal(headerLayout(VirtioF.VERSION_1 | NetF.HASH_REPORT | NetF.MRG_RXBUF), 'hash');
});

test('a hash-report header encodes byte-exact little-endian fields', () => {
  const out = new Uint8Array(24).fill(0xee);
  const hdr: VirtioNetHdr = {
    flags: NetHdrFlags.NEEDS_CSUM,
    gsoType: GsoType.TCPV4 | GsoType.ECN,
    hdrLen: 0x0142,
    gsoSize: 0x05a8,
    csumStart: 0x0022,
    csumOffset: 0x0010,
    numBuffers: 0x0203,
    hashValue: 0xdeadbeef,
    hashReport: 2,
  };
  assert.equal(encodeNetHdr(hdr, 'hash', out, 2), 20);
  assert.deepEqual(
    [...out],
    [
      0xee, 0xee, 0x01, 0x81, 0x42, 0x01, 0xa8, 0x05, 0x22, 0x00, 0x10, 0x00, 0x03, 0x02,
      0xef, 0xbe, 0xad, 0xde, 0x02, 0x00, 0x00, 0x00, 0xee, 0xee,
    ],
  );
});

test('the legacy 10-byte layout writes no num_buffers and touches nothing past byte 10', () => {
  const out = new Uint8Array(12).fill(0x55);
  const hdr = { ...emptyNetHdr(), numBuffers: 7, hdrLen: 54 };
  assert.equal(encodeNetHdr(hdr, 'legacy', out, 0), 10);
  assert.deepEqual([...out.subarray(10)], [0x55, 0x55]);
  const back = decodeNetHdr(out, 0, 'legacy');
  assert.ok(!(back instanceof NetError));
  assert.equal(back.numBuffers, 0);
  assert.equal(back.hdrLen, 54);
});

const u16 = fc.integer({ min: 0, max: 0xffff });
const hdrArb = fc.record({
  flags: fc.integer({ min: 0, max: 0xff }),
  gsoType: fc.integer({ min: 0, max: 0xff }),
  hdrLen: u16,
  gsoSize: u16,
  csumStart: u16,
  csumOffset: u16,
  numBuffers: u16,
  hashValue: fc.integer({ min: 0, max: 0xffffffff }),
  hashReport: u16,
});

for (const layout of LAYOUTS) {
  test(`property: the ${layout} layout round-trips every field value at any offset`, (t) => {
    t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
    fc.assert(
      fc.property(hdrArb, fc.nat({ max: 40 }), fc.nat({ max: 8 }), (hdr, offset, slack) => {
        const size = NET_HDR_BYTES[layout];
        const buf = new Uint8Array(offset + size + slack).fill(0xa5);
        assert.equal(encodeNetHdr(hdr, layout, buf, offset), size);
        // Bytes outside the header are untouched.
        for (let i = 0; i < buf.length; i++) {
          if (i < offset || i >= offset + size) assert.equal(buf[i], 0xa5);
        }
        const into = emptyNetHdr();
        const back = decodeNetHdr(buf, offset, layout, into);
        assert.equal(back, into);
        const expected = { ...hdr };
        if (size < 12) expected.numBuffers = 0;
        if (size < 20) {
          expected.hashValue = 0;
          expected.hashReport = 0;
        }
        assert.deepEqual(back, expected);
      }),
      { seed: SEED, numRuns: 300 },
    );
  });
}

test('decoding a short buffer returns a truncated error instead of throwing', () => {
  for (const layout of LAYOUTS) {
    const size = NET_HDR_BYTES[layout];
    for (let len = 0; len < size; len++) {
      const r = decodeNetHdr(new Uint8Array(len), 0, layout);
      assert.ok(r instanceof NetError);
      assert.equal(r.code, 'truncated');
      assert.match(r.message, new RegExp(`needs ${size} bytes, only ${len} available`));
    }
    // `end` below the buffer length also bounds the read.
    const r = decodeNetHdr(new Uint8Array(64), 4, layout, undefined, 4 + size - 1);
    assert.ok(r instanceof NetError && r.code === 'truncated');
  }
});

test('encoding into a buffer too small throws a no-room NetError', () => {
  assert.throws(
    () => encodeNetHdr(emptyNetHdr(), 'hash', new Uint8Array(25), 6),
    (e: unknown) => e instanceof NetError && e.code === 'no-room',
  );
});

const ALL_TX = NetF.CSUM | NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN | NetF.HOST_UFO | NetF.HOST_USO | VirtioF.VERSION_1;
const gso = (gsoType: number, extra: Partial<VirtioNetHdr> = {}): VirtioNetHdr => ({
  ...emptyNetHdr(),
  flags: NetHdrFlags.NEEDS_CSUM,
  gsoType,
  gsoSize: 1448,
  hdrLen: 66,
  csumStart: 34,
  csumOffset: 16,
  ...extra,
});

test('validateTxHeader accepts well-formed plain, checksum-offload and GSO headers', () => {
  assert.equal(validateTxHeader(emptyNetHdr(), 1514, 0n, 1514), null);
  const csum = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 16 };
  assert.equal(validateTxHeader(csum, 60, NetF.CSUM, 1514), null);
  assert.equal(validateTxHeader(gso(GsoType.TCPV4), 65000, ALL_TX, 1514), null);
  assert.equal(validateTxHeader(gso(GsoType.TCPV6 | GsoType.ECN), 65000, ALL_TX, 1514), null);
  assert.equal(validateTxHeader(gso(GsoType.UDP), 30000, ALL_TX, 1514), null);
  assert.equal(validateTxHeader(gso(GsoType.UDP_L4, { csumOffset: 6 }), 30000, ALL_TX, 1514), null);
});

test('validateTxHeader names each violation of virtio 1.2 §5.1.6.2.1', () => {
  const cases: Array<[string, VirtioNetHdr, number, bigint, string]> = [
    ['runt', emptyNetHdr(), 13, ALL_TX, 'frame-too-short'],
    ['jumbo without GSO', emptyNetHdr(), 1515, ALL_TX, 'frame-too-long'],
    ['GSO over 64 KiB', gso(GsoType.TCPV4), MAX_GSO_FRAME_BYTES + 1, ALL_TX, 'frame-too-long'],
    ['DATA_VALID on tx', { ...emptyNetHdr(), flags: NetHdrFlags.DATA_VALID }, 100, ALL_TX, 'rx-only-flags'],
    ['RSC_INFO on tx', { ...emptyNetHdr(), flags: NetHdrFlags.RSC_INFO }, 100, ALL_TX, 'rx-only-flags'],
    ['NEEDS_CSUM without CSUM', gso(GsoType.NONE), 100, 0n, 'needs-csum-not-negotiated'],
    ['csum_start past end', gso(GsoType.NONE, { csumStart: 100 }), 100, ALL_TX, 'csum-start-past-frame'],
    ['csum field past end', gso(GsoType.NONE, { csumStart: 90, csumOffset: 9 }), 100, ALL_TX, 'csum-offset-past-frame'],
    ['TCPV4 without HOST_TSO4', gso(GsoType.TCPV4), 9000, NetF.CSUM | NetF.HOST_TSO6, 'gso-type-not-negotiated'],
    ['TCPV6 without HOST_TSO6', gso(GsoType.TCPV6), 9000, NetF.CSUM | NetF.HOST_TSO4, 'gso-type-not-negotiated'],
    ['UDP without HOST_UFO', gso(GsoType.UDP), 9000, NetF.CSUM | NetF.HOST_TSO4, 'gso-type-not-negotiated'],
    ['UDP_L4 without HOST_USO', gso(GsoType.UDP_L4), 9000, NetF.CSUM, 'gso-type-not-negotiated'],
    ['ECN without HOST_ECN', gso(GsoType.TCPV4 | GsoType.ECN), 9000, NetF.CSUM | NetF.HOST_TSO4, 'gso-ecn-not-negotiated'],
    ['gso_type 2 (removed TCPV4_ECN)', gso(2), 9000, ALL_TX, 'gso-type-unknown'],
    ['ECN alone', gso(GsoType.ECN), 9000, ALL_TX, 'gso-type-unknown'],
    ['GSO without NEEDS_CSUM', gso(GsoType.TCPV4, { flags: 0 }), 9000, ALL_TX, 'gso-without-needs-csum'],
    ['GSO with gso_size 0', gso(GsoType.TCPV4, { gsoSize: 0 }), 9000, ALL_TX, 'gso-size-zero'],
    ['exact hdr_len past end', gso(GsoType.TCPV4, { hdrLen: 9001 }), 9000, ALL_TX | NetF.GUEST_HDRLEN, 'hdr-len-past-frame'],
  ];
  for (const [what, hdr, len, feats, want] of cases) {
    assert.equal(validateTxHeader(hdr, len, feats, 1514), want, what);
    assert.match(describeTxDrop(want as never), /§5\.1\.6\.2\.1/);
  }
  // Without GUEST_HDRLEN the hint is not checked.
  assert.equal(validateTxHeader(gso(GsoType.TCPV4, { hdrLen: 9001 }), 9000, ALL_TX, 1514), null);
});
