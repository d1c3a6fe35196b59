// NetEndpoint, the protocol half of the host stack (and of the guest application in the
// workloads): ARP and ICMP/ICMPv6 echo answered with valid frames, echo replies checked, the
// stream sink catching a lost, a duplicated and a corrupted byte (so the end-to-end checks can
// fail), ACKs opening the source's window, and garbage input never throwing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NetEndpoint, streamPattern } from '../src/net/endpoint.js';
import { emptyNetHdr, GsoType, type VirtioNetHdr } from '../src/net/header.js';
import { HostStack } from '../src/backend/host-stack.js';
import { macFromString, ipv4FromString, ipv6FromString, parsePacket, ArpOp, IcmpType, Icmpv6Type } from '../src/net/frames/index.js';
import { NetError } from '../src/net/errors.js';

const A = { mac: macFromString('52:54:00:12:34:56'), ip: ipv4FromString('10.0.2.15'), ip6: ipv6FromString('fd00::15') };
const B = { mac: macFromString('52:54:00:ab:cd:ef'), ip: ipv4FromString('10.0.2.2'), ip6: ipv6FromString('fd00::2') };

function pair(opts: { gso?: boolean; partialCsum?: boolean } = {}): [NetEndpoint, NetEndpoint] {
  const a = new NetEndpoint({ mac: A.mac, ip: A.ip, ip6: A.ip6, peerMac: B.mac, peerIp: B.ip, peerIp6: B.ip6, ...opts });
  const b = new NetEndpoint({ mac: B.mac, ip: B.ip, ip6: B.ip6, peerMac: A.mac, peerIp: A.ip, peerIp6: A.ip6, ...opts });
  return [a, b];
}

/** Moves every frame `from` has into `to`, optionally through a mangler; returns the count. */
function pump(from: NetEndpoint, to: NetEndpoint, mangle?: (f: Uint8Array, i: number) => Uint8Array | null): number {
  const buf = new Uint8Array(70000);
  const hdr: VirtioNetHdr = emptyNetHdr();
  let n = 0;
  for (let len; (len = from.nextFrame(buf, 0, buf.length, hdr)) > 0; n++) {
    let f: Uint8Array | null = buf.slice(0, len);
    if (mangle) f = mangle(f, n);
    if (f) to.input(f, 0, f.length, hdr);
  }
  return n;
}

test('an ARP request for our address gets a valid reply and the requester learns the MAC', () => {
  const [a, b] = pair();
  a.peerMac = macFromString('00:00:00:00:00:00');
  assert.ok(a.sendArpRequest());
  const buf = new Uint8Array(100);
  const h = emptyNetHdr();
  const n = a.nextFrame(buf, 0, 100, h);
  b.input(buf, 0, n, h);
  const m = b.nextFrame(buf, 0, 100, h);
  const p = parsePacket(buf, 0, m);
  assert.ok(!(p instanceof NetError));
  assert.equal(p.l3, 'arp');
  assert.equal(p.arp.op, ArpOp.REPLY);
  a.input(buf, 0, m, h);
  assert.deepEqual(a.peerMac, B.mac);
  assert.equal(a.stats.arpRepliesIn, 1);
});

for (const v6 of [false, true]) {
  test(`an ICMP${v6 ? 'v6' : ''} echo request is answered with the same id, seq and data, checksummed`, () => {
    const [a, b] = pair();
    const replies: [number, number, boolean][] = [];
    a.onEchoReply = (id, seq, ok) => replies.push([id, seq, ok]);
    a.sendEchoRequest(7, 3, 56, v6);
    pump(a, b);
    const buf = new Uint8Array(200);
    const h = emptyNetHdr();
    const n = b.nextFrame(buf, 0, 200, h);
    const p = parsePacket(buf, 0, n, undefined, true);
    assert.ok(!(p instanceof NetError));
    assert.equal(p.icmp.type, v6 ? Icmpv6Type.ECHO_REPLY : IcmpType.ECHO_REPLY);
    assert.equal(p.l4ChecksumOk, true);
    a.input(buf, 0, n, h);
    assert.deepEqual(replies, [[7, 3, true]]);
    // A reply whose data was altered is reported as such.
    buf[n - 1]! ^= 0xff;
    a.input(buf, 0, n, h);
    assert.equal(replies.length, 1, 'a reply with a broken checksum is not accepted');
  });
}

