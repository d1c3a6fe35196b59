// One engine run with tracing, written to a trace file: a TraceSession for the run, the run, and
// the file (pino NDJSON, read by `virtq trace analyze`). The engine drives; trace only records.
//
//   const { result, trace } = await runTraced(engineOptions, { file: 'run.ndjson', sample: 100 });

import { writeTraceFile, type TraceFileSummary } from '../trace/output.js';
import { TraceSession, type TraceOptions } from '../trace/session.js';
import { Engine, type EngineOptions, type EngineResult } from './engine.js';

/** Runs the engine once with tracing and writes the trace to `trace.file`. */
export async function runTraced(
  options: EngineOptions,
  trace: TraceOptions & { file: string; meta?: Record<string, unknown> },
): Promise<{ result: EngineResult; trace: TraceFileSummary }> {
  const session = new TraceSession(trace);
  const result = await Engine.run({ ...options, trace: session });
  const meta = { workload: options.workload, params: options.params, queues: options.queues, wait: options.wait, ...(trace.meta ?? {}) };
  return { result, trace: writeTraceFile(session, trace.file, meta) };
}
