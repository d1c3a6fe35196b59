// Machine hiccups, with nothing of virtq running: N worker threads each spin reading the clock
// for S seconds and count every gap between two consecutive reads above 50 µs, 1 ms and 5 ms
// (the time the thread was not running). Prints the gaps per thread and the steal time from
// /proc/stat over the run. With as many spinning threads as vCPUs this is the floor under any
// benchmark whose two workers must both run to make progress (a flood ping's round trip).
//
//   node dist/bench/hiccup.js [--threads N] [--seconds S]

import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { positiveInt, usageExit } from '../src/cli/args.js';

interface Gaps {
  over50us: number;
  over1ms: number;
  over5ms: number;
  maxMs: number;
  lostMs: number;
}

function spin(seconds: number): Gaps {
  const g: Gaps = { over50us: 0, over1ms: 0, over5ms: 0, maxMs: 0, lostMs: 0 };
  const end = performance.now() + seconds * 1000;
  let prev = performance.now();
  while (prev < end) {
    const t = performance.now();
    const gap = t - prev;
    if (gap > 0.05) {
      g.over50us++;
      g.lostMs += gap;
      if (gap > 1) g.over1ms++;
      if (gap > 5) g.over5ms++;
      if (gap > g.maxMs) g.maxMs = gap;
    }
    prev = t;
  }
  return g;
}

/** The aggregate cpu line of /proc/stat (user nice system idle iowait irq softirq steal …), or null. */
function cpuTicks(): number[] | null {
  try {
    return readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const cmd = new Command('hiccup')
    .description('gaps in spinning threads: how long the machine takes a running thread away')
    .option('--threads <n>', 'spinning threads (one per vCPU shows the floor under two busy workers)', positiveInt, 2)
    .option('--seconds <s>', 'seconds to spin', positiveInt, 20)
    .exitOverride(usageExit);
  cmd.parse();
  const o = cmd.opts<{ threads: number; seconds: number }>();
  const t0 = cpuTicks();
  const results = await Promise.all(
    Array.from(
      { length: o.threads },
      () =>
        new Promise<Gaps>((resolve, reject) => {
          const w = new Worker(new URL(import.meta.url), { workerData: o.seconds });
          w.once('message', resolve);
          w.once('error', reject);
        }),
    ),
  );
  const t1 = cpuTicks();
  let steal = 'steal: /proc/stat not readable';
  if (t0 !== null && t1 !== null) {
    const d = t1.map((v, i) => v - t0[i]!);
    const total = d.reduce((a, b) => a + b, 0);
    steal = `steal ${((100 * (d[7] ?? 0)) / Math.max(1, total)).toFixed(2)} % of CPU time`;
  }
  console.log(`${o.threads} spinning thread(s), ${o.seconds} s; ${steal}`);
  for (const [i, g] of results.entries()) {
    console.log(
      `thread ${i}: gaps > 50 µs ${g.over50us}, > 1 ms ${g.over1ms}, > 5 ms ${g.over5ms}; max ${g.maxMs.toFixed(2)} ms; lost ${g.lostMs.toFixed(1)} ms`,
    );
  }
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  });
} else {
  parentPort!.postMessage(spin(workerData as number));
}
