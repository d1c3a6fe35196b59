// The shared control channel between a transport (emulator thread) and a device backend on its
// own worker: two doorbells (kick: transport → device, irq: device → transport), a few command
// words, the pending-queue mask, the interrupt signal words and a byte area for plain-data
// payloads (activation plans in, snapshots out, as JSON). Owns the byte layout and the
// command protocol's words; the loops that use it live in worker-runner.ts and device-loop.ts.
// Runs in browser Web Workers: no `node:` imports.
//
// Layout of the SharedArrayBuffer:
//   0     DoorbellBlock (control block + 2 doorbells, 320 bytes)
//   512   Int32 words: see W_* below (one line of command words; signals on the next line)
//   1024  payload area (JSON, UTF-8), `payloadBytes` long

import { DoorbellBlock, doorbellBlockBytes, type Doorbell, type DoorbellOptions } from '../notify/index.js';
import { SIGNAL_WORDS } from './device.js';

export const KICK_DOORBELL = 0;
export const IRQ_DOORBELL = 1;
const WORDS_BYTE = 512;
const WORDS = 64;
const PAYLOAD_BYTE = 1024;
/** Default payload area: enough for a saved virtio-net replay queue of a few hundred full frames as hex. */
export const DEFAULT_PAYLOAD_BYTES = 1 << 20;

// Command words (written by the transport unless noted).
export const W_CMD_SEQ = 0; // bumped after a command's kind and payload are written
export const W_CMD_KIND = 1;
export const W_ACK_SEQ = 2; // device: the last command sequence it finished
export const W_PENDING = 3; // bit i: queue i was notified (transport ORs, device exchanges to 0)
export const W_PAYLOAD_LEN = 4; // bytes of JSON in the payload area (whoever wrote it last)
export const W_RESULT = 5; // device: 0 ok, 1 failed (message in the payload area)
export const W_READY = 6; // device: 1 once its loop runs
export const W_CLOSED = 7; // device: 1 once its loop ended and the backend released what it holds
const SIGNALS_WORD = 16; // DeviceSignals words, on their own line

export const Cmd = {
  ACTIVATE: 1,
  RESET: 2,
  SAVE: 3,
  RESUME: 4,
} as const;

/** One channel: the same object type on both threads, opened over the same SharedArrayBuffer. */
export class DeviceChannel {
  readonly words: Int32Array;
  readonly signalWords: Int32Array;
  readonly payload: Uint8Array;
  readonly block: DoorbellBlock;

  private constructor(readonly sab: SharedArrayBuffer, init: boolean) {
    this.block = init ? DoorbellBlock.init(sab, 0, 2) : DoorbellBlock.open(sab, 0);
    this.words = new Int32Array(sab, WORDS_BYTE, WORDS);
    this.signalWords = this.words.subarray(SIGNALS_WORD, SIGNALS_WORD + SIGNAL_WORDS);
    this.payload = new Uint8Array(sab, PAYLOAD_BYTE);
  }

  static allocate(payloadBytes = DEFAULT_PAYLOAD_BYTES): DeviceChannel {
    if (doorbellBlockBytes(2) > WORDS_BYTE) throw new Error('channel layout: doorbells overlap the words');
    return new DeviceChannel(new SharedArrayBuffer(PAYLOAD_BYTE + payloadBytes), true);
  }

  static open(sab: SharedArrayBuffer): DeviceChannel {
    return new DeviceChannel(sab, false);
  }

  doorbell(index: number, opts: DoorbellOptions = {}): Doorbell {
    return this.block.doorbell(index, opts);
  }

  /** Writes `value` as JSON into the payload area; throws when it does not fit. */
  writePayload(value: unknown): void {
    const bytes = new TextEncoder().encode(JSON.stringify(value));
    if (bytes.length > this.payload.length) throw new RangeError(`payload of ${bytes.length} bytes exceeds the ${this.payload.length}-byte area`);
    this.payload.set(bytes);
    // Plain stores above are published by the Atomics.add of W_CMD_SEQ (or W_ACK_SEQ) that follows.
    Atomics.store(this.words, W_PAYLOAD_LEN, bytes.length);
  }

  /** Reads the JSON payload (after an acquire load of the sequence word that published it). */
  readPayload(): unknown {
    const len = Atomics.load(this.words, W_PAYLOAD_LEN);
    // TextDecoder refuses views on shared memory: copy first.
    const copy = this.payload.slice(0, len);
    return len === 0 ? null : JSON.parse(new TextDecoder().decode(copy));
  }
}
