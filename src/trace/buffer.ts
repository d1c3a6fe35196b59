// One thread's trace buffer: a single-producer single-consumer ring of fixed-size binary records
// in a SharedArrayBuffer (layout in schema.ts). The writer (a processor thread) never allocates
// and never blocks: when the ring is full the record is dropped and counted. The reader (the main
// thread) copies records out, at the end of a run or in chunks while it runs.
//
// The writer publishes its index every PUBLISH_EVERY records and on flush(), not per record: a
// seq-cst store costs more than the record itself. The reader therefore sees records in batches.
// After drops, the first record that fits is preceded by a Gap record (arg = records dropped),
// so a reader never mistakes a hole for a continuous stream.
//
// Untimed records (putUntimed) are written without a time and given one later by
// stampUntimed, which interpolates between two clock reads (see tracer.ts). The index is never
// published while untimed records are pending, so a reader only ever sees timed records.

import { FLAG_HAS_ID, FLAG_RUN, TraceKind, HEADER_BYTES, H_DROPPED, H_FLUSHES, H_INTERPOLATED, H_READ, H_WRITE, NO_ID, RECORD_BYTES, RECORD_F64, RECORD_U32 } from './schema.js';

const PUBLISH_EVERY_MASK = 255;

export class TraceBufferError extends Error {
  override readonly name = 'TraceBufferError';
  constructor(
    readonly code: 'bad-capacity' | 'bad-buffer',
    message: string,
  ) {
    super(message);
  }
}

/** Allocates a buffer for `capacityRecords` records (a power of two, ≥ 256). */
export function allocateTraceBuffer(capacityRecords: number): SharedArrayBuffer {
  if (!Number.isInteger(capacityRecords) || capacityRecords < 256 || (capacityRecords & (capacityRecords - 1)) !== 0 || capacityRecords > 1 << 26) {
    throw new TraceBufferError('bad-capacity', `trace buffer capacity must be a power of two in 256..2^26 records (got ${capacityRecords})`);
  }
  const sab = new SharedArrayBuffer(HEADER_BYTES + capacityRecords * RECORD_BYTES);
  // Touch every page now, in the allocating thread: a large buffer is mapped lazily, and first
  // touches during the run would add a page fault every ~170 records to the traced thread.
  const u8 = new Uint8Array(sab);
  for (let i = 0; i < u8.length; i += 4096) u8[i] = 0;
  return sab;
}

function capacityOf(sab: SharedArrayBuffer): number {
  const n = (sab.byteLength - HEADER_BYTES) / RECORD_BYTES;
  if (!Number.isInteger(n) || n < 256 || (n & (n - 1)) !== 0) throw new TraceBufferError('bad-buffer', `not a trace buffer (${sab.byteLength} bytes)`);
  return n;
}

/** Writer side. One per thread; not thread-safe. */
export class TraceWriter {
  private readonly header: Int32Array;
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly mask: number;
  private readonly capacity: number;
  private w = 0; // slots written (wrapping u32 arithmetic through `| 0`)
  private limit = 0; // w may grow up to here before the reader's index must be re-read
  /** Records (points, as the reader sees them) dropped because the buffer was full. */
  dropped = 0;
  private gap = 0; // drops not yet marked by a Gap record
  /** Slots written since the last stampUntimed that still have no time (a Gap among them counts). */
  untimed = 0;
  // Points those slots stand for (a run counts all of its points). Until stamped, an untimed
  // slot's tNs holds the ordinal of its first point among them.
  private untimedPoints = 0;
  private published = 0; // the last value stored to H_WRITE
  /** Slots timed by interpolation (stampUntimed) so far: says whether a trace used it. */
  interpolated = 0;

  constructor(sab: SharedArrayBuffer) {
    this.capacity = capacityOf(sab);
    this.mask = this.capacity - 1;
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(sab, HEADER_BYTES);
    this.u32 = new Uint32Array(sab, HEADER_BYTES);
    // Acquire: pairs with the reader's store of H_READ (a reused buffer may start mid-count).
    this.w = Atomics.load(this.header, H_WRITE);
    this.published = this.w;
    this.limit = (Atomics.load(this.header, H_READ) + this.capacity) | 0;
    this.dropped = Atomics.load(this.header, H_DROPPED);
  }

