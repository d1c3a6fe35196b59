// postMessage baselines: worker → worker streaming over a MessageChannel with a window of 256
// messages in flight and an ack every 32 (limits-measured.md §3). `copy` posts an exact-size
// Uint8Array (a plain ArrayBuffer, so structured clone copies it); `transfer` posts pooled
// ArrayBuffers by transfer and the receiver hands them back inside its acks (recycling). Either
// way the producer first copies the payload out of its SAB and the receiver copies it into a
// SAB, like the ring cases. Both sides are event-loop driven; neither uses Atomics for data.
//
// Main-thread runners and both worker entries live here (see peer-worker.ts).

import { MessageChannel } from 'node:worker_threads';
import { CTL_CONSUMED, CTL_PHASE, PHASE_STOP, type PeerWorkerContext, type WorkerReport } from './control.js';
import { runWorkerPair, throughputResult, type ResultLabels } from './harness.js';
import { fillPattern, packetGeometry, packetViews, readSeq, seqMatches, writeSeq } from './packets.js';
import type { PeerCaseResult, PeerRunContext } from './types.js';

export const POSTMESSAGE_COPY_CASE = 'postmessage-copy';
export const POSTMESSAGE_TRANSFER_CASE = 'postmessage-transfer';
export const POSTMESSAGE_WINDOW = 256;
export const POSTMESSAGE_ACK_EVERY = 32;

type PostMessageMode = 'copy' | 'transfer';

interface PostMessageParams {
  payloadBytes: number;
  mode: PostMessageMode;
  window: number;
  ackEvery: number;
}

/** Receiver → sender: `count` messages consumed; in transfer mode, their buffers come back. */
interface Ack {
  count: number;
  buffers?: ArrayBuffer[];
}

/** Sender → receiver after the stop: no more packets. */
interface EndOfStream {
  end: true;
  sent: number;
}

async function runPostMessage(ctx: PeerRunContext, mode: PostMessageMode): Promise<PeerCaseResult> {
  const caseName = mode === 'copy' ? POSTMESSAGE_COPY_CASE : POSTMESSAGE_TRANSFER_CASE;
  packetGeometry(ctx.payloadBytes); // validates the size
  if (POSTMESSAGE_WINDOW % POSTMESSAGE_ACK_EVERY !== 0) throw new Error('postmessage: window must be a multiple of the ack batch');
  const params: PostMessageParams = {
    payloadBytes: ctx.payloadBytes,
    mode,
    window: POSTMESSAGE_WINDOW,
    ackEvery: POSTMESSAGE_ACK_EVERY,
  };
  const labels: ResultLabels = { name: caseName, caseName, payloadBytes: ctx.payloadBytes };
  const channel = new MessageChannel();
  const outcome = await runWorkerPair({
    caseName,
    moduleUrl: import.meta.url,
    producer: { entry: 'postMessageProducer', params, port: channel.port1 },
    consumer: { entry: 'postMessageConsumer', params, port: channel.port2 },
    warmupMs: ctx.warmupMs,
    durationMs: ctx.durationMs,
  });
  return throughputResult(labels, outcome);
}

/** One run of postMessage with structured-clone copies. */
export function runPostMessageCopy(ctx: PeerRunContext): Promise<PeerCaseResult> {
  return runPostMessage(ctx, 'copy');
}

/** One run of postMessage with transferred, recycled buffers. */
export function runPostMessageTransfer(ctx: PeerRunContext): Promise<PeerCaseResult> {
  return runPostMessage(ctx, 'transfer');
}

function requirePort(ctx: PeerWorkerContext): NonNullable<PeerWorkerContext['port']> {
  if (ctx.port === undefined) throw new Error(`postmessage ${ctx.role}: no MessagePort in workerData`);
  return ctx.port;
}

