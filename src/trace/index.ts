// Public face of tracing that runs anywhere (processors, browsers): the event schema, the clock,
// per-thread binary buffers, the Tracer a workload calls, the session that drains buffers, and
// the timeline builder. Node-only parts (pino output, CLI helpers, analyzer files) are in ./node.ts.
export * from './schema.js';
export { clockOriginHere, clockOffsetNs, type TraceClockOrigin } from './clock.js';
export { allocateTraceBuffer, TraceWriter, TraceReader, TraceBufferError, type TraceChunk } from './buffer.js';
export { Tracer, TRACE_STAMPINGS, DEFAULT_SAMPLE_BLOCK, TraceSetupError, isSampleBlock, allocateReleaseStamps, type TracerSetup, type TraceStamping } from './tracer.js';
export { TraceSession, TraceOptionsError, type TraceOptions, type TraceCollected } from './session.js';
export { buildTimelines, decodeChunks, stagesOf, eventFields, type PacketTimeline, type TimelineResult, type TraceRecord, type Side } from './timeline.js';
