// Multiqueue steering (PortSteering, flowHash): one port shared by N pairs. A flow's frames come
// back on the pair the driver last sent it on; an unknown flow goes to a pair by hash, non-IP
// frames to pair 0; only active pairs (VQ_PAIRS_SET) receive; the port's head frame waits for its
// own pair (in order, never taken by another); the flow hash is symmetric (property).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PortSteering, flowHash } from '../src/net/steering.js';
import { RecordingBackend } from './support/net-pair.js';
import { buildTcpFrame, buildUdpFrame, ipv4FromString, ipv6FromString, macFromString, newFrameLayout, type IpFields } from '../src/net/frames/index.js';
import { emptyNetHdr } from '../src/net/header.js';

const SEED = Number(process.env.FC_SEED ?? 1617);
const A = macFromString('52:54:00:00:00:01');
const B = macFromString('52:54:00:00:00:02');

function udp(src: string, dst: string, sport: number, dport: number): Uint8Array {
  const buf = new Uint8Array(200);
  const v6 = src.includes(':');
  const ip: IpFields = v6 ? { version: 6, src: ipv6FromString(src), dst: ipv6FromString(dst) } : { version: 4, src: ipv4FromString(src), dst: ipv4FromString(dst) };
  const n = buildUdpFrame(buf, 0, { link: { srcMac: A, dstMac: B }, ip, srcPort: sport, dstPort: dport, payload: new Uint8Array(10), checksum: 'full' }, newFrameLayout());
  return buf.slice(0, n);
}

test('flowHash is symmetric: a reply (endpoints swapped) hashes like its request, IPv4 and IPv6, TCP and UDP', () => {
  fc.assert(
    fc.property(fc.ipV4(), fc.ipV4(), fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 65535 }), fc.boolean(), (s, d, sp, dp, tcp) => {
      const mk = (a: string, b: string, x: number, y: number): Uint8Array => {
        if (!tcp) return udp(a, b, x, y);
        const buf = new Uint8Array(200);
        const n = buildTcpFrame(buf, 0, { link: { srcMac: A, dstMac: B }, ip: { version: 4, src: ipv4FromString(a), dst: ipv4FromString(b) }, srcPort: x, dstPort: y, seq: 1, ack: 1, flags: 0x10, payload: new Uint8Array(0), checksum: 'full' }, newFrameLayout());
        return buf.slice(0, n);
      };
      const f = mk(s, d, sp, dp);
      const r = mk(d, s, dp, sp);
      const h = flowHash(f, 0, f.length);
      assert.ok(h >= 0);
      assert.equal(flowHash(r, 0, r.length), h);
    }),
    { seed: SEED, numRuns: 300 },
  );
  const v6 = udp('fd00::1', 'fd00::2', 1000, 2000);
  const v6r = udp('fd00::2', 'fd00::1', 2000, 1000);
  assert.equal(flowHash(v6, 0, v6.length), flowHash(v6r, 0, v6r.length));
});

test('flowHash: non-IP, truncated and fragmented frames have no flow', () => {
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  assert.equal(flowHash(arp, 0, arp.length), -1);
  const f = udp('10.0.0.1', '10.0.0.2', 1, 2);
  assert.equal(flowHash(f, 0, 30), -1);
  const frag = f.slice();
  frag[14 + 7] = 8; // fragment offset 8
  assert.equal(flowHash(frag, 0, frag.length), -1);
});

test('a flow sent on pair 1 comes back on pair 1; an unknown flow by hash; non-IP on pair 0; the head frame waits for its pair', () => {
  const port = new RecordingBackend();
  const s = new PortSteering(port, 2);
  s.setActivePairs(2);
  const [p0, p1] = s.views as [typeof s.views[0], typeof s.views[0]];
  const out = udp('10.0.0.1', '10.0.0.2', 4000, 80);
  p1.send(out, 0, out.length, emptyNetHdr());
  assert.equal(port.sent.length, 1, 'the frame reached the port');
  port.offer(udp('10.0.0.2', '10.0.0.1', 80, 4000)); // the reply
  assert.equal(p0.peekRx(), null, 'not for pair 0');
  assert.equal(s.headPairKnown, 1);
  assert.equal(p0.rxReady!(), false);
  assert.equal(p1.rxReady!(), true);
  assert.ok(p1.peekRx() !== null);
  p1.consumeRx();
  assert.deepEqual(s.stats.rxPerPair, [0, 1]);
  assert.equal(s.stats.rxByTxFlow, 1);
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  port.offer(arp);
  assert.equal(p1.peekRx(), null);
  assert.ok(p0.peekRx() !== null);
  p0.consumeRx();
  // Unknown flows spread by hash: over many flows both pairs get some.
  for (let i = 0; i < 64; i++) port.offer(udp('10.0.1.1', '10.0.1.2', 10000 + i, 53));
  const got = [0, 0];
  for (let i = 0; i < 64; i++) {
    if (p0.peekRx() !== null) (p0.consumeRx(), got[0]!++);
    else if (p1.peekRx() !== null) (p1.consumeRx(), got[1]!++);
    else assert.fail('the head frame belongs to no pair');
  }
  assert.ok(got[0]! > 0 && got[1]! > 0, JSON.stringify(got));
});

test('only active pairs receive: with one active pair every frame goes to pair 0, even a flow sent on pair 1', () => {
  const port = new RecordingBackend();
  const s = new PortSteering(port, 4);
  const out = udp('10.0.0.1', '10.0.0.2', 4000, 80);
  s.views[1]!.send(out, 0, out.length, emptyNetHdr());
  s.setActivePairs(1);
  for (let i = 0; i < 16; i++) port.offer(udp('10.0.0.2', '10.0.0.1', 80, 4000 + i));
  for (let i = 0; i < 16; i++) {
    assert.ok(s.views[0]!.peekRx() !== null);
    s.views[0]!.consumeRx();
  }
  assert.deepEqual(s.stats.rxPerPair, [16, 0, 0, 0]);
});
