// `virtq trace …`: `record` runs the stream workload with tracing into a file; `analyze` reads a
// trace file and prints per-stage percentiles and the slowest packets, as text or JSON, and can
// write the self-contained HTML view.

import type { Command } from 'commander';
import type { WaitStrategy } from '../../notify/index.js';
import { runTraced } from '../../engine/index.js';
import { analyzeTraceFile, formatReport, writeTraceHtml, type TraceLevelName } from '../../trace/node.js';
import { DEFAULT_SAMPLE_BLOCK, isSampleBlock, type TraceStamping } from '../../trace/index.js';

interface RecordOpts {
  out: string;
  traceSample: string;
  traceSampleBlock: string;
  traceSlowerThanUs?: string;
  traceLevel: string;
  traceStamping: string;
  ms: string;
  count?: string;
  payload: string;
  queueSize: string;
  strategy: string;
  capacity: string;
}

export function registerTrace(program: Command): void {
  const trace = program.command('trace').description('latency tracing: record a traced run, analyze a trace file');
  trace
    .command('record')
    .description('run the stream workload with tracing and write the trace (pino NDJSON)')
    .requiredOption('--out <file>', 'trace file to write')
    .option('--trace-sample <n>', 'trace 1 packet in N (1 = every packet)', '100')
    .option('--trace-sample-block <n>', 'keep blocks of this many consecutive packets, 1 block in N (power of 2; 1 = spread out)', String(DEFAULT_SAMPLE_BLOCK))
    .option('--trace-slower-than-us <us>', 'keep only packets slower than this end to end (records every packet)')
    .option('--trace-level <level>', 'lowest level recorded: trace | debug | info | warn | error', 'trace')
    .option('--trace-stamping <how>', 'every packet traced: interpolated (clock read per batch) | exact (a read per point)', 'interpolated')
    .option('--ms <n>', 'how long to run', '500')
    .option('--count <n>', 'send exactly N packets instead of running for --ms (every packet completes)')
    .option('--payload <bytes>', 'payload bytes per packet (multiple of 4)', '1500')
    .option('--queue-size <n>', 'queue size (power of 2)', '256')
    .option('--strategy <s>', 'wait strategy: block | hybrid | spin', 'hybrid')
    .option('--capacity <records>', 'trace records per thread buffer (power of 2); a full buffer drops and counts', String(1 << 20))
    .action(async (o: RecordOpts) => {
      const strategy = o.strategy as WaitStrategy;
      if (!isSampleBlock(Number(o.traceSampleBlock))) throw new Error(`--trace-sample-block must be a power of two in 1..4096 (got ${o.traceSampleBlock})`);
      if (!['block', 'hybrid', 'spin'].includes(strategy)) throw new Error(`--strategy must be block, hybrid or spin (got ${o.strategy})`);
      const { result, trace: t } = await runTraced(
        {
          workload: 'stream',
          queues: [{ size: Number(o.queueSize) }],
          wait: { strategy },
          ...(o.count === undefined ? { durationMs: Number(o.ms) } : {}),
          params: { payloadBytes: Number(o.payload), verify: 'seq', warmupMs: 0, count: o.count === undefined ? 0 : Number(o.count) },
        },
        {
          file: o.out,
          sample: Number(o.traceSample),
          sampleBlock: Number(o.traceSampleBlock),
          level: o.traceLevel as TraceLevelName,
          stamping: o.traceStamping as TraceStamping,
          capacityRecords: Number(o.capacity),
          ...(o.traceSlowerThanUs !== undefined ? { slowerThanUs: Number(o.traceSlowerThanUs) } : {}),
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
    .option('--json', 'print the report as JSON')
    .option('--html <file>', 'also write the HTML view (self-contained) to this file')
    .option('--slowest <n>', 'how many slowest packets to show', '10')
    .action(async (file: string, o: { json?: boolean; html?: string; slowest: string }) => {
      const report = await analyzeTraceFile(file, { slowest: Number(o.slowest) });
      if (o.html) writeTraceHtml(report, o.html, `virtq trace: ${file}`);
      process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : formatReport(report));
      if (o.html && !o.json) process.stdout.write(`HTML view: ${o.html}\n`);
    });
}
