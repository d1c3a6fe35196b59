// Writes a finished trace session as pino NDJSON (Node only: used by the main thread after a
// run, never by a processor). Line 1 is the run summary (msg "trace-run"), then one line per
// packet (msg "packet", level trace) with its points in ns since the run's origin, then one line
// per event (msg "event"). pino serialises; the destination batches lines into large writes so
// writing costs about pino's serialisation (~0.5 µs a line), not a syscall per line.

import { closeSync, openSync, writeSync } from 'node:fs';
import { pino } from 'pino';
import { KIND_INFO, PACKET_POINTS } from './schema.js';
import type { TraceCollected, TraceSession } from './session.js';
import { eventFields, type PacketTimeline } from './timeline.js';

export const TRACE_FORMAT_VERSION = 1;

/** A pino destination that appends to a file in ~1 MiB writes. */
class BatchedFileDestination {
  private readonly fd: number;
  private parts: string[] = [];
  private size = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }

  write(line: string): boolean {
    this.parts.push(line);
    this.size += line.length;
    if (this.size >= 1 << 20) this.flushSync();
    return true;
  }

  flushSync(): void {
    if (this.parts.length === 0) return;
    writeSync(this.fd, this.parts.join(''));
    this.parts = [];
    this.size = 0;
  }

  close(): void {
    this.flushSync();
    closeSync(this.fd);
  }
}

/** Rounded points of a packet, in path order (ns since the run's origin). */
function pointsOf(p: PacketTimeline): Record<string, number> {
  const o: Record<string, number> = {};
  for (const k of PACKET_POINTS) if (p.points[k] !== undefined) o[k] = Math.round(p.points[k]!);
  return o;
}

export interface TraceFileSummary {
  path: string;
  packets: number;
  events: number;
  incomplete: number;
  outOfOrder: number;
  dropped: { guest: number; host: number };
}

/** Drains `session` (if not yet finished) and writes it to `path`. `meta` goes into line 1. */
export function writeTraceFile(session: TraceSession, path: string, meta: Record<string, unknown> = {}): TraceFileSummary {
  const c: TraceCollected = session.finish();
  const dest = new BatchedFileDestination(path);
  const log = pino({ level: 'trace', base: null, timestamp: false }, dest);
  try {
    log.info(
      {
        traceVersion: TRACE_FORMAT_VERSION,
        ...meta,
        sample: session.options.sample,
        sampleBlock: session.options.sample > 1 ? session.options.sampleBlock : 1,
        slowerThanUs: session.options.slowerThanUs,
        traceLevel: session.options.level,
        stamping: c.stamping, // what happened: interpolated only where the workload's calls allowed it
        originEpochMs: session.origin.timeOriginMs + session.origin.nowMs,
        packets: c.packets.length,
        events: c.events.length,
        incomplete: c.incomplete,
        outOfOrder: c.outOfOrder,
        mismatched: c.mismatched,
        filteredFast: c.filteredFast,
        droppedRecords: c.dropped,
        records: c.records,
        points: PACKET_POINTS,
        kinds: Object.values(KIND_INFO).map((k) => k.name),
      },
      'trace-run',
    );
    for (const p of c.packets) {
      const t = pointsOf(p);
      // From the rounded points, so the stage durations still add up exactly.
      log.trace({ seq: p.seq, q: p.queue, len: p.lenBytes, e2eNs: t.reap! - t.add!, t }, 'packet');
    }
    for (const e of c.events) {
      const lvl = KIND_INFO[e.kind]?.level ?? 30;
      const fields = eventFields(e);
      if (lvl >= 50) log.error(fields, 'event');
      else if (lvl >= 40) log.warn(fields, 'event');
      else if (lvl >= 30) log.info(fields, 'event');
      else log.debug(fields, 'event');
    }
  } finally {
    dest.close();
  }
  return { path, packets: c.packets.length, events: c.events.length, incomplete: c.incomplete, outOfOrder: c.outOfOrder, dropped: c.dropped };
}
