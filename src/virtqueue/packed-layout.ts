// Packed virtqueue layout (virtio 1.2 §2.8): where the descriptor ring (descriptor area), the
// driver event suppression structure (driver area) and the device event suppression structure
// (device area) sit, their sizes and alignments (§2.8.10.1, §2.8.13), and the wrap-counter
// arithmetic both sides share. The only place that knows these sizes; ring code gets offsets
// from here.
//
// A ring position and its wrap counter travel together as one number, `pos | wrap << 15`
// (the encoding vhost-user uses for the vring base, and the event suppression `off_wrap`
// field, §2.8.14): the queue size is at most 2^15, so bit 15 is free.

import { VirtqueueError } from './errors.js';
import { DESC_BYTES } from './layout.js';

export const PACKED_DESC_ALIGN = 16; // §2.8.10.1: descriptor ring 16-byte aligned
export const EVENT_AREA_ALIGN = 4; // §2.8.10.1: each event suppression structure 4-byte aligned
export const EVENT_AREA_BYTES = 4; // le16 desc (off | wrap << 15), le16 flags
export const PACKED_MAX_QUEUE_SIZE = 32768; // §2.8: up to 2^15 entries
/** Bit 15 of a position word: the wrap counter (§2.8.1). */
export const WRAP_BIT = 0x8000;

/** A packed queue size: 1..2^15, any integer (§2.8: no power-of-2 rule, unlike split). */
export function isValidPackedQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= PACKED_MAX_QUEUE_SIZE;
}

/** Descriptor ring bytes for `size` entries (16 each, §2.8.13). */
export function packedRingBytes(size: number): number {
  return DESC_BYTES * size;
}

/** Position word of the reset state: position 0, wrap counter 1 (§2.8.1). */
export const PACKED_START = WRAP_BIT;

/** `pw` advanced by `n` descriptors (0 ≤ n ≤ size), flipping the wrap counter past the end (§2.8.1). */
export function packedAdvance(pw: number, n: number, size: number): number {
  let pos = (pw & 0x7fff) + n;
  let wrap = pw & WRAP_BIT;
  if (pos >= size) {
    pos -= size;
    wrap ^= WRAP_BIT;
  }
  return pos | wrap;
}

/** `pw` moved back by `n` descriptors (0 ≤ n ≤ size): the inverse of packedAdvance. */
export function packedRetreat(pw: number, n: number, size: number): number {
  let pos = (pw & 0x7fff) - n;
  let wrap = pw & WRAP_BIT;
  if (pos < 0) {
    pos += size;
    wrap ^= WRAP_BIT;
  }
  return pos | wrap;
}

/**
 * Where `pw` lies on the two-lap line [0, 2·size): laps alternate wrap 1, wrap 0, so a position
 * and its counter name one point of it, and differences on it are modulo 2·size.
 */
export function packedLinear(pw: number, size: number): number {
  return (pw & 0x7fff) + ((pw & WRAP_BIT) !== 0 ? 0 : size);
}

/** How many descriptors `a` is ahead of `b` (mod 2·size). */
export function packedDistance(a: number, b: number, size: number): number {
  const d = packedLinear(a, size) - packedLinear(b, size);
  return d < 0 ? d + 2 * size : d;
}

/**
 * True when the event position `event` (off | wrap << 15 from an event suppression structure)
 * lies in [old, new): the descriptors just made available or used passed over it (§2.8.10 with
 * VIRTIO_F_EVENT_IDX; the packed form of the split ring's need_event).
 */
export function packedNeedEvent(event: number, newPw: number, oldPw: number, size: number): boolean {
  return packedDistance(event, oldPw, size) < packedDistance(newPw, oldPw, size);
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Guest addresses of the three parts of one packed virtqueue, validated for size and alignment. */
export class PackedLayout {
  readonly kind = 'packed' as const;
  private constructor(
    readonly size: number,
    readonly descAddr: number,
    /** Driver event suppression (the driver area, QueueDriver). */
    readonly driverEventAddr: number,
    /** Device event suppression (the device area, QueueDevice). */
    readonly deviceEventAddr: number,
  ) {}

  /** The three areas as the driver placed them (transport registers / vhost-user vring addresses). */
  static of(size: number, descAddr: number, driverEventAddr: number, deviceEventAddr: number, queue = 0): PackedLayout {
    if (!isValidPackedQueueSize(size)) {
      throw new VirtqueueError('bad-layout', { queue, detail: `packed queue size ${size} is not in 1..${PACKED_MAX_QUEUE_SIZE}` });
    }
    PackedLayout.checkAlign('descriptor ring', descAddr, PACKED_DESC_ALIGN, queue);
    PackedLayout.checkAlign('driver event suppression area', driverEventAddr, EVENT_AREA_ALIGN, queue);
    PackedLayout.checkAlign('device event suppression area', deviceEventAddr, EVENT_AREA_ALIGN, queue);
    return new PackedLayout(size, descAddr, driverEventAddr, deviceEventAddr);
  }

  /**
   * A compact layout from one base address: the descriptor ring, then each event suppression
   * structure on its own 64-byte line (the driver writes one, the device the other).
   */
  static compactAt(size: number, base: number, queue = 0): PackedLayout {
    const driverEvent = alignUp(base + packedRingBytes(size), 64);
    return PackedLayout.of(size, base, driverEvent, driverEvent + 64, queue);
  }

  /** Bytes `compactAt` needs. */
  static compactBytes(size: number): number {
    return alignUp(packedRingBytes(size), 64) + 128;
  }

  // The split layout's names for the same three areas, so code that handles both sees one shape.
  get availAddr(): number {
    return this.driverEventAddr;
  }
  get usedAddr(): number {
    return this.deviceEventAddr;
  }

  private static checkAlign(what: string, addr: number, align: number, queue: number): void {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % align !== 0) {
      throw new VirtqueueError('bad-layout', { queue, addr, detail: `${what} address must be ${align}-byte aligned` });
    }
  }
}
