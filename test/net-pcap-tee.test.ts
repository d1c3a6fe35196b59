// The pcap tee backend: records both directions in order with partial checksums completed on
// a copy (the forwarded frame is untouched), optionally as GSO segments; and a capture of short
// ping and GSO stream runs across real workers, written by the tee, decoded by tshark with
// checksum validation on: nothing malformed, every checksum good, no expert error. The tshark
// part skips when tshark is not installed (Debian package `tshark`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Engine } from '../src/engine/index.js';
import { PcapTeePort } from '../src/backend/pcap-tee.js';
import { PcapWriter, PcapMemorySink, PCAP_GLOBAL_HEADER_BYTES, PCAP_RECORD_HEADER_BYTES } from '../src/backend/pcap.js';
import { RecordingBackend } from './support/net-pair.js';
import { buildTcpFrame, newFrameLayout, macFromString, ipv4FromString, TcpFlags, parsePacket } from '../src/net/frames/index.js';
import { emptyNetHdr, NetHdrFlags, GsoType } from '../src/net/header.js';
import { NetError } from '../src/net/errors.js';

const link = { srcMac: macFromString('52:54:00:12:34:56'), dstMac: macFromString('52:54:00:ab:cd:ef') };
const ip = { version: 4 as const, src: ipv4FromString('10.0.2.15'), dst: ipv4FromString('10.0.2.2') };

function partialTcp(payloadBytes: number): { frame: Uint8Array; l4: number; hdrLen: number } {
  const buf = new Uint8Array(payloadBytes + 100);
  const layout = newFrameLayout();
  const n = buildTcpFrame(buf, 0, { link, ip, srcPort: 40000, dstPort: 5001, seq: 1, ack: 1, flags: TcpFlags.ACK, payload: new Uint8Array(payloadBytes).fill(7), checksum: 'partial' }, layout);
  return { frame: buf.slice(0, n), l4: layout.l4Offset, hdrLen: layout.payloadOffset };
}

/** Splits a pcap image into its records' frames. */
function records(img: Uint8Array): Uint8Array[] {
  const v = new DataView(img.buffer, img.byteOffset, img.length);
  const out: Uint8Array[] = [];
  for (let o = PCAP_GLOBAL_HEADER_BYTES; o < img.length; ) {
    const incl = v.getUint32(o + 8, true);
    out.push(img.subarray(o + PCAP_RECORD_HEADER_BYTES, o + PCAP_RECORD_HEADER_BYTES + incl));
    o += PCAP_RECORD_HEADER_BYTES + incl;
  }
  return out;
}

test('the tee records both directions with partial checksums completed, and forwards the frame untouched', () => {
  const inner = new RecordingBackend();
  const sink = new PcapMemorySink();
  const tee = new PcapTeePort(inner, new PcapWriter(sink.sink));
  const { frame, l4 } = partialTcp(1000);
  const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, csumStart: l4, csumOffset: 16 };
  tee.send(frame, 0, frame.length, hdr);
  assert.deepEqual(inner.sent[0]!.frame, frame, 'forwarded as given (partial checksum)');
  inner.offer(frame, hdr);
  const f = tee.peekRx();
  assert.ok(f);
  tee.peekRx();
  tee.consumeRx();
  const recs = records(sink.bytes());
  assert.equal(recs.length, 2, 'a frame peeked twice is recorded once, when taken');
  for (const r of recs) {
    const p = parsePacket(r, 0, r.length, undefined, true);
    assert.ok(!(p instanceof NetError));
    assert.equal(p.l4ChecksumOk, true);
  }
});

test('the tee can record a GSO frame as its MSS segments', () => {
  const inner = new RecordingBackend();
  const sink = new PcapMemorySink();
  const tee = new PcapTeePort(inner, new PcapWriter(sink.sink), { segmentGso: true });
  const { frame, l4, hdrLen } = partialTcp(10000);
  tee.send(frame, 0, frame.length, { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, gsoType: GsoType.TCPV4, gsoSize: 1460, hdrLen, csumStart: l4, csumOffset: 16 });
  assert.equal(records(sink.bytes()).length, Math.ceil(10000 / 1460));
  assert.equal(inner.sent.length, 1);
});

