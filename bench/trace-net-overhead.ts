// Cost of tracing on the virtio-net path, measured side by side in one run: net-stream g2h
// (every data frame is a traced tx packet) with tracing off, tracing every frame, and sampling 1
// in N (default 100). Modes are interleaved round by round (the order rotates each round) so
// drift on a shared host hits all of them alike. Reports per mode the receiver's payload Gb/s
// and tx frames/s (min / median / max), CPU seconds per GB, and the per-round throughput ratio
// to "off" (median, min, max). MSS-sized frames by default (--gso for 64 KiB GSO frames, where
// the per-frame cost is spread over 45 times the bytes). Records dropped because a trace buffer
// filled up are reported.
//
//   node dist/bench/trace-net-overhead.js [--quick] [--json] [--runs N] [--ms N] [--warmup-ms N]
//        [--preset P] [--gso] [--queue-size N] [--strategy block|hybrid|spin] [--sample N]

import { Command } from 'commander';
import { spread, type Spread } from '../src/baselines/index.js';
import { windowFigures } from './support/engine-window.js';
import { Engine } from '../src/engine/index.js';
import type { WaitStrategy } from '../src/notify/index.js';
import { TraceSession } from '../src/trace/index.js';

type Mode = 'off' | 'every' | 'sampled';

interface Options {
  runs: number;
  ms: number;
  warmupMs: number;
  preset: string;
  gso: boolean;
  queueSize: number;
  strategy: WaitStrategy;
  sample: number;
}

interface RunResult {
  gbps: number;
  framesPerS: number;
  cpuSecondsPerGB: number;
  droppedRecords: number;
  errors: number;
}



async function runOnce(mode: Mode, o: Options): Promise<RunResult> {
  // Records per thread: ~2.5 per traced frame plus events, at up to 1 M frames/s, power of two.
  const sample = mode === 'every' ? 1 : o.sample;
  const need = (((o.ms + o.warmupMs) / 1000) * 1e6 * 2.5) / sample + 65536;
  let capacityRecords = 1 << 16;
  while (capacityRecords < need && capacityRecords < 1 << 23) capacityRecords *= 2;
  const trace = mode === 'off' ? undefined : new TraceSession({ sample, capacityRecords });
  const r = await Engine.run({
    workload: 'net-stream',
    queues: [{ size: o.queueSize }, { size: o.queueSize }],
    wait: { strategy: o.strategy },
    params: { preset: o.preset, direction: 'g2h', gso: o.gso, msgBytes: o.gso ? 65536 : 16384, warmupMs: o.warmupMs },
    durationMs: o.warmupMs + o.ms, // counted from when both sides are ready
    timeoutMs: 60_000 + o.ms * 4,
    ...(trace ? { trace } : {}),
  });
  const w = windowFigures(r, mode, o.ms / 4); // the host receives (g2h)
  return {
    gbps: (w.windowBytes * 8) / (w.windowMs * 1e6),
    framesPerS: w.windowPackets / (w.windowMs / 1000),
    cpuSecondsPerGB: w.cpuSecondsPerGB,
    droppedRecords: w.droppedRecords,
    errors: w.errors,
  };
}

