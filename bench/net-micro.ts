// Single-thread micro-benchmark of the virtio-net data path: NetDriver + rings + NetDevice +
// in-memory host stack, both sides run alternately in one thread, so the figure is the CPU cost
// of the whole path per payload byte with no thread hand-off (the ceiling the cross-thread
// workloads can approach). Cases: guest→host and host→guest streams with GSO + mergeable
// buffers, GSO + big buffers, and MSS frames with small/mergeable buffers. Reports payload Gb/s
// and ns per data frame as min / median / max over runs, and each case's median as a ratio to
// the first case, all measured in the same run.
//
//   node dist/bench/net-micro.js [--quick] [--runs N] [--bytes N] [--json]

import { Command } from 'commander';
import { Arena, GuestMemory } from '../src/memory/index.js';
import { DeviceQueue, DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { NetDevice } from '../src/net/device.js';
import { NetDriver } from '../src/net/driver.js';
import { NetEndpoint } from '../src/net/endpoint.js';
import { emptyNetHdr } from '../src/net/header.js';
import { HostStack } from '../src/backend/host-stack.js';
import { macFromString, ipv4FromString } from '../src/net/frames/index.js';

interface Case {
  name: string;
  direction: 'g2h' | 'h2g';
  gso: boolean;
  mergeable: boolean;
}

const CASES: Case[] = [
  { name: 'g2h gso mergeable', direction: 'g2h', gso: true, mergeable: true },
  { name: 'g2h mss mergeable', direction: 'g2h', gso: false, mergeable: true },
  { name: 'h2g gso mergeable', direction: 'h2g', gso: true, mergeable: true },
  { name: 'h2g gso big', direction: 'h2g', gso: true, mergeable: false },
  { name: 'h2g mss small', direction: 'h2g', gso: false, mergeable: false },
];

const GUEST = { mac: macFromString('52:54:00:12:34:56'), ip: ipv4FromString('10.0.2.15') };
const HOST = { mac: macFromString('52:54:00:ab:cd:ef'), ip: ipv4FromString('10.0.2.2') };

function runCase(c: Case, totalBytes: number): { gbps: number; nsPerFrame: number } {
  const size = 256;
  let features = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MAC | NetF.CSUM | NetF.GUEST_CSUM;
  if (c.gso) features |= NetF.HOST_TSO4 | NetF.GUEST_TSO4;
  if (c.mergeable) features |= NetF.MRG_RXBUF;
  const ring = Math.ceil(SplitLayout.packedBytes(size) / 4096) * 4096;
  const mem = GuestMemory.allocate(2 * ring + (12 << 20));
  const rxL = SplitLayout.packedAt(size, 0, 0);
  const txL = SplitLayout.packedAt(size, ring, 1);
  const stack = new HostStack({ mac: HOST.mac, ip: HOST.ip, peerMac: GUEST.mac, peerIp: GUEST.ip, gso: c.gso, partialCsum: true });
  const dev = new NetDevice({
    mem,
    features,
    port: stack,
    rxq: new DeviceQueue(mem, rxL, { index: 0, eventIdx: true }),
    txq: new DeviceQueue(mem, txL, { index: 1, eventIdx: true }),
  });
  const ep = new NetEndpoint({ mac: GUEST.mac, ip: GUEST.ip, peerMac: HOST.mac, peerIp: HOST.ip, gso: c.gso, partialCsum: true });
  const drv = new NetDriver({
    mem,
    arena: new Arena(mem, 2 * ring, 12 << 20),
    features,
    rxq: new DriverQueue<number>(mem, rxL, { index: 0, eventIdx: true }),
    txq: new DriverQueue<number>(mem, txL, { index: 1, eventIdx: true }),
    onReceive: (b, o, n, h) => ep.input(b, o, n, h),
  });
  const [src, sink] = c.direction === 'g2h' ? [ep, stack.endpoint] : [stack.endpoint, ep];
  src.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 65536, totalBytes });
  const s = sink.startSink({ port: 5001, expectBytes: totalBytes });
  const hdr = emptyNetHdr();
  drv.fillRx();
  drv.flushRx();
  const t0 = process.hrtime.bigint();
  while (!s.done) {
    drv.pollRx();
    drv.reapTx();
    for (let slot; (slot = drv.beginTx()) !== null; ) {
      const n = ep.nextFrame(slot.bytes, slot.offset, slot.capacityBytes, hdr);
      if (n === 0) {
        drv.cancelTx();
        break;
      }
      drv.commitTx(n, hdr);
    }
    drv.flushTx();
    drv.flushRx();
    dev.processTx(256);
    dev.flushTx();
    dev.fillRx(256);
    dev.flushRx();
  }
  const ns = Number(process.hrtime.bigint() - t0);
  if (s.errors > 0) throw new Error(`${c.name}: ${s.firstError}`);
  return { gbps: (totalBytes * 8) / ns, nsPerFrame: ns / s.segments };
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

const program = new Command()
  .option('--runs <n>', 'runs per case', '7')
  .option('--bytes <n>', 'payload bytes per run', '200000000')
  .option('--quick', 'few short runs (sanity check)')
  .option('--json', 'print JSON')
  .parse();
const o = program.opts<{ runs: string; bytes: string; quick?: boolean; json?: boolean }>();
const runs = o.quick ? 3 : Number(o.runs);
const bytes = o.quick ? 20_000_000 : Number(o.bytes);

// Warm-up so every case is optimised before timing, then interleave the cases per run.
for (const c of CASES) runCase(c, 5_000_000);
const samples = new Map<string, { gbps: number; nsPerFrame: number }[]>(CASES.map((c) => [c.name, []]));
for (let r = 0; r < runs; r++) for (const c of CASES) samples.get(c.name)!.push(runCase(c, bytes));

const results = CASES.map((c) => {
  const xs = samples.get(c.name)!;
  return { case: c.name, gbps: stats(xs.map((x) => x.gbps)), nsPerFrame: stats(xs.map((x) => x.nsPerFrame)) };
});
const base = results[0]!.gbps.median;
if (o.json) {
  console.log(JSON.stringify({ bytes, runs, node: process.version, results: results.map((r) => ({ ...r, ratioToFirst: r.gbps.median / base })) }, null, 2));
} else {
  console.log(`virtio-net path in one thread (driver + rings + device + host stack), ${bytes} payload bytes × ${runs} runs`);
  console.log('case                  Gb/s min / median / max      ns/frame median   × first case');
  for (const r of results) {
    const g = r.gbps;
    console.log(`${r.case.padEnd(20)}  ${g.min.toFixed(2)} / ${g.median.toFixed(2)} / ${g.max.toFixed(2)}`.padEnd(50) + `${r.nsPerFrame.median.toFixed(0).padStart(10)}   ${(g.median / base).toFixed(2)}`);
  }
}