for (const v6 of [false, true]) {
  test(`an ICMP${v6 ? 'v6' : ''} echo request from a sender we were not configured with is answered to its MAC and address`, () => {
    // Behind a real TAP the asker is the kernel: its MAC and address are nobody's configuration.
    const C = { mac: macFromString('02:11:22:33:44:55'), ip: ipv4FromString('10.0.2.99'), ip6: ipv6FromString('fd00::99') };
    const [, b] = pair();
    const c = new NetEndpoint({ mac: C.mac, ip: C.ip, ip6: C.ip6, peerMac: B.mac, peerIp: B.ip, peerIp6: B.ip6 });
    c.sendEchoRequest(9, 4, 32, v6);
    pump(c, b);
    const buf = new Uint8Array(200);
    const h = emptyNetHdr();
    const n = b.nextFrame(buf, 0, 200, h);
    const p = parsePacket(buf, 0, n, undefined, true);
    assert.ok(!(p instanceof NetError));
    assert.deepEqual(buf.slice(p.eth.dstOffset, p.eth.dstOffset + 6), C.mac);
    if (v6) assert.deepEqual(buf.slice(p.ipv6.dstOffset, p.ipv6.dstOffset + 16), C.ip6);
    else assert.equal(p.ipv4.dst, C.ip);
    assert.equal(p.l4ChecksumOk, true);
    const replies: number[] = [];
    c.onEchoReply = (_id, seq) => replies.push(seq);
    c.input(buf, 0, n, h);
    assert.deepEqual(replies, [4]);
  });
}

test('a stream moves every byte through GSO frames; ACKs open the window; the sink counts exactly', () => {
  const [a, b] = pair({ gso: true, partialCsum: true });
  a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 65536, totalBytes: 1_000_000, windowBytes: 100_000 });
  const sink = b.startSink({ port: 5001, verify: true, expectBytes: 1_000_000 });
  let rounds = 0;
  while (!sink.done && rounds++ < 100) {
    pump(a, b);
    pump(b, a);
  }
  assert.equal(sink.payloadBytes, 1_000_000);
  assert.equal(sink.errors, 0, sink.firstError);
  assert.ok(a.source!.gsoFrames > 0);
  assert.ok(rounds > 5, 'the 100 kB window made the source wait for ACKs');
  assert.equal(a.sourceDone, true, 'every byte acknowledged');
  assert.equal(a.source!.badAcks, 0);
});

for (const ackEach of [false, true]) {
  test(`ackEach ${ackEach}: ${ackEach ? 'every ACK that fell due goes out, each acknowledging the stream as it stood' : 'the ACKs due by the next transmit go out as one'}`, () => {
    const [a, b] = pair({ gso: false, partialCsum: false });
    const mss = 1460;
    a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 10 * mss, totalBytes: 10 * mss, windowBytes: 1 << 20 });
    const sink = b.startSink({ port: 5001, ackEveryBytes: 2 * mss, ackEach });
    // Ten MSS frames in before the receiver transmits: five ACKs fall due (every 2 × MSS).
    assert.equal(pump(a, b), 10);
    const acks: number[] = [];
    pump(b, a, (f) => {
      const p = parsePacket(f, 0, f.length);
      if (p instanceof NetError) throw p;
      acks.push(p.tcp.ack);
      return f;
    });
    const isn = acks[acks.length - 1]! - 10 * mss;
    assert.deepEqual(
      acks.map((x) => (x - isn) >>> 0),
      ackEach ? [2, 4, 6, 8, 10].map((k) => k * mss) : [10 * mss],
    );
    assert.equal(sink.acksSent, acks.length);
    assert.equal(a.sourceDone, true, 'the last ACK covers every byte');
    assert.equal(a.source!.badAcks, 0);
    assert.equal(b.hasOutput, false, 'nothing left to send');
  });
}

test('ackEach: more due ACKs than the queue holds merge into the newest, never lost', () => {
  const [a, b] = pair({ gso: false, partialCsum: false });
  const total = 600 * 1460;
  a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 1460, totalBytes: total, windowBytes: 4 << 20 });
  const sink = b.startSink({ port: 5001, ackEveryBytes: 1460, ackEach: true, expectBytes: total });
  pump(a, b);
  const sent = pump(b, a);
  assert.ok(sent < 600 && sent > 1, `${sent} ACKs for 600 due: the queue merged some`);
  assert.equal(sink.done, true);
  assert.equal(a.sourceDone, true, 'the last ACK covers every byte');
  assert.equal(a.source!.badAcks, 0);
});

for (const [what, mangle] of [
  ['a lost frame', (f: Uint8Array, i: number) => (i === 3 ? null : f)],
  ['a corrupted byte', (f: Uint8Array, i: number) => (i === 3 ? (f[f.length - 5]! ^= 1, f) : f)],
] as [string, (f: Uint8Array, i: number) => Uint8Array | null][]) {
  test(`the verifying sink reports ${what}`, () => {
    const [a, b] = pair({ gso: false, partialCsum: false });
    a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 16384, totalBytes: 20_000 });
    const sink = b.startSink({ port: 5001, verify: true });
    pump(a, b, mangle);
    assert.ok(sink.errors > 0);
    assert.match(sink.firstError, what === 'a lost frame' ? /lost, duplicated or reordered/ : /bad TCP checksum|corrupted/);
  });
}

test('the sink reports a duplicated frame', () => {
  const [a, b] = pair();
  a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 16384, totalBytes: 10_000 });
  const sink = b.startSink({ port: 5001 });
  pump(a, b, (f, i) => {
    if (i === 2) b.input(f, 0, f.length, emptyNetHdr());
    return f;
  });
  assert.equal(sink.errors, 1);
  assert.match(sink.firstError, /lost, duplicated or reordered/);
});

