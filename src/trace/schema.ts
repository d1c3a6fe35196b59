// The trace event schema: event kinds, their levels, the binary record layout shared by the
// writer (a processor thread) and the reader (the main thread), and the fixed vocabularies
// (packet points in path order; drop reasons and NO_ID come from net's observer contract). Plain data only: runs in a browser Web Worker.

/** Event kinds. Values are stored in the low byte of a record's meta word; never renumber. */
export const enum TraceKind {
  // Per-packet points, guest → host → guest (level trace).
  Add = 1,
  Publish = 2,
  Kick = 3,
  DeviceWake = 4,
  Pop = 5,
  Done = 6,
  Used = 7,
  Interrupt = 8,
  DriverWake = 9,
  Reap = 10,
  // Policy and health events.
  TimerArmed = 20,
  TimerFired = 21,
  NotifyEnabled = 22,
  NotifyDisabled = 23,
  RingFull = 24,
  Drop = 25,
  Error = 26,
  /** Written by the buffer itself before the first record after drops; arg = records dropped. */
  Gap = 27,
  /** Second slot of a run record (see the layout below); never read as a record of its own. */
  RunTail = 28,
}

/** pino's numeric levels; a tracer records an event when its level is >= the tracer's. */
export const TRACE_LEVELS = { trace: 10, debug: 20, info: 30, warn: 40, error: 50 } as const;
export type TraceLevelName = keyof typeof TRACE_LEVELS;

/** Name, level and meaning of every kind (the NDJSON `ev` field uses the name). */
export const KIND_INFO: Readonly<Record<number, { name: string; level: number; about: string }>> = {
  [TraceKind.Add]: { name: 'add', level: 10, about: 'driver starts building the packet (fill + add descriptor)' },
  [TraceKind.Publish]: { name: 'publish', level: 10, about: 'driver publishes avail.idx (taken before the store); arg = entries' },
  [TraceKind.Kick]: { name: 'kick', level: 10, about: 'driver rings the device doorbell (taken before the ring)' },
  [TraceKind.DeviceWake]: { name: 'device-wake', level: 10, about: 'device returns from a doorbell wait' },
  [TraceKind.Pop]: { name: 'pop', level: 10, about: 'device popped the chain (taken after avail.idx was seen)' },
  [TraceKind.Done]: { name: 'done', level: 10, about: 'backend finished with the packet; arg = bytes' },
  [TraceKind.Used]: { name: 'used', level: 10, about: 'device publishes used.idx (taken before the store); arg = entries' },
  [TraceKind.Interrupt]: { name: 'interrupt', level: 10, about: 'device rings the driver doorbell (taken before the ring)' },
  [TraceKind.DriverWake]: { name: 'driver-wake', level: 10, about: 'driver returns from a doorbell wait' },
  [TraceKind.Reap]: { name: 'reap', level: 10, about: 'driver reaped the used entry (taken after used.idx was seen); arg = bytes' },
  [TraceKind.TimerArmed]: { name: 'timer-armed', level: 20, about: 'a mitigation timer was armed; arg = interval ns' },
  [TraceKind.TimerFired]: { name: 'timer-fired', level: 20, about: 'a mitigation timer fired; arg = lateness ns' },
  [TraceKind.NotifyEnabled]: { name: 'notify-enabled', level: 20, about: 'notifications (kicks or interrupts) enabled before sleeping' },
  [TraceKind.NotifyDisabled]: { name: 'notify-disabled', level: 20, about: 'notifications disabled' },
  [TraceKind.RingFull]: { name: 'ring-full', level: 30, about: 'no free descriptor or buffer; arg = entries in flight' },
  [TraceKind.Drop]: { name: 'drop', level: 40, about: 'a packet was dropped; arg = reason code (DROP_REASONS)' },
  [TraceKind.Error]: { name: 'error', level: 50, about: 'an error; arg = error code (ERROR_CODES)' },
  [TraceKind.Gap]: { name: 'gap', level: 50, about: 'the buffer was full and records were dropped just before this point; arg = how many' },
  [TraceKind.RunTail]: { name: 'run-tail', level: 10, about: 'second slot of a run record (expanded by the reader; never in a trace file)' },
};

/** Packet points in path order. A packet's timeline is a subsequence of this list. */
export const PACKET_POINTS = ['add', 'publish', 'kick', 'device-wake', 'pop', 'done', 'used', 'interrupt', 'driver-wake', 'reap'] as const;
export type PacketPoint = (typeof PACKET_POINTS)[number];
/** Points every complete packet has; the others are present only when they caused its progress. */
export const REQUIRED_POINTS: readonly PacketPoint[] = ['add', 'publish', 'pop', 'done', 'used', 'reap'];

/** Drop reasons, by code (the arg of a Drop record): net's vocabulary (src/net/observer.ts). Append only. */
export { DROP_REASONS, type DropReason } from '../net/observer.js';
/** Error codes, by code (the arg of an Error record). Append only. */
/** `identity`: a side's packet count disagreed with the ring position it counts (tracing of that queue stops). */
export const ERROR_CODES = ['other', 'verify', 'virtqueue', 'memory', 'net', 'backend', 'timeout', 'identity'] as const;
export type TraceErrorCode = (typeof ERROR_CODES)[number];

// ---- binary record layout (little-endian, native typed arrays) ----
// A trace buffer is a SharedArrayBuffer: a header of HEADER_BYTES, then `capacity` records of
// RECORD_BYTES each: [f64 tNs][f64 arg][u32 id][u32 meta]. meta = kind | queue << 8 | flags << 16.
export const RECORD_BYTES = 24;
export const RECORD_F64 = 3; // f64 slots per record: 0 = tNs, 1 = arg
export const RECORD_U32 = 6; // u32 slots per record: 4 = id, 5 = meta
export const HEADER_BYTES = 256;
/** Int32 header words. The writer's and the reader's words sit on separate 64-byte lines. */
export const H_WRITE = 0; // records published by the writer (wrapping u32 count)
export const H_DROPPED = 1; // records the writer dropped because the buffer was full
export const H_FLUSHES = 2; // flush() calls (diagnostics)
export const H_INTERPOLATED = 3; // 1 when the writer timed any slot by interpolation (as of its last flush)
export const H_READ = 16; // records consumed by the reader (byte 64: its own line)
export const FLAG_HAS_ID = 1;
/**
 * A run record: two slots standing for `count` packets' points of identities id, id + 1, …
 * (u32), written once per batch instead of a record per point (TraceWriter.putRun). Head slot:
 * tNs = the first point's time, arg = the points' arg, id = the first identity, meta = kind |
 * queue << 8 | (FLAG_HAS_ID | FLAG_RUN) << 16 | kind2 << 24. Tail slot: tNs = ns between
 * consecutive points, arg = count, meta = RunTail. kind2 = 0: count points of `kind`; else
 * count pairs, each `kind` (arg 0) then `kind2` (arg). The reader expands runs into records.
 */
export const FLAG_RUN = 2;
/** id value of records without a packet identity (net's NO_ID, src/net/observer.ts). */
export { NO_ID } from '../net/observer.js';
