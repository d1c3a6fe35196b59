// A descriptor chain as the device sees it: the head index and the buffers it names, readable
// ones first, then writable ones (virtio 1.2 §2.7.4.2), with indirect tables followed (§2.7.5.3).
// Parsing treats every descriptor as hostile: a TTL bounds the walk, every buffer is checked
// against guest memory, and any violation is a VirtqueueError naming the queue, head and index.
// Also owns the byte I/O over a chain, so a device can never write outside its writable buffers.

import type { GuestMemory, MemoryRegion } from '../memory/guest-memory.js';
import type { SubarrayCache } from '../memory/copy.js';
import { addrFromParts } from '../memory/guest-memory.js';
import { GuestMemoryError } from '../memory/errors.js';
import { VirtqueueError } from './errors.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from './split-ring.js';

export const MAX_CHAIN_BYTES = 0xffff_ffff;

/** One chain's buffers. Reusable: `DeviceQueue.pop(chain)` refills it without allocating. */
export class DescriptorChain {
  head = 0;
  /** Buffers 0..readableCount-1 are device-readable, readableCount..count-1 device-writable. */
  count = 0;
  readableCount = 0;
  readonly addrs: number[] = [];
  readonly lens: number[] = [];
  readableBytes = 0;
  writableBytes = 0;
  /** Descriptors walked, including indirect-table entries (for accounting). */
  descriptors = 0;
  /** Whether the chain used an indirect table. */
  indirect = false;

  get writableCount(): number {
    return this.count - this.readableCount;
  }

  reset(head: number): void {
    this.head = head;
    this.count = 0;
    this.readableCount = 0;
    this.readableBytes = 0;
    this.writableBytes = 0;
    this.descriptors = 0;
    this.indirect = false;
  }

  push(addr: number, len: number, writable: boolean): void {
    const i = this.count++;
    this.addrs[i] = addr;
    this.lens[i] = len;
    if (writable) this.writableBytes += len;
    else {
      this.readableCount++;
      this.readableBytes += len;
    }
  }
}

/** What the parser needs to know about its queue. */
export interface ChainParseContext {
  mem: GuestMemory;
  queue: number;
  size: number;
  desc: Uint32Array;
  indirectAllowed: boolean;
}

/**
 * Walks the chain starting at `head` into `out`. Throws VirtqueueError on any violation; `out`
 * is then partially filled and must not be used.
 */
