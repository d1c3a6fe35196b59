// Frame builders, parsers and checksums: builders → parsers round-trip for Ethernet (with VLAN
// tags), ARP, IPv4, IPv6 (with extension headers), ICMP/ICMPv6 echo, UDP and TCP; every checksum
// verifies (summing a header with its checksum folds to 0); short or garbage input yields a
// NetError, never a thrown RangeError.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { csumPartial, csumFold, csumAdd, csumSub, internetChecksum, pseudoHeaderSumV4, pseudoHeaderSumV4Addrs } from '../src/net/checksum.js';
import { NetError } from '../src/net/errors.js';
import {
  macFromString,
  macToString,
  ipv4FromString,
  ipv4ToString,
  ipv6FromString,
  ipv6ToString,
  writeEthernet,
  parseEthernet,
  padEthernet,
  EtherType,
  ArpOp,
  parseArp,
  buildArpFrame,
  writeIpv4Header,
  parseIpv4,
  IpProto,
  writeIpv6Header,
  parseIpv6,
  parseIcmp,
  parseIcmpv6,
  IcmpType,
  Icmpv6Type,
  parseUdp,
  parseTcp,
  TcpFlags,
  writeMssOption,
  buildIcmpEchoFrame,
  buildUdpFrame,
  buildTcpFrame,
  newFrameLayout,
  parsePacket,
  newParsedPacket,
  verifyL4Checksum,
  l4PseudoSum,
  type IpFields,
} from '../src/net/frames/index.js';

const SEED = Number(process.env.FC_SEED ?? 777);

const MAC_A = macFromString('02:00:00:00:00:0a');
const MAC_B = macFromString('02:00:00:00:00:0b');
const IP_A = ipv4FromString('10.0.2.15');
const IP_B = ipv4FromString('10.0.2.2');
const IP6_A = ipv6FromString('fd00::a');
const IP6_B = ipv6FromString('fd00:1:2:3:4:5:6:b');

function isErr(x: unknown, code?: string): x is NetError {
  return x instanceof NetError && (code === undefined || x.code === code);
}

