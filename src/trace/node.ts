// Node-only tracing: writing trace files through pino, operational loggers and the analyzer
// (files, HTML). Processors and browser code import ./index.ts instead. Running the engine traced
// is the engine's (src/engine/run-traced.ts), the --trace options the CLI's
// (src/cli/trace-options.ts): trace imports nothing from engine or cli.
export * from './index.js';
export type { TraceLevelName } from './schema.js';
export { writeTraceFile, TRACE_FORMAT_VERSION, type TraceFileSummary } from './output.js';
export { rootLogger, sideLogger, defaultLogLevel, type Logger, type LogLevel } from './log.js';
export { TraceAnalyzer, TraceFormatError, formatReport, fmtNs, slowestTitle, DEFAULT_WARMUP_PACKETS, BIN_MIN_LOG2, BIN_COUNT, type TraceReport, type LatencyStats, type SlowPacket } from './analyze.js';
export { renderHtml } from './html.js';
export { analyzeTraceFile, writeTraceHtml } from './analyze-file.js';
