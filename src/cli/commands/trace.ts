// `virtq trace …`: `record` runs the stream workload with tracing into a file; `analyze` reads a
// trace file and prints per-stage percentiles and the slowest packets, as text or JSON, and can
// write the self-contained HTML view.

import type { Command } from 'commander';
import type { WaitStrategy } from '../../notify/index.js';
import { runTraced } from '../../engine/index.js';
import { analyzeTraceFile, DEFAULT_WARMUP_PACKETS, formatReport, writeTraceHtml, type TraceLevelName } from '../../trace/node.js';
import { DEFAULT_SAMPLE_BLOCK, type TraceStamping } from '../../trace/index.js';
import { writeFileSync } from 'node:fs';
import { emitReport, jsonHelp, type JsonOption, multipleOf, nonNegativeInt, nonNegativeNumber, oneOf, outputFile, positiveInt, powerOfTwo } from '../args.js';
import { sampleBlock, traceLevel, traceStamping, TRACE_LEVEL_NAMES } from '../trace-options.js';
import { queueSize } from './bench-net.js';

interface RecordOpts {
  out: string;
  traceSample: number;
  traceSampleBlock: number;
  traceSlowerThanUs?: number;
  traceLevel: TraceLevelName;
  traceStamping: TraceStamping;
  ms: number;
  count?: number;
  payload: number;
  queueSize: number;
  strategy: WaitStrategy;
  capacity: number;
}

export function registerTrace(program: Command): void {
  const trace = program.command('trace').description('latency tracing: record a traced run, analyze a trace file');
  trace
    .command('record')
    .description('run the stream workload with tracing and write the trace (pino NDJSON)')
    .requiredOption('--out <file>', 'trace file to write', outputFile)
    .option('--trace-sample <n>', 'trace 1 packet in N (1 = every packet)', positiveInt, 100)
    .option('--trace-sample-block <n>', 'keep blocks of this many consecutive packets, 1 block in N (power of 2; 1 = spread out)', sampleBlock, DEFAULT_SAMPLE_BLOCK)
    .option('--trace-slower-than-us <us>', 'keep only packets slower than this end to end (records every packet)', nonNegativeNumber)
    .option('--trace-level <level>', `lowest level recorded: ${TRACE_LEVEL_NAMES.join(' | ')}`, traceLevel, 'trace')
    .option('--trace-stamping <how>', 'every packet traced: interpolated (clock read per batch) | exact (a read per point)', traceStamping, 'interpolated')
    .option('--ms <n>', 'how long to run', positiveInt, 500)
    .option('--count <n>', 'send exactly N packets instead of running for --ms (every packet completes)', positiveInt)
    .option('--payload <bytes>', 'payload bytes per packet (multiple of 4)', multipleOf(4, 8), 1500)
    .option('--queue-size <n>', 'queue size (power of 2)', queueSize, 256)
    .option('--strategy <s>', 'wait strategy: block | hybrid | spin', oneOf<WaitStrategy>(['block', 'hybrid', 'spin']), 'hybrid')
    .option('--capacity <records>', 'trace records per thread buffer (power of 2); a full buffer drops and counts', powerOfTwo(1, 1 << 30), 1 << 20)
    .action(async (o: RecordOpts) => {
      const { strategy } = o;
      const { result, trace: t } = await runTraced(
        {
          workload: 'stream',
          queues: [{ size: o.queueSize }],
          wait: { strategy },
          ...(o.count === undefined ? { durationMs: o.ms } : {}),
          params: { payloadBytes: o.payload, verify: 'seq', warmupMs: 0, count: o.count ?? 0 },
        },
        {
          file: o.out,
          sample: o.traceSample,
          sampleBlock: o.traceSampleBlock,
          level: o.traceLevel,
          stamping: o.traceStamping,
          capacityRecords: o.capacity,
          ...(o.traceSlowerThanUs !== undefined ? { slowerThanUs: o.traceSlowerThanUs } : {}),
        },
      );
      process.stdout.write(
        `virtq trace record: ${result.host.packets} packets in ${result.elapsedMs.toFixed(0)} ms; wrote ${t.packets} packet timelines and ${t.events} events to ${t.path}\n` +
          `  incomplete ${t.incomplete}, out of order ${t.outOfOrder}, records dropped (buffer full) guest ${t.dropped.guest} host ${t.dropped.host}\n`,
      );
    });
  trace
    .command('analyze <file>')
    .description('per-stage latency percentiles, slowest packets and events of a trace file')
    .option('--json [file]', jsonHelp('the report'), outputFile)
    .option('--html <file>', 'also write the HTML view (self-contained) to this file', outputFile)
    .option('--slowest <n>', 'how many slowest packets to show', nonNegativeInt, 10)
    .option('--warmup-packets <n>', 'packets with seq below n are the JIT warm-up: in the totals, not in the slowest list', nonNegativeInt, DEFAULT_WARMUP_PACKETS)
    .action(async (file: string, o: { json?: JsonOption; html?: string; slowest: number; warmupPackets: number }) => {
      const report = await analyzeTraceFile(file, { slowest: o.slowest, warmupPackets: o.warmupPackets });
      if (o.html) writeTraceHtml(report, o.html, `virtq trace: ${file}`);
      emitReport(o.json, () => JSON.stringify(report, null, 2) + '\n', () => formatReport(report) + (o.html ? `HTML view: ${o.html}\n` : ''), writeFileSync);
    });
}
