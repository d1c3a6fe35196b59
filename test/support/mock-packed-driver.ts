// A driver-side mock for packed-ring device tests: writes packed descriptors (virtio 1.2 §2.8.13:
// le64 addr, le32 len, le16 id, le16 flags) and the driver event suppression structure byte by
// byte, as a guest driver would, and reads used descriptors back. It shares no code with
// PackedDriverQueue or PackedRing, so device tests check the device against the spec's bytes.

import type { GuestMemory } from '../../src/memory/index.js';

export const P_NEXT = 1;
export const P_WRITE = 2;
export const P_INDIRECT = 4;
export const P_AVAIL = 1 << 7;
export const P_USED = 1 << 15;

export interface PackedMockBuf {
  addr: number | bigint;
  len: number;
  write?: boolean;
  /** Extra flag bits (INDIRECT, or a deliberately wrong AVAIL/USED). */
  flags?: number;
  /** Buffer id written into this descriptor (default: the chain's id). */
  id?: number;
}

export class MockPackedDriver {
  pos = 0;
  wrap = 1;

  constructor(
    readonly mem: GuestMemory,
    readonly size: number,
    readonly ringAddr: number,
    readonly driverEventAddr: number,
    readonly deviceEventAddr: number,
  ) {}

  /** Writes raw descriptor `i` of a table at `tableAddr` (the ring or an indirect table). */
  writeDescAt(tableAddr: number, i: number, addr: number | bigint, len: number, id: number, flags: number): void {
    const base = tableAddr + 16 * i;
    this.mem.writeU64(base, BigInt(addr));
    this.mem.writeU32(base + 8, len);
    this.mem.writeU16(base + 12, id);
    this.mem.writeU16(base + 14, flags);
  }

  availBits(wrap: number): number {
    return wrap ? P_AVAIL : P_USED;
  }

  /**
   * Makes `bufs` available as one chain with buffer `id` at the driver's position: the other
   * descriptors first, the head's flags last. `headWrap` overrides the head's wrap bits.
   */
  addChain(id: number, bufs: PackedMockBuf[], opts: { headWrap?: number } = {}): number {
    const start = this.pos;
    const positions: { pos: number; wrap: number }[] = [];
    let pos = this.pos;
    let wrap = this.wrap;
    for (let k = 0; k < bufs.length; k++) {
      positions.push({ pos, wrap });
      if (++pos === this.size) {
        pos = 0;
        wrap ^= 1;
      }
    }
    for (let k = bufs.length - 1; k >= 0; k--) {
      const b = bufs[k]!;
      const at = positions[k]!;
      const w = k === 0 && opts.headWrap !== undefined ? opts.headWrap : at.wrap;
      const flags = (b.write ? P_WRITE : 0) | (k < bufs.length - 1 ? P_NEXT : 0) | (b.flags ?? 0) | this.availBits(w);
      const base = this.ringAddr + 16 * at.pos;
      this.mem.writeU64(base, BigInt(b.addr));
      this.mem.writeU32(base + 8, b.len);
      this.mem.writeU16(base + 12, b.id ?? id);
      if (k > 0) this.mem.writeU16(base + 14, flags);
      else this.headFlags = { addr: base + 14, flags };
    }
    this.mem.writeU16(this.headFlags!.addr, this.headFlags!.flags);
    this.pos = pos;
    this.wrap = wrap;
    return start;
  }
  private headFlags: { addr: number; flags: number } | null = null;

  /** The used descriptor at ring position `pos`, or null if it is not marked used for `wrap`. */
  usedAt(pos: number, wrap: number): { id: number; len: number; flags: number } | null {
    const base = this.ringAddr + 16 * pos;
    const flags = this.mem.readU16(base + 14);
    const a = (flags >> 7) & 1;
    const u = (flags >> 15) & 1;
    if (a !== wrap || u !== wrap) return null;
    return { id: this.mem.readU16(base + 12), len: this.mem.readU32(base + 8), flags };
  }

  /** Driver event suppression: le16 off_wrap, le16 flags (§2.8.14). */
  setDriverEvent(offWrap: number, flags: number): void {
    this.mem.writeU16(this.driverEventAddr, offWrap);
    this.mem.writeU16(this.driverEventAddr + 2, flags);
  }
  deviceEvent(): { offWrap: number; flags: number } {
    return { offWrap: this.mem.readU16(this.deviceEventAddr), flags: this.mem.readU16(this.deviceEventAddr + 2) };
  }
}
