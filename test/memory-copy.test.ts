// copyBytes and the range copies built on it (GuestMemory.copyInFrom/copyOutTo): the same bytes
// as TypedArray.prototype.set of a subarray for every length, offset and overlap, across the
// loop/set threshold and across adjacent regions; out-of-range ranges are RangeErrors.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory, copyBytes, COPY_LOOP_MAX_BYTES, BOUNCE_MIN_BYTES, SubarrayCache } from '../src/memory/index.js';

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  for (let i = 0; i < n; i++) a[i] = (seed + i * 31) & 0xff;
  return a;
}

test('copyBytes copies what set(subarray) copies, short and long, between and within buffers', () => {
  const max = Math.max(COPY_LOOP_MAX_BYTES * 3, 96);
  fc.assert(
    fc.property(fc.nat(max), fc.nat(max), fc.nat(max), fc.boolean(), (a, b, c, same) => {
      const [srcOff, dstOff, len] = [a % (max - 1), b % (max - 1), c % max];
      const n = max + 8;
      const src = pattern(n, 7);
      const dst = same ? src : pattern(n, 99);
      const fits = srcOff + len <= n && dstOff + len <= n;
      const wantSrc = pattern(n, 7);
      const want = same ? wantSrc : pattern(n, 99);
      if (!fits) {
        assert.throws(() => copyBytes(dst, dstOff, src, srcOff, len), RangeError);
        return;
      }
      want.set(wantSrc.subarray(srcOff, srcOff + len), dstOff);
      copyBytes(dst, dstOff, src, srcOff, len);
      assert.deepEqual(dst, want);
    }),
    { numRuns: 400 },
  );
});

test('copyBytes rejects negative offsets and lengths rather than copying short', () => {
  const a = new Uint8Array(8);
  assert.throws(() => copyBytes(a, -1, a, 0, 2), RangeError);
  assert.throws(() => copyBytes(a, 0, a, -1, 2), RangeError);
  assert.throws(() => copyBytes(a, 0, new Uint8Array(8), 0, -1), RangeError);
  assert.throws(() => copyBytes(a, 7, new Uint8Array(8), 0, 2), RangeError);
});

test('copyInFrom/copyOutTo move a range of a caller array, within one region and across two adjacent ones', () => {
  // Two adjacent regions in separate buffers: [0x10000, 0x10400) and [0x10400, 0x10800).
  const mem = new GuestMemory([
    { guestAddr: 0x10000, buffer: new ArrayBuffer(1024) },
    { guestAddr: 0x10400, buffer: new ArrayBuffer(1024) },
  ]);
  for (const [addr, len] of [[0x10000 + 100, 300], [0x10400 - 150, 300], [0x10400 - 10, 20]] as const) {
    const src = pattern(600, addr & 0xff);
    mem.copyInFrom(addr, src, 50, len);
    const out = new Uint8Array(400);
    mem.copyOutTo(addr, out, 20, len);
    assert.deepEqual(out.subarray(20, 20 + len), src.subarray(50, 50 + len));
    assert.equal(out[19], 0);
    assert.equal(out[20 + len], 0);
    const whole = new Uint8Array(len);
    mem.copyOut(addr, whole);
    assert.deepEqual(whole, src.subarray(50, 50 + len));
  }
  assert.throws(() => mem.copyOutTo(0x10000, new Uint8Array(400), 390, 20), RangeError);
  assert.throws(() => mem.copyInFrom(0x10000, new Uint8Array(10), 5, 20), RangeError);
});

test('SubarrayCache: every view is exactly the range asked for, across arrays, offsets and lengths that collide', () => {
  // Three arrays over two buffers; random ranges, many repeated, so slots are hit, missed and
  // replaced: each view must cover its range of its own array, never a neighbour's.
  const a = new Uint8Array(new SharedArrayBuffer(4096));
  const b = new Uint8Array(a.buffer, 1024, 2048);
  const c = new Uint8Array(4096);
  const arrays = [a, b, c];
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(2), fc.nat(1023), fc.nat(1023)), { minLength: 1, maxLength: 300 }), (ops) => {
      const cache = new SubarrayCache();
      for (const [k, o, l] of ops) {
        const arr = arrays[k]!;
        const off = o % arr.length;
        const len = l % (arr.length - off + 1);
        const v = cache.view(arr, off, len);
        assert.equal(v.buffer, arr.buffer);
        assert.equal(v.byteOffset, arr.byteOffset + off);
        assert.equal(v.length, len);
      }
    }),
    { numRuns: 200 },
  );
  const cache = new SubarrayCache();
  assert.equal(cache.view(a, 64, 1500), cache.view(a, 64, 1500), 'a repeated range is served from the table');
  assert.notEqual(cache.view(a, 64, 1500), cache.view(a, 64, 1499));
});