test('the RFC 1071 §3 example sums to 0xddf2 and checksums to 0x220d', () => {
  const b = Uint8Array.from([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
  assert.equal(csumPartial(b, 0, 8), 0xddf2);
  assert.equal(internetChecksum(b, 0, 8), 0x220d);
  // Odd length: the last byte is the high half of a zero-padded word.
  assert.equal(csumPartial(Uint8Array.from([0x12, 0x34, 0x56]), 0, 3), 0x1234 + 0x5600);
  assert.equal(csumFold(0xffff), 0);
});

test('property: checksums compose over even splits, and add/sub are inverse', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000, size: 'max' }), fc.nat(), (bytes, cut) => {
      const split = bytes.length === 0 ? 0 : (cut % (bytes.length + 1)) & ~1;
      const whole = csumPartial(bytes, 0, bytes.length);
      const parts = csumPartial(bytes, split, bytes.length - split, csumPartial(bytes, 0, split));
      assert.equal(csumFold(parts), csumFold(whole));
      const a = csumPartial(bytes, 0, split);
      const b = csumPartial(bytes, split, bytes.length - split);
      // Ones' complement has two zeros (0x0000 and 0xffff); they are the same sum.
      const norm = (x: number): number => (x === 0xffff ? 0 : x);
      assert.equal(norm(csumSub(csumAdd(a, b), b)), norm(a));
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('the address helpers round-trip text forms', () => {
  assert.equal(macToString(MAC_A), '02:00:00:00:00:0a');
  assert.equal(ipv4ToString(IP_A), '10.0.2.15');
  assert.equal(ipv6ToString(IP6_A), 'fd00::a');
  assert.equal(ipv6ToString(IP6_B), 'fd00:1:2:3:4:5:6:b');
  assert.equal(ipv6ToString(ipv6FromString('::')), '::');
  assert.equal(ipv6ToString(ipv6FromString('1:0:0:2::3')), '1:0:0:2::3');
  assert.equal(pseudoHeaderSumV4Addrs(IP_A, IP_B, 6, 100), (() => {
    const b = new Uint8Array(20);
    writeIpv4Header(b, 0, { src: IP_A, dst: IP_B, protocol: 6, payloadBytes: 100 });
    return pseudoHeaderSumV4(b, 0, 6, 100);
  })());
  assert.throws(() => macFromString('02:00:00:00:0a'), (e) => isErr(e, 'bad-argument'));
  assert.throws(() => ipv4FromString('10.0.2.256'), (e) => isErr(e, 'bad-argument'));
  assert.throws(() => ipv6FromString('1::2::3'), (e) => isErr(e, 'bad-argument'));
});

test('Ethernet round-trips untagged, 802.1Q-tagged and QinQ headers', () => {
  const b = new Uint8Array(64);
  assert.equal(writeEthernet(b, 2, MAC_B, MAC_A, EtherType.IPV4), 14);
  let e = parseEthernet(b, 2);
  assert.ok(!isErr(e));
  assert.deepEqual([e.dstOffset, e.srcOffset, e.etherType, e.vlanTags, e.vlanId, e.payloadOffset], [2, 8, 0x0800, 0, -1, 16]);
  assert.equal(writeEthernet(b, 0, MAC_B, MAC_A, EtherType.ARP, 42, 5), 18);
  e = parseEthernet(b, 0);
  assert.ok(!isErr(e));
  assert.deepEqual([e.etherType, e.vlanTags, e.vlanId, e.vlanPcp, e.payloadOffset], [EtherType.ARP, 1, 42, 5, 18]);
  // Outer 802.1ad tag around the 802.1Q one: both skipped, the outer ID reported.
  const q = new Uint8Array(64);
  writeEthernet(q, 0, MAC_B, MAC_A, EtherType.QINQ);
  q.set([0x00, 0x07, 0x81, 0x00, 0x00, 0x2a, 0x86, 0xdd], 14);
  e = parseEthernet(q, 0);
  assert.ok(!isErr(e));
  assert.deepEqual([e.etherType, e.vlanTags, e.vlanId, e.payloadOffset], [EtherType.IPV6, 2, 7, 22]);
  // A tag whose inner EtherType is cut off is truncated, not thrown.
  assert.ok(isErr(parseEthernet(b, 0, 16), 'truncated'));
  assert.ok(isErr(parseEthernet(b, 0, 13), 'truncated'));
  assert.equal(padEthernet(b, 0, 42), 60);
  assert.throws(() => writeEthernet(new Uint8Array(13), 0, MAC_B, MAC_A, 0x800), (x) => isErr(x, 'no-room'));
});

test('ARP request and reply frames round-trip', () => {
  const b = new Uint8Array(64);
  const n = buildArpFrame(b, 0, { op: ArpOp.REQUEST, srcMac: MAC_A, senderIp: IP_A, targetIp: IP_B });
  assert.equal(n, 42);
  const p = parsePacket(b, 0, n);
  assert.ok(!isErr(p));
  assert.equal(p.l3, 'arp');
  assert.equal(macToString(b, p.eth.dstOffset), 'ff:ff:ff:ff:ff:ff');
  assert.deepEqual([p.arp.op, p.arp.senderIp, p.arp.targetIp], [ArpOp.REQUEST, IP_A, IP_B]);
  assert.equal(macToString(b, p.arp.senderMacOffset), macToString(MAC_A));
  const m = buildArpFrame(b, 0, { op: ArpOp.REPLY, srcMac: MAC_B, dstMac: MAC_A, senderIp: IP_B, targetIp: IP_A });
  const r = parseArp(b, 14, m);
  assert.ok(!isErr(r));
  assert.deepEqual([r.op, r.senderIp, r.targetIp], [ArpOp.REPLY, IP_B, IP_A]);
  assert.equal(macToString(b, r.targetMacOffset), macToString(MAC_A));
  b[14] = 6; // hardware type 0x0601: not Ethernet
  assert.ok(isErr(parseArp(b, 14, m), 'unsupported'));
});

test('an IPv4 header checksums to zero over itself and parses back', () => {
  const b = new Uint8Array(40);
  writeIpv4Header(b, 0, { src: IP_A, dst: IP_B, protocol: IpProto.UDP, payloadBytes: 20, ttl: 17, id: 0xbeef, tos: 0x10 });
  assert.equal(csumFold(csumPartial(b, 0, 20)), 0);
  const ip = parseIpv4(b, 0);
  assert.ok(!isErr(ip));
  assert.deepEqual(
    [ip.headerBytes, ip.totalLength, ip.id, ip.ttl, ip.tos, ip.protocol, ip.src, ip.dst, ip.dontFragment, ip.checksumOk],
    [20, 40, 0xbeef, 17, 0x10, 17, IP_A, IP_B, true, true],
  );
  b[8]! ^= 1;
  assert.equal((parseIpv4(b, 0) as { checksumOk: boolean }).checksumOk, false);
  b[0] = 0x65;
  assert.ok(isErr(parseIpv4(b, 0), 'malformed'));
  b[0] = 0x44;
  assert.ok(isErr(parseIpv4(b, 0), 'malformed'));
  b[0] = 0x45;
  assert.ok(isErr(parseIpv4(b, 0, 39), 'truncated'));
});

test('IPv6 extension headers are walked to the upper-layer protocol', () => {
  const b = new Uint8Array(128);
  writeIpv6Header(b, 0, { src: IP6_A, dst: IP6_B, nextHeader: IpProto.HOPOPTS, payloadBytes: 8 + 16 + 8, flowLabel: 0x12345, trafficClass: 0xb8 });
  b.set([IpProto.DSTOPTS, 0, 1, 4, 0, 0, 0, 0], 40); // hop-by-hop, 8 bytes, PadN
  b.set([IpProto.UDP, 1, 1, 12], 48); // destination options, 16 bytes
  const ip = parseIpv6(b, 0);
  assert.ok(!isErr(ip));
  assert.deepEqual(
    [ip.trafficClass, ip.flowLabel, ip.payloadLength, ip.upperProtocol, ip.upperOffset, ip.payloadEnd, ip.fragmented],
    [0xb8, 0x12345, 32, IpProto.UDP, 64, 72, false],
  );
  assert.equal(ipv6ToString(b, ip.srcOffset), 'fd00::a');
  b[49] = 9; // destination options claiming 80 bytes: runs past the packet
  assert.ok(isErr(parseIpv6(b, 0), 'malformed'));
  assert.ok(isErr(parseIpv6(b, 0, 60), 'truncated'));
});

/** Asserts equal bytes, reporting the first difference (cheap even when fast-check shrinks). */
function assertSameBytes(actual: Uint8Array, expected: Uint8Array, what = 'bytes'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const at = actual.findIndex((b, i) => b !== expected[i]);
  assert.equal(at, -1, `${what}: first difference at ${at}`);
}

const payloadArb = fc.uint8Array({ minLength: 0, maxLength: 1400, size: 'max' });
const portArb = fc.integer({ min: 0, max: 0xffff });
const ipArb: fc.Arbitrary<IpFields> = fc.oneof(
  fc.record({
    version: fc.constant(4 as const),
    src: fc.integer({ min: 0, max: 0xffffffff }),
    dst: fc.integer({ min: 0, max: 0xffffffff }),
    id: fc.integer({ min: 0, max: 0xffff }),
    ttl: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    version: fc.constant(6 as const),
    src: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    dst: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    hopLimit: fc.integer({ min: 1, max: 255 }),
    flowLabel: fc.integer({ min: 0, max: 0xfffff }),
  }),
);
const vlanArb = fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: 4095 }));

