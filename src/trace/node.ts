// Node-only tracing: writing trace files through pino, operational loggers, CLI/engine glue and
// the analyzer (files, HTML). Processors and browser code import ./index.ts instead.
export * from './index.js';
export { writeTraceFile, TRACE_FORMAT_VERSION, type TraceFileSummary } from './output.js';
export { rootLogger, sideLogger, defaultLogLevel, type Logger, type LogLevel } from './log.js';
export { addTraceOptions, traceOptionsFromCli, runTraced, type TraceCliOptions } from './record.js';
