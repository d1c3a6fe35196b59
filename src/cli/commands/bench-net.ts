// `virtq bench stream` (netperf TCP_STREAM semantics) and `virtq bench ping` (ping -f
// semantics): one preset, one direction, through the net workloads. Text by default, the cell
// as JSON with --json. Progress on a terminal (stderr), nothing extra when piped. With
// --trace FILE each run is traced into a file (FILE for one run, FILE-<row>-<cell>-<run> for
// several; docs/tracing.md), each reported on stderr.

import { InvalidArgumentError, type Command } from 'commander';
import type { WaitSettings } from '../../engine/index.js';
import { resolvePolicy } from '../../policy/index.js';
import type { RingKind } from '../../virtqueue/index.js';
import { findPreset, formatPingCell, formatStreamCell, ProgressLine, duration, slugOf, type Direction, type StudyMode, type StudyPreset } from '../../study/index.js';
import { runPingCell, runStreamCell, type RunTrace } from '../../study/runner.js';
import { writeFileSync } from 'node:fs';
import { emitReport, jsonHelp, nonNegativeInt, oneOf, outputFile, type JsonOption, policySpec, positiveInt, positiveNumber, powerOfTwo } from '../args.js';
import { addTraceOptions, traceOptionsFromCli, type TraceCliOptions } from '../trace-options.js';

export const direction = oneOf<Direction>(['g2h', 'h2g']);
export const studyMode = oneOf<StudyMode>(['cumulative', 'isolated']);
export const waitStrategy = oneOf<WaitSettings['strategy']>(['block', 'hybrid', 'spin']);
/** A queue size the engine accepts (virtio 1.2 §2.7: a power of 2, at most 32768). */
export const queueSize = powerOfTwo(1, 32768);

/** --queues: 1..16 queue pairs (two worker threads each). */
function pairCount(value: string): number {
  const n = positiveInt(value);
  if (n > 16) throw new InvalidArgumentError('Expected 1..16 queue pairs.');
  return n;
}

export function waitOf(s: WaitSettings['strategy'] | undefined): { wait?: WaitSettings } {
  return s === undefined ? {} : { wait: { strategy: s } };
}

function tryFind(spec: string, mode: StudyMode): StudyPreset | undefined {
  try {
    return findPreset(spec, mode);
  } catch {
    return undefined;
  }
}

/**
 * The study row a --preset value (checked by policySpec) names in `mode`: a row by label, slug
 * or policy preset name; otherwise (a modern preset, `<rfc preset>-alone`, policy JSON) a row of
 * its own whose data path comes from the policy, which the workloads resolve again by spec.
 */
export function studyPresetOf(spec: string, mode: StudyMode): StudyPreset {
  const row = tryFind(spec, mode) ?? (mode === 'isolated' ? tryFind(spec, 'cumulative') : undefined);
  if (row !== undefined) return row.kind === 'rfc' && mode === 'isolated' ? findPreset(row.name, mode) : row;
  const c = resolvePolicy(spec);
  return {
    name: c.name,
    policy: spec,
    slug: slugOf(c.name),
    kind: 'modern',
    description: c.description,
    rfcIndex: null,
    ringSize: c.dataPath.txRingSize,
    gso: c.dataPath.gso,
    mergeable: c.dataPath.mergeableRxBuffers,
    eventIdx: c.interrupts.mode === 'eventIdx',
  };
}

interface StreamOpts extends TraceCliOptions {
  direction: Direction;
  runs: number;
  seconds: number;
  preset: string;
  msgSize: number;
  queueSize?: number;
  ring: RingKind;
  inOrder?: boolean;
  warmupMs: number;
  mode: StudyMode;
  workload?: string;
  wait?: WaitSettings['strategy'];
  json?: JsonOption;
  queues: number;
}

