// Where a lone split-ring round trip's time goes: the queue layer's work, or the ring's own loads
// and stores. Two worker threads ping-pong one chain (spinning, no doorbells); each side runs
// either the queue (DriverQueue / DeviceQueue: free list, tokens, validation, event idx) or the
// bare ring (SplitRing's accessors and the chain parser only: the same loads and stores of
// §2.7 — descriptor, avail entry, avail.idx, used element, used.idx — with no bookkeeping). All
// four pairings run round-robin per run; p50 RTTs, min / median / max over the runs, and each
// pairing's ratio to bare/bare inside a run.
//
//   node dist/bench/split-pingpong-layers.js [--runs N] [--round-trips N] [--payload 0|64]
//
// With --payload 64 the driver writes a sequence number into a 64 B buffer and the device copies
// the buffer out and checks it (as the `pingpong` workload does); with 0 (the default) only the
// ring's own lines move.

import { Command } from 'commander';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import { positiveInt, usageExit, oneOf } from '../src/cli/args.js';
import { GuestMemory, type RegionSpec } from '../src/memory/index.js';
import { parseChain, type ChainParseContext } from '../src/virtqueue/chain.js';
import { DescriptorChain, DeviceQueue, DriverQueue, SplitLayout, SplitRing, readFromChain } from '../src/virtqueue/index.js';

type Impl = 'queue' | 'bare';
const PAIRINGS: Array<[Impl, Impl]> = [['bare', 'bare'], ['queue', 'bare'], ['bare', 'queue'], ['queue', 'queue']];
const SIZE = 256;
const BUF = 0x10000;

interface Job {
  specs: RegionSpec[];
  role: 'driver' | 'device';
  impl: Impl;
  roundTrips: number;
  payload: number;
  /** Float64 RTTs in ms (driver) and a start word. */
  rtts: SharedArrayBuffer;
  start: SharedArrayBuffer;
}

const layoutOf = (): SplitLayout => SplitLayout.packedAt(SIZE, 0);

function driver(job: Job, mem: GuestMemory): void {
  const rtts = new Float64Array(job.rtts);
  const region = mem.region(BUF, 64);
  const word = (BUF - region.guestAddr) / 4;
  const u32 = region.u32;
  const q = job.impl === 'queue' ? new DriverQueue<number>(mem, layoutOf(), { eventIdx: true }) : null;
  const ring = new SplitRing(mem, layoutOf());
  q?.disableInterrupts();
  if (q === null) ring.setDesc(0, BUF, 64, 0, 0); // the one buffer, in descriptor 0, for every lap
  startTogether(job.start);
  for (let i = 0; i < job.roundTrips; i++) {
    const t0 = performance.now();
    if (job.payload > 0) u32[word] = i;
    const idx = (i + 1) & 0xffff;
    if (q !== null) {
      q.add1(BUF, 64, false, i);
      q.publish();
      q.kickNeeded();
      while (q.reap() === null);
    } else {
      ring.setAvailEntry(i, 0);
      ring.storeAvailIdx(idx); // release: pairs with the device's loadAvailIdx
      while (ring.loadUsedIdx() !== idx); // acquire: pairs with the device's storeUsedIdx
      if (ring.usedElemId(i) !== 0) throw new Error(`round trip ${i}: used element names another descriptor`);
    }
    rtts[i] = performance.now() - t0;
  }
}

function device(job: Job, mem: GuestMemory): void {
  const q = job.impl === 'queue' ? new DeviceQueue(mem, layoutOf(), { eventIdx: true }) : null;
  const ring = new SplitRing(mem, layoutOf());
  const ctx: ChainParseContext = { mem, queue: 0, size: SIZE, desc: ring.desc, indirectAllowed: false };
  q?.disableNotification();
  const chain = new DescriptorChain();
  const dst = new Uint8Array(64);
  const dst32 = new Uint32Array(dst.buffer);
  startTogether(job.start);
  for (let i = 0; i < job.roundTrips; i++) {
    let c: DescriptorChain;
    if (q !== null) {
      let got: DescriptorChain | null;
      while ((got = q.pop(chain)) === null);
      c = got;
    } else {
      const idx = (i + 1) & 0xffff;
      while (ring.loadAvailIdx() !== idx); // acquire: pairs with the driver's storeAvailIdx
      parseChain(ctx, ring.availEntry(i), chain);
      c = chain;
    }
    if (job.payload > 0) {
      readFromChain(mem, c, dst);
      if (dst32[0] !== i >>> 0) throw new Error(`round trip ${i}: sequence ${dst32[0]}`);
    }
    if (q !== null) {
      q.addUsed(c.head, 0);
      q.publishUsed();
      q.needsNotification();
    } else {
      ring.setUsedElem(i, c.head, 0);
      ring.storeUsedIdx((i + 1) & 0xffff); // release: pairs with the driver's loadUsedIdx
    }
  }
}

