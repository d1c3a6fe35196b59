// piscina vs plain worker_threads as hosts of the two processors: start-up (engine start until
// both sides passed the start barrier) and steady state (the 1500 B stream workload's packets/s
// over its measured window), interleaved run by run so machine drift hits both alike.
//   node dist/bench/runner-compare.js [--runs 7] [--ms 500] [--payload 1500] [--strategy hybrid] [--json]

import { Command } from 'commander';
import { multipleOf, oneOf, positiveInt, usageExit } from '../src/cli/args.js';
import { spread } from '../src/baselines/index.js';
import { Engine, type Runner } from '../src/engine/index.js';
import type { WaitStrategy } from '../src/notify/index.js';

interface Sample {
  runner: Runner;
  startupMs: number;
  mpps: number;
  cpuSecondsPerGB: number;
}


async function once(runner: Runner, ms: number, payloadBytes: number, strategy: WaitStrategy): Promise<Sample> {
  const r = await Engine.run({
    workload: 'stream',
    runner,
    queues: [{ size: 256, eventIdx: true }],
    wait: { strategy },
    durationMs: ms + 100,
    params: { payloadBytes, verify: 'seq', warmupMs: 100 },
  });
  if (r.host.errors + r.guest.errors > 0) throw new Error(`${runner}: verification failed: ${r.host.firstError ?? r.guest.firstError}`);
  const h = r.host;
  const bytes = h.windowPackets * payloadBytes;
  return {
    runner,
    startupMs: r.startupMs,
    mpps: h.windowPackets / h.windowMs / 1000,
    cpuSecondsPerGB: ((r.guest.windowCpuNs + h.windowCpuNs) / 1e9) / (bytes / 1e9),
  };
}

const program = new Command()
  .name('runner-compare')
  .exitOverride(usageExit)
  .option('--runs <n>', 'runs per runner', positiveInt, 7)
  .option('--ms <n>', 'measured window per run, ms', positiveInt, 500)
  .option('--payload <bytes>', 'payload bytes (multiple of 4)', multipleOf(4, 8), 1500)
  .option('--strategy <s>', 'wait strategy: block | hybrid | spin', oneOf<WaitStrategy>(['block', 'hybrid', 'spin']), 'hybrid')
  .option('--json', 'print JSON')
  .parse();
const o = program.opts<{ runs: number; ms: number; payload: number; strategy: WaitStrategy; json?: boolean }>();
const runs = o.runs;
const samples: Sample[] = [];
// One untimed run per runner first (module loading, JIT of the workload).
for (const runner of ['piscina', 'worker'] as Runner[]) await once(runner, 100, o.payload, o.strategy);
for (let i = 0; i < runs; i++) {
  const order: Runner[] = i % 2 === 0 ? ['piscina', 'worker'] : ['worker', 'piscina'];
  for (const runner of order) samples.push(await once(runner, o.ms, o.payload, o.strategy));
}
const summary = (['piscina', 'worker'] as Runner[]).map((runner) => {
  const s = samples.filter((x) => x.runner === runner);
  return { runner, runs: s.length, startupMs: spread(s.map((x) => x.startupMs)), mpps: spread(s.map((x) => x.mpps)), cpuSecondsPerGB: spread(s.map((x) => x.cpuSecondsPerGB)) };
});
const command = `node dist/bench/runner-compare.js ${process.argv.slice(2).join(' ')}`.trim();
if (o.json) {
  console.log(JSON.stringify({ command, node: process.version, payloadBytes: Number(o.payload), strategy: o.strategy, summary, samples }, null, 2));
} else {
  console.log(`engine hosts, ${o.payload} B stream, ${o.strategy} waits, ${runs} interleaved runs × ${o.ms} ms (min / median / max)`);
  console.log('runner    start-up ms            Mpps                   cpu s/GB');
  const f = (x: { min: number; median: number; max: number }, d: number): string => `${x.min.toFixed(d)} / ${x.median.toFixed(d)} / ${x.max.toFixed(d)}`.padEnd(22);
  for (const s of summary) console.log(`${s.runner.padEnd(8)}  ${f(s.startupMs, 1)} ${f(s.mpps, 3)} ${f(s.cpuSecondsPerGB, 3)}`);
  const [p, w] = summary;
  console.log(`piscina / worker: start-up ${(p!.startupMs.median / w!.startupMs.median).toFixed(2)}×, steady-state Mpps ${(p!.mpps.median / w!.mpps.median).toFixed(2)}×`);
}
