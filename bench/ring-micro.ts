// Single-thread micro-benchmark of the split ring: one full cycle per chain (driver add +
// publish, device pop + addUsed + publishUsed, driver reap) for 1- and 2-descriptor chains and
// indirect chains, in batches. Reports ns per chain as min / median / max over several runs.
//
//   node dist/bench/ring-micro.js [--runs N] [--chains N] [--json]

import { Command } from 'commander';
import { positiveInt, powerOfTwo, usageExit } from '../src/cli/args.js';
import { GuestMemory } from '../src/memory/index.js';
import { DescriptorChain, DeviceQueue, DriverQueue, SplitLayout, type Segment } from '../src/virtqueue/index.js';

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

function runCase(c: Case, chains: number, queueSize: number, batch: number): number {
  const mem = GuestMemory.allocate(4 << 20);
  const layout = SplitLayout.packedAt(queueSize, 0);
  const drv = new DriverQueue<number>(mem, layout, { indirect: c.indirect, indirectArea: 0x100000, indirectMaxSegments: 8 });
  const dev = new DeviceQueue(mem, layout, { indirect: c.indirect });
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
  .option('--json', 'print JSON')
  .parse();
const o = program.opts<{ runs: number; chains: number; queueSize: number; batch: number; json?: boolean }>();
const { runs, chains, queueSize } = o;
const batch = Math.min(o.batch, queueSize);

// Warm-up so every case is optimised before timing, then interleave the cases per run.
for (const c of CASES) runCase(c, 100_000, queueSize, batch);
const samples = new Map<string, number[]>(CASES.map((c) => [c.name, []]));
for (let r = 0; r < runs; r++) for (const c of CASES) samples.get(c.name)!.push(runCase(c, chains, queueSize, batch));

const results = CASES.map((c) => ({ case: c.name, nsPerChain: stats(samples.get(c.name)!) }));
if (o.json) {
  console.log(JSON.stringify({ queueSize, batch, chains, runs, node: process.version, results }, null, 2));
} else {
  console.log(`split ring, one thread: add + publish + pop + addUsed + publishUsed + reap (queue ${queueSize}, batch ${batch}, ${chains} chains × ${runs} runs)`);
  console.log('case                    ns/chain min / median / max');
  for (const r of results) {
    const s = r.nsPerChain;
    console.log(`${r.case.padEnd(22)}  ${s.min.toFixed(1)} / ${s.median.toFixed(1)} / ${s.max.toFixed(1)}`);
  }
}
