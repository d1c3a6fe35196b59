// Receive-side scaling and hash reports (virtio 1.2 §5.1.6.4.3, §5.1.6.5.7): the Toeplitz hash
// against the published RSS verification vectors, the hash input per hash type (4-tuple, address
// pair, unclassified), RSS_CONFIG / HASH_CONFIG parsing (good, malformed, a round-trip property),
// steering by the indirection table, and hash_value / hash_report in the header NetDevice writes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RSS_MAX_KEY_BYTES, RssHashType, encodeRssConfig, parseRssConfig, rssInput, toeplitz, type RssConfig } from '../src/net/rss.js';
import { ControlRejection, CtrlClass, CtrlMq, encodeControl, parseControl } from '../src/net/control.js';
import { NetControl } from '../src/net/control-queue.js';
import { PortSteering } from '../src/net/steering.js';
import { NetDevice, deviceConfig } from '../src/net/device.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { HashReport, decodeNetHdr, emptyNetHdr } from '../src/net/header.js';
import { GuestMemory } from '../src/memory/index.js';
import { DeviceQueue, SplitLayout } from '../src/virtqueue/index.js';
import { MockDriver } from './support/mock-driver.js';
import { RecordingBackend } from './support/net-pair.js';
import { buildTcpFrame, buildUdpFrame, ipv4FromString, ipv6FromString, macFromString, newFrameLayout, type IpFields } from '../src/net/frames/index.js';

const SEED = Number(process.env.FC_SEED ?? 1618);
// The RSS verification key and vectors (Microsoft, "Verifying the RSS Hash Calculation").
const KEY = Uint8Array.from([
  0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80,
  0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
]);
const V4: [string, number, string, number, number, number][] = [
  // src, sport, dst, dport, IPv4 hash, TCPv4 hash
  ['66.9.149.187', 2794, '161.142.100.80', 1766, 0x323e8fc2, 0x51ccc178],
  ['199.92.111.2', 14230, '65.69.140.83', 4739, 0xd718262a, 0xc626b0ea],
  ['24.19.198.95', 12898, '12.22.207.184', 38024, 0xd2d0a5de, 0x5c2b394a],
  ['38.27.205.30', 48228, '209.142.163.6', 2217, 0x82989176, 0xafc7327f],
  ['153.39.163.191', 44251, '202.188.127.2', 1303, 0x5d1809c5, 0x10e828a2],
];
const A = macFromString('52:54:00:00:00:01');
const B = macFromString('52:54:00:12:34:56');

function tcp(src: string, sport: number, dst: string, dport: number): Uint8Array {
  const ip: IpFields = src.includes(':') ? { version: 6, src: ipv6FromString(src), dst: ipv6FromString(dst) } : { version: 4, src: ipv4FromString(src), dst: ipv4FromString(dst) };
  const buf = new Uint8Array(200);
  const n = buildTcpFrame(buf, 0, { link: { srcMac: A, dstMac: B }, ip, srcPort: sport, dstPort: dport, seq: 1, ack: 0, flags: 0x02, payload: new Uint8Array(0), checksum: 'full' }, newFrameLayout());
  return buf.slice(0, n);
}

function udp(src: string, sport: number, dst: string, dport: number): Uint8Array {
  const buf = new Uint8Array(200);
  const n = buildUdpFrame(buf, 0, { link: { srcMac: A, dstMac: B }, ip: { version: 4, src: ipv4FromString(src), dst: ipv4FromString(dst) }, srcPort: sport, dstPort: dport, payload: new Uint8Array(8), checksum: 'full' }, newFrameLayout());
  return buf.slice(0, n);
}

function hashOf(frame: Uint8Array, types: number): { hash: number; report: number } | null {
  const scratch = new Uint8Array(40);
  const r = rssInput(frame, 0, frame.length, types, scratch);
  return r === null ? null : { hash: toeplitz(KEY, scratch, r.lenBytes), report: r.report };
}

test('Toeplitz over the RSS verification vectors: IPv4 address pairs and TCPv4 4-tuples', () => {
  for (const [src, sport, dst, dport, ipHash, tcpHash] of V4) {
    const f = tcp(src, sport, dst, dport);
    assert.deepEqual(hashOf(f, RssHashType.IPV4), { hash: ipHash, report: HashReport.IPV4 }, `${src} → ${dst}`);
    assert.deepEqual(hashOf(f, RssHashType.IPV4 | RssHashType.TCPV4), { hash: tcpHash, report: HashReport.TCPV4 }, `${src}:${sport} → ${dst}:${dport}`);
  }
});

