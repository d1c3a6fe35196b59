// The main thread's side of one traced run: allocates a buffer per processor thread, hands each
// side its TracerSetup, drains the buffers (in chunks while the run goes, if asked, and at the
// end), and joins the records into packet timelines. Runs anywhere (no Node imports).

import { allocateTraceBuffer, TraceReader, type TraceChunk } from './buffer.js';
import { clockOriginHere, type TraceClockOrigin } from './clock.js';
import { TRACE_LEVELS, type TraceLevelName } from './schema.js';
import { buildTimelines, decodeChunks, type Side, type TimelineResult } from './timeline.js';
import { allocateReleaseStamps, DEFAULT_SAMPLE_BLOCK, isSampleBlock, TRACE_STAMPINGS, type TraceStamping, type TracerSetup } from './tracer.js';

export interface TraceOptions {
  /** Per-packet sampling: 1 = every packet (default), N = 1 packet in N (in blocks, see sampleBlock). */
  sample?: number;
  /**
   * Sampling 1 in N > 1: consecutive identities kept together, a power of two in 1..4096
   * (default 32, a batch: the batch's clock reads then serve all its kept packets; 1 keeps
   * seq % N === 0). Tracer.sampled has the rule.
   */
  sampleBlock?: number;
  /** Keep only packets whose end-to-end time exceeds this (µs) in the output. Records every packet. */
  slowerThanUs?: number;
  /** Lowest level recorded (default 'trace': packets and every event). */
  level?: TraceLevelName;
  /** Records per thread buffer, a power of two (default 2^20 = 24 MiB). Full buffers drop and count. */
  capacityRecords?: number;
  /** Copy records out of the buffers every this many ms while the run goes (default 0: at the end only). */
  drainEveryMs?: number;
  /**
   * How per-packet points are timed (src/trace/tracer.ts): 'interpolated' (default) between
   * clock reads at batch points, or 'exact' (a read each). Interpolation needs the workload's
   * batch calls (the stream workload makes them, every packet or sampled); point-by-point
   * callers in sampled runs (the virtio-net path) stamp each point exactly either way.
   */
  stamping?: TraceStamping;
}

export class TraceOptionsError extends Error {
  override readonly name = 'TraceOptionsError';
  readonly code = 'bad-trace-option';
}

export interface TraceCollected extends TimelineResult {
  /** Records dropped because a thread's buffer was full. */
  dropped: Record<Side, number>;
  /**
   * How the per-packet points were timed: 'interpolated' when any record was (the workload
   * made the batch calls interpolation needs), else 'exact' (every time a clock read).
   */
  stamping: TraceStamping;
  /** Records read per thread. */
  records: Record<Side, number>;
  /** Complete packets left out because they were not slower than `slowerThanUs`. */
  filteredFast: number;
}

export class TraceSession {
  readonly options: Required<TraceOptions>;
  readonly origin: TraceClockOrigin;
  private readonly sabs: Record<Side, SharedArrayBuffer>;
  private readonly readers: Record<Side, TraceReader>;
  private readonly chunks: Record<Side, TraceChunk[]> = { guest: [], host: [] };
  private timer: ReturnType<typeof setInterval> | undefined;
  private collected: TraceCollected | undefined;

  constructor(options: TraceOptions = {}) {
    const sample = options.sample ?? 1;
    if (!Number.isInteger(sample) || sample < 1) throw new TraceOptionsError(`trace sample must be an integer ≥ 1 (got ${sample})`);
    const slowerThanUs = options.slowerThanUs ?? 0;
    if (!(slowerThanUs >= 0)) throw new TraceOptionsError(`slowerThanUs must be ≥ 0 (got ${slowerThanUs})`);
    const level = options.level ?? 'trace';
    if (!(level in TRACE_LEVELS)) throw new TraceOptionsError(`trace level must be one of ${Object.keys(TRACE_LEVELS).join(', ')} (got ${level})`);
    const sampleBlock = options.sampleBlock ?? DEFAULT_SAMPLE_BLOCK;
    if (!isSampleBlock(sampleBlock)) throw new TraceOptionsError(`trace sample block must be a power of two in 1..4096 (got ${sampleBlock})`);
    const stamping = options.stamping ?? 'interpolated';
    if (!TRACE_STAMPINGS.includes(stamping)) throw new TraceOptionsError(`trace stamping must be one of ${TRACE_STAMPINGS.join(', ')} (got ${String(stamping)})`);
    this.options = { sample, sampleBlock, slowerThanUs, level, capacityRecords: options.capacityRecords ?? 1 << 20, drainEveryMs: options.drainEveryMs ?? 0, stamping };
    this.origin = clockOriginHere();
    this.sabs = { guest: allocateTraceBuffer(this.options.capacityRecords), host: allocateTraceBuffer(this.options.capacityRecords) };
    this.readers = { guest: new TraceReader(this.sabs.guest), host: new TraceReader(this.sabs.host) };
    this.releaseStamps = allocateReleaseStamps();
  }

  /** The two sides' release stamps (Tracer.fetched). */
  private readonly releaseStamps: SharedArrayBuffer;

  /** The setup a processor of `side` attaches its Tracer to. */
  setupFor(side: Side): TracerSetup {
    const level = TRACE_LEVELS[this.options.level];
    return {
      sab: this.sabs[side],
      origin: this.origin,
      everyN: level <= TRACE_LEVELS.trace ? this.options.sample : 0,
      sampleBlock: this.options.sampleBlock,
      level,
      stamping: this.options.stamping,
      releaseStamps: { sab: this.releaseStamps, side: side === 'guest' ? 0 : 1 },
    };
  }

  /** Starts periodic draining (when drainEveryMs > 0). The engine calls this at start. */
  start(): void {
    if (this.options.drainEveryMs > 0 && this.timer === undefined) {
      this.timer = setInterval(() => this.drain(), this.options.drainEveryMs);
    }
  }

  /** Copies out what the writers published so far. */
  drain(): void {
    for (const side of ['guest', 'host'] as Side[]) {
      const c = this.readers[side].read();
      if (c.tNs.length > 0) this.chunks[side].push(c);
    }
  }

  /** Stops periodic draining and copies out the rest (the engine calls this when both sides ended). */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.collected) this.drain();
  }

  /** Stops, reads the rest and builds the timelines (once; later calls return the same). */
  finish(): TraceCollected {
    if (this.collected) return this.collected;
    this.stop();
    const guest = decodeChunks('guest', this.chunks.guest);
    const host = decodeChunks('host', this.chunks.host);
    const t = buildTimelines(guest, host);
    const min = this.options.slowerThanUs * 1000;
    const packets = min > 0 ? t.packets.filter((p) => p.e2eNs > min) : t.packets;
    this.collected = {
      ...t,
      packets,
      dropped: { guest: this.readers.guest.dropped, host: this.readers.host.dropped },
      stamping: this.readers.guest.interpolated || this.readers.host.interpolated ? 'interpolated' : 'exact',
      records: { guest: guest.length, host: host.length },
      filteredFast: t.packets.length - packets.length,
    };
    this.chunks.guest = [];
    this.chunks.host = [];
    return this.collected;
  }
}