function tsharkAvailable(): boolean {
  const r = spawnSync('tshark', ['--version'], { encoding: 'utf8' });
  return !r.error && r.status === 0;
}

const FIELDS = ['frame.protocols', 'ip.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status', '_ws.malformed', '_ws.expert.severity', '_ws.expert.message'];
const PV_SEVERITY_ERROR = 8388608;

function tshark(path: string): string[][] {
  const args = ['-r', path, '-n', '-o', 'tcp.check_checksum:TRUE', '-o', 'ip.check_checksum:TRUE', '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a', '-E', 'aggregator=|'];
  for (const f of FIELDS) args.push('-e', f);
  const r = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `tshark failed: ${r.stderr}`);
  return r.stdout.trimEnd().split('\n').map((l) => l.split('\t'));
}

for (const segmentGso of [false, true]) {
  test(`tshark decodes a tee capture of ping and GSO stream runs (${segmentGso ? 'GSO as segments' : 'GSO frames whole'}) with good checksums`, async (t) => {
    if (!tsharkAvailable()) {
      t.skip('tshark not installed (Debian package tshark)');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'virtq-net-pcap-'));
    try {
      const runs = [
        { workload: 'net-ping', params: { direction: 'g2h', count: 20 } },
        { workload: 'net-ping', params: { direction: 'h2g', count: 5, v6: true } },
        { workload: 'net-stream', params: { direction: 'g2h', totalBytes: 400_000 } },
        { workload: 'net-stream', params: { direction: 'h2g', totalBytes: 400_000 } },
      ];
      const seen = new Set<string>();
      let tcpChecked = 0;
      for (const [i, run] of runs.entries()) {
        const path = join(dir, `run${i}.pcap`);
        const r = await Engine.run({ ...run, queues: [{ size: 256 }, { size: 256 }], hostParams: { pcapPath: path, pcapSegmentGso: segmentGso }, timeoutMs: 30_000 });
        assert.equal(r.host.extra.pcapErrors, 0);
        const rows = tshark(path);
        assert.equal(rows.length, r.host.extra.pcapRecorded, `${run.workload}: tshark read every record`);
        rows.forEach((row, k) => {
          const col = (name: string): string => row[FIELDS.indexOf(name)] ?? '';
          const what = `${run.workload} ${JSON.stringify(run.params)} frame ${k + 1} (${col('frame.protocols')})`;
          seen.add(col('frame.protocols'));
          if (col('tcp.checksum.status') === '1') tcpChecked++;
          assert.equal(col('_ws.malformed'), '', `${what} is malformed`);
          for (const f of ['ip.checksum.status', 'tcp.checksum.status', 'icmp.checksum.status', 'icmpv6.checksum.status']) {
            const v = col(f);
            if (v !== '') assert.ok(v.split('|').every((s) => s === '1'), `${what}: ${f} = ${v}`);
          }
          const sev = col('_ws.expert.severity').split('|').filter((s) => s !== '').map(Number);
          assert.ok(sev.every((s) => s < PV_SEVERITY_ERROR), `${what}: ${col('_ws.expert.message')}`);
        });
      }
      assert.ok(tcpChecked > 10, `tshark validated TCP checksums (${tcpChecked} frames)`);
      for (const proto of ['eth:ethertype:arp', 'eth:ethertype:ip:icmp:data', 'eth:ethertype:ipv6:icmpv6:data', 'eth:ethertype:ip:tcp:data', 'eth:ethertype:ip:tcp']) {
        assert.ok(seen.has(proto), `capture has ${proto} (saw ${[...seen].join(', ')})`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
