// The tracing options of the commands that run the engine (`virtq bench net …`, `virtq study`):
// `--trace FILE --trace-sample N …` for commander, and their check into TraceOptions.
//
//   addTraceOptions(cmd);                      // adds --trace, --trace-sample, --trace-sample-block, --trace-slower-than-us, --trace-level, --trace-stamping
//   const t = traceOptionsFromCli(o);          // TraceOptions & { file } or undefined without --trace

import type { Command } from 'commander';
import { TraceOptionsError, type TraceOptions } from '../trace/session.js';
import { TRACE_LEVELS } from '../trace/schema.js';
import { DEFAULT_SAMPLE_BLOCK, isSampleBlock, TRACE_STAMPINGS, type TraceStamping } from '../trace/tracer.js';

export interface TraceCliOptions {
  trace?: string;
  traceSample?: string;
  traceSampleBlock?: string;
  traceSlowerThanUs?: string;
  traceLevel?: string;
  traceStamping?: string;
}

/** Adds the tracing options to a command. */
export function addTraceOptions(cmd: Command): Command {
  return cmd
    .option('--trace <file>', 'record a latency trace of the run into FILE (pino NDJSON; read it with `virtq trace analyze`)')
    .option('--trace-sample <n>', 'trace 1 packet in N (1 = every packet)', '1')
    .option('--trace-sample-block <n>', 'with --trace-sample N > 1: keep blocks of this many consecutive packets, 1 block in N (power of 2; 1 = spread out)', String(DEFAULT_SAMPLE_BLOCK))
    .option('--trace-slower-than-us <us>', 'keep only packets slower than this many µs end to end (records every packet)')
    .option('--trace-level <level>', 'lowest trace level recorded: trace (packets) | debug | info | warn | error', 'trace')
    .option('--trace-stamping <how>', 'every packet traced: interpolated (clock read per batch) | exact (a read per point)', 'interpolated');
}

/**
 * The TraceOptions a command's parsed options ask for, or undefined without --trace. Checked
 * here, so a bad value fails the command before any run (TraceOptionsError).
 */
export function traceOptionsFromCli(o: TraceCliOptions): (TraceOptions & { file: string }) | undefined {
  if (o.trace === undefined) return undefined;
  const t: TraceOptions & { file: string } = { file: o.trace, sample: Number(o.traceSample ?? '1') };
  if (!Number.isInteger(t.sample) || t.sample! < 1) throw new TraceOptionsError(`--trace-sample must be an integer ≥ 1 (got ${o.traceSample})`);
  if (o.traceSampleBlock !== undefined) {
    t.sampleBlock = Number(o.traceSampleBlock);
    if (!isSampleBlock(t.sampleBlock)) throw new TraceOptionsError(`--trace-sample-block must be a power of two in 1..4096 (got ${o.traceSampleBlock})`);
  }
  if (o.traceSlowerThanUs !== undefined) {
    t.slowerThanUs = Number(o.traceSlowerThanUs);
    if (!(t.slowerThanUs >= 0)) throw new TraceOptionsError(`--trace-slower-than-us must be a number ≥ 0 (got ${o.traceSlowerThanUs})`);
  }
  if (o.traceLevel !== undefined) {
    if (!(o.traceLevel in TRACE_LEVELS)) throw new TraceOptionsError(`--trace-level must be one of ${Object.keys(TRACE_LEVELS).join(', ')} (got ${o.traceLevel})`);
    t.level = o.traceLevel as NonNullable<TraceOptions['level']>;
  }
  if (o.traceStamping !== undefined) {
    if (!(TRACE_STAMPINGS as readonly string[]).includes(o.traceStamping)) throw new TraceOptionsError(`--trace-stamping must be one of ${TRACE_STAMPINGS.join(', ')} (got ${o.traceStamping})`);
    t.stamping = o.traceStamping as TraceStamping;
  }
  return t;
}