test('hash input: UDP needs UDPV4, a fragment falls back to the addresses, non-IP and disabled types are unclassified, IPv6 TCP takes 36 bytes', () => {
  const u = udp('10.0.0.1', 1000, '10.0.0.2', 53);
  assert.equal(hashOf(u, RssHashType.IPV4 | RssHashType.TCPV4)!.report, HashReport.IPV4);
  assert.equal(hashOf(u, RssHashType.UDPV4)!.report, HashReport.UDPV4);
  assert.equal(hashOf(u, RssHashType.TCPV4), null);
  const frag = u.slice();
  frag[14 + 7] = 1; // fragment offset 1: no ports
  assert.equal(hashOf(frag, RssHashType.UDPV4), null);
  assert.equal(hashOf(frag, RssHashType.UDPV4 | RssHashType.IPV4)!.report, HashReport.IPV4);
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  assert.equal(hashOf(arp, 0x3f), null);
  const v6 = tcp('3ffe:2501:200:1fff::7', 2794, '3ffe:2501:200:3::1', 1766);
  const scratch = new Uint8Array(40);
  assert.deepEqual(rssInput(v6, 0, v6.length, RssHashType.TCPV6, scratch), { lenBytes: 36, report: HashReport.TCPV6 });
  assert.deepEqual(rssInput(v6, 0, v6.length, RssHashType.IPV6, scratch), { lenBytes: 32, report: HashReport.IPV6 });
});

const cfg = (o: Partial<RssConfig> = {}): RssConfig => ({ hashTypes: RssHashType.IPV4 | RssHashType.TCPV4, key: KEY, indirection: Uint16Array.from([0, 1, 1, 0]), unclassifiedQueue: 1, maxTxVq: 2, ...o });

test('RSS_CONFIG and HASH_CONFIG parse; a table not a power of 2, queues beyond the pairs, a long key, unsupported types and wrong lengths are refused', () => {
  const good = parseRssConfig(encodeRssConfig(cfg(), true), true, 2) as RssConfig;
  assert.deepEqual([...good.indirection], [0, 1, 1, 0]);
  assert.equal(good.maxTxVq, 2);
  assert.deepEqual([...good.key], [...KEY]);
  const h = parseRssConfig(encodeRssConfig(cfg({ indirection: new Uint16Array(0) }), false), false, 2) as RssConfig;
  assert.equal(h.indirection.length, 0);
  const bad: [Uint8Array, boolean, RegExp][] = [
    [encodeRssConfig(cfg({ indirection: Uint16Array.from([0, 1, 0]) }), true), true, /power of 2/],
    [encodeRssConfig(cfg({ indirection: Uint16Array.from([0, 2]) }), true), true, /queue 2/],
    [encodeRssConfig(cfg({ unclassifiedQueue: 5 }), true), true, /unclassified_queue 5/],
    [encodeRssConfig(cfg({ maxTxVq: 0 }), true), true, /max_tx_vq 0/],
    [encodeRssConfig(cfg({ key: new Uint8Array(RSS_MAX_KEY_BYTES + 1) }), true), true, /exceeds rss_max_key_size/],
    [encodeRssConfig(cfg({ hashTypes: RssHashType.IP_EX }), true), true, /supported_hash_types/],
    [encodeRssConfig(cfg(), true).subarray(0, 20), true, /bytes/],
    [Uint8Array.of(...encodeRssConfig(cfg(), false), 0), false, /bytes/],
  ];
  for (const [b, steering, re] of bad) {
    const r = parseRssConfig(b, steering, 2);
    assert.equal(typeof r, 'string');
    assert.match(r as string, re);
  }
});

test('property: any RSS config within the limits survives encode → parse; any bytes parse or are refused, never throw', () => {
  const arbCfg = fc.record({
    hashTypes: fc.integer({ min: 0, max: 0x3f }),
    key: fc.uint8Array({ maxLength: RSS_MAX_KEY_BYTES }),
    indirection: fc.integer({ min: 0, max: 7 }).chain((e) => fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 1 << e, maxLength: 1 << e }).map((a) => Uint16Array.from(a))),
    unclassifiedQueue: fc.integer({ min: 0, max: 3 }),
    maxTxVq: fc.integer({ min: 1, max: 4 }),
  });
  fc.assert(
    fc.property(arbCfg, fc.boolean(), (c, steering) => {
      const r = parseRssConfig(encodeRssConfig(c, steering), steering, 4) as RssConfig;
      assert.equal(typeof r, 'object', String(r));
      assert.equal(r.hashTypes, c.hashTypes);
      assert.deepEqual([...r.key], [...c.key]);
      if (steering) assert.deepEqual([...r.indirection], [...c.indirection]);
    }),
    { seed: SEED, numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (b, steering) => {
      const r = parseRssConfig(b, steering, 4);
      assert.ok(typeof r === 'string' || typeof r === 'object');
    }),
    { seed: SEED, numRuns: 1000 },
  );
});