  /** Appends one record, or counts a drop when the ring is full. Allocation-free. */
  put(kind: number, queue: number, id: number, tNs: number, arg: number): void {
    // A timed record after untimed ones: callers stamp those first (Tracer does); if not, they
    // take this time, which is never earlier than when they happened.
    if (this.untimed !== 0 || this.untimedPoints !== 0) this.stampUntimed(tNs, tNs);
    let w = this.w;
    if (w === this.limit) {
      if (!this.makeRoom(1, 1, tNs)) return;
      w = this.w;
    }
    const i = w & this.mask;
    this.f64[i * RECORD_F64] = tNs;
    this.f64[i * RECORD_F64 + 1] = arg;
    this.u32[i * RECORD_U32 + 4] = id;
    this.u32[i * RECORD_U32 + 5] = kind | (queue << 8) | ((id === NO_ID ? 0 : FLAG_HAS_ID) << 16);
    w = (w + 1) | 0;
    this.w = w;
    if ((w & PUBLISH_EVERY_MASK) === 0 && this.untimed === 0) this.publish();
  }

  /**
   * Appends one packet point (it has an id, even 0xffffffff) whose time is not known yet
   * (allocation-free; counts a drop when full). It stays unpublished until stampUntimed gives
   * it a time.
   */
  putUntimed(kind: number, queue: number, id: number, arg: number): void {
    let w = this.w;
    if (w === this.limit) {
      if (!this.makeRoom(1, 1, NaN)) return;
      w = this.w;
    }
    const i = w & this.mask;
    this.f64[i * RECORD_F64] = this.untimedPoints++; // its ordinal until stamped
    this.f64[i * RECORD_F64 + 1] = arg;
    this.u32[i * RECORD_U32 + 4] = id;
    this.u32[i * RECORD_U32 + 5] = kind | (queue << 8) | (FLAG_HAS_ID << 16); // packet points always have an id
    this.w = (w + 1) | 0;
    this.untimed++;
  }

  /**
   * Appends an untimed run: `count` packets' points for identities firstId, firstId + 1, … —
   * one `kind` point each, or (kind2 ≠ 0) a `kind` point (arg 0) then a `kind2` point (arg)
   * each — in two slots, however long the run (layout in schema.ts). The reader expands it;
   * it reads back exactly as the same points written one by one with putUntimed.
   */
  putRun(kind: number, kind2: number, queue: number, firstId: number, count: number, arg: number): void {
    if (count <= 0) return;
    const points = kind2 === 0 ? count : 2 * count;
    let w = this.w;
    if (((this.limit - w) | 0) < 2) {
      if (!this.makeRoom(2, points, NaN)) return;
      w = this.w;
    }
    const mask = this.mask;
    let i = w & mask;
    this.f64[i * RECORD_F64] = this.untimedPoints; // the first point's ordinal until stamped
    this.f64[i * RECORD_F64 + 1] = arg;
    this.u32[i * RECORD_U32 + 4] = firstId >>> 0;
    this.u32[i * RECORD_U32 + 5] = kind | (queue << 8) | ((FLAG_HAS_ID | FLAG_RUN) << 16) | (kind2 << 24);
    i = (w + 1) & mask;
    this.f64[i * RECORD_F64] = 0;
    this.f64[i * RECORD_F64 + 1] = count;
    this.u32[i * RECORD_U32 + 4] = NO_ID;
    this.u32[i * RECORD_U32 + 5] = TraceKind.RunTail;
    this.w = (w + 2) | 0;
    this.untimed += 2;
    this.untimedPoints += points;
  }

  /**
   * Counts `points` points that happened here but are not recorded (packets a sampled run
   * leaves out): the recorded ones around them keep their places in the even spread, so a
   * sampled point is timed as precisely as if every point were written.
   */
  skipPoints(points: number): void {
    this.untimedPoints += points;
  }

