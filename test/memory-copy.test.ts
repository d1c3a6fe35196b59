// copyBytes and the range copies built on it (GuestMemory.copyInFrom/copyOutTo): the same bytes
// as TypedArray.prototype.set of a subarray for every length, offset and overlap, across the
// loop/set threshold and across adjacent regions; out-of-range ranges are RangeErrors.
import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory, copyBytes, COPY_LOOP_MAX_BYTES } from '../src/memory/index.js';

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
