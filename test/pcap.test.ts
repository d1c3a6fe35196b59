// The pcap writer (classic libpcap format): the global header and record headers are
// byte-exact for microsecond and nanosecond files, long packets are cut at the snaplen with the
// original length kept, and the Node file sink writes the same bytes as the memory sink.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PcapWriter, PcapMemorySink, PcapError, PCAP_MAGIC_NS } from '../src/backend/pcap.js';
import { openPcapFile } from '../src/backend/pcap-file.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('the global header is byte-exact: magic, version 2.4, zone 0, sigfigs 0, snaplen 262144, Ethernet', () => {
  const mem = new PcapMemorySink();
  new PcapWriter(mem.sink).writeHeader();
  assert.equal(hex(mem.bytes()), 'd4c3b2a1' + '0200' + '0400' + '00000000' + '00000000' + '00000400' + '01000000');
  const ns = new PcapMemorySink();
  new PcapWriter(ns.sink, { nanosecond: true, snaplenBytes: 65535 }).writeHeader();
  assert.equal(hex(ns.bytes()), '4d3cb2a1' + '0200' + '0400' + '00000000' + '00000000' + 'ffff0000' + '01000000');
  assert.equal(PCAP_MAGIC_NS, 0xa1b23c4d);
});

test('a record header carries seconds, microseconds, captured and original length', () => {
  const mem = new PcapMemorySink();
  const w = new PcapWriter(mem.sink);
  const pkt = Uint8Array.from([1, 2, 3, 4, 5]);
  w.writePacket(1_700_000_000_123_456_789n, pkt);
  assert.equal(mem.chunks.length, 2, 'header written automatically, then one record');
  // 1700000000 = 0x6553f100, 123456 µs = 0x0001e240
  assert.equal(hex(mem.chunks[1]!), '00f15365' + '40e20100' + '05000000' + '05000000' + '0102030405');
  assert.equal(w.packets, 1);
  w.writeHeader(); // idempotent
  assert.equal(mem.chunks.length, 2);
});

test('nanosecond files keep the nanoseconds; a number timestamp is accepted', () => {
  const mem = new PcapMemorySink();
  const w = new PcapWriter(mem.sink, { nanosecond: true });
  w.writePacket(1_700_000_000_123_456_789n, new Uint8Array(1));
  w.writePacket(2_500_000_000, new Uint8Array(0)); // 2.5 s
  // 123456789 ns = 0x075bcd15
  assert.equal(hex(mem.chunks[1]!.subarray(0, 16)), '00f15365' + '15cd5b07' + '01000000' + '01000000');
  assert.equal(hex(mem.chunks[2]!), '02000000' + '0065cd1d' + '00000000' + '00000000');
});

test('packets longer than the snaplen are truncated and keep their original length', () => {
  const mem = new PcapMemorySink();
  const w = new PcapWriter(mem.sink, { snaplenBytes: 4 });
  const frame = Uint8Array.from({ length: 10 }, (_, i) => i);
  w.writePacket(0n, frame, 2, 7);
  assert.equal(hex(mem.chunks[1]!), '00000000' + '00000000' + '04000000' + '07000000' + '02030405');
  assert.equal(mem.lengthBytes, 24 + 16 + 4);
});

test('the writer copies the packet, so the caller may reuse its buffer at once', () => {
  const mem = new PcapMemorySink();
  const w = new PcapWriter(mem.sink);
  const buf = Uint8Array.from([9, 9]);
  w.writePacket(0n, buf);
  buf.fill(0);
  assert.equal(hex(mem.chunks[1]!.subarray(16)), '0909');
});

test('bad arguments are PcapErrors with a code', () => {
  const w = new PcapWriter(() => {});
  assert.throws(() => w.writePacket(-1n, new Uint8Array(1)), (e) => e instanceof PcapError && e.code === 'bad-argument');
  assert.throws(() => w.writePacket(0n, new Uint8Array(4), 2, 3), (e) => e instanceof PcapError && /outside a 4-byte buffer/.test(e.message));
  assert.throws(() => new PcapWriter(() => {}, { snaplenBytes: 0 }), PcapError);
});

test('the file sink writes exactly what the memory sink collects', () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-pcap-'));
  try {
    const path = join(dir, 'x.pcap');
    const file = openPcapFile(path, { nanosecond: true });
    const mem = new PcapMemorySink();
    const w = new PcapWriter(mem.sink, { nanosecond: true });
    for (let i = 0; i < 5; i++) {
      const pkt = Uint8Array.from({ length: 60 + i }, (_, j) => j ^ i);
      file.writer.writePacket(BigInt(i) * 1_000_001n, pkt);
      w.writePacket(BigInt(i) * 1_000_001n, pkt);
    }
    file.close();
    file.close(); // idempotent
    assert.equal(hex(readFileSync(path)), hex(mem.bytes()));
    assert.throws(() => file.writer.writePacket(0n, new Uint8Array(1)), (e) => e instanceof PcapError && e.code === 'closed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