/** Worker entry: keeps `window` messages in flight until the stop, then sends end-of-stream. */
export function postMessageProducer(ctx: PeerWorkerContext): Promise<WorkerReport> {
  const p = ctx.params as PostMessageParams;
  const port = requirePort(ctx);
  const g = packetGeometry(p.payloadBytes);
  const ctl = ctx.ctl;
  const src = new SharedArrayBuffer(g.areaBytes);
  fillPattern(src);
  const srcViews = packetViews(src, 0, g);
  const positions = g.positions;
  const transfer = p.mode === 'transfer';
  // copy mode: one staging array, cloned by every postMessage.
  const staging = new Uint8Array(p.payloadBytes);
  const staging32 = new Int32Array(staging.buffer, 0, 2);
  // transfer mode: the pool of buffers not in flight.
  const free: ArrayBuffer[] = [];
  if (transfer) for (let i = 0; i < p.window; i++) free.push(new ArrayBuffer(p.payloadBytes));
  const transferList: ArrayBuffer[] = [];
  // transfer mode: the stamp is built here and copied in, so only the detaching view is per message.
  const stamp32 = new Int32Array(2);
  const stamp8 = new Uint8Array(stamp32.buffer);

  let credits = p.window;
  let seq = 0;
  let pos = 0;
  let seen = ctx.waitForStart();

  return new Promise<WorkerReport>((resolve) => {
    let done = false;
    const finish = (): void => {
      done = true;
      const end: EndOfStream = { end: true, sent: seq };
      port.postMessage(end);
      resolve(ctx.report({ packets: seq, notifies: 0, sleeps: 0, verified: true, errors: 0 }));
    };
    const pump = (): void => {
      while (credits > 0) {
        const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
        if (phase !== seen) {
          seen = ctx.onPhase(phase, seq, 0, 0);
          if (seen === PHASE_STOP) {
            finish();
            return;
          }
        }
        if (transfer) {
          const buf = free.pop()!;
          // A transferred buffer detaches with its views, so a view per message is unavoidable.
          const u8 = new Uint8Array(buf);
          u8.set(srcViews[pos]!);
          writeSeq(stamp32, 0, seq);
          u8.set(stamp8, 0);
          transferList[0] = buf;
          port.postMessage(buf, transferList);
        } else {
          staging.set(srcViews[pos]!);
          writeSeq(staging32, 0, seq);
          port.postMessage(staging);
        }
        seq++;
        credits--;
        if (++pos === positions) pos = 0;
      }
    };
    port.on('message', (ack: Ack) => {
      credits += ack.count;
      if (ack.buffers !== undefined) for (const b of ack.buffers) free.push(b);
      if (!done) pump();
    });
    pump();
  });
}

/** Worker entry: copies each message into its SAB, checks the sequence, acks every `ackEvery`. */
export function postMessageConsumer(ctx: PeerWorkerContext): Promise<WorkerReport> {
  const p = ctx.params as PostMessageParams;
  const port = requirePort(ctx);
  const g = packetGeometry(p.payloadBytes);
  const ctl = ctx.ctl;
  const dst = new SharedArrayBuffer(g.areaBytes);
  const dstU8 = new Uint8Array(dst);
  const dst32 = new Int32Array(dst);
  const positions = g.positions;
  const dstOffsets = new Int32Array(positions);
  const dstStampIdx = new Int32Array(positions);
  for (let pos = 0; pos < positions; pos++) {
    dstOffsets[pos] = pos * g.strideBytes;
    dstStampIdx[pos] = (pos * g.strideBytes) >> 2;
  }
  const payloadBytes = p.payloadBytes;
  const ackEvery = p.ackEvery;
  const copyAck: Ack = { count: ackEvery };
  let held: ArrayBuffer[] = [];

  let packets = 0;
  let pos = 0;
  let unacked = 0;
  let errors = 0;
  let firstError: string | undefined;
  let seen = ctx.waitForStart();

  return new Promise<WorkerReport>((resolve) => {
    port.on('message', (msg: Uint8Array | ArrayBuffer | EndOfStream) => {
      let bytes: Uint8Array;
      if (msg instanceof ArrayBuffer) {
        bytes = new Uint8Array(msg);
        held.push(msg);
      } else if (ArrayBuffer.isView(msg)) {
        bytes = msg;
      } else {
        // Messages on a port arrive in order, so everything sent has been seen by now.
        if (msg.sent !== packets && errors++ === 0) {
          firstError = `postmessage: producer sent ${msg.sent} packets, consumer received ${packets}`;
        }
        const outcome = { packets, notifies: 0, sleeps: 0, verified: errors === 0, errors };
        resolve(ctx.report(firstError !== undefined ? { ...outcome, firstError } : outcome));
        return;
      }
      if (bytes.byteLength !== payloadBytes && errors++ === 0) {
        firstError = `postmessage: packet ${packets} arrived with ${bytes.byteLength} bytes (want ${payloadBytes})`;
      }
      dstU8.set(bytes, dstOffsets[pos]!);
      if (!seqMatches(dst32, dstStampIdx[pos]!, packets) && errors++ === 0) {
        firstError = `postmessage: packet ${packets} arrived with sequence ${readSeq(dst32, dstStampIdx[pos]!)}`;
      }
      packets++;
      if (++pos === positions) pos = 0;
      // For the main thread's window sampling (pairs with its Atomics.load of CTL_CONSUMED).
      Atomics.store(ctl, CTL_CONSUMED, packets | 0);
      if (++unacked === ackEvery) {
        unacked = 0;
        if (held.length > 0) {
          port.postMessage({ count: ackEvery, buffers: held } satisfies Ack, held);
          held = [];
        } else {
          port.postMessage(copyAck);
        }
      }
      const phase = Atomics.load(ctl, CTL_PHASE); // pairs with the main thread's phase store
      if (phase !== seen) seen = ctx.onPhase(phase, packets, 0, 0);
    });
  });
}
