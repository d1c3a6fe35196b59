// The physical reference: a bare SPSC ring over one SharedArrayBuffer, the yardstick every other
// peer case (and later the virtq split ring) is divided by. 256 slots × 2048 B; a packet spans
// ceil(len / 2048) consecutive slots; the producer copies each payload from its own SAB into the
// slots and the consumer copies it out into another SAB, so two copies per packet as in virtq.
// head (producer-owned), tail (consumer-owned) and the two sleeping flags sit on separate 64-byte
// lines. Indices count packets and are published every `publishEvery` packets. A side notifies
// only when its peer's sleeping flag is set (Dekker: set flag, re-check index, Atomics.wait).
// Measured design and figures: /work/shared/reference/limits-measured.md §4.
//
// Main-thread runner and both worker entries live here; the generic peer-worker imports this
// module by URL and calls bareRingProducer / bareRingConsumer.

import {
  CTL_CONSUMED,
  CTL_PHASE,
  PHASE_STOP,
  WAIT_TIMEOUT_MS,
  type PeerWorkerContext,
  type WorkerReport,
} from './control.js';
import { runWorkerPair, throughputResult, type ResultLabels } from './harness.js';
import {
  chunkViews,
  fillPattern,
  packetGeometry,
  readSeq,
  seqMatches,
  SLOT_BYTES,
  writeSeq,
  type PacketGeometry,
} from './packets.js';
import { parseStrategy, REFERENCE_STRATEGY, type KickStrategy, type PeerCaseResult, type PeerRunContext } from './types.js';

/** Ring control words (Int32 indices), one 64-byte line each. */
const HEAD = 0;
const TAIL = 16;
const CONS_SLEEPING = 32;
const PROD_SLEEPING = 48;
/** Per-position descriptor: the packet's length in bytes (Int32 index of position 0). */
const LEN_BASE = 64;
/** Slots start on a page of their own, after the control lines and descriptors. */
const SLOTS_BASE_BYTES = 4096;

export const BARE_RING_CASE = 'bare-ring';

interface BareRingParams {
  payloadBytes: number;
  strategy: KickStrategy;
  publishEvery: number;
  ring: SharedArrayBuffer;
}

/** Byte layout of the ring buffer for one packet geometry. */
class BareRingLayout {
  readonly g: PacketGeometry;
  readonly totalBytes: number;

  constructor(g: PacketGeometry) {
    this.g = g;
    this.totalBytes = SLOTS_BASE_BYTES + g.areaBytes;
  }

  lenIndex(pos: number): number {
    return LEN_BASE + pos;
  }

  /** Byte offset of chunk `chunk` of the packet at `pos`. */
  slotOffset(pos: number, chunk: number): number {
    return SLOTS_BASE_BYTES + pos * this.g.strideBytes + chunk * SLOT_BYTES;
  }

  /** Int32 index of the packet's sequence stamp (its first 8 bytes). */
  stampIndex(pos: number): number {
    return this.slotOffset(pos, 0) >> 2;
  }
}

/**
 * The batching rule of limits-measured.md §4: 32-packet publish batches help only while they stay
 * ≤ 1/4 of the ring (1500 B: 256 positions → 32); at 64 KiB (8 positions) publish every packet.
 */
export function defaultPublishEvery(payloadBytes: number): number {
  return packetGeometry(payloadBytes).positions >= 128 ? 32 : 1;
}

export interface BareRingOptions {
  publishEvery?: number;
}

/** One run of the bare ring (strategy defaults to the reference spin2000+wait). */
export async function runBareRing(ctx: PeerRunContext, opts: BareRingOptions = {}): Promise<PeerCaseResult> {
  const strategy = ctx.strategy ?? parseStrategy(REFERENCE_STRATEGY);
  const g = packetGeometry(ctx.payloadBytes);
  const layout = new BareRingLayout(g);
  const publishEvery = opts.publishEvery ?? defaultPublishEvery(ctx.payloadBytes);
  if (!Number.isInteger(publishEvery) || publishEvery < 1) {
    throw new RangeError(`bare-ring: publishEvery ${publishEvery} must be a positive integer`);
  }
  const ring = new SharedArrayBuffer(layout.totalBytes);
  const ring32 = new Int32Array(ring);
  const params: BareRingParams = { payloadBytes: ctx.payloadBytes, strategy, publishEvery, ring };
  const labels: ResultLabels = {
    name: `${BARE_RING_CASE}/${strategy.name}/b${publishEvery}`,
    caseName: BARE_RING_CASE,
    payloadBytes: ctx.payloadBytes,
    strategy: strategy.name,
    publishEvery,
  };
  const outcome = await runWorkerPair({
    caseName: labels.name,
    moduleUrl: import.meta.url,
    producer: { entry: 'bareRingProducer', params },
    consumer: { entry: 'bareRingConsumer', params },
    warmupMs: ctx.warmupMs,
    durationMs: ctx.durationMs,
    wakeOnStop: [{ words: ring32, index: HEAD }, { words: ring32, index: TAIL }],
  });
  return throughputResult(labels, outcome);
}

