// Cost of the trace points per packet, in one thread: the 1500 B stream's whole path (driver
// fill + add + publish, device pop + copy out + addUsed + publishUsed, driver reap) with the
// same trace calls the stream workload makes (src/engine/workloads/stream.ts), on a guest tracer and a host tracer as in a real
// run. One thread has no cross-thread noise, so the ns a mode adds per packet (both sides
// together) is steady where the two-thread ratio (bench/trace-overhead.ts) is not; the two
// together say what tracing costs and how much of a packet's time that is. Modes run
// interleaved, run by run.
//
//   node dist/bench/trace-micro.js [--runs N] [--packets N] [--sample N] [--sample-block B] [--modes off,sampled,...] [--json]

import { Command } from 'commander';
import { spread, type Spread } from '../src/baselines/index.js';
import { GuestMemory } from '../src/memory/index.js';
import { DescriptorChain, DeviceQueue, DriverQueue, SplitLayout, readFromChain } from '../src/virtqueue/index.js';
import { allocateReleaseStamps, allocateTraceBuffer, clockOriginHere, DEFAULT_SAMPLE_BLOCK, Tracer, type TraceStamping } from '../src/trace/index.js';

type Mode = 'off' | 'sampled' | 'every' | 'every-exact';

const PAYLOAD = 1500;
const QUEUE = 256;
const BATCH = 32;
const BUF_STRIDE = 1536;
const BUF_BASE = 0x100000;

function tracerFor(mode: Mode, sample: number, sampleBlock: number, capacity: number, releaseStamps: SharedArrayBuffer, side: 0 | 1): Tracer {
  if (mode === 'off') return Tracer.off;
  const stamping: TraceStamping = mode === 'every-exact' ? 'exact' : 'interpolated';
  return new Tracer({ sab: allocateTraceBuffer(capacity), origin: clockOriginHere(), everyN: mode === 'sampled' ? sample : 1, sampleBlock, level: 10, stamping, releaseStamps: { sab: releaseStamps, side } });
}

