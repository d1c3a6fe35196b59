// writeChainsFrom (a device filling several rx chains with one frame, adjacent buffers written
// as one range) and writeChainFrom (one chain, through it) against a reference that copies
// descriptor by descriptor: the same bytes in guest memory, the same count, for random chains — adjacent or scattered, with readable
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
        // Reference: descriptor by descriptor, skipping `offset` bytes of writable space first.
        let done = 0;
        let skip = offset;
        for (const c of chains) {
          for (let k = c.readableCount; k < c.count && done < len; k++) {
            const dlen = c.lens[k]!;
            if (skip >= dlen) {
              skip -= dlen;
              continue;
            }
            const m = Math.min(dlen - skip, len - done);
            want.copyInFrom(c.addrs[k]! + skip, src, 3 + done, m);
            done += m;
            skip = 0;
          }
        }
        // writeChainFrom: the first chain alone, into a third memory, against the same reference
        // restricted to that chain.
        const one = memory();
        const oneLen = Math.min(len, chains[0]!.writableBytes - offset);
        assert.equal(writeChainFrom(one, chains[0]!, src, 3, oneLen, offset), oneLen);
        const oneWant = memory();
        let od = 0;
        let os = offset;
        const c0 = chains[0]!;
        for (let k = c0.readableCount; k < c0.count && od < oneLen; k++) {
          const dlen = c0.lens[k]!;
          if (os >= dlen) {
            os -= dlen;
            continue;
          }
          const m = Math.min(dlen - os, oneLen - od);
          oneWant.copyInFrom(c0.addrs[k]! + os, src, 3 + od, m);
          od += m;
          os = 0;
        }
        const x = new Uint8Array(SPAN);
        const y = new Uint8Array(SPAN);
        one.copyOutTo(BASE, x, 0, SPAN);
        oneWant.copyOutTo(BASE, y, 0, SPAN);
        assert.ok(Buffer.compare(x, y) === 0, 'writeChainFrom');
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