/** Worker entry: fills the ring as fast as the consumer frees it. */
export function bareRingProducer(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as BareRingParams;
  const g = packetGeometry(p.payloadBytes);
  const layout = new BareRingLayout(g);
  const ring32 = new Int32Array(p.ring);
  const ringU8 = new Uint8Array(p.ring);
  const ctl = ctx.ctl;
  const src = new SharedArrayBuffer(g.areaBytes);
  fillPattern(src);
  const srcChunks = chunkViews(src, 0, g);
  const k = g.slotsPerPacket;
  const positions = g.positions;
  const slotOffsets = new Int32Array(positions * k);
  const stampIdx = new Int32Array(positions);
  for (let pos = 0; pos < positions; pos++) {
    stampIdx[pos] = layout.stampIndex(pos);
    for (let c = 0; c < k; c++) slotOffsets[pos * k + c] = layout.slotOffset(pos, c);
  }
  const lenBase = layout.lenIndex(0);
  const payloadBytes = p.payloadBytes;
  const publishEvery = p.publishEvery;
  const spinIters = p.strategy.spinIters;
  const canSleep = p.strategy.canSleep;

  let head = 0;
  let cachedTail = 0;
  let unpublished = 0;
  let pos = 0;
  let notifies = 0;
  let sleeps = 0;

  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    if (((head - cachedTail) | 0) >= positions) {
      // Acquire: pairs with the consumer's release store of TAIL; positions behind it are free.
      cachedTail = Atomics.load(ring32, TAIL);
      if (((head - cachedTail) | 0) >= positions) {
        // Full: what we hold back could be what the consumer is waiting for.
        if (unpublished > 0) {
          // Release: slot copies, stamps and descriptors written above become visible before
          // head (pairs with the acquire load of HEAD in bareRingConsumer).
          Atomics.store(ring32, HEAD, head | 0);
          unpublished = 0;
          // Dekker, producer half: store head, then load the flag (pairs with the consumer's
          // store of CONS_SLEEPING followed by its re-load of HEAD): one of us sees the other.
          if (Atomics.load(ring32, CONS_SLEEPING) !== 0) {
            Atomics.notify(ring32, HEAD, 1); // wakes the consumer's Atomics.wait on HEAD
            notifies++;
          }
        }
        for (let i = 0; i < spinIters; i++) {
          cachedTail = Atomics.load(ring32, TAIL); // pairs with the consumer's store of TAIL
          if (((head - cachedTail) | 0) < positions) break;
          if (Atomics.load(ctl, CTL_PHASE) !== seen) break; // pairs with the main thread's phase store
        }
        if (canSleep && ((head - cachedTail) | 0) >= positions && Atomics.load(ctl, CTL_PHASE) === seen) {
          // Dekker, producer's sleep: flag first, then re-check tail (pairs with the consumer's
          // store of TAIL followed by its load of PROD_SLEEPING after its tail store).
          Atomics.store(ring32, PROD_SLEEPING, 1);
          cachedTail = Atomics.load(ring32, TAIL); // must follow the flag store (SC order)
          if (((head - cachedTail) | 0) >= positions) {
            sleeps++;
            // Sleeps only while tail is still what we saw; woken by the consumer's notify on TAIL
            // (or the main thread's after the stop). The timeout bounds a missed wake-up.
            Atomics.wait(ring32, TAIL, cachedTail, WAIT_TIMEOUT_MS);
          }
          Atomics.store(ring32, PROD_SLEEPING, 0); // awake: the consumer may skip its notifies
        }
        const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
        if (phase !== seen) seen = ctx.onPhase(phase, head, notifies, sleeps);
        continue;
      }
    }
    const base = pos * k;
    for (let c = 0; c < k; c++) ringU8.set(srcChunks[base + c]!, slotOffsets[base + c]!);
    writeSeq(ring32, stampIdx[pos]!, head);
    ring32[lenBase + pos] = payloadBytes; // plain store: published by the next head store
    head++;
    if (++pos === positions) pos = 0;
    if (++unpublished >= publishEvery) {
      // Release, then Dekker check: as above.
      Atomics.store(ring32, HEAD, head | 0);
      unpublished = 0;
      if (Atomics.load(ring32, CONS_SLEEPING) !== 0) {
        Atomics.notify(ring32, HEAD, 1);
        notifies++;
      }
      const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
      if (phase !== seen) seen = ctx.onPhase(phase, head, notifies, sleeps);
    }
  }
  // Release the tail end of the stream (pairs with the consumer's acquire load of HEAD).
  if (unpublished > 0) Atomics.store(ring32, HEAD, head | 0);
  return ctx.report({ packets: head, notifies, sleeps, verified: true, errors: 0 });
}

