// `virtq bench stream` (netperf TCP_STREAM semantics) and `virtq bench ping` (ping -f
// semantics): one preset, one direction, through the net workloads. Text by default, the cell
// as JSON with --json. Progress on a terminal (stderr), nothing extra when piped. With
// --trace FILE each run is traced into a file (FILE for one run, FILE-<row>-<cell>-<run> for
// several; docs/tracing.md), each reported on stderr.

import type { Command } from 'commander';
import type { WaitSettings } from '../../engine/index.js';
import { findPreset, formatPingCell, formatStreamCell, ProgressLine, duration, type Direction, type StudyMode } from '../../study/index.js';
import { runPingCell, runStreamCell, type RunTrace } from '../../study/runner.js';
import { addTraceOptions, traceOptionsFromCli, type TraceCliOptions } from '../trace-options.js';

export function parseDirection(s: string): Direction {
  if (s === 'g2h' || s === 'h2g') return s;
  throw new Error(`--direction must be g2h or h2g (got ${s})`);
}

export function parsePositive(name: string, s: string, integer = true): number {
  const x = Number(s);
  if (!Number.isFinite(x) || x <= 0 || (integer && !Number.isInteger(x))) throw new Error(`${name} must be a positive ${integer ? 'integer' : 'number'} (got ${s})`);
  return x;
}

export function parseWait(s: string | undefined): { wait?: WaitSettings } {
  if (s === undefined) return {};
  if (s === 'block' || s === 'hybrid' || s === 'spin') return { wait: { strategy: s } };
  throw new Error(`--wait must be block, hybrid or spin (got ${s})`);
}

export function parseMode(s: string): StudyMode {
  if (s === 'cumulative' || s === 'isolated') return s;
  throw new Error(`--mode must be cumulative or isolated (got ${s})`);
}

interface StreamOpts extends TraceCliOptions {
  direction: string;
  runs: string;
  seconds: string;
  preset: string;
  msgSize: string;
  queueSize?: string;
  warmupMs: string;
  mode: string;
  workload?: string;
  wait?: string;
  json?: boolean;
}

interface PingOpts extends TraceCliOptions {
  direction: string;
  count: string;
  preset: string;
  queueSize?: string;
  mode: string;
  workload?: string;
  wait?: string;
  json?: boolean;
}

/**
 * The RunTrace a command's --trace options ask for (undefined without --trace): each written
 * file is reported on stderr. `single`: the command makes one run, which writes FILE itself.
 */
export function runTraceFromCli(o: TraceCliOptions, single: boolean, progress: ProgressLine): RunTrace | undefined {
  const t = traceOptionsFromCli(o);
  if (t === undefined) return undefined;
  return {
    ...t,
    single,
    onWritten: (s) => {
      progress.clear();
      const lost = s.dropped.guest + s.dropped.host;
      process.stderr.write(`trace: wrote ${s.path} (${s.packets} packets, ${s.incomplete} incomplete, ${s.events} events${lost > 0 ? `, ${lost} records dropped` : ''})\n`);
    },
  };
}

export function registerBenchNet(bench: Command): void {
  const stream = bench
    .command('stream')
    .description('netperf-like TCP stream through virtio-net: Gb/s per run, min/avg/max/stddev, mechanism counters, CPU per GB')
    .option('--direction <d>', 'g2h (sender in the guest) or h2g', 'g2h')
    .option('--runs <n>', 'runs (the RFC: 10)', '10')
    .option('--seconds <s>', 'measured seconds per run (the RFC: 20)', '20')
    .option('--preset <name>', 'policy preset (RFC row name or slug, or a modern preset)', 'baseline')
    .option('--msg-size <bytes>', 'send size (netperf -m)', '16384')
    .option('--queue-size <n>', "queue size for rx and tx (default: the preset's)")
    .option('--warmup-ms <ms>', 'excluded from each run', '1000')
    .option('--mode <m>', 'cumulative (the row with every earlier change) or isolated (baseline + this change)', 'cumulative')
    .option('--workload <name>', 'stream workload name or module path', 'net-stream')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)')
    .option('--json', 'print the cell as JSON');
  addTraceOptions(stream).action(async (o: StreamOpts) => {
    const direction = parseDirection(o.direction);
    const mode = parseMode(o.mode);
    const preset = findPreset(o.preset, mode);
    const runs = parsePositive('--runs', o.runs);
    const seconds = parsePositive('--seconds', o.seconds, false);
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, runs === 1, progress);
    const t0 = performance.now();
    const cell = await runStreamCell(
      preset,
      direction,
      { runs, seconds, warmupMs: Number(o.warmupMs) },
      {
        mode,
        ...parseWait(o.wait),
        msgBytes: parsePositive('--msg-size', o.msgSize),
        ...(o.queueSize !== undefined ? { queueSize: parsePositive('--queue-size', o.queueSize) } : {}),
        ...(o.workload !== undefined ? { streamWorkload: o.workload } : {}),
        ...(trace !== undefined ? { trace } : {}),
      },
      (run) => progress.update(`stream ${direction} "${preset.name}" run ${run}/${runs} · ${duration(performance.now() - t0)} elapsed`),
    );
    progress.clear();
    process.stdout.write(o.json ? JSON.stringify({ schema: 'virtq-bench-stream/1', command: ['virtq', ...process.argv.slice(2)].join(' '), seconds, ...cell }, null, 2) + '\n' : formatStreamCell(cell, seconds));
    if (cell.error !== undefined || cell.errors > 0) process.exitCode = 1;
  });

  const ping = bench
    .command('ping')
    .description('ping -f-like flood ping through virtio-net: iputils min/avg/max/mdev, p50/p99')
    .option('--direction <d>', 'g2h (the guest pings the host) or h2g', 'g2h')
    .option('--count <n>', 'echo requests (the RFC: 100000)', '100000')
    .option('--preset <name>', 'policy preset (RFC row name or slug, or a modern preset)', 'baseline')
    .option('--queue-size <n>', "queue size for rx and tx (default: the preset's)")
    .option('--mode <m>', 'cumulative or isolated', 'cumulative')
    .option('--workload <name>', 'ping workload name or module path', 'net-ping')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)')
    .option('--json', 'print the cell as JSON');
  addTraceOptions(ping).action(async (o: PingOpts) => {
    const direction = parseDirection(o.direction);
    const mode = parseMode(o.mode);
    const preset = findPreset(o.preset, mode);
    const count = parsePositive('--count', o.count);
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, true, progress);
    progress.update(`ping ${direction} "${preset.name}": ${count} requests…`);
    const cell = await runPingCell(preset, direction, { count, pingCapMs: null }, {
      mode,
      ...parseWait(o.wait),
      ...(o.queueSize !== undefined ? { queueSize: parsePositive('--queue-size', o.queueSize) } : {}),
      ...(o.workload !== undefined ? { pingWorkload: o.workload } : {}),
      ...(trace !== undefined ? { trace } : {}),
    });
    progress.clear();
    process.stdout.write(o.json ? JSON.stringify({ schema: 'virtq-bench-ping/1', command: ['virtq', ...process.argv.slice(2)].join(' '), ...cell }, null, 2) + '\n' : formatPingCell(cell));
    if (cell.result === null || cell.result.errors > 0) process.exitCode = 1;
  });
}
