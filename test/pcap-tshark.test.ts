// Cross-check with a standard decoder: a pcap of ARP, ICMP/ICMPv6 echo, UDP, TCP (including
// GSO-segmented TCPv4/TCPv6 and a NEEDS_CSUM-completed UDP datagram) written by PcapWriter is
// read by tshark with IP/TCP/UDP checksum validation on; every frame must decode as the
// expected protocols, no frame may be malformed, every checksum must be "good", and no expert
// error may be raised. Skips when tshark is not installed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPcapFile } from '../src/backend/pcap-file.js';
import {
  buildArpFrame,
  buildIcmpEchoFrame,
  buildUdpFrame,
  buildTcpFrame,
  newFrameLayout,
  padEthernet,
  ArpOp,
  TcpFlags,
  writeMssOption,
  macFromString,
  ipv4FromString,
  ipv6FromString,
  type IpFields,
} from '../src/net/frames/index.js';
import { gsoSegmentTcp, applyNeedsCsum } from '../src/net/gso.js';
import { GsoType } from '../src/net/header.js';
import { NetError } from '../src/net/errors.js';

const GUEST_MAC = macFromString('52:54:00:12:34:56');
const HOST_MAC = macFromString('52:54:00:ab:cd:ef');
const V4: IpFields = { version: 4, src: ipv4FromString('10.0.2.15'), dst: ipv4FromString('10.0.2.2'), id: 0xfff0 };
const V6: IpFields = { version: 6, src: ipv6FromString('fd00::15'), dst: ipv6FromString('fd00::2') };
const link = { srcMac: GUEST_MAC, dstMac: HOST_MAC };
// Ports no tshark dissector claims, so payload bytes are not judged as some protocol.
const SPORT = 47001;
const DPORT = 47002;

interface Expected {
  what: string;
  protocols: string;
}

