// Allocators for driver-side buffers inside guest memory: a bump arena for long-lived areas
// (rings, indirect tables, buffer pools) and a fixed-size buffer pool with a free stack for
// packet buffers. Device code never allocates guest memory; only a driver does.

import { GuestMemoryError } from './errors.js';
import type { GuestMemory } from './guest-memory.js';

/** Bump allocator over `[base, base+size)` of guest memory. */
export class Arena {
  private next: number;
  readonly base: number;
  readonly size: number;

  constructor(readonly mem: GuestMemory, base: number, size: number) {
    mem.check(base, size);
    this.base = base;
    this.size = size;
    this.next = base;
  }

  /** Returns the guest address of `len` fresh bytes aligned to `align` (a power of 2). */
  alloc(len: number, align = 16): number {
    if (!Number.isInteger(len) || len <= 0) throw new GuestMemoryError('out-of-space', this.next, len, 'length must be a positive integer');
    if (align <= 0 || (align & (align - 1)) !== 0) throw new GuestMemoryError('out-of-space', this.next, len, `alignment ${align} is not a power of 2`);
    const start = Math.ceil(this.next / align) * align;
    if (start + len > this.base + this.size) {
      throw new GuestMemoryError('out-of-space', start, len, `${this.base + this.size - this.next} bytes left`);
    }
    this.next = start + len;
    return start;
  }

  get usedBytes(): number {
    return this.next - this.base;
  }

  /** Frees everything at once. */
  reset(): void {
    this.next = this.base;
  }
}

/**
 * How a BufferPool hands its free buffers back out. 'lifo' (default) reuses the buffer returned
 * last, whose lines are likeliest still in this core's cache. 'fifo' hands them out in the order
 * they came back, so buffers taken back in ring order are posted again in address order: a
 * driver that posts rx buffers this way gets a multi-buffer frame in adjacent buffers (the device
 * fills them in ring order), which it can hand on as one view instead of copying it together.
 */
export type PoolOrder = 'lifo' | 'fifo';

/** `count` buffers of `bufBytes` each, handed out and returned by guest address. */
export class BufferPool {
  readonly bufBytes: number;
  readonly count: number;
  readonly base: number;
  /** Distance between adjacent buffers (bufBytes rounded up to the alignment). */
  readonly stride: number;
  readonly order: PoolOrder;
  // The free buffers: a stack (lifo, top = next out) or a circular queue (fifo, head = next out).
  private readonly free: Float64Array;
  private top: number; // buffers free (both orders)
  private head = 0; // fifo: index in `free` of the next buffer out
  private readonly inUse: Uint8Array;

  constructor(arena: Arena, bufBytes: number, count: number, align = 64, order: PoolOrder = 'lifo') {
    this.bufBytes = bufBytes;
    this.count = count;
    this.order = order;
    const stride = Math.ceil(bufBytes / align) * align;
    this.base = arena.alloc(stride * count, align);
    this.free = new Float64Array(count);
    this.inUse = new Uint8Array(count);
    // Hand out low addresses first: the stack top is the last element, the queue head the first.
    for (let i = 0; i < count; i++) this.free[i] = this.base + (order === 'lifo' ? count - 1 - i : i) * stride;
    this.top = count;
    this.stride = stride;
  }

  get available(): number {
    return this.top;
  }

  /** A free buffer's guest address, or -1 when none is left. */
  get(): number {
    if (this.top === 0) return -1;
    let addr: number;
    if (this.order === 'lifo') {
      addr = this.free[--this.top]!;
    } else {
      addr = this.free[this.head]!;
      this.head = this.head + 1 === this.count ? 0 : this.head + 1;
      this.top--;
    }
    this.inUse[(addr - this.base) / this.stride] = 1;
    return addr;
  }

  /** Returns a buffer; a double free or a foreign address is a programming error. */
  put(addr: number): void {
    const i = (addr - this.base) / this.stride;
    if (!Number.isInteger(i) || i < 0 || i >= this.count || this.inUse[i] !== 1) {
      throw new GuestMemoryError('bad-region', addr, this.bufBytes, 'not a buffer of this pool that is in use');
    }
    this.inUse[i] = 0;
    if (this.order === 'lifo') {
      this.free[this.top++] = addr;
    } else {
      // The tail is head + free count (mod count): at most count buffers are ever free.
      let t = this.head + this.top;
      if (t >= this.count) t -= this.count;
      this.free[t] = addr;
      this.top++;
    }
  }
}
