// A control block and the doorbells it stops: places them in a SharedArrayBuffer (contiguously or
// at caller-chosen offsets), re-opens them in another thread from the buffer and the control
// block's offset, and owns the stop word's only writer, stop(). Layout lives in layout.ts; the
// ring/wait protocol in doorbell.ts.
//
//   const block = DoorbellBlock.allocate(2);             // or init(sab, offset, layoutOrCount)
//   const kick = block.doorbell(0, { strategy: 'hybrid' });
//   new Worker(url, { workerData: { sab: block.sab, doorbells: block.controlByteOffset } });
//   // in the worker:
//   const kick = DoorbellBlock.open(workerData.sab, workerData.doorbells).doorbell(0);

import { Doorbell, type DoorbellOptions } from './doorbell.js';
import { DoorbellError } from './errors.js';
import {
  CONTROL_MAGIC,
  CTRL_COUNT,
  CTRL_MAGIC,
  CTRL_STOP,
  CTRL_TABLE,
  CTRL_VERSION,
  DOORBELL_MAGIC,
  DOORBELL_SLOT_BYTES,
  LAYOUT_VERSION,
  SLOT_CONTROL,
  SLOT_INDEX,
  SLOT_MAGIC,
  SLOT_SEQ,
  SLOT_SLEEPERS,
  SLOT_WORDS,
  checkCount,
  checkDisjoint,
  checkPlacement,
  contiguousLayout,
  controlBlockBytes,
  doorbellBlockBytes,
  requireShared,
  type DoorbellBlockLayout,
} from './layout.js';

export class DoorbellBlock {
  readonly sab: SharedArrayBuffer;
  readonly controlByteOffset: number;
  /** Number of doorbells this block stops. */
  readonly count: number;
  private readonly ctrl: Int32Array;
  private readonly slots: readonly Int32Array[];

  /** A fresh SharedArrayBuffer holding a control block and `count` doorbells, contiguously. */
  static allocate(count: number): DoorbellBlock {
    const sab = new SharedArrayBuffer(doorbellBlockBytes(count));
    return DoorbellBlock.init(sab, 0, count);
  }

  /**
   * Initialises a control block at `controlByteOffset` and its doorbells: given a count, the
   * doorbells follow the control block; given offsets, each doorbell goes where it is told (64-byte
   * aligned, 128 bytes each, disjoint). Zeroes the stop, sequence and sleepers words: call it once,
   * before any thread uses the doorbells.
   */
  static init(
    buffer: SharedArrayBuffer,
    controlByteOffset: number,
    countOrDoorbellByteOffsets: number | readonly number[],
  ): DoorbellBlock {
    const sab = requireShared(buffer);
    const doorbellByteOffsets =
      typeof countOrDoorbellByteOffsets === 'number'
        ? contiguousLayout(countOrDoorbellByteOffsets, controlByteOffset).doorbellByteOffsets
        : countOrDoorbellByteOffsets;
    const count = doorbellByteOffsets.length;
    checkCount(count);
    const controlBytes = controlBlockBytes(count);
    checkPlacement(sab, controlByteOffset, controlBytes, 'control block');
    const ranges = [{ start: controlByteOffset, len: controlBytes, what: 'the control block' }];
    doorbellByteOffsets.forEach((off, i) => {
      checkPlacement(sab, off, DOORBELL_SLOT_BYTES, `doorbell ${i}`);
      ranges.push({ start: off, len: DOORBELL_SLOT_BYTES, what: `doorbell ${i}` });
    });
    checkDisjoint(ranges);

    // Plain setup stores; the SAB reaches other threads through postMessage/workerData, which
    // happens after this returns (a happens-before edge), so no Atomics are needed here except
    // for the words that may already be watched when re-initialising in place.
    const ctrl = new Int32Array(sab, controlByteOffset, CTRL_TABLE + count);
    ctrl.fill(0);
    doorbellByteOffsets.forEach((off, i) => {
      const slot = new Int32Array(sab, off, SLOT_WORDS);
      slot.fill(0);
      slot[SLOT_MAGIC] = DOORBELL_MAGIC;
      slot[SLOT_CONTROL] = controlByteOffset;
      slot[SLOT_INDEX] = i;
      ctrl[CTRL_TABLE + i] = off;
    });
    ctrl[CTRL_VERSION] = LAYOUT_VERSION;
    ctrl[CTRL_COUNT] = count;
    // Pairs with the magic check in open(): the table is complete before the block is marked valid.
    Atomics.store(ctrl, CTRL_MAGIC, CONTROL_MAGIC);
    return new DoorbellBlock(sab, controlByteOffset, ctrl);
  }