/** ns per packet for one run of `packets` packets. */
function runOnce(mode: Mode, packets: number, sample: number, sampleBlock: number): number {
  const mem = GuestMemory.allocate(2 << 20);
  const layout = SplitLayout.packedAt(QUEUE, 0);
  const drv = new DriverQueue<number>(mem, layout, {});
  const dev = new DeviceQueue(mem, layout, {});
  const capacity = Math.max(1 << 16, 1 << Math.ceil(Math.log2(packets * 2.5 + 4096)));
  const releaseStamps = allocateReleaseStamps();
  const gt = tracerFor(mode, sample, sampleBlock, capacity, releaseStamps, 0);
  const ht = tracerFor(mode, sample, sampleBlock, capacity, releaseStamps, 1);
  const gTracing = gt.enabled;
  const hTracing = ht.enabled;
  const region = mem.region(BUF_BASE, QUEUE * BUF_STRIDE);
  const u32 = region.u32;
  const u8 = region.u8;
  const source = new Uint8Array(PAYLOAD);
  const dst = new Uint8Array(PAYLOAD);
  const dst32 = new Uint32Array(dst.buffer);
  const free: number[] = [];
  for (let i = 0; i < QUEUE; i++) free.push(BUF_BASE + i * BUF_STRIDE);
  const seqOfHead = new Uint32Array(QUEUE);
  const tracedHead = new Uint8Array(QUEUE);
  const chain = new DescriptorChain();
  let seq = 0;
  let popped = 0;
  let gNext = gt.nextSampled(0);
  let hNext = ht.nextSampled(0);
  // Every packet, interpolated: runs once per batch, anchors after fresh fetches (as the stream).
  const gBatched = gt.batched && !gt.sparse;
  const hBatched = ht.batched && !ht.sparse;
  // Sampled with interpolated stamps: kept packets only, with ordinals (as the stream).
  const gSparse = gt.sparse;
  const hSparse = ht.sparse;
  let reaped = 0;
  const reapIds = new Uint32Array(QUEUE);
  let usedFetchSeen = -1;
  let availFetchSeen = -1;
  let check = 0;
  const t0 = performance.now();
  while (seq < packets) {
    // Driver: fill and add a batch, publish (the stream's guest loop).
    let added = 0;
    let gKept = false;
    while (added < BATCH && free.length > 0) {
      const addr = free.pop()!;
      const traced = gTracing && !gBatched && seq >>> 0 === gNext;
      if (traced) {
        if (gSparse) {
          gt.reapsUpTo(reaped);
          gt.addKept(gNext, gNext);
          gKept = true;
        } else gt.add(gNext);
        gNext = gt.nextSampled(gNext + 1);
      }
      const off = addr - region.guestAddr;
      u8.set(source, off);
      u32[off / 4] = seq >>> 0;
      const head = drv.add1(addr, PAYLOAD, false, addr);
      if (traced) {
        seqOfHead[head] = seq;
        tracedHead[head] = 1;
      } else if (gBatched) seqOfHead[head] = seq;
      seq++;
      added++;
    }
    if (gBatched) gt.addRange(seq - added, added);
    else if (gKept) {
      gt.addsUpTo(seq);
      gt.reapsUpTo(reaped);
    }
    if (gTracing) gt.publish(added);
    drv.publish();
    if (drv.kickNeeded() && gTracing) gt.kick();
    // Device: pop, peek the identity, copy out, return (the stream's host loop).
    let n = 0;
    let runStart = popped;
    let hKept = false;
    let c;
    while ((c = dev.pop(chain)) !== null) {
      const id = popped >>> 0;
      if (hBatched && dev.availFetches !== availFetchSeen) {
        if (popped !== runStart) ht.popDoneRange(runStart, popped - runStart, PAYLOAD);
        runStart = popped;
        ht.fetched();
        availFetchSeen = dev.availFetches;
      }
      popped++;
      const traced = hTracing && !hBatched && id === hNext;
      if (traced) {
        if (hSparse) {
          if (dev.availFetches !== availFetchSeen) {
            ht.popsUpTo(id - dev.popsSinceFetch);
            ht.fetched();
            availFetchSeen = dev.availFetches;
          }
          ht.popKept(id, id);
          hKept = true;
        } else ht.pop(id, 0, dev.availFetches);
        hNext = ht.nextSampled(id + 1);
      }
      readFromChain(mem, c, dst);
      check ^= dst32[0]!;
      if (traced) {
        if (hSparse) ht.doneKept(id, PAYLOAD);
        else ht.done(id, PAYLOAD);
      }
      dev.addUsed(c.head, 0);
      n++;
    }
    if (hBatched && popped !== runStart) ht.popDoneRange(runStart, popped - runStart, PAYLOAD);
    else if (hKept) ht.popsUpTo(popped);
    if (hTracing) ht.used(n);
    dev.publishUsed();
    if (dev.needsNotification() && hTracing) ht.interrupt();
    // Driver: reap.
    let u;
    let runLen = 0;
    let rKept = false;
    while ((u = drv.reap()) !== null) {
      if (gBatched) {
        if (drv.usedFetches !== usedFetchSeen) {
          if (runLen > 0) gt.reapRun(reapIds, runLen, PAYLOAD);
          runLen = 0;
          gt.fetched();
          usedFetchSeen = drv.usedFetches;
        }
        reapIds[runLen++] = seqOfHead[u.head]!;
      } else if (gTracing && tracedHead[u.head] !== 0) {
        tracedHead[u.head] = 0;
        if (gSparse) {
          gt.addsUpTo(seq);
          if (drv.usedFetches !== usedFetchSeen) {
            gt.reapsUpTo(reaped - drv.reapsSinceFetch);
            gt.fetched();
            usedFetchSeen = drv.usedFetches;
          }
          gt.reapKept(seqOfHead[u.head]!, reaped, PAYLOAD);
          rKept = true;
        } else gt.reap(seqOfHead[u.head]!, PAYLOAD, 0, drv.usedFetches);
      }
      reaped++;
      free.push(u.token);
    }
    if (runLen > 0) gt.reapRun(reapIds, runLen, PAYLOAD);
    if (rKept) gt.reapsUpTo(reaped);
  }
  const ns = ((performance.now() - t0) * 1e6) / seq;
  if (gTracing) gt.flush();
  if (hTracing) ht.flush();
  if (gt.dropped + ht.dropped > 0) throw new Error(`trace buffers dropped ${gt.dropped + ht.dropped} records; raise the capacity`);
  if (check === 0x7fff_ffff) process.stdout.write(""); // keeps the copies observable
  return ns;
}