  /** Whether points wait for a time (written untimed, or skipped) since the last stamp. */
  get pending(): boolean {
    return this.untimed !== 0 || this.untimedPoints !== 0;
  }

  /**
   * Gives the untimed points times spread evenly, in write order, strictly between `fromNs`
   * (the clock read before the first of them) and `toNs` (the read after the last), then
   * publishes if a publication is due. A run's head takes its first point's time and its tail
   * the step between points.
   */
  stampUntimed(fromNs: number, toNs: number): void {
    const n = this.untimed;
    if (n === 0) {
      this.untimedPoints = 0; // only skipped points: nothing to time
      return;
    }
    const step = (toNs - fromNs) / (this.untimedPoints + 1);
    const mask = this.mask;
    let w = (this.w - n) | 0;
    for (let k = 0; k < n; k++) {
      const i = w & mask;
      this.f64[i * RECORD_F64] = fromNs + step * (this.f64[i * RECORD_F64]! + 1);
      w = (w + 1) | 0;
      if ((this.u32[i * RECORD_U32 + 5]! & (FLAG_RUN << 16)) !== 0) {
        this.f64[(w & mask) * RECORD_F64] = step; // the run's tail
        w = (w + 1) | 0;
        k++;
      }
    }
    this.interpolated += n;
    this.untimed = 0;
    this.untimedPoints = 0;
    if (((this.w - this.published) | 0) > PUBLISH_EVERY_MASK) this.publish();
  }

  private publish(): void {
    // Release: the records written before become visible before the index (pairs with the
    // reader's acquire load of H_WRITE).
    Atomics.store(this.header, H_WRITE, this.w);
    this.published = this.w;
  }

  /**
   * Slow path at the limit: re-reads the reader's index; with fewer than `slots` free (plus one
   * for a pending Gap) drops and counts `points`, else writes the pending Gap (arg = points
   * dropped). An untimed write's Gap (tNs NaN) is untimed too.
   */
  private makeRoom(slots: number, points: number, tNs: number): boolean {
    // Acquire: pairs with TraceReader's store of H_READ after it copied records out.
    const limit = (Atomics.load(this.header, H_READ) + this.capacity) | 0;
    const free = (limit - this.w) | 0;
    if (free < slots + (this.gap > 0 ? 1 : 0)) {
      this.dropped += points;
      this.gap += points;
      return false;
    }
    this.limit = limit;
    if (this.gap > 0) {
      const i = this.w & this.mask;
      const untimed = Number.isNaN(tNs);
      this.f64[i * RECORD_F64] = untimed ? this.untimedPoints++ : tNs;
      this.f64[i * RECORD_F64 + 1] = this.gap;
      this.u32[i * RECORD_U32 + 4] = NO_ID;
      this.u32[i * RECORD_U32 + 5] = TraceKind.Gap;
      this.w = (this.w + 1) | 0;
      this.gap = 0;
      if (untimed) this.untimed++;
      if (this.untimed === 0) this.publish();
    }
    return true;
  }

  /** Publishes everything written and timed so far, and the drop count. Call at the end of a run. */
  flush(): void {
    // Release: pairs with the reader's acquire loads of H_WRITE, H_DROPPED and H_INTERPOLATED.
    Atomics.store(this.header, H_DROPPED, this.dropped);
    Atomics.store(this.header, H_INTERPOLATED, this.interpolated > 0 ? 1 : 0); // a flag: a count would wrap
    if (this.untimed === 0) this.publish();
    Atomics.add(this.header, H_FLUSHES, 1);
  }
}

/** Records copied out of a buffer, column by column (the chunk owns its arrays). */
export interface TraceChunk {
  tNs: Float64Array;
  arg: Float64Array;
  id: Uint32Array;
  meta: Uint32Array;
}

