// Single-thread micro-benchmark of the split (virtio 1.2 §2.7) and packed (§2.8) rings side by
// side in one run: one full cycle per chain (driver add + publish, device pop + addUsed +
// publishUsed, driver reap) for 1- and 2-descriptor chains and indirect chains, in batches,
// optionally with VIRTIO_F_IN_ORDER (batched used returns). Reports ns per chain as
// min / median / max over several runs, the layouts interleaved per run.
//
//   node dist/bench/ring-micro.js [--ring split|packed|both] [--in-order] [--runs N] [--chains N] [--json]

import { Command } from 'commander';
import { positiveInt, powerOfTwo, usageExit, oneOf } from '../src/cli/args.js';
import { GuestMemory } from '../src/memory/index.js';
import { DescriptorChain, compactRingLayout, openDeviceQueue, openDriverQueue, type RingKind, type Segment } from '../src/virtqueue/index.js';

interface Case {
  name: string;
  segments: number; // buffers per chain (first is readable, the rest writable)
  indirect: boolean;
}

const CASES: Case[] = [
  { name: '1 descriptor', segments: 1, indirect: false },
  { name: '2 descriptors', segments: 2, indirect: false },
  { name: 'indirect, 2 buffers', segments: 2, indirect: true },
  { name: 'indirect, 4 buffers', segments: 4, indirect: true },
];

function runCase(c: Case, ring: RingKind, inOrder: boolean, chains: number, queueSize: number, batch: number): number {
  const mem = GuestMemory.allocate(4 << 20);
  const layout = compactRingLayout(ring, queueSize, 0);
  const drv = openDriverQueue<number>(mem, layout, { indirect: c.indirect, indirectArea: 0x100000, indirectMaxSegments: 8, inOrder });
  const dev = openDeviceQueue(mem, layout, { indirect: c.indirect, inOrder, batchUsed: inOrder });
  const readable: Segment[] = [{ addr: 0x200000, len: 1500 }];
  const writable: Segment[] = [];
  for (let i = 1; i < c.segments; i++) writable.push({ addr: 0x200000 + 2048 * i, len: 2048 });
  const chain = new DescriptorChain();
  const t0 = process.hrtime.bigint();
  let done = 0;
  while (done < chains) {
    for (let k = 0; k < batch; k++) {
      if (c.segments === 1) drv.add1(0x200000, 1500, false, k);
      else drv.add(readable, writable, k);
    }
    drv.publish();
    drv.kickNeeded();
    let d;
    while ((d = dev.pop(chain)) !== null) dev.addUsed(d.head, d.writableBytes);
    dev.publishUsed();
    dev.needsNotification();
    while (drv.reap() !== null) done++;
  }
  const ns = Number(process.hrtime.bigint() - t0);
  return ns / done;
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

const program = new Command()
  .exitOverride(usageExit)
  .option('--runs <n>', 'runs per case', positiveInt, 7)
  .option('--chains <n>', 'chains per run', positiveInt, 1000000)
  .option('--queue-size <n>', 'queue size', powerOfTwo(1, 32768), 256)
  .option('--batch <n>', 'chains per publish', positiveInt, 32)
  .option('--ring <kind>', 'ring layout: split, packed or both (side by side)', oneOf(['split', 'packed', 'both']), 'both')
  .option('--in-order', 'VIRTIO_F_IN_ORDER on both sides (batched used returns)')
  .option('--json', 'print JSON')
  .parse();
const o = program.opts<{ runs: number; chains: number; queueSize: number; batch: number; ring: 'split' | 'packed' | 'both'; inOrder?: boolean; json?: boolean }>();
const { runs, chains, queueSize } = o;
const inOrder = o.inOrder === true;
const batch = Math.min(o.batch, queueSize);
const rings: RingKind[] = o.ring === 'both' ? ['split', 'packed'] : [o.ring];
const key = (c: Case, ring: RingKind): string => `${ring}|${c.name}`;

// Warm-up so every case is optimised before timing, then interleave the cases and layouts per run.
for (const ring of rings) for (const c of CASES) runCase(c, ring, inOrder, Math.min(100_000, chains), queueSize, batch);
const samples = new Map<string, number[]>();
for (const ring of rings) for (const c of CASES) samples.set(key(c, ring), []);
for (let r = 0; r < runs; r++) for (const c of CASES) for (const ring of rings) samples.get(key(c, ring))!.push(runCase(c, ring, inOrder, chains, queueSize, batch));

const results = rings.flatMap((ring) => CASES.map((c) => ({ ring, case: c.name, nsPerChain: stats(samples.get(key(c, ring))!) })));
if (o.json) {
  console.log(JSON.stringify({ queueSize, batch, chains, runs, inOrder, node: process.version, results }, null, 2));
} else {
  console.log(`${rings.join(' and ')} ring${rings.length > 1 ? 's' : ''}, one thread${inOrder ? ', IN_ORDER' : ''}: add + publish + pop + addUsed + publishUsed + reap (queue ${queueSize}, batch ${batch}, ${chains} chains × ${runs} runs)`);
  console.log('ring    case                    ns/chain min / median / max');
  for (const r of results) {
    const s = r.nsPerChain;
    console.log(`${r.ring.padEnd(6)}  ${r.case.padEnd(22)}  ${s.min.toFixed(1)} / ${s.median.toFixed(1)} / ${s.max.toFixed(1)}`);
  }
}