test('copyOutTo after setRegions reads the new buffer, not a view cached from the old one', () => {
  const mem = new GuestMemory([{ guestAddr: 0x1000, buffer: new SharedArrayBuffer(8192) }]);
  const out = new Uint8Array(1500);
  mem.copyIn(0x1000 + 64, pattern(1500, 1));
  mem.copyOutTo(0x1000 + 64, out, 0, 1500); // caches the view of the first buffer's range
  assert.deepEqual(out, pattern(1500, 1));
  const fresh = new SharedArrayBuffer(8192);
  new Uint8Array(fresh).set(pattern(1500, 2), 64);
  mem.setRegions([{ guestAddr: 0x1000, buffer: fresh }]);
  mem.copyOutTo(0x1000 + 64, out, 0, 1500);
  assert.deepEqual(out, pattern(1500, 2));
  const src = pattern(2000, 3);
  mem.copyInFrom(0x1000 + 64, src, 100, 1500);
  assert.deepEqual(new Uint8Array(fresh, 64, 1500), src.subarray(100, 1600));
  mem.copyOutTo(0x1000 + 64, out, 0, 1500); // the view cached after setRegions, now seeing the new bytes
  assert.deepEqual(out, src.subarray(100, 1600));
});

test('SubarrayCache refuses a table size outside 1..16 bits; a small table still returns exact views', () => {
  for (const bits of [0, 17, 2.5, -1]) assert.throws(() => new SubarrayCache(bits), RangeError);
  const small = new SubarrayCache(1); // two slots: nearly every range replaces another
  const a = pattern(4096, 5);
  for (let i = 0; i < 50; i++) {
    const off = (i * 97) % 4000;
    const len = 16 + (i % 80);
    assert.deepEqual(small.view(a, off, len), a.subarray(off, off + len));
  }
  const mem = new GuestMemory([{ guestAddr: 0, buffer: new SharedArrayBuffer(4096) }]);
  const src = pattern(3000, 9);
  for (let i = 0; i < 3; i++) mem.copyInFrom(100, src, 500, 1500, small);
  assert.deepEqual(new Uint8Array(mem.regionTable[0]!.buffer, 100, 1500), src.subarray(500, 2000));
});

test('copyBytes through the bounce buffer (misaligned, shared memory): same bytes as set, between and within SharedArrayBuffers, across bounce pieces', () => {
  // Lengths up to past two 64 KiB bounce pieces; every alignment pair; shared↔shared,
  // shared↔unshared and one SharedArrayBuffer overlapping itself (memmove).
  const n = 140_000;
  fc.assert(
    fc.property(fc.nat(n), fc.nat(n), fc.integer({ min: BOUNCE_MIN_BYTES - 2, max: 135_000 }), fc.constantFrom('ss', 'su', 'us', 'same'), (a, b, len, kind) => {
      const srcOff = a % (n - len);
      const dstOff = b % (n - len);
      const shared = (seed: number): Uint8Array => {
        const u = new Uint8Array(new SharedArrayBuffer(n));
        u.set(pattern(n, seed));
        return u;
      };
      const src = kind === 'us' ? pattern(n, 7) : shared(7);
      const dst = kind === 'same' ? src : kind === 'su' ? pattern(n, 99) : shared(99);
      const want = kind === 'same' ? pattern(n, 7) : pattern(n, 99);
      want.set(pattern(n, 7).subarray(srcOff, srcOff + len), dstOff);
      copyBytes(dst, dstOff, src, srcOff, len);
      assert.ok(Buffer.compare(dst, want) === 0, `${kind} ${len} bytes ${srcOff} → ${dstOff}`);
    }),
    { numRuns: 150 },
  );
});