// The DPDK net_vhost test's setup: a device that reflects frames unchanged (io forwarding) in
// front of an endpoint addressed to itself, so its sink takes its own stream and its source its
// own ACKs; a lost, reordered or corrupted reflection must still be caught.
for (const [what, mangle, error] of [
  ['unchanged', (f: Uint8Array) => f, null],
  ['with one byte corrupted', (f: Uint8Array, i: number) => (i === 5 ? (f[f.length - 3]! ^= 0x40, f) : f), /bad TCP checksum|corrupted/],
  ['with one frame lost', (f: Uint8Array, i: number) => (i === 5 ? null : f), /lost, duplicated or reordered/],
] as [string, (f: Uint8Array, i: number) => Uint8Array | null, RegExp | null][]) {
  test(`an endpoint addressed to itself receives its own stream reflected ${what}`, () => {
    const self = new NetEndpoint({ mac: A.mac, ip: A.ip, peerMac: A.mac, peerIp: A.ip, mtu: 104 });
    self.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 64_000, totalBytes: 64_000, windowBytes: 64 * 64 });
    const sink = self.startSink({ port: 5001, verify: true, ackEveryBytes: 8 * 64, expectBytes: 64_000 });
    let frames = 0;
    for (let rounds = 0; !(sink.done && self.sourceDone) && rounds < 1000; rounds++) pump(self, self, (f) => mangle(f, frames++));
    if (error === null) {
      assert.equal(sink.errors, 0, sink.firstError);
      assert.equal(sink.segments, 1000, 'one 64-byte segment per frame');
      assert.equal(self.sourceDone, true, 'its own reflected ACKs acknowledged every byte');
      assert.equal(self.source!.badAcks, 0);
      assert.equal(self.stats.ignored, 0);
    } else {
      assert.ok(sink.errors > 0);
      assert.match(sink.firstError, error);
    }
  });
}

test('the host stack builds frames for the guest lazily and keeps an unconsumed one', () => {
  const s = new HostStack({ mac: B.mac, ip: B.ip, peerMac: A.mac, peerIp: A.ip, gso: true, partialCsum: true });
  assert.equal(s.peekRx(), null);
  s.endpoint.startSource({ srcPort: 1, dstPort: 2, msgBytes: 100_000, totalBytes: 100_000 });
  const f = s.peekRx();
  assert.ok(f);
  assert.equal(f.hdr.gsoType, GsoType.TCPV4);
  assert.equal(s.peekRx(), f, 'same frame until consumed');
  const sent = s.endpoint.source!.sentBytes;
  s.consumeRx();
  s.peekRx();
  assert.ok(s.endpoint.source!.sentBytes > sent);
  assert.deepEqual(f.bytes.subarray(f.offset + 54, f.offset + 64), streamPattern(sent, 10));
});

test('garbage frames never throw and are counted as parse errors or ignored', () => {
  const [, b] = pair();
  b.startSink({ port: 5001, verify: true });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 2000 }), fc.boolean(), (f, forUs) => {
      if (forUs && f.length >= 6) f.set(B.mac);
      b.input(f, 0, f.length, emptyNetHdr());
    }),
    { seed: 77, numRuns: 500 },
  );
  assert.equal(b.stats.framesIn, 500);
  assert.ok(b.stats.parseErrors + b.stats.ignored > 0);
});

test('a backlogged source builds full frames across its sends (TCP size_goal), with PSH where a send ends; coalesce: false keeps each frame inside one send', () => {
  for (const coalesce of [true, false]) {
    const [a, b] = pair({ gso: true, partialCsum: true });
    a.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 16384, totalBytes: 400_000, coalesce });
    const sink = b.startSink({ port: 5001, verify: true, expectBytes: 400_000 });
    const sizes: number[] = [];
    const pushes: boolean[] = [];
    const buf = new Uint8Array(70000);
    const hdr: VirtioNetHdr = emptyNetHdr();
    for (let len; (len = a.nextFrame(buf, 0, buf.length, hdr)) > 0; ) {
      const f = buf.slice(0, len);
      const payload = len - 54;
      sizes.push(payload);
      pushes.push((f[14 + 20 + 13]! & 0x08) !== 0);
      b.input(f, 0, f.length, hdr);
    }
    assert.equal(sink.payloadBytes, 400_000);
    assert.equal(sink.errors, 0, sink.firstError);
    if (coalesce) {
      // Every frame but the stream's last is as large as a GSO frame gets (a whole number of MSS).
      assert.ok(sizes.slice(0, -1).every((n) => n === sizes[0] && n > 16384), `sizes ${sizes.join(',')}`);
      // Each frame of 4+ sends' worth reaches the end of one of them: PSH on every frame.
      assert.ok(pushes.every((p) => p));
    } else {
      assert.ok(sizes.every((n) => n <= 16384), `sizes ${sizes.join(',')}`);
      // A frame ending a send carries PSH, one inside a send does not.
      let inMsg = 0;
      sizes.forEach((n, i) => {
        inMsg += n;
        assert.equal(pushes[i], inMsg === 16384, `frame ${i}`);
        if (inMsg === 16384) inMsg = 0;
      });
    }
  }
});