interface PingOpts extends TraceCliOptions {
  direction: Direction;
  count: number;
  preset: string;
  queueSize?: number;
  ring: RingKind;
  inOrder?: boolean;
  mode: StudyMode;
  workload?: string;
  wait?: WaitSettings['strategy'];
  json?: JsonOption;
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
    .option('--direction <d>', 'g2h (sender in the guest) or h2g', direction, 'g2h')
    .option('--runs <n>', 'runs (the RFC: 10)', positiveInt, 10)
    .option('--seconds <s>', 'measured seconds per run (the RFC: 20; the default run takes over 3 minutes)', positiveNumber, 20)
    .option('--preset <name>', 'policy preset (`virtq presets` lists them; <rfc preset>-alone; policy JSON)', policySpec, 'rfc-baseline')
    .option('--msg-size <bytes>', 'send size (netperf -m)', positiveInt, 16384)
    .option('--queue-size <n>', "queue size for rx and tx (default: the preset's)", queueSize)
    .option('--ring <kind>', 'ring layout of both queues: split or packed (VIRTIO_F_RING_PACKED)', oneOf(['split', 'packed'] as const), 'split')
    .option('--in-order', 'VIRTIO_F_IN_ORDER on both queues (in-order, batched used returns)')
    .option('--warmup-ms <ms>', 'excluded from each run', nonNegativeInt, 1000)
    .option('--mode <m>', 'cumulative (the row with every earlier change) or isolated (baseline + this change)', studyMode, 'cumulative')
    .option('--workload <name>', 'stream workload name or module path', 'net-stream')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)', waitStrategy)
    .option('--queues <n>', 'queue pairs run at once, each on its own guest and host worker (Gb/s summed, per pair shown); 1..16', pairCount, 1)
    .option('--json [file]', jsonHelp('the cell'), outputFile);
  addTraceOptions(stream).action(async (o: StreamOpts) => {
    const { direction, mode, runs, seconds } = o;
    const preset = studyPresetOf(o.preset, mode);
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, runs === 1, progress);
    const t0 = performance.now();
    const cell = await runStreamCell(
      preset,
      direction,
      { runs, seconds, warmupMs: o.warmupMs },
      {
        mode,
        ...waitOf(o.wait),
        msgBytes: o.msgSize,
        ring: o.ring,
        ...(o.inOrder === true ? { inOrder: true } : {}),
        ...(o.queueSize !== undefined ? { queueSize: o.queueSize } : {}),
        ...(o.workload !== undefined ? { streamWorkload: o.workload } : {}),
        ...(trace !== undefined ? { trace } : {}),
        ...(o.queues > 1 ? { queuePairs: o.queues } : {}),
      },
      (run) => progress.update(`stream ${direction} "${preset.name}" run ${run}/${runs} · ${duration(performance.now() - t0)} elapsed`),
    );
    progress.clear();
    emitReport(o.json, () => JSON.stringify({ schema: 'virtq-bench-stream/1', command: ['virtq', ...process.argv.slice(2)].join(' '), seconds, ...cell }, null, 2) + '\n', () => formatStreamCell(cell, seconds), writeFileSync);
    if (cell.error !== undefined || cell.errors > 0) process.exitCode = 1;
  });

  const ping = bench
    .command('ping')
    .description('ping -f-like flood ping through virtio-net: iputils min/avg/max/mdev, p50/p99')
    .option('--direction <d>', 'g2h (the guest pings the host) or h2g', direction, 'g2h')
    .option('--count <n>', 'echo requests (the RFC: 100000)', positiveInt, 100000)
    .option('--preset <name>', 'policy preset (`virtq presets` lists them; <rfc preset>-alone; policy JSON)', policySpec, 'rfc-baseline')
    .option('--queue-size <n>', "queue size for rx and tx (default: the preset's)", queueSize)
    .option('--ring <kind>', 'ring layout of both queues: split or packed (VIRTIO_F_RING_PACKED)', oneOf(['split', 'packed'] as const), 'split')
    .option('--in-order', 'VIRTIO_F_IN_ORDER on both queues (in-order, batched used returns)')
    .option('--mode <m>', 'cumulative or isolated', studyMode, 'cumulative')
    .option('--workload <name>', 'ping workload name or module path', 'net-ping')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)', waitStrategy)
    .option('--json [file]', jsonHelp('the cell'), outputFile);
  addTraceOptions(ping).action(async (o: PingOpts) => {
    const { direction, mode, count } = o;
    const preset = studyPresetOf(o.preset, mode);
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, true, progress);
    progress.update(`ping ${direction} "${preset.name}": ${count} requests…`);
    const cell = await runPingCell(preset, direction, { count, pingCapMs: null }, {
      mode,
      ...waitOf(o.wait),
      ring: o.ring,
      ...(o.inOrder === true ? { inOrder: true } : {}),
      ...(o.queueSize !== undefined ? { queueSize: o.queueSize } : {}),
      ...(o.workload !== undefined ? { pingWorkload: o.workload } : {}),
      ...(trace !== undefined ? { trace } : {}),
    });
    progress.clear();
    emitReport(o.json, () => JSON.stringify({ schema: 'virtq-bench-ping/1', command: ['virtq', ...process.argv.slice(2)].join(' '), ...cell }, null, 2) + '\n', () => formatPingCell(cell), writeFileSync);
    if (cell.result === null || cell.result.errors > 0) process.exitCode = 1;
  });
}
