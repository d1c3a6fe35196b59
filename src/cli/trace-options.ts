// The tracing options of the commands that run the engine (`virtq bench net …`, `virtq study`,
// `virtq tap`, `virtq vhost-user`): `--trace FILE --trace-sample N …` for commander, each checked
// by the shared parsers (./args.ts) as it is parsed, and their mapping into TraceOptions.
//
//   addTraceOptions(cmd);                      // adds --trace, --trace-sample, --trace-sample-block, --trace-slower-than-us, --trace-level, --trace-stamping
//   const t = traceOptionsFromCli(o);          // TraceOptions & { file } or undefined without --trace

import type { Command } from 'commander';
import type { TraceOptions } from '../trace/session.js';
import { TRACE_LEVELS, type TraceLevelName } from '../trace/schema.js';
import { DEFAULT_SAMPLE_BLOCK, TRACE_STAMPINGS, type TraceStamping } from '../trace/tracer.js';
import { nonNegativeNumber, oneOf, outputFile, positiveInt, powerOfTwo } from './args.js';

export interface TraceCliOptions {
  trace?: string;
  traceSample?: number;
  traceSampleBlock?: number;
  traceSlowerThanUs?: number;
  traceLevel?: TraceLevelName;
  traceStamping?: TraceStamping;
}

export const TRACE_LEVEL_NAMES = Object.keys(TRACE_LEVELS) as TraceLevelName[];
/** --trace-sample-block: a power of two in 1..4096 (isSampleBlock). */
export const sampleBlock = powerOfTwo(1, 4096);
export const traceLevel = oneOf(TRACE_LEVEL_NAMES);
export const traceStamping = oneOf(TRACE_STAMPINGS);

/** Adds the tracing options to a command. */
export function addTraceOptions(cmd: Command): Command {
  return cmd
    .option('--trace <file>', 'record a latency trace of the run into FILE (pino NDJSON; read it with `virtq trace analyze`)', outputFile)
    .option('--trace-sample <n>', 'trace 1 packet in N (1 = every packet)', positiveInt, 1)
    .option('--trace-sample-block <n>', 'with --trace-sample N > 1: keep blocks of this many consecutive packets, 1 block in N (power of 2; 1 = spread out)', sampleBlock, DEFAULT_SAMPLE_BLOCK)
    .option('--trace-slower-than-us <us>', 'keep only packets slower than this many µs end to end (records every packet)', nonNegativeNumber)
    .option('--trace-level <level>', `lowest trace level recorded: ${TRACE_LEVEL_NAMES.join(' | ')} (trace = packets)`, traceLevel, 'trace')
    .option('--trace-stamping <how>', 'every packet traced: interpolated (clock read per batch) | exact (a read per point)', traceStamping, 'interpolated');
}

/** The TraceOptions a command's parsed (already checked) options ask for, or undefined without --trace. */
export function traceOptionsFromCli(o: TraceCliOptions): (TraceOptions & { file: string }) | undefined {
  if (o.trace === undefined) return undefined;
  return {
    file: o.trace,
    sample: o.traceSample ?? 1,
    ...(o.traceSampleBlock !== undefined ? { sampleBlock: o.traceSampleBlock } : {}),
    ...(o.traceSlowerThanUs !== undefined ? { slowerThanUs: o.traceSlowerThanUs } : {}),
    ...(o.traceLevel !== undefined ? { level: o.traceLevel } : {}),
    ...(o.traceStamping !== undefined ? { stamping: o.traceStamping } : {}),
  };
}