export function parseChain(ctx: ChainParseContext, head: number, out: DescriptorChain): void {
  const { mem, queue } = ctx;
  out.reset(head);
  let table = ctx.desc;
  let base = 0; // word index of the table's first descriptor inside `table`
  let tableSize = ctx.size;
  let ttl = tableSize; // a chain longer than its table must revisit a descriptor: a loop
  let inIndirect = false;
  let i = head;
  let total = 0;
  for (;;) {
    if (ttl-- === 0) {
      throw new VirtqueueError('descriptor-loop', { queue, head, seen: tableSize + 1, size: tableSize });
    }
    const w = base + 4 * i;
    const lo = table[w]!;
    const hi = table[w + 1]!;
    const len = table[w + 2]!;
    const word = table[w + 3]!;
    const flags = word & 0xffff;
    const next = word >>> 16;
    out.descriptors++;

    if (flags & VIRTQ_DESC_F_INDIRECT) {
      if (!ctx.indirectAllowed) throw new VirtqueueError('indirect-not-negotiated', { queue, head, index: i });
      if (inIndirect) throw new VirtqueueError('nested-indirect', { queue, head, index: i });
      if (flags & VIRTQ_DESC_F_NEXT) throw new VirtqueueError('indirect-with-next', { queue, head, index: i });
      if (len === 0 || len % 16 !== 0) throw new VirtqueueError('indirect-bad-length', { queue, head, index: i, len });
      // §2.7.5.3.1: no chain is longer than the Queue Size. Refused by length before the table is
      // touched, so a huge table costs nothing (a work bomb, not a chain).
      if (len / 16 > ctx.size - out.count) {
        throw new VirtqueueError('chain-too-long', { queue, head, index: i, seen: out.count + len / 16, size: ctx.size, detail: 'indirect table' });
      }
      const addr = bufferAddr(mem, queue, head, i, lo, hi, len);
      // §2.7.5.3: the table may sit at any address (only the queue's own areas have alignment
      // rules) and may cross a boundary between adjacent regions. Index the region's u32 view
      // in place when the table is 4-aligned in one region; otherwise copy it (at most Queue
      // Size entries, bounded above) into a scratch table.
      const r = regionOrNull(mem, addr, len);
      if (r !== null && (addr - r.guestAddr) % 4 === 0) {
        table = r.u32;
        base = (addr - r.guestAddr) / 4;
      } else {
        table = copyTable(mem, addr, len);
        base = 0;
      }
      tableSize = len / 16;
      ttl = tableSize;
      inIndirect = true;
      out.indirect = true;
      i = 0;
      continue;
    }

    if (len === 0) throw new VirtqueueError('zero-length-descriptor', { queue, head, index: i });
    const addr = bufferAddr(mem, queue, head, i, lo, hi, len);
    const writable = (flags & VIRTQ_DESC_F_WRITE) !== 0;
    if (!writable && out.readableCount !== out.count) {
      throw new VirtqueueError('readable-after-writable', { queue, head, index: i });
    }
    if (out.count >= ctx.size) {
      // §2.7.5.3.1 / §2.7.4: a chain never holds more buffers than the Queue Size.
      throw new VirtqueueError('chain-too-long', { queue, head, index: i, seen: out.count + 1, size: ctx.size });
    }
    total += len;
    if (total > MAX_CHAIN_BYTES) throw new VirtqueueError('chain-too-large', { queue, head, index: i });
    out.push(addr, len, writable);

    if ((flags & VIRTQ_DESC_F_NEXT) === 0) return;
    if (next >= tableSize) {
      throw new VirtqueueError('next-out-of-range', { queue, head, index: i, seen: next, size: tableSize });
    }
    i = next;
  }
}

export function regionOrNull(mem: GuestMemory, addr: number, len: number): MemoryRegion | null {
  try {
    return mem.region(addr, len);
  } catch {
    return null; // bufferAddr checked the range: it spans adjacent regions
  }
}

// Scratch for indirect tables that cannot be indexed in place; grows to the largest table seen,
// which the length check bounds by the Queue Size (at most 32768 × 16 bytes). parseChain runs
// to completion before anything else touches it (one thread, no re-entry).
let scratchBytes = new Uint8Array(0);
let scratchWords = new Uint32Array(0);

/** An indirect table that cannot be indexed in place, copied into scratch (valid until the next call). */
export function copyTable(mem: GuestMemory, addr: number, len: number): Uint32Array {
  if (scratchBytes.length < len) {
    scratchWords = new Uint32Array(Math.max(len, 256) / 4);
    scratchBytes = new Uint8Array(scratchWords.buffer);
  }
  mem.copyOutTo(addr, scratchBytes, 0, len);
  return scratchWords;
}

/** The checked guest address of descriptor `index`'s buffer, or a bad-address VirtqueueError. */
export function bufferAddr(mem: GuestMemory, queue: number, head: number, index: number, lo: number, hi: number, len: number): number {
  try {
    const addr = addrFromParts(lo, hi, len);
    mem.check(addr, len);
    return addr;
  } catch (e) {
    if (e instanceof GuestMemoryError) {
      throw new VirtqueueError('bad-address', { queue, head, index, addr: e.addr, len, detail: ` (${e.code})` }, { cause: e });
    }
    throw e;
  }
}

/**
 * Copies the chain's readable bytes, starting `offset` bytes into them, into `dst`. Returns the
 * number of bytes copied (less than dst.length when the chain is shorter).
 */
export function readFromChain(mem: GuestMemory, chain: DescriptorChain, dst: Uint8Array, offset = 0): number {
  return readChainInto(mem, chain, dst, 0, dst.length, offset);
}

/**
 * Copies up to `len` of the chain's readable bytes, starting `offset` bytes into them, into
 * `dst[dstOff…)`. Returns the number of bytes copied (less than len when the chain is shorter).
 * Allocates nothing for short buffers (GuestMemory.copyOutTo), so a caller passes a range of
 * its scratch instead of a subarray per frame.
 */