/** Both workers arrive, then both go (so neither times the other's start-up). */
function startTogether(start: SharedArrayBuffer): void {
  const w = new Int32Array(start);
  Atomics.add(w, 0, 1); // pairs with the other worker's loads below
  while (Atomics.load(w, 0) < 2);
}

async function runPairing(pair: [Impl, Impl], roundTrips: number, payload: number): Promise<number> {
  const mem = GuestMemory.allocate(1 << 20);
  const rtts = new SharedArrayBuffer(8 * roundTrips);
  const start = new SharedArrayBuffer(8);
  const spawn = (role: Job['role'], impl: Impl): Promise<void> =>
    new Promise((resolve, reject) => {
      const job: Job = { specs: mem.toSpecs(), role, impl, roundTrips, payload, rtts, start };
      const w = new Worker(new URL(import.meta.url), { workerData: job });
      w.once('error', reject);
      w.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${role} worker exited with ${code}`))));
    });
  await Promise.all([spawn('driver', pair[0]), spawn('device', pair[1])]);
  // The first quarter is warm-up (JIT, caches); p50 of the rest.
  const xs = Array.from(new Float64Array(rtts).subarray(roundTrips >> 2)).sort((a, b) => a - b);
  return xs[xs.length >> 1]! * 1e3;
}

async function main(): Promise<void> {
  const o = new Command()
    .exitOverride(usageExit)
    .option('--runs <n>', 'runs (each runs every pairing once)', positiveInt, 5)
    .option('--round-trips <n>', 'round trips per pairing per run', positiveInt, 300_000)
    .option('--payload <bytes>', 'payload the device copies out and checks: 0 or 64', oneOf(['0', '64']), '0')
    .parse()
    .opts<{ runs: number; roundTrips: number; payload: string }>();
  const payload = Number(o.payload);
  const p50 = new Map<string, number[]>();
  const ratio = new Map<string, number[]>();
  for (let run = 0; run < o.runs; run++) {
    let bare = 0;
    for (const pair of PAIRINGS) {
      const name = `driver ${pair[0]} / device ${pair[1]}`;
      const us = await runPairing(pair, o.roundTrips, payload);
      if (pair[0] === 'bare' && pair[1] === 'bare') bare = us;
      (p50.get(name) ?? p50.set(name, []).get(name)!).push(us);
      (ratio.get(name) ?? ratio.set(name, []).get(name)!).push(us / bare);
    }
  }
  const fmt = (xs: number[], d: number): string => {
    const s = [...xs].sort((a, b) => a - b);
    return `${s[0]!.toFixed(d)} / ${s[s.length >> 1]!.toFixed(d)} / ${s[s.length - 1]!.toFixed(d)}`;
  };
  console.log(`split ring, one chain in flight, spinning, payload ${payload} B, ${o.runs} runs × ${o.roundTrips} round trips per pairing`);
  console.log(`${'pairing'.padEnd(28)}  ${'p50 µs min / med / max'.padEnd(24)}  ÷ bare/bare in the same run`);
  for (const [name, xs] of p50) console.log(`${name.padEnd(28)}  ${fmt(xs, 3).padEnd(24)}  ${fmt(ratio.get(name)!, 2)}`);
}

if (isMainThread) {
  await main();
} else {
  const job = workerData as Job;
  const mem = new GuestMemory(job.specs);
  if (job.role === 'driver') driver(job, mem);
  else device(job, mem);
}