test('property: UDP frames over IPv4/IPv6 round-trip and their checksums verify', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const buf = new Uint8Array(2048);
  const pkt = newParsedPacket();
  fc.assert(
    fc.property(ipArb, portArb, portArb, payloadArb, vlanArb, (ip, sp, dp, payload, vlanId) => {
      const layout = newFrameLayout();
      const n = buildUdpFrame(buf, 0, { link: { srcMac: MAC_A, dstMac: MAC_B, vlanId }, ip, srcPort: sp, dstPort: dp, payload }, layout);
      const p = parsePacket(buf, 0, n, pkt, true);
      assert.ok(!isErr(p), String(p));
      assert.equal(p.l3, ip.version === 4 ? 'ipv4' : 'ipv6');
      assert.equal(p.l4, 'udp');
      assert.equal(p.l4ChecksumOk, true);
      assert.equal(p.eth.vlanId, vlanId);
      assert.deepEqual([p.udp.srcPort, p.udp.dstPort, p.udp.length], [sp, dp, 8 + payload.length]);
      assert.notEqual(p.udp.checksum, 0);
      assertSameBytes(buf.subarray(p.udp.payloadOffset, p.udp.payloadEnd), payload, 'UDP payload');
      assert.equal(layout.l4Offset, p.l4Offset);
      if (ip.version === 4) {
        assert.equal(p.ipv4.checksumOk, true);
        assert.equal(csumFold(csumPartial(buf, p.ipOffset, 20)), 0);
        assert.deepEqual([p.ipv4.src, p.ipv4.dst, p.ipv4.id, p.ipv4.ttl], [ip.src >>> 0, ip.dst >>> 0, ip.id, ip.ttl]);
      } else {
        assert.deepEqual(buf.subarray(p.ipv6.srcOffset, p.ipv6.srcOffset + 16), ip.src);
        assert.equal(p.ipv6.flowLabel, ip.flowLabel);
      }
      // Flipping any payload bit breaks the checksum.
      if (payload.length > 0) {
        buf[p.udp.payloadOffset]! ^= 0x80;
        assert.equal(verifyL4Checksum(buf, ip.version, p.ipOffset, IpProto.UDP, p.l4Offset, p.udp.length), false);
      }
    }),
    { seed: SEED, numRuns: 300 },
  );
});

