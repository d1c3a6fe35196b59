// A driver-side mock for device tests (after rust-vmm's mock.rs): writes descriptor tables and
// the avail ring into guest memory byte by byte, as a guest driver would, and reads the used
// ring back. It deliberately shares no code with DriverQueue or SplitRing, so device tests
// check the device against the spec's byte layout rather than against our own driver.

import type { GuestMemory } from '../../src/memory/index.js';

export const F_NEXT = 1;
export const F_WRITE = 2;
export const F_INDIRECT = 4;

export interface MockBuf {
  addr: number;
  len: number;
  write?: boolean;
}

export class MockDriver {
  availIdx = 0;
  constructor(
    readonly mem: GuestMemory,
    readonly size: number,
    readonly descAddr: number,
    readonly availAddr: number,
    readonly usedAddr: number,
  ) {}

  /** Writes raw descriptor `i` of the ring's table (addr may be a bigint beyond 2^53). */
  writeDesc(i: number, addr: number | bigint, len: number, flags: number, next: number): void {
    this.writeDescAt(this.descAddr, i, addr, len, flags, next);
  }

  /** Writes raw descriptor `i` of a table at `tableAddr` (ring or indirect). */
  writeDescAt(tableAddr: number, i: number, addr: number | bigint, len: number, flags: number, next: number): void {
    const base = tableAddr + 16 * i;
    this.mem.writeU64(base, BigInt(addr));
    this.mem.writeU32(base + 8, len);
    this.mem.writeU16(base + 12, flags);
    this.mem.writeU16(base + 14, next);
  }

  /** Writes `bufs` as a linked chain in descriptors start, start+1, … of the ring table. */
  writeChain(start: number, bufs: MockBuf[]): number {
    bufs.forEach((b, k) => {
      const last = k === bufs.length - 1;
      const d = (start + k) % this.size;
      this.writeDesc(d, b.addr, b.len, (b.write ? F_WRITE : 0) | (last ? 0 : F_NEXT), last ? 0 : (start + k + 1) % this.size);
    });
    return start;
  }

  /** Puts `head` in the avail ring and publishes avail.idx (optionally not yet). */
  makeAvailable(head: number, publish = true): void {
    this.mem.writeU16(this.availAddr + 4 + 2 * (this.availIdx % this.size), head);
    this.availIdx = (this.availIdx + 1) & 0xffff;
    if (publish) this.publish();
  }

  publish(): void {
    this.mem.writeU16(this.availAddr + 2, this.availIdx);
  }

  /** Sets avail.idx to an arbitrary value (hostile drivers). */
  setAvailIdx(v: number): void {
    this.availIdx = v & 0xffff;
    this.publish();
  }

  setAvailFlags(f: number): void {
    this.mem.writeU16(this.availAddr, f);
  }
  setUsedEvent(v: number): void {
    this.mem.writeU16(this.availAddr + 4 + 2 * this.size, v & 0xffff);
  }
  usedFlags(): number {
    return this.mem.readU16(this.usedAddr);
  }
  usedIdx(): number {
    return this.mem.readU16(this.usedAddr + 2);
  }
  usedElem(i: number): { id: number; len: number } {
    const base = this.usedAddr + 4 + 8 * (i % this.size);
    return { id: this.mem.readU32(base), len: this.mem.readU32(base + 4) };
  }
  availEvent(): number {
    return this.mem.readU16(this.usedAddr + 4 + 8 * this.size);
  }
}