test('the control parser gates RSS_CONFIG on RSS and HASH_CONFIG on HASH_REPORT; NetControl refuses queues beyond its pairs', () => {
  const cmd = encodeControl({ kind: 'rss', steering: true, config: cfg() });
  assert.equal(cmd[0], CtrlClass.MQ);
  assert.equal(cmd[1], CtrlMq.RSS_CONFIG);
  const base = VirtioF.VERSION_1 | NetF.CTRL_VQ;
  assert.ok(parseControl(cmd, cmd.length, base | NetF.MQ) instanceof ControlRejection);
  const r = parseControl(cmd, cmd.length, base | NetF.RSS);
  assert.equal((r as { kind: string }).kind, 'rss');
  const hc = encodeControl({ kind: 'rss', steering: false, config: cfg() });
  assert.ok(parseControl(hc, hc.length, base | NetF.RSS) instanceof ControlRejection);
  assert.equal((parseControl(hc, hc.length, base | NetF.HASH_REPORT) as { kind: string }).kind, 'rss');
  // VQ_PAIRS_SET still needs MQ when only RSS was negotiated.
  const vq = encodeControl({ kind: 'mq-pairs', pairs: 1 });
  assert.ok(parseControl(vq, vq.length, base | NetF.RSS) instanceof ControlRejection);
  const one = new NetControl({ features: base | NetF.RSS, config: deviceConfig(), maxPairs: 1 });
  assert.equal(one.apply({ kind: 'rss', steering: true, config: cfg() })?.reason, 'too-many-pairs');
  const two = new NetControl({ features: base | NetF.RSS | NetF.MQ, config: deviceConfig(), maxPairs: 2 });
  let pairs = 0;
  two.onPairs = (n) => (pairs = n);
  assert.equal(two.apply({ kind: 'rss', steering: true, config: cfg() }), null);
  assert.equal(pairs, 2);
  assert.ok(two.rss !== null && two.hashing !== null);
  assert.equal(two.apply({ kind: 'mq-pairs', pairs: 1 }), null);
  assert.equal(two.rss, null, 'VQ_PAIRS_SET returns to automatic steering');
});

test('steering by RSS: each frame goes to indirection_table[hash & mask], unclassified frames to unclassified_queue', () => {
  const port = new RecordingBackend();
  const s = new PortSteering(port, 2);
  s.setRss(cfg());
  for (const [src, sport, dst, dport, , tcpHash] of V4) {
    port.offer(tcp(src, sport, dst, dport));
    const want = [0, 1, 1, 0][tcpHash & 3]!;
    assert.equal(s.views[1 - want]!.peekRx(), null);
    assert.ok(s.views[want]!.peekRx() !== null, `${src}: hash 0x${tcpHash.toString(16)} → queue ${want}`);
    s.views[want]!.consumeRx();
  }
  const arp = new Uint8Array(60);
  arp[12] = 0x08;
  arp[13] = 0x06;
  port.offer(arp);
  assert.equal(s.views[0]!.peekRx(), null);
  assert.ok(s.views[1]!.peekRx() !== null, 'unclassified_queue 1');
  s.views[1]!.consumeRx();
  assert.equal(s.stats.rxByRss, V4.length);
  assert.equal(s.stats.rxRssUnclassified, 1);
});

test('HASH_REPORT: after HASH_CONFIG the device writes hash_value and hash_report into the 20-byte header', () => {
  const features = VirtioF.VERSION_1 | NetF.CTRL_VQ | NetF.HASH_REPORT | NetF.MRG_RXBUF;
  const mem = GuestMemory.allocate(1 << 20);
  const rxL = SplitLayout.packedAt(16, 0, 0);
  const txL = SplitLayout.packedAt(16, 8192, 1);
  const rxq = new DeviceQueue(mem, rxL, { index: 0 });
  const txq = new DeviceQueue(mem, txL, { index: 1 });
  const control = new NetControl({ features, config: deviceConfig() });
  const port = new RecordingBackend();
  const dev = new NetDevice({ mem, rxq, txq, features, port, control });
  const drv = new MockDriver(mem, 16, rxL.descAddr, rxL.availAddr, rxL.usedAddr);
  const deliver = (f: Uint8Array, slot: number): { hashValue: number; hashReport: number } => {
    drv.writeChain(slot, [{ addr: 65536 + 4096 * slot, len: 4096, write: true }]);
    drv.makeAvailable(slot);
    port.offer(f);
    assert.equal(dev.fillRx(1), 1);
    dev.flushRx();
    const h = decodeNetHdr(mem.bytes(65536 + 4096 * slot, 20), 0, 'hash', emptyNetHdr());
    return h as { hashValue: number; hashReport: number };
  };
  const [src, sport, dst, dport, , tcpHash] = V4[0]!;
  const before = deliver(tcp(src, sport, dst, dport), 0);
  assert.deepEqual([before.hashValue, before.hashReport], [0, HashReport.NONE], 'no reports before HASH_CONFIG');
  assert.equal(control.apply({ kind: 'rss', steering: false, config: cfg({ indirection: new Uint16Array(0) }) }), null);
  const h = deliver(tcp(src, sport, dst, dport), 2);
  assert.equal(h.hashValue, tcpHash);
  assert.equal(h.hashReport, HashReport.TCPV4);
});