export function readChainInto(mem: GuestMemory, chain: DescriptorChain, dst: Uint8Array, dstOff: number, len: number, offset = 0): number {
  if (!(dstOff >= 0 && len >= 0 && dstOff + len <= dst.length)) throw new RangeError(`readChainInto: ${len} bytes at ${dstOff} do not fit ${dst.length}`);
  let skip = offset;
  let done = 0;
  for (let k = 0; k < chain.readableCount && done < len; k++) {
    const dlen = chain.lens[k]!;
    if (skip >= dlen) {
      skip -= dlen;
      continue;
    }
    const n = Math.min(dlen - skip, len - done);
    mem.copyOutTo(chain.addrs[k]! + skip, dst, dstOff + done, n);
    done += n;
    skip = 0;
  }
  return done;
}

/**
 * Copies `src` into the chain's writable buffers, starting `offset` bytes into them. Never
 * writes past the writable buffers: returns the number of bytes written (less than src.length
 * when they are too small).
 */
export function writeToChain(mem: GuestMemory, chain: DescriptorChain, src: Uint8Array, offset = 0): number {
  return writeChainFrom(mem, chain, src, 0, src.length, offset);
}

/**
 * Copies `src[srcOff, srcOff + len)` into the chain's writable buffers, starting `offset` bytes
 * into them; as writeToChain, without a subarray per call (GuestMemory.copyInFrom), with the
 * source views of long runs from `views` when the caller passes its cache. Adjacent buffers (a
 * contiguous buffer described page by page) are written as one range: writeChainsFrom.
 */
export function writeChainFrom(mem: GuestMemory, chain: DescriptorChain, src: Uint8Array, srcOff: number, len: number, offset = 0, views?: SubarrayCache): number {
  ONE_CHAIN[0] = chain;
  return writeChainsFrom(mem, ONE_CHAIN, 1, src, srcOff, len, offset, views);
}
/** The one-element list writeChainFrom passes (no array per call). */
const ONE_CHAIN: DescriptorChain[] = [new DescriptorChain()];

/**
 * Writes `src[srcOff, srcOff+len)` across the writable buffers of `chains[0..count)`, in order,
 * starting `offset` bytes into the first chain's (a device filling mergeable rx buffers, virtio
 * 1.2 §5.1.6.4: each buffer up to its end before the next). The same bytes land where one copy
 * per descriptor would put them; runs of descriptors that are adjacent in guest memory are
 * written as one range (one copy instead of one per 4 KiB buffer). Returns bytes written.
 */
export function writeChainsFrom(
  mem: GuestMemory,
  chains: readonly DescriptorChain[],
  count: number,
  src: Uint8Array,
  srcOff: number,
  len: number,
  offset = 0,
  views?: SubarrayCache,
): number {
  if (!(srcOff >= 0 && len >= 0 && srcOff + len <= src.length)) throw new RangeError(`writeChainsFrom: ${len} bytes at ${srcOff} are not in ${src.length}`);
  let skip = offset;
  let done = 0;
  let runAddr = 0; // the pending run of adjacent buffer space: [runAddr, runAddr + runLen)
  let runLen = 0;
  for (let c = 0; c < count && done + runLen < len; c++) {
    const chain = chains[c]!;
    for (let k = chain.readableCount; k < chain.count && done + runLen < len; k++) {
      const dlen = chain.lens[k]!;
      if (skip >= dlen) {
        skip -= dlen;
        continue;
      }
      const addr = chain.addrs[k]! + skip;
      const n = Math.min(dlen - skip, len - done - runLen);
      skip = 0;
      if (runLen > 0 && addr === runAddr + runLen) {
        runLen += n;
        continue;
      }
      if (runLen > 0) {
        mem.copyInFrom(runAddr, src, srcOff + done, runLen, views);
        done += runLen;
      }
      runAddr = addr;
      runLen = n;
    }
  }
  if (runLen > 0) {
    mem.copyInFrom(runAddr, src, srcOff + done, runLen, views);
    done += runLen;
  }
  return done;
}