async function main(): Promise<void> {
  const cmd = new Command()
    .name('trace-net-overhead')
    .option('--quick', 'a few seconds: 2 rounds of 200 ms')
    .option('--json', 'print the report as JSON')
    .option('--runs <n>', 'rounds (each runs every mode once)', '7')
    .option('--ms <n>', 'measured ms per run', '500')
    .option('--warmup-ms <n>', 'warm-up ms per run, not measured (rarely taken traced branches need about a second to settle in the JIT)', '1000')
    .option('--preset <name>', 'notification policy preset', 'vhost')
    .option('--gso', '64 KiB GSO frames instead of MSS-sized ones')
    .option('--queue-size <n>', 'queue size (rx and tx)', '256')
    .option('--strategy <s>', 'wait strategy: block | hybrid | spin', 'hybrid')
    .option('--sample <n>', 'the sampled mode traces 1 frame in N', '100')
    .parse(process.argv);
  const a = cmd.opts<Record<string, string | boolean | undefined>>();
  const o: Options = {
    runs: a.quick ? 2 : Number(a.runs),
    ms: a.quick ? 200 : Number(a.ms),
    warmupMs: a.quick ? 50 : Number(a.warmupMs),
    preset: String(a.preset),
    gso: a.gso === true,
    queueSize: Number(a.queueSize),
    strategy: a.strategy as WaitStrategy,
    sample: Number(a.sample),
  };
  const modes: Mode[] = ['off', 'every', 'sampled'];
  const results: Record<Mode, RunResult[]> = { off: [], every: [], sampled: [] };
  const t0 = performance.now();
  for (let round = 0; round < o.runs; round++) {
    for (let i = 0; i < modes.length; i++) {
      const mode = modes[(i + round) % modes.length]!;
      results[mode].push(await runOnce(mode, o));
    }
    if (!a.json) process.stderr.write(`round ${round + 1}/${o.runs} done\n`);
  }
  const ratio = (m: Mode): Spread => spread(results[m].map((r, i) => r.gbps / results.off[i]!.gbps));
  const report = {
    bench: 'trace-net-overhead',
    generatedAt: new Date().toISOString(),
    node: process.version,
    command: `node dist/bench/trace-net-overhead.js ${process.argv.slice(2).join(' ')}`.trim(),
    options: o,
    totalSeconds: (performance.now() - t0) / 1000,
    modes: modes.map((m) => ({
      mode: m,
      label: { off: 'tracing off', every: 'tracing every tx frame', sampled: `sampling 1 in ${o.sample}` }[m],
      gbps: spread(results[m].map((r) => r.gbps)),
      kFramesPerS: spread(results[m].map((r) => r.framesPerS / 1000)),
      cpuSecondsPerGB: spread(results[m].map((r) => r.cpuSecondsPerGB)),
      ratioVsOff: ratio(m),
      droppedRecords: results[m].reduce((s, r) => s + r.droppedRecords, 0),
      errors: results[m].reduce((s, r) => s + r.errors, 0),
    })),
  };
  if (a.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    return;
  }
  const f = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '—');
  const sp = (s: Spread, d = 3): string => `${f(s.min, d)} / ${f(s.median, d)} / ${f(s.max, d)}`;
  const lines = [
    `virtq trace overhead on net-stream g2h — ${report.generatedAt}, node ${report.node}`,
    `command: ${report.command}`,
    `${o.runs} rounds × 3 modes, ${o.ms} ms measured after ${o.warmupMs} ms warm-up, preset ${o.preset}, ${o.gso ? 'GSO' : 'MSS'} frames, queue ${o.queueSize}, ${o.strategy} waits; total ${report.totalSeconds.toFixed(1)} s`,
    '',
    ['mode'.padEnd(26), 'Gb/s min / med / max'.padStart(24), 'kframes/s med'.padStart(14), 'cpu s/GB med'.padStart(13), 'vs off med [min..max]'.padStart(24), 'dropped recs'.padStart(13)].join(' '),
  ];
  for (const m of report.modes) {
    lines.push(
      [
        m.label.padEnd(26),
        sp(m.gbps).padStart(24),
        f(m.kFramesPerS.median, 1).padStart(14),
        f(m.cpuSecondsPerGB.median).padStart(13),
        `${f(m.ratioVsOff.median)} [${f(m.ratioVsOff.min)}..${f(m.ratioVsOff.max)}]`.padStart(24),
        String(m.droppedRecords).padStart(13),
      ].join(' ') + (m.errors > 0 ? `  ${m.errors} ERRORS` : ''),
    );
  }
  lines.push('', "ratio = this mode's receiver Gb/s ÷ tracing off's in the same round.");
  if (report.modes.some((m) => m.droppedRecords > 0)) lines.push('WARNING: trace buffers filled up and dropped records; the traced figures are optimistic. Use shorter --ms.');
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`trace-net-overhead: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exitCode = 1;
});