/** Worker entry: drains the ring, copying each packet out and checking its length and sequence. */
export function bareRingConsumer(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as BareRingParams;
  const g = packetGeometry(p.payloadBytes);
  const layout = new BareRingLayout(g);
  const ring32 = new Int32Array(p.ring);
  const ctl = ctx.ctl;
  const dst = new SharedArrayBuffer(g.areaBytes);
  const dstU8 = new Uint8Array(dst);
  const dst32 = new Int32Array(dst);
  const k = g.slotsPerPacket;
  const positions = g.positions;
  const ringChunks = chunkViews(p.ring, layout.slotOffset(0, 0), g);
  const dstOffsets = new Int32Array(positions * k);
  const dstStampIdx = new Int32Array(positions);
  for (let pos = 0; pos < positions; pos++) {
    dstStampIdx[pos] = (pos * g.strideBytes) >> 2;
    for (let c = 0; c < k; c++) dstOffsets[pos * k + c] = pos * g.strideBytes + c * SLOT_BYTES;
  }
  const lenBase = layout.lenIndex(0);
  const payloadBytes = p.payloadBytes;
  const publishEvery = p.publishEvery;
  const spinIters = p.strategy.spinIters;
  const canSleep = p.strategy.canSleep;

  let tail = 0;
  let cachedHead = 0;
  let unreleased = 0;
  let pos = 0;
  let notifies = 0;
  let sleeps = 0;
  let errors = 0;
  let firstError: string | undefined;

  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    if (((cachedHead - tail) | 0) === 0) {
      // Acquire: pairs with the producer's release store of HEAD; slots before it are filled.
      cachedHead = Atomics.load(ring32, HEAD);
      if (((cachedHead - tail) | 0) === 0) {
        // Empty: release what we hold so a producer blocked on a full ring can go on.
        if (unreleased > 0) {
          // Release: our copies out of the released positions are done before tail moves
          // (pairs with the producer's acquire load of TAIL before it overwrites them).
          Atomics.store(ring32, TAIL, tail | 0);
          // For the main thread's window sampling (pairs with its load of CTL_CONSUMED).
          Atomics.store(ctl, CTL_CONSUMED, tail | 0);
          unreleased = 0;
          // Dekker, consumer half: store tail, then load the producer's flag (pairs with its
          // store of PROD_SLEEPING followed by its re-load of TAIL).
          if (Atomics.load(ring32, PROD_SLEEPING) !== 0) {
            Atomics.notify(ring32, TAIL, 1); // wakes the producer's Atomics.wait on TAIL
            notifies++;
          }
        }
        for (let i = 0; i < spinIters; i++) {
          cachedHead = Atomics.load(ring32, HEAD); // pairs with the producer's store of HEAD
          if (((cachedHead - tail) | 0) !== 0) break;
          if (Atomics.load(ctl, CTL_PHASE) !== seen) break; // pairs with the main thread's phase store
        }
        if (canSleep && ((cachedHead - tail) | 0) === 0 && Atomics.load(ctl, CTL_PHASE) === seen) {
          // Dekker, consumer's sleep: flag first, then re-check head (pairs with the producer's
          // store of HEAD followed by its load of CONS_SLEEPING after its head store).
          Atomics.store(ring32, CONS_SLEEPING, 1);
          cachedHead = Atomics.load(ring32, HEAD); // must follow the flag store (SC order)
          if (((cachedHead - tail) | 0) === 0) {
            sleeps++;
            // Sleeps only while head is still what we saw; woken by the producer's notify on HEAD
            // (or the main thread's after the stop). The timeout bounds a missed wake-up.
            Atomics.wait(ring32, HEAD, cachedHead, WAIT_TIMEOUT_MS);
          }
          Atomics.store(ring32, CONS_SLEEPING, 0); // awake: the producer may skip its notifies
        }
        const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
        if (phase !== seen) seen = ctx.onPhase(phase, tail, notifies, sleeps);
        continue;
      }
    }
    const len = ring32[lenBase + pos]; // plain load, ordered by the acquire load of HEAD above
    const base = pos * k;
    for (let c = 0; c < k; c++) dstU8.set(ringChunks[base + c]!, dstOffsets[base + c]!);
    if (len !== payloadBytes || !seqMatches(dst32, dstStampIdx[pos]!, tail)) {
      if (errors++ === 0) {
        firstError = `bare-ring: packet ${tail} arrived with length ${len} (want ${payloadBytes}) `
          + `and sequence ${readSeq(dst32, dstStampIdx[pos]!)}`;
      }
    }
    tail++;
    if (++pos === positions) pos = 0;
    if (++unreleased >= publishEvery) {
      // Release tail, publish the count, then Dekker check: as above.
      Atomics.store(ring32, TAIL, tail | 0);
      Atomics.store(ctl, CTL_CONSUMED, tail | 0);
      unreleased = 0;
      if (Atomics.load(ring32, PROD_SLEEPING) !== 0) {
        Atomics.notify(ring32, TAIL, 1);
        notifies++;
      }
      const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
      if (phase !== seen) seen = ctx.onPhase(phase, tail, notifies, sleeps);
    }
  }
  if (unreleased > 0) {
    Atomics.store(ring32, TAIL, tail | 0); // pairs with the producer's acquire load of TAIL
    Atomics.store(ctl, CTL_CONSUMED, tail | 0); // pairs with the main thread's load
  }
  const outcome = { packets: tail, notifies, sleeps, verified: errors === 0, errors };
  return ctx.report(firstError !== undefined ? { ...outcome, firstError } : outcome);
}
