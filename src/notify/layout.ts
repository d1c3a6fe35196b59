// Byte layout of doorbell memory inside a SharedArrayBuffer: the control block (stop word plus a
// read-only table of the doorbells it stops) and the doorbell slots (sequence line + sleepers
// line). Owns every offset and the checks that a placement is aligned, in bounds and disjoint;
// touches no shared word itself except through the helpers that initialise and validate.
//
// Control block, at a 64-byte aligned `controlByteOffset`, controlBlockBytes(count) long:
//   +0   i32 stop        0 = running, 1 = stopped (the only word that changes after init)
//   +4   i32 magic       CONTROL_MAGIC
//   +8   i32 version     LAYOUT_VERSION
//   +12  i32 count       number of doorbells this block stops
//   +16  i32[count]      absolute byte offset of each doorbell slot, padded to a 64-byte line
// Doorbell slot, at a 64-byte aligned offset, DOORBELL_SLOT_BYTES (128) long:
//   +0   i32 seq         bumped by ring() and by stop(); the word every wait sleeps on
//   +4   i32 magic       DOORBELL_MAGIC      (read-only, read at open)
//   +8   i32 control     byte offset of the control block that stops this doorbell (read-only)
//   +12  i32 index       position of this doorbell in that block's table (read-only)
//   +64  i32 sleepers    number of waiters that declared themselves asleep (own line: written
//                        by the waiting side, read by the ringing side)
// The stop word shares its line only with the read-only table, so polling it costs a cached load.

import { DoorbellError } from './errors.js';

export const CACHE_LINE_BYTES = 64;
/** Bytes of one doorbell: the sequence line and the sleepers line. */
export const DOORBELL_SLOT_BYTES = 2 * CACHE_LINE_BYTES;
/** Byte offset of the sequence word inside a doorbell slot. */
export const DOORBELL_SEQ_BYTE = 0;
/** Byte offset of the sleepers word inside a doorbell slot (its own 64-byte line). */
export const DOORBELL_SLEEPERS_BYTE = CACHE_LINE_BYTES;
/** Byte offset of the stop word inside a control block. */
export const CONTROL_STOP_BYTE = 0;
/** Upper bound on doorbells per control block (keeps the table and stop() bounded). */
export const MAX_DOORBELLS = 1024;

export const CONTROL_MAGIC = 0x44424c4b; // 'DBLK'
export const DOORBELL_MAGIC = 0x44424c4c; // 'DBLL'
export const LAYOUT_VERSION = 1;

// Int32 word indices inside the views below (view = Int32Array starting at the block/slot).
export const CTRL_STOP = CONTROL_STOP_BYTE >> 2;
export const CTRL_MAGIC = 1;
export const CTRL_VERSION = 2;
export const CTRL_COUNT = 3;
export const CTRL_TABLE = 4;
export const SLOT_SEQ = DOORBELL_SEQ_BYTE >> 2;
export const SLOT_MAGIC = 1;
export const SLOT_CONTROL = 2;
export const SLOT_INDEX = 3;
export const SLOT_SLEEPERS = DOORBELL_SLEEPERS_BYTE >> 2;
export const SLOT_WORDS = DOORBELL_SLOT_BYTES >> 2;

/** Bytes of a control block that stops `count` doorbells (whole 64-byte lines). */
export function controlBlockBytes(count: number): number {
  checkCount(count);
  return roundUpToLine((CTRL_TABLE + count) * 4);
}

/** Bytes of the default contiguous layout: control block, then `count` doorbell slots. */
export function doorbellBlockBytes(count: number): number {
  return controlBlockBytes(count) + count * DOORBELL_SLOT_BYTES;
}

/** Where a control block and its doorbells sit in a SharedArrayBuffer. */
export interface DoorbellBlockLayout {
  readonly controlByteOffset: number;
  readonly controlBytes: number;
  /** Absolute byte offset of each doorbell slot; index i is doorbell i. */
  readonly doorbellByteOffsets: readonly number[];
}

/** The default placement: control block at `controlByteOffset`, doorbells right after it. */
export function contiguousLayout(count: number, controlByteOffset = 0): DoorbellBlockLayout {
  const controlBytes = controlBlockBytes(count);
  const doorbellByteOffsets: number[] = [];
  for (let i = 0; i < count; i++) {
    doorbellByteOffsets.push(controlByteOffset + controlBytes + i * DOORBELL_SLOT_BYTES);
  }
  return { controlByteOffset, controlBytes, doorbellByteOffsets };
}

/** Checks that `buffer` is a SharedArrayBuffer (by brand, so it works across realms). */
export function requireShared(buffer: unknown): SharedArrayBuffer {
  if (Object.prototype.toString.call(buffer) !== '[object SharedArrayBuffer]') {
    throw new DoorbellError('not-shared', -1, `got ${Object.prototype.toString.call(buffer)}`);
  }
  return buffer as SharedArrayBuffer;
}

/** Checks that [byteOffset, byteOffset + bytes) is line-aligned and inside `sab`. */
export function checkPlacement(sab: SharedArrayBuffer, byteOffset: number, bytes: number, what: string): void {
  if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset + bytes > sab.byteLength) {
    throw new DoorbellError(
      'out-of-bounds',
      byteOffset,
      `${what} needs ${bytes} bytes, buffer is ${sab.byteLength} bytes`,
    );
  }
  if (byteOffset % CACHE_LINE_BYTES !== 0) {
    throw new DoorbellError('misaligned', byteOffset, `${what} must start on a 64-byte line`);
  }
}

/** Checks that no two of the byte ranges [start, start + len) share a byte. */
export function checkDisjoint(ranges: readonly { start: number; len: number; what: string }[]): void {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.start < prev.start + prev.len) {
      throw new DoorbellError('overlap', cur.start, `${cur.what} overlaps ${prev.what}`);
    }
  }
}

export function checkCount(count: number): void {
  if (!Number.isInteger(count) || count < 1 || count > MAX_DOORBELLS) {
    throw new DoorbellError('bad-count', -1, `${count} doorbells (allowed: 1 to ${MAX_DOORBELLS})`);
  }
}

function roundUpToLine(bytes: number): number {
  return Math.ceil(bytes / CACHE_LINE_BYTES) * CACHE_LINE_BYTES;
}
