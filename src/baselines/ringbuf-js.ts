// ringbuf.js 0.4.0 baseline: its wait-free SPSC byte ring (512 KiB, the bare ring's size) carrying
// fixed-size packets with implicit framing; both sides poll, since ringbuf.js has no wait/notify.
// The producer pushes from its SAB (sequence stamped in place first), the consumer pops straight
// into its SAB and checks the stamp. The library's own indices do the acquire/release pairing.
//
// Main-thread runner and both worker entries live here (see peer-worker.ts).

import { RingBuffer } from 'ringbuf.js';
import { CTL_CONSUMED, CTL_PHASE, PHASE_STOP, type PeerWorkerContext, type WorkerReport } from './control.js';
import { runWorkerPair, throughputResult, type ResultLabels } from './harness.js';
import { fillPattern, packetGeometry, packetViews, readSeq, RING_SLOTS, seqMatches, SLOT_BYTES, writeSeq } from './packets.js';
import type { PeerCaseResult, PeerRunContext } from './types.js';

export const RINGBUF_JS_CASE = 'ringbuf-js';
const CAPACITY_BYTES = RING_SLOTS * SLOT_BYTES;

interface RingbufParams {
  payloadBytes: number;
  storage: SharedArrayBuffer;
}

/** One run of ringbuf.js with both sides polling. */
export async function runRingbufJs(ctx: PeerRunContext): Promise<PeerCaseResult> {
  packetGeometry(ctx.payloadBytes); // validates the size
  const params: RingbufParams = {
    payloadBytes: ctx.payloadBytes,
    storage: RingBuffer.getStorageForCapacity(CAPACITY_BYTES, Uint8Array),
  };
  const labels: ResultLabels = { name: RINGBUF_JS_CASE, caseName: RINGBUF_JS_CASE, payloadBytes: ctx.payloadBytes, strategy: 'spin' };
  const outcome = await runWorkerPair({
    caseName: RINGBUF_JS_CASE,
    moduleUrl: import.meta.url,
    producer: { entry: 'ringbufProducer', params },
    consumer: { entry: 'ringbufConsumer', params },
    warmupMs: ctx.warmupMs,
    durationMs: ctx.durationMs,
  });
  return throughputResult(labels, outcome);
}

/** Worker entry: pushes whole packets whenever one fits. */
export function ringbufProducer(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as RingbufParams;
  const g = packetGeometry(p.payloadBytes);
  const rb = new RingBuffer(p.storage, Uint8Array);
  const ctl = ctx.ctl;
  const src = new SharedArrayBuffer(g.areaBytes);
  fillPattern(src);
  const src32 = new Int32Array(src);
  const srcViews = packetViews(src, 0, g);
  const positions = g.positions;
  const stride32 = g.strideBytes >> 2;
  const payloadBytes = p.payloadBytes;

  let seq = 0;
  let pos = 0;
  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    if (rb.availableWrite() >= payloadBytes) {
      writeSeq(src32, pos * stride32, seq);
      rb.push(srcViews[pos]!);
      seq++;
      if (++pos === positions) pos = 0;
    }
    const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
    if (phase !== seen) seen = ctx.onPhase(phase, seq, 0, 0);
  }
  return ctx.report({ packets: seq, notifies: 0, sleeps: 0, verified: true, errors: 0 });
}

/** Worker entry: pops whole packets into its SAB and checks their sequence stamps. */
export function ringbufConsumer(ctx: PeerWorkerContext): WorkerReport {
  const p = ctx.params as RingbufParams;
  const g = packetGeometry(p.payloadBytes);
  const rb = new RingBuffer(p.storage, Uint8Array);
  const ctl = ctx.ctl;
  const dst = new SharedArrayBuffer(g.areaBytes);
  const dst32 = new Int32Array(dst);
  const dstViews = packetViews(dst, 0, g);
  const positions = g.positions;
  const stride32 = g.strideBytes >> 2;
  const payloadBytes = p.payloadBytes;

  let packets = 0;
  let pos = 0;
  let errors = 0;
  let firstError: string | undefined;
  let seen = ctx.waitForStart();
  while (seen !== PHASE_STOP) {
    if (rb.availableRead() >= payloadBytes) {
      const got = rb.pop(dstViews[pos]!);
      if ((got !== payloadBytes || !seqMatches(dst32, pos * stride32, packets)) && errors++ === 0) {
        firstError = `ringbuf-js: packet ${packets} popped ${got} bytes (want ${payloadBytes}) `
          + `with sequence ${readSeq(dst32, pos * stride32)}`;
      }
      packets++;
      if (++pos === positions) pos = 0;
      // For the main thread's window sampling (pairs with its Atomics.load of CTL_CONSUMED).
      Atomics.store(ctl, CTL_CONSUMED, packets | 0);
    }
    const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
    if (phase !== seen) seen = ctx.onPhase(phase, packets, 0, 0);
  }
  const outcome = { packets, notifies: 0, sleeps: 0, verified: errors === 0, errors };
  return ctx.report(firstError !== undefined ? { ...outcome, firstError } : outcome);
}
