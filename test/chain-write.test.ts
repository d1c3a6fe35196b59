// writeChainsFrom (a device filling several rx chains with one frame, adjacent buffers written
// as one range) against the per-chain writeChainFrom it replaces: the same bytes in guest
// memory, the same count, for random chains — adjacent or scattered, with readable
// descriptors first, a start offset inside the first chain, and buffers across two adjacent
// memory regions.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import { DescriptorChain, writeChainFrom, writeChainsFrom } from '../src/virtqueue/index.js';

const BASE = 0x10000;
const SPAN = 0x8000;

function memory(): GuestMemory {
  // Two adjacent regions: [BASE, BASE+SPAN/2) and [BASE+SPAN/2, BASE+SPAN).
  return new GuestMemory([
    { guestAddr: BASE, buffer: new SharedArrayBuffer(SPAN / 2) },
    { guestAddr: BASE + SPAN / 2, buffer: new SharedArrayBuffer(SPAN / 2) },
  ]);
}

function chainOf(bufs: { addr: number; len: number; readable: boolean }[]): DescriptorChain {
  const c = new DescriptorChain();
  c.reset(0);
  // Readable descriptors first, as a well-formed chain has them (§2.7.4.2).
  const ordered = [...bufs.filter((b) => b.readable), ...bufs.filter((b) => !b.readable)];
  for (const b of ordered) {
    c.addrs.push(b.addr);
    c.lens.push(b.len);
    if (b.readable) {
      c.readableCount++;
      c.readableBytes += b.len;
    } else c.writableBytes += b.len;
    c.count++;
  }
  return c;
}

test('writeChainsFrom writes what per-chain writeChainFrom writes, adjacent runs or not', () => {
  const buf = fc.record({ slot: fc.nat(63), len: fc.integer({ min: 1, max: 512 }), readable: fc.boolean() });
  fc.assert(
    fc.property(
      fc.array(fc.array(buf, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      fc.nat(600),
      fc.nat(6000),
      (chainsSpec, adjacent, offset0, len0) => {
        // Either consecutive 512-byte slots (adjacent buffers) or the drawn slots (scattered).
        let next = 0;
        const chains = chainsSpec.map((bufs) =>
          chainOf(bufs.map((b) => ({ addr: BASE + 512 * (adjacent ? next++ : b.slot), len: adjacent ? 512 : b.len, readable: b.readable && !adjacent }))),
        );
        // Scattered slots may overlap: keep the drawn buffers disjoint by slot.
        if (!adjacent) {
          const slots = chainsSpec.flat().map((b) => b.slot);
          fc.pre(new Set(slots).size === slots.length);
        }
        const room = chains.reduce((n, c) => n + c.writableBytes, 0);
        const offset = Math.min(offset0, chains[0]!.writableBytes);
        const len = Math.min(len0, room - offset);
        const src = Uint8Array.from({ length: len + 7 }, (_, i) => (i * 37 + 11) & 0xff);
        const got = memory();
        const want = memory();
        const n = writeChainsFrom(got, chains, chains.length, src, 3, len, offset);
        // Reference: chain by chain, the first from `offset`, each up to its writable end.
        let done = 0;
        for (let k = 0; k < chains.length && done < len; k++) {
          const c = chains[k]!;
          const at = k === 0 ? offset : 0;
          done += writeChainFrom(want, c, src, 3 + done, Math.min(c.writableBytes - at, len - done), at);
        }
        assert.equal(n, len);
        assert.equal(done, len);
        const a = new Uint8Array(SPAN);
        const b = new Uint8Array(SPAN);
        got.copyOutTo(BASE, a, 0, SPAN);
        want.copyOutTo(BASE, b, 0, SPAN);
        assert.ok(Buffer.compare(a, b) === 0);
      },
    ),
    { numRuns: 300 },
  );
});