/** Reader side (main thread). */
export class TraceReader {
  private readonly header: Int32Array;
  private readonly f64: Float64Array;
  private readonly u32: Uint32Array;
  private readonly mask: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.mask = capacityOf(sab) - 1;
    this.header = new Int32Array(sab, 0, HEADER_BYTES / 4);
    this.f64 = new Float64Array(sab, HEADER_BYTES);
    this.u32 = new Uint32Array(sab, HEADER_BYTES);
  }

  /** Records the writer dropped so far (as of its last flush). */
  get dropped(): number {
    // Acquire: pairs with TraceWriter.flush's store.
    return Atomics.load(this.header, H_DROPPED);
  }

  /** Whether the writer timed any slot by interpolation (as of its last flush; false = every time was read). */
  get interpolated(): boolean {
    // Acquire: pairs with TraceWriter.flush's store.
    return Atomics.load(this.header, H_INTERPOLATED) !== 0;
  }

  /** Copies out every published record not read yet (runs expanded) and frees their space for the writer. */
  read(): TraceChunk {
    // Acquire: pairs with the writer's release store of H_WRITE; records below it are complete.
    const w = Atomics.load(this.header, H_WRITE);
    const r = Atomics.load(this.header, H_READ);
    const n = (w - r) >>> 0;
    const f64 = this.f64;
    const u32 = this.u32;
    const mask = this.mask;
    // Pass 1: how many records, runs expanded (a run's head and tail are published together).
    let out = 0;
    for (let k = 0; k < n; k++) {
      const i = (r + k) & mask;
      const meta = u32[i * RECORD_U32 + 5]!;
      if ((meta & (FLAG_RUN << 16)) !== 0 && k + 1 < n) {
        const count = f64[((r + k + 1) & mask) * RECORD_F64 + 1]!;
        out += meta >>> 24 === 0 ? count : 2 * count;
        k++;
      } else if ((meta & 0xff) !== TraceKind.RunTail) out++;
    }
    const chunk: TraceChunk = { tNs: new Float64Array(out), arg: new Float64Array(out), id: new Uint32Array(out), meta: new Uint32Array(out) };
    // Pass 2: copy, expanding runs into the records they stand for.
    let o = 0;
    for (let k = 0; k < n; k++) {
      const i = (r + k) & mask;
      const meta = u32[i * RECORD_U32 + 5]!;
      if ((meta & (FLAG_RUN << 16)) !== 0 && k + 1 < n) {
        const tail = (r + k + 1) & mask;
        const t0 = f64[i * RECORD_F64]!;
        const step = f64[tail * RECORD_F64]!;
        const count = f64[tail * RECORD_F64 + 1]!;
        const arg = f64[i * RECORD_F64 + 1]!;
        const first = u32[i * RECORD_U32 + 4]!;
        const kind2 = meta >>> 24;
        const base = meta & 0x00ff_ffff & ~(FLAG_RUN << 16);
        let p = 0;
        for (let j = 0; j < count; j++) {
          const id = (first + j) >>> 0;
          if (kind2 === 0) {
            chunk.tNs[o] = t0 + step * p++;
            chunk.arg[o] = arg;
            chunk.id[o] = id;
            chunk.meta[o++] = base;
          } else {
            chunk.tNs[o] = t0 + step * p++;
            chunk.arg[o] = 0;
            chunk.id[o] = id;
            chunk.meta[o++] = base;
            chunk.tNs[o] = t0 + step * p++;
            chunk.arg[o] = arg;
            chunk.id[o] = id;
            chunk.meta[o++] = (base & ~0xff) | kind2;
          }
        }
        k++;
        continue;
      }
      if ((meta & 0xff) === TraceKind.RunTail) continue;
      chunk.tNs[o] = f64[i * RECORD_F64]!;
      chunk.arg[o] = f64[i * RECORD_F64 + 1]!;
      chunk.id[o] = u32[i * RECORD_U32 + 4]!;
      chunk.meta[o++] = meta;
    }
    // Release: the copies above are done before the writer may overwrite the slots (pairs with
    // the writer's acquire load of H_READ when it reaches its limit).
    Atomics.store(this.header, H_READ, w);
    return chunk;
  }
}
