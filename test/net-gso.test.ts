// Software GSO and NEEDS_CSUM completion (virtio 1.2 §5.1.6.2): a TCP GSO frame over IPv4 or
// IPv6 segments into frames that reassemble to the original payload by sequence number, carry
// at most gso_size bytes each, have valid IPv4 header and TCP checksums, consecutive IPv4 IDs,
// FIN/PSH only on the last and CWR only on the first segment; completing a partial checksum
// equals computing it in full.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { gsoSegmentTcp, gsoSegmentTcpToArrays, gsoSegmentCount, applyNeedsCsum } from '../src/net/gso.js';
import { GsoType, validateTxHeader, emptyNetHdr, NetHdrFlags } from '../src/net/header.js';
import { NetF } from '../src/net/features.js';
import { NetError } from '../src/net/errors.js';
import { csumFold, csumPartial } from '../src/net/checksum.js';
import {
  buildTcpFrame,
  buildUdpFrame,
  newFrameLayout,
  parsePacket,
  newParsedPacket,
  TcpFlags,
  IpProto,
  type IpFields,
} from '../src/net/frames/index.js';

const SEED = Number(process.env.FC_SEED ?? 4242);
const MAC_A = Uint8Array.from([2, 0, 0, 0, 0, 0xa]);
const MAC_B = Uint8Array.from([2, 0, 0, 0, 0, 0xb]);

const ipArb: fc.Arbitrary<IpFields> = fc.oneof(
  fc.record({
    version: fc.constant(4 as const),
    src: fc.integer({ min: 0, max: 0xffffffff }),
    dst: fc.integer({ min: 0, max: 0xffffffff }),
    id: fc.integer({ min: 0, max: 0xffff }),
  }),
  fc.record({
    version: fc.constant(6 as const),
    src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
  }),
);

function isErr(x: unknown, code?: string): x is NetError {
  return x instanceof NetError && (code === undefined || x.code === code);
}

/** Asserts equal bytes, reporting the first difference (cheap even when fast-check shrinks). */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  assert.equal(at, -1, `${what}: first difference at ${at}`);
}

const BIG = new Uint8Array(70000);

/** A driver-style GSO frame: headers + payload, TCP checksum holding the pseudo-header sum only. */
function gsoFrame(ip: IpFields, payload: Uint8Array, seq: number, flags: number, opts: Uint8Array | undefined, vlanId: number): { frame: Uint8Array; csumStart: number } {
  const layout = newFrameLayout();
  const n = buildTcpFrame(
    BIG,
    0,
    { link: { srcMac: MAC_A, dstMac: MAC_B, vlanId }, ip, srcPort: 40000, dstPort: 5001, seq, ack: 77, flags, window: 512, options: opts, payload, checksum: 'partial' },
    layout,
  );
  return { frame: BIG.slice(0, n), csumStart: layout.l4Offset };
}