async function main(): Promise<void> {
  const a = new Command()
    .name('trace-micro')
    .option('--runs <n>', 'runs per mode (interleaved)', '9')
    .option('--packets <n>', 'packets per run', '1000000')
    .option('--sample <n>', 'the sampled mode traces 1 packet in N', '100')
    .option('--sample-block <n>', 'the sampled mode keeps blocks of this many consecutive packets (1 = spread out)', String(DEFAULT_SAMPLE_BLOCK))
    .option('--modes <list>', 'modes to run, comma-separated (off is always run: the others are compared with it)', 'off,sampled,every,every-exact')
    .option('--json', 'print the report as JSON')
    .parse(process.argv)
    .opts<{ runs: string; packets: string; sample: string; sampleBlock: string; modes: string; json?: boolean }>();
  const runs = Number(a.runs);
  const packets = Number(a.packets);
  const sample = Number(a.sample);
  const sampleBlock = Number(a.sampleBlock);
  const all: Mode[] = ['off', 'sampled', 'every', 'every-exact'];
  const picked = a.modes.split(',').map((m) => m.trim());
  for (const m of picked) if (!all.includes(m as Mode)) throw new Error(`--modes: unknown mode '${m}' (modes: ${all.join(', ')})`);
  const modes = all.filter((m) => m === 'off' || picked.includes(m));
  const ns: Record<Mode, number[]> = { off: [], sampled: [], every: [], 'every-exact': [] };
  for (const m of modes) runOnce(m, Math.min(packets, 200_000), sample, sampleBlock); // warm-up, not recorded
  for (let r = 0; r < runs; r++) {
    for (let i = 0; i < modes.length; i++) {
      const m = modes[(i + r) % modes.length]!;
      ns[m].push(runOnce(m, packets, sample, sampleBlock));
    }
  }
  const added = (m: Mode): Spread => spread(ns[m].map((x, i) => x - ns.off[i]!));
  const report = {
    bench: 'trace-micro',
    generatedAt: new Date().toISOString(),
    node: process.version,
    command: `node dist/bench/trace-micro.js ${process.argv.slice(2).join(' ')}`.trim(),
    runs,
    packets,
    sample,
    sampleBlock,
    modes: modes.map((m) => ({ mode: m, nsPerPacket: spread(ns[m]), addedNsPerPacket: added(m) })),
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const f = (x: number): string => x.toFixed(1);
  const label: Record<Mode, string> = { off: 'untraced (Tracer.off)', sampled: sampleBlock > 1 ? `1 in ${sample}, blocks of ${sampleBlock}` : `sampling 1 in ${sample}`, every: 'every packet, interpolated', 'every-exact': 'every packet, exact stamps' };
  const lines = [
    `virtq trace micro — ${report.generatedAt}, node ${report.node}`,
    `command: ${report.command}`,
    `one thread, both sides of the 1500 B stream (queue ${QUEUE}, batch ${BATCH}), ${runs} runs × ${packets} packets per mode, interleaved`,
    '',
    ['mode'.padEnd(28), 'ns/packet min / med / max'.padStart(26), 'added ns (both sides) med [min..max]'.padStart(38)].join(' '),
  ];
  for (const m of report.modes) {
    const s = m.nsPerPacket;
    const d = m.addedNsPerPacket;
    lines.push([label[m.mode].padEnd(28), `${f(s.min)} / ${f(s.median)} / ${f(s.max)}`.padStart(26), `${f(d.median)} [${f(d.min)}..${f(d.max)}]`.padStart(38)].join(' '));
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`trace-micro: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