test('property: TCP frames (with options) over IPv4/IPv6 round-trip and their checksums verify', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const buf = new Uint8Array(2048);
  const opt = new Uint8Array(8);
  writeMssOption(opt, 0, 1460);
  opt.set([1, 3, 3, 7], 4); // NOP, window scale 7
  fc.assert(
    fc.property(
      ipArb,
      portArb,
      portArb,
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 0, max: 0xff }),
      fc.boolean(),
      payloadArb,
      (ip, sp, dp, seq, ack, flags, withOpts, payload) => {
        const n = buildTcpFrame(buf, 3, {
          link: { srcMac: MAC_A, dstMac: MAC_B },
          ip,
          srcPort: sp,
          dstPort: dp,
          seq,
          ack,
          flags,
          window: 29200,
          options: withOpts ? opt : undefined,
          payload,
        });
        const p = parsePacket(buf, 3, 3 + n, undefined, true);
        assert.ok(!isErr(p), String(p));
        assert.equal(p.l4, 'tcp');
        assert.equal(p.l4ChecksumOk, true);
        assert.deepEqual(
          [p.tcp.srcPort, p.tcp.dstPort, p.tcp.seq, p.tcp.ack, p.tcp.flags, p.tcp.window, p.tcp.headerBytes],
          [sp, dp, seq, ack, flags, 29200, withOpts ? 28 : 20],
        );
        assertSameBytes(buf.subarray(p.tcp.payloadOffset, p.tcp.payloadEnd), payload, 'TCP payload');
        const l4Len = p.l4End - p.l4Offset;
        const pseudo = l4PseudoSum(buf, ip.version, p.ipOffset, IpProto.TCP, l4Len);
        assert.equal(csumFold(csumPartial(buf, p.l4Offset, l4Len, pseudo)), 0);
      },
    ),
    { seed: SEED, numRuns: 300 },
  );
});