test('property: TCP GSO segments reassemble to the payload with valid checksums and the flag rules', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const tsOpt = Uint8Array.from([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]); // NOP NOP timestamps
  const scratch = new Uint8Array(70000);
  const pkt = newParsedPacket();
  fc.assert(
    fc.property(
      ipArb,
      fc.integer({ min: 1, max: 65000 }),
      fc.oneof(fc.constantFrom(536, 1220, 1448, 1460, 8948), fc.integer({ min: 64, max: 9000 })),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.subarray([TcpFlags.FIN, TcpFlags.PSH, TcpFlags.CWR, TcpFlags.ECE, TcpFlags.URG]),
      fc.boolean(),
      fc.oneof(fc.constant(-1), fc.integer({ min: 1, max: 4094 })),
      fc.integer({ min: 0, max: 255 }),
      (ip, payloadBytes, mss, seq0, flagList, withOpts, vlanId, fillSeed) => {
        const payload = Uint8Array.from({ length: payloadBytes }, (_, i) => (i * 31 + fillSeed + (i >> 8)) & 0xff);
        const flags0 = TcpFlags.ACK | flagList.reduce((a, b) => a | b, 0);
        const { frame } = gsoFrame(ip, payload, seq0, flags0, withOpts ? tsOpt : undefined, vlanId);
        const hdr = { gsoType: ip.version === 4 ? GsoType.TCPV4 : GsoType.TCPV6, gsoSize: mss };
        const reassembled = new Uint8Array(payloadBytes);
        const covered = new Uint8Array(payloadBytes);
        const seen: number[] = [];
        const n = gsoSegmentTcp(frame, 0, frame.length, hdr, scratch, (seg, len, index, last) => {
          seen.push(index);
          const p = parsePacket(seg, 0, len, pkt, true);
          assert.ok(!isErr(p), String(p));
          assert.equal(p.l4, 'tcp');
          assert.equal(p.l4ChecksumOk, true, `TCP checksum of segment ${index}`);
          assert.equal(p.eth.vlanId, vlanId);
          const chunk = p.tcp.payloadEnd - p.tcp.payloadOffset;
          assert.ok(chunk <= mss && chunk > 0, `segment ${index} carries ${chunk} > mss ${mss}`);
          if (!last) assert.equal(chunk, mss);
          if (ip.version === 4) {
            assert.equal(p.ipv4.checksumOk, true, `IPv4 header checksum of segment ${index}`);
            assert.equal(csumFold(csumPartial(seg, p.ipOffset, 20)), 0);
            assert.equal(p.ipv4.totalLength, len - p.ipOffset);
            assert.equal(p.ipv4.id, ((ip.id ?? 0) + index) & 0xffff);
          } else {
            assert.equal(p.ipv6.payloadLength, len - p.ipOffset - 40);
          }
          const rel = (p.tcp.seq - seq0) >>> 0;
          assert.equal(rel, index * mss);
          reassembled.set(seg.subarray(p.tcp.payloadOffset, p.tcp.payloadEnd), rel);
          covered.fill(1, rel, rel + chunk);
          const f = p.tcp.flags;
          const finPsh = TcpFlags.FIN | TcpFlags.PSH;
          assert.equal(f & finPsh, last ? flags0 & finPsh : 0, `FIN/PSH on segment ${index}`);
          assert.equal(f & TcpFlags.CWR, index === 0 ? flags0 & TcpFlags.CWR : 0, `CWR on segment ${index}`);
          const others = ~(finPsh | TcpFlags.CWR) & 0xff;
          assert.equal(f & others, flags0 & others);
        });
        assert.ok(!isErr(n), String(n));
        assert.equal(n, gsoSegmentCount(payloadBytes, mss));
        assert.deepEqual(seen, Array.from({ length: n }, (_, i) => i));
        assert.ok(covered.every((c) => c === 1));
        assertSameBytes(reassembled, payload, 'reassembled payload');
      },
    ),
    { seed: SEED, numRuns: 120 },
  );
});

test('a GSO frame whose payload fits one MSS yields one segment with its checksum completed', () => {
  const { frame } = gsoFrame({ version: 4, src: 1, dst: 2, id: 65535 }, new Uint8Array(100), 5, TcpFlags.ACK | TcpFlags.PSH, undefined, -1);
  const segs = gsoSegmentTcpToArrays(frame, 0, frame.length, { gsoType: GsoType.TCPV4, gsoSize: 1448 });
  assert.ok(!isErr(segs));
  assert.equal(segs.length, 1);
  const p = parsePacket(segs[0]!, 0, segs[0]!.length, undefined, true);
  assert.ok(!isErr(p));
  assert.equal(p.l4ChecksumOk, true);
  assert.equal(p.tcp.flags, TcpFlags.ACK | TcpFlags.PSH);
});

