// Split virtqueue layout (virtio 1.2 §2.7): where the descriptor table, the available ring
// (driver area) and the used ring (device area) sit, and how big each is. The only place that
// knows the byte sizes and alignments; ring code gets offsets from here.

import { VirtqueueError } from './errors.js';

export const DESC_BYTES = 16; // virtio 1.2 §2.7.5: le64 addr, le32 len, le16 flags, le16 next
export const DESC_ALIGN = 16; // §2.7, table "Virtqueue Part Alignment"
export const AVAIL_ALIGN = 2;
export const USED_ALIGN = 4;
export const MAX_QUEUE_SIZE = 32768; // §2.7: queue size is at most 2^15
export const LEGACY_QUEUE_ALIGN = 4096; // legacy PCI's fixed Queue Align (§2.7.2, §4.1.5.1)

/** Descriptor table bytes for `size` entries. */
export function descTableBytes(size: number): number {
  return DESC_BYTES * size;
}
/** Driver area: flags, idx, ring[size], used_event (§2.7.6). */
export function availRingBytes(size: number): number {
  return 6 + 2 * size;
}
/** Device area: flags, idx, ring[size] of {le32 id, le32 len}, avail_event (§2.7.8). */
export function usedRingBytes(size: number): number {
  return 6 + 8 * size;
}

export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= MAX_QUEUE_SIZE && (size & (size - 1)) === 0;
}

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

/** Guest addresses of the three parts of one split virtqueue, validated for size and alignment. */
export class SplitLayout {
  private constructor(
    readonly size: number,
    readonly descAddr: number,
    readonly availAddr: number,
    readonly usedAddr: number,
  ) {}

  /** virtio 1.x: the three areas are placed independently by the driver. */
  static modern(size: number, descAddr: number, availAddr: number, usedAddr: number, queue = 0): SplitLayout {
    SplitLayout.checkSize(size, queue);
    SplitLayout.checkAlign('descriptor table', descAddr, DESC_ALIGN, queue);
    SplitLayout.checkAlign('driver area', availAddr, AVAIL_ALIGN, queue);
    SplitLayout.checkAlign('device area', usedAddr, USED_ALIGN, queue);
    return new SplitLayout(size, descAddr, availAddr, usedAddr);
  }

  /** Legacy: one contiguous block; the used ring starts at the next `align` boundary (§2.7.2). */
  static legacy(size: number, base: number, align = LEGACY_QUEUE_ALIGN, queue = 0): SplitLayout {
    SplitLayout.checkSize(size, queue);
    if (align <= 0 || (align & (align - 1)) !== 0) {
      throw new VirtqueueError('bad-layout', { queue, detail: `queue align ${align} is not a power of 2` });
    }
    SplitLayout.checkAlign('legacy ring', base, Math.max(align, DESC_ALIGN), queue);
    const avail = base + descTableBytes(size);
    const used = base + alignUp(descTableBytes(size) + availRingBytes(size), align);
    return new SplitLayout(size, base, avail, used);
  }

  /** Total bytes of the legacy contiguous block: ALIGN(16Q + 2(3+Q)) + ALIGN(2·3 + 8Q). */
  static legacyBytes(size: number, align = LEGACY_QUEUE_ALIGN): number {
    return alignUp(descTableBytes(size) + availRingBytes(size), align) + alignUp(usedRingBytes(size), align);
  }

  /**
   * A compact 1.x layout from one base address: descriptors, then the driver area, then the
   * device area on its own 64-byte line (producer- and consumer-owned words kept apart).
   */
  static packedAt(size: number, base: number, queue = 0): SplitLayout {
    const avail = base + descTableBytes(size);
    const used = alignUp(avail + availRingBytes(size), 64);
    return SplitLayout.modern(size, base, avail, used, queue);
  }

  /** Bytes `packedAt` needs. */
  static packedBytes(size: number): number {
    return alignUp(alignUp(descTableBytes(size) + availRingBytes(size), 64) + usedRingBytes(size), 64);
  }

  private static checkSize(size: number, queue: number): void {
    if (!isValidQueueSize(size)) {
      throw new VirtqueueError('bad-layout', { queue, detail: `queue size ${size} is not a power of 2 in 1..${MAX_QUEUE_SIZE}` });
    }
  }

  private static checkAlign(what: string, addr: number, align: number, queue: number): void {
    if (!Number.isSafeInteger(addr) || addr < 0 || addr % align !== 0) {
      throw new VirtqueueError('bad-layout', { queue, addr, detail: `${what} address must be ${align}-byte aligned` });
    }
  }
}