test('ICMP echo request/reply over IPv4 and ICMPv6 echo over IPv6 round-trip with valid checksums', () => {
  const buf = new Uint8Array(256);
  const data = Uint8Array.from({ length: 56 }, (_, i) => i);
  for (const kind of ['request', 'reply'] as const) {
    const n = buildIcmpEchoFrame(buf, 0, { link: { srcMac: MAC_A, dstMac: MAC_B }, ip: { version: 4, src: IP_A, dst: IP_B }, kind, id: 0x1234, seq: 7, data });
    assert.equal(n, 14 + 20 + 8 + 56);
    const p = parsePacket(buf, 0, n, undefined, true);
    assert.ok(!isErr(p));
    assert.equal(p.l4, 'icmp');
    assert.equal(p.l4ChecksumOk, true);
    assert.equal(p.icmp.type, kind === 'request' ? IcmpType.ECHO_REQUEST : IcmpType.ECHO_REPLY);
    assert.deepEqual([p.icmp.id, p.icmp.seq, p.icmp.dataEnd - p.icmp.dataOffset], [0x1234, 7, 56]);
    assert.equal(csumFold(csumPartial(buf, p.l4Offset, 64)), 0);
    buf[p.icmp.dataOffset + 3]! ^= 1;
    assert.equal((parseIcmp(buf, p.l4Offset, p.l4End) as { checksumOk: boolean }).checksumOk, false);

    const m = buildIcmpEchoFrame(buf, 0, { link: { srcMac: MAC_A, dstMac: MAC_B }, ip: { version: 6, src: IP6_A, dst: IP6_B }, kind, id: 9, seq: 65535, data });
    const q = parsePacket(buf, 0, m, undefined, true);
    assert.ok(!isErr(q));
    assert.equal(q.l4, 'icmpv6');
    assert.equal(q.l4ChecksumOk, true);
    assert.equal(q.icmp.type, kind === 'request' ? Icmpv6Type.ECHO_REQUEST : Icmpv6Type.ECHO_REPLY);
    assert.deepEqual([q.icmp.id, q.icmp.seq], [9, 65535]);
    buf[q.ipOffset + 8]! ^= 1; // the pseudo-header covers the source address
    assert.equal((parseIcmpv6(buf, q.l4Offset, q.l4End, q.ipOffset) as { checksumOk: boolean }).checksumOk, false);
  }
});

test('UDP and TCP parsers reject impossible lengths with typed errors', () => {
  const b = new Uint8Array(40);
  b[5] = 4; // UDP length 4 < 8
  assert.ok(isErr(parseUdp(b, 0), 'malformed'));
  b[5] = 41;
  assert.ok(isErr(parseUdp(b, 0), 'truncated'));
  b[12] = 0x40; // data offset 16 bytes
  assert.ok(isErr(parseTcp(b, 0), 'malformed'));
  b[12] = 0xf0; // 60 bytes in a 40-byte buffer
  assert.ok(isErr(parseTcp(b, 0), 'truncated'));
});

test('property: every prefix of a valid frame, and random bytes, parse to a NetError or a result, never a throw', (t) => {
  t.diagnostic(`fast-check seed ${SEED} (set FC_SEED to replay)`);
  const frames: Uint8Array[] = [];
  const b = new Uint8Array(256);
  const link = { srcMac: MAC_A, dstMac: MAC_B, vlanId: 3 };
  frames.push(b.slice(0, buildArpFrame(b, 0, { op: 1, srcMac: MAC_A, senderIp: IP_A, targetIp: IP_B, vlanId: 1 })));
  frames.push(b.slice(0, buildUdpFrame(b, 0, { link, ip: { version: 4, src: IP_A, dst: IP_B }, srcPort: 1, dstPort: 2, payload: new Uint8Array(10) })));
  frames.push(b.slice(0, buildTcpFrame(b, 0, { link, ip: { version: 6, src: IP6_A, dst: IP6_B }, srcPort: 1, dstPort: 2, seq: 1, flags: TcpFlags.SYN, payload: new Uint8Array(3) })));
  frames.push(b.slice(0, buildIcmpEchoFrame(b, 0, { link, ip: { version: 6, src: IP6_A, dst: IP6_B }, kind: 'request', id: 1, seq: 1 })));
  for (const f of frames) {
    for (let len = 0; len < f.length; len++) {
      const r = parsePacket(f, 0, len, undefined, true);
      // A short frame either fails in some layer or parses as much as it can; only a complete
      // frame can get to a verified transport checksum.
      if (!isErr(r)) assert.notEqual(r.l4ChecksumOk, true, `prefix ${len} of ${f.length}`);
    }
    assert.ok(!isErr(parsePacket(f, 0, f.length)));
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200, size: 'max' }), fc.constantFrom(0x0800, 0x86dd, 0x0806, 0x8100), (bytes, type) => {
      if (bytes.length >= 14) {
        bytes[12] = type >>> 8;
        bytes[13] = type & 0xff;
      }
      if (bytes.length >= 15 && type === 0x0800) bytes[14] = 0x45;
      if (bytes.length >= 15 && type === 0x86dd) bytes[14] = 0x60;
      const r = parsePacket(bytes, 0, bytes.length, undefined, true);
      assert.ok(isErr(r) || typeof r.l3 === 'string');
    }),
    { seed: SEED, numRuns: 2000 },
  );
});