test('GSO rejects what it cannot segment with typed errors', () => {
  const { frame } = gsoFrame({ version: 4, src: 1, dst: 2 }, new Uint8Array(3000), 0, TcpFlags.ACK, undefined, -1);
  const scratch = new Uint8Array(2000);
  const noop = (): void => {};
  assert.ok(isErr(gsoSegmentTcp(frame, 0, frame.length, { gsoType: GsoType.TCPV4, gsoSize: 0 }, scratch, noop), 'bad-gso'));
  assert.ok(isErr(gsoSegmentTcp(frame, 0, frame.length, { gsoType: GsoType.UDP, gsoSize: 1000 }, scratch, noop), 'bad-gso'));
  const r = gsoSegmentTcp(frame, 0, frame.length, { gsoType: GsoType.TCPV6, gsoSize: 1000 }, scratch, noop);
  assert.ok(isErr(r, 'bad-gso'));
  assert.match(r.message, /TCPV6 on a frame with EtherType 0x800/);
  assert.ok(isErr(gsoSegmentTcp(frame, 0, frame.length, { gsoType: GsoType.TCPV4, gsoSize: 1960 }, scratch, noop), 'no-room'));
  // The IPv4 total length promises more than the bytes present.
  assert.ok(isErr(gsoSegmentTcp(frame, 0, 1000, { gsoType: GsoType.TCPV4, gsoSize: 500 }, scratch, noop), 'truncated'));
  // A UDP datagram is not TCP.
  const u = new Uint8Array(200);
  const n = buildUdpFrame(u, 0, { link: { srcMac: MAC_A, dstMac: MAC_B }, ip: { version: 4, src: 1, dst: 2 }, srcPort: 1, dstPort: 2, payload: new Uint8Array(50) });
  assert.ok(isErr(gsoSegmentTcp(u, 0, n, { gsoType: GsoType.TCPV4, gsoSize: 10 }, scratch, noop), 'bad-gso'));
});

test('property: applyNeedsCsum completes a partial checksum to the full software checksum', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const full = new Uint8Array(4096);
  const part = new Uint8Array(4096);
  fc.assert(
    fc.property(ipArb, fc.boolean(), fc.uint8Array({ maxLength: 3000, size: 'max' }), fc.integer({ min: 0, max: 0xffffffff }), (ip, tcp, payload, seq) => {
      const layout = newFrameLayout();
      const build = (buf: Uint8Array, checksum: 'full' | 'partial'): number =>
        tcp
          ? buildTcpFrame(buf, 0, { link: { srcMac: MAC_A, dstMac: MAC_B }, ip, srcPort: 1, dstPort: 2, seq, flags: TcpFlags.ACK, payload, checksum }, layout)
          : buildUdpFrame(buf, 0, { link: { srcMac: MAC_A, dstMac: MAC_B }, ip, srcPort: 1, dstPort: 2, payload, checksum }, layout);
      const n = build(full, 'full');
      assert.equal(build(part, 'partial'), n);
      const csumStart = layout.l4Offset;
      const csumOffset = tcp ? 16 : 6;
      // What a driver would put in the header passes the device's validation.
      const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, csumStart, csumOffset };
      assert.equal(validateTxHeader(hdr, n, NetF.CSUM, 9014), null);
      assert.equal(applyNeedsCsum(part.subarray(0, n), csumStart, csumOffset), null);
      const at = csumStart + csumOffset;
      const got = (part[at]! << 8) | part[at + 1]!;
      const want = (full[at]! << 8) | full[at + 1]!;
      // 0x0000 and 0xffff are the same ones'-complement value; UDP forbids 0 on the wire.
      assert.equal(got === 0xffff ? 0 : got, want === 0xffff ? 0 : want);
      // Nothing but the checksum field differs (a first-difference index keeps failures cheap).
      const diff = full.subarray(0, n).findIndex((b, i) => i !== at && i !== at + 1 && part[i] !== b);
      assert.equal(diff, -1);
      const p = parsePacket(part, 0, n, undefined, true);
      assert.ok(!isErr(p));
      assert.equal(p.l4ChecksumOk, true);
      assert.equal(p.protocol, tcp ? IpProto.TCP : IpProto.UDP);
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('applyNeedsCsum refuses offsets that put the checksum field outside the frame', () => {
  const f = new Uint8Array(60);
  const r = applyNeedsCsum(f, 40, 19);
  assert.ok(isErr(r, 'bad-csum-offsets'));
  assert.match(r.message, /csum_start 40 \+ csum_offset 19/);
  assert.equal(applyNeedsCsum(f, 40, 18), null);
  assert.ok(isErr(applyNeedsCsum(f, 40, 16, 57), 'bad-csum-offsets'));
});