function tsharkAvailable(): boolean {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

/** Writes the test capture; returns what each frame should decode as, in order. */
function writeCapture(path: string, nanosecond: boolean): Expected[] {
  const file = openPcapFile(path, { nanosecond });
  const expected: Expected[] = [];
  const buf = new Uint8Array(70000);
  let tsNs = 1_700_000_000_000_000_000n;
  const put = (what: string, protocols: string, frame: Uint8Array, len: number): void => {
    tsNs += 1_000_123n;
    file.writer.writePacket(tsNs, frame, 0, len);
    expected.push({ what, protocols });
  };
  const payload = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

  let n = buildArpFrame(buf, 0, { op: ArpOp.REQUEST, srcMac: GUEST_MAC, senderIp: V4.src as number, targetIp: V4.dst as number });
  put('ARP request', 'eth:ethertype:arp', buf, padEthernet(buf, 0, n));
  n = buildArpFrame(buf, 0, { op: ArpOp.REPLY, srcMac: HOST_MAC, dstMac: GUEST_MAC, senderIp: V4.dst as number, targetIp: V4.src as number });
  put('ARP reply', 'eth:ethertype:arp', buf, padEthernet(buf, 0, n));

  for (const kind of ['request', 'reply'] as const) {
    n = buildIcmpEchoFrame(buf, 0, { link, ip: V4, kind, id: 0x4242, seq: 1, data: payload(56, 1) });
    put(`ICMP echo ${kind}`, 'eth:ethertype:ip:icmp:data', buf, n);
    n = buildIcmpEchoFrame(buf, 0, { link, ip: V6, kind, id: 0x4242, seq: 1, data: payload(56, 2) });
    put(`ICMPv6 echo ${kind}`, 'eth:ethertype:ipv6:icmpv6:data', buf, n);
  }

  n = buildUdpFrame(buf, 0, { link, ip: V4, srcPort: SPORT, dstPort: DPORT, payload: payload(3, 3) });
  put('short UDP/IPv4 padded to 60 bytes', 'eth:ethertype:ip:udp:data', buf, padEthernet(buf, 0, n));
  n = buildUdpFrame(buf, 0, { link: { ...link, vlanId: 100 }, ip: V6, srcPort: SPORT, dstPort: DPORT, payload: payload(1000, 4) });
  put('UDP/IPv6 in an 802.1Q tag', 'eth:ethertype:vlan:ethertype:ipv6:udp:data', buf, n);

  // A UDP datagram sent with NEEDS_CSUM, completed as a device would.
  const layout = newFrameLayout();
  n = buildUdpFrame(buf, 0, { link, ip: V4, srcPort: SPORT, dstPort: DPORT, payload: payload(777, 5), checksum: 'partial' }, layout);
  assert.equal(applyNeedsCsum(buf.subarray(0, n), layout.l4Offset, 6), null);
  put('UDP/IPv4 completed by applyNeedsCsum', 'eth:ethertype:ip:udp:data', buf, n);

  const mss = new Uint8Array(4);
  writeMssOption(mss, 0, 1460);
  n = buildTcpFrame(buf, 0, { link, ip: V4, srcPort: SPORT + 10, dstPort: DPORT, seq: 1000, flags: TcpFlags.SYN, options: mss, payload: new Uint8Array(0) });
  put('TCP SYN with MSS option', 'eth:ethertype:ip:tcp', buf, n);

  // GSO frames as a driver with HOST_TSO4/6 sends them, segmented in software.
  const scratch = new Uint8Array(2000);
  for (const ip of [V4, V6]) {
    const seq0 = 0xffff_f000; // the sequence space wraps inside the burst
    n = buildTcpFrame(buf, 0, {
      link,
      ip,
      srcPort: SPORT + ip.version, // one TCP stream per burst: tshark's sequence analysis stays quiet
      dstPort: DPORT,
      seq: seq0,
      ack: 1,
      flags: TcpFlags.ACK | TcpFlags.PSH | TcpFlags.FIN,
      payload: payload(20000, ip.version),
      checksum: 'partial',
    });
    const gsoType = ip.version === 4 ? GsoType.TCPV4 : GsoType.TCPV6;
    const proto = ip.version === 4 ? 'eth:ethertype:ip:tcp:data' : 'eth:ethertype:ipv6:tcp:data';
    const count = gsoSegmentTcp(buf, 0, n, { gsoType, gsoSize: 1448 }, scratch, (seg, len, i) => {
      put(`TCPv${ip.version} GSO segment ${i}`, proto, seg, len);
    });
    assert.ok(!(count instanceof NetError), String(count));
    assert.equal(count, Math.ceil(20000 / 1448));
  }
  file.close();
  return expected;
}

const FIELDS = [
  'frame.number',
  'frame.time_epoch',
  'frame.protocols',
  'ip.checksum.status',
  'tcp.checksum.status',
  'udp.checksum.status',
  'icmp.checksum.status',
  'icmpv6.checksum.status',
  '_ws.malformed',
  '_ws.expert.severity',
  '_ws.expert.message',
];
const PV_SEVERITY_ERROR = 8388608;
const CHECKSUM_GOOD = '1';

function runTshark(path: string): string[][] {
  const args = ['-r', path, '-n', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|'];
  for (const f of FIELDS) args.push('-e', f);
  const r = spawnSync('tshark', args, { encoding: 'utf8' });
  assert.equal(r.status, 0, `tshark failed: ${r.stderr}`);
  return r.stdout.trimEnd().split('\n').map((line) => line.split('\t'));
}

for (const nanosecond of [false, true]) {
  test(`tshark decodes every frame of a ${nanosecond ? 'nanosecond' : 'microsecond'} capture with good checksums and nothing malformed`, (t) => {
    if (!tsharkAvailable()) {
      t.skip('tshark not installed');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'virtq-tshark-'));
    try {
      const path = join(dir, 'frames.pcap');
      const expected = writeCapture(path, nanosecond);
      const rows = runTshark(path);
      assert.equal(rows.length, expected.length, 'tshark saw every packet');
      rows.forEach((row, i) => {
        const col = (name: string): string => row[FIELDS.indexOf(name)] ?? '';
        const what = `frame ${i + 1} (${expected[i]!.what})`;
        assert.equal(col('frame.protocols'), expected[i]!.protocols, what);
        assert.equal(col('_ws.malformed'), '', `${what} is malformed`);
        for (const f of ['ip.checksum.status', 'tcp.checksum.status', 'udp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status']) {
          const v = col(f);
          if (v !== '') assert.ok(v.split('|').every((s) => s === CHECKSUM_GOOD), `${what}: ${f} = ${v}`);
        }
        const severities = col('_ws.expert.severity').split('|').filter((s) => s !== '').map(Number);
        assert.ok(
          severities.every((s) => s < PV_SEVERITY_ERROR),
          `${what}: expert error(s): ${col('_ws.expert.message')}`,
        );
        const at = 1_700_000_000_000_000_000n + BigInt(i + 1) * 1_000_123n;
        const sec = at / 1_000_000_000n;
        const frac = (at % 1_000_000_000n).toString().padStart(9, '0');
        const want = nanosecond ? `${sec}.${frac}` : `${sec}.${frac.slice(0, 6)}000`;
        assert.equal(col('frame.time_epoch'), want, `${what}: timestamp`);
      });
      // Checksums really were checked: tcp/udp/ip status columns are present on the IP frames.
      assert.ok(rows.some((r) => r[FIELDS.indexOf('tcp.checksum.status')] === CHECKSUM_GOOD));
      assert.ok(rows.some((r) => r[FIELDS.indexOf('udp.checksum.status')] === CHECKSUM_GOOD));
      assert.ok(rows.some((r) => r[FIELDS.indexOf('ip.checksum.status')] === CHECKSUM_GOOD));
      t.diagnostic(`tshark checked ${rows.length} frames`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('tshark flags a corrupted TCP checksum, so the check above can fail', (t) => {
  if (!tsharkAvailable()) {
    t.skip('tshark not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'virtq-tshark-'));
  try {
    const path = join(dir, 'bad.pcap');
    const file = openPcapFile(path);
    const buf = new Uint8Array(200);
    const layout = newFrameLayout();
    const n = buildTcpFrame(buf, 0, { link, ip: V4, srcPort: SPORT, dstPort: DPORT, seq: 1, flags: TcpFlags.ACK, payload: new Uint8Array(10) }, layout);
    buf[layout.l4Offset + 16]! ^= 0x01;
    file.writer.writePacket(0n, buf, 0, n);
    file.close();
    const rows = runTshark(path);
    assert.equal(rows[0]![FIELDS.indexOf('tcp.checksum.status')], '0', 'tshark reports the bad checksum');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