  /** Re-opens a block that init() placed at `controlByteOffset` (typically in another worker). */
  static open(buffer: SharedArrayBuffer, controlByteOffset: number): DoorbellBlock {
    const sab = requireShared(buffer);
    checkPlacement(sab, controlByteOffset, CTRL_TABLE * 4, 'control block');
    const head = new Int32Array(sab, controlByteOffset, CTRL_TABLE);
    // Pairs with the Atomics.store of the magic at the end of init().
    if (Atomics.load(head, CTRL_MAGIC) !== CONTROL_MAGIC || head[CTRL_VERSION] !== LAYOUT_VERSION) {
      throw new DoorbellError('not-initialised', controlByteOffset, 'no doorbell control block (wrong magic or version)');
    }
    const count = head[CTRL_COUNT]!;
    checkCount(count);
    checkPlacement(sab, controlByteOffset, controlBlockBytes(count), 'control block');
    return new DoorbellBlock(sab, controlByteOffset, new Int32Array(sab, controlByteOffset, CTRL_TABLE + count));
  }

  private constructor(sab: SharedArrayBuffer, controlByteOffset: number, ctrl: Int32Array) {
    this.sab = sab;
    this.controlByteOffset = controlByteOffset;
    this.ctrl = ctrl;
    this.count = ctrl[CTRL_COUNT]!;
    const slots: Int32Array[] = [];
    for (let i = 0; i < this.count; i++) {
      const off = ctrl[CTRL_TABLE + i]!;
      checkPlacement(sab, off, DOORBELL_SLOT_BYTES, `doorbell ${i}`);
      const slot = new Int32Array(sab, off, SLOT_WORDS);
      if (slot[SLOT_MAGIC] !== DOORBELL_MAGIC || slot[SLOT_CONTROL] !== controlByteOffset || slot[SLOT_INDEX] !== i) {
        throw new DoorbellError('not-initialised', off, `doorbell ${i} does not belong to this control block`);
      }
      slots.push(slot);
    }
    this.slots = slots;
  }

  /** Where the control block and each doorbell sit (pass it to another thread as plain data). */
  get layout(): DoorbellBlockLayout {
    return {
      controlByteOffset: this.controlByteOffset,
      controlBytes: controlBlockBytes(this.count),
      doorbellByteOffsets: Array.from({ length: this.count }, (_, i) => this.doorbellByteOffset(i)),
    };
  }

  /** Absolute byte offset of doorbell `index` (for Doorbell.open in another thread). */
  doorbellByteOffset(index: number): number {
    this.checkIndex(index);
    return this.ctrl[CTRL_TABLE + index]!;
  }

  /**
   * A new Doorbell object for slot `index`, with its own options and counters. Make one per
   * thread and role; both sides of a direction share the slot, not the object.
   */
  doorbell(index: number, options: DoorbellOptions = {}): Doorbell {
    return Doorbell.open(this.sab, this.doorbellByteOffset(index), options);
  }

  get stopped(): boolean {
    // Pairs with the Atomics.store in stop().
    return Atomics.load(this.ctrl, CTRL_STOP) !== 0;
  }

  /**
   * Stops the engine: sets the stop word, then bumps and notifies every doorbell of the block so
   * that no waiter stays blocked. Every later wait returns `stopped` at once. Idempotent.
   */
  stop(): void {
    // Release: set before the seq bumps below, so a waiter that sees a bump also sees the stop
    // (pairs with the load of seq, then of the stop word, in Doorbell.check()).
    Atomics.store(this.ctrl, CTRL_STOP, 1);
    for (const slot of this.slots) {
      // Changing seq makes a waiter that checked the stop word but is not yet queued in
      // Atomics.wait fail its value check instead of sleeping through the notify below.
      Atomics.add(slot, SLOT_SEQ, 1);
      // Wakes every waiter on this doorbell, asleep or not (stop is rare; no sleepers check).
      Atomics.notify(slot, SLOT_SEQ);
    }
  }

  /** Debug view of the shared words (for tests and stats dumps): seq and sleepers per doorbell. */
  peek(): { stopped: boolean; doorbells: { seq: number; sleepers: number }[] } {
    return {
      stopped: this.stopped,
      // Relaxed-enough snapshots for diagnostics: pairs with nothing, read with Atomics for tearing safety.
      doorbells: this.slots.map((s) => ({ seq: Atomics.load(s, SLOT_SEQ), sleepers: Atomics.load(s, SLOT_SLEEPERS) })),
    };
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) {
      throw new DoorbellError('bad-index', this.controlByteOffset, `doorbell index ${index} (block has ${this.count})`);
    }
  }
}
