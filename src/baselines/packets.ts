// Packet geometry and the sequence stamp shared by the throughput cases. A packet occupies
// ceil(len / 2048) consecutive 2048-byte slots (a 64 KiB packet spans 32), the same stride in the
// ring, the producer's source buffer and the consumer's destination buffer. Views are built once
// per slot at set-up (a per-copy subarray() costs ~25–30 ns, see limits-measured.md §1). The
// first 8 bytes of every packet carry its sequence number, little-endian u64 as two Int32s.

export const SLOT_BYTES = 2048;
export const RING_SLOTS = 256;
/** Smallest payload that can carry the 8-byte sequence stamp. */
export const MIN_PAYLOAD_BYTES = 8;

export interface PacketGeometry {
  payloadBytes: number;
  slotsPerPacket: number;
  /** Packet positions in a 256-slot area; whole packets only, so positions never straddle the wrap. */
  positions: number;
  strideBytes: number;
  areaBytes: number;
}

export function packetGeometry(payloadBytes: number, ringSlots: number = RING_SLOTS): PacketGeometry {
  if (!Number.isInteger(payloadBytes) || payloadBytes < MIN_PAYLOAD_BYTES) {
    throw new RangeError(`payload of ${payloadBytes} bytes: must be an integer ≥ ${MIN_PAYLOAD_BYTES} (sequence stamp)`);
  }
  const slotsPerPacket = Math.ceil(payloadBytes / SLOT_BYTES);
  const positions = Math.floor(ringSlots / slotsPerPacket);
  if (positions < 1) {
    throw new RangeError(`payload of ${payloadBytes} bytes needs ${slotsPerPacket} slots; the ring has ${ringSlots}`);
  }
  const strideBytes = slotsPerPacket * SLOT_BYTES;
  return { payloadBytes, slotsPerPacket, positions, strideBytes, areaBytes: positions * strideBytes };
}

/**
 * Chunk views over an area laid out by `g`: entry `pos * slotsPerPacket + chunk` is chunk `chunk`
 * of the packet at `pos`, exactly as long as that chunk's share of the payload.
 */
export function chunkViews(buffer: SharedArrayBuffer | ArrayBuffer, byteOffset: number, g: PacketGeometry): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let pos = 0; pos < g.positions; pos++) {
    for (let chunk = 0; chunk < g.slotsPerPacket; chunk++) {
      const len = Math.min(SLOT_BYTES, g.payloadBytes - chunk * SLOT_BYTES);
      views.push(new Uint8Array(buffer, byteOffset + pos * g.strideBytes + chunk * SLOT_BYTES, len));
    }
  }
  return views;
}

/** Whole-packet views over an area laid out by `g` (one per position). */
export function packetViews(buffer: SharedArrayBuffer | ArrayBuffer, byteOffset: number, g: PacketGeometry): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (let pos = 0; pos < g.positions; pos++) {
    views.push(new Uint8Array(buffer, byteOffset + pos * g.strideBytes, g.payloadBytes));
  }
  return views;
}

/** Fills `buffer` with a byte pattern so copies move non-zero data. */
export function fillPattern(buffer: SharedArrayBuffer | ArrayBuffer): void {
  const u8 = new Uint8Array(buffer);
  for (let i = 0; i < u8.length; i++) u8[i] = (i * 131 + 7) & 0xff;
}

const TWO_POW_32 = 4294967296;

/** Writes `seq` (a safe integer ≥ 0) at Int32 index `i32Index` (8-byte stamp). */
export function writeSeq(view: Int32Array, i32Index: number, seq: number): void {
  view[i32Index] = seq | 0;
  view[i32Index + 1] = (seq / TWO_POW_32) | 0;
}

/** True when the stamp at Int32 index `i32Index` equals `seq`. */
export function seqMatches(view: Int32Array, i32Index: number, seq: number): boolean {
  return view[i32Index] === (seq | 0) && view[i32Index + 1] === ((seq / TWO_POW_32) | 0);
}

/** The stamp at Int32 index `i32Index`, for error messages. */
export function readSeq(view: Int32Array, i32Index: number): number {
  return (view[i32Index] >>> 0) + (view[i32Index + 1] >>> 0) * TWO_POW_32;
}
