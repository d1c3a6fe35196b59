import test from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory, GuestMemoryError, Arena, BufferPool, addrFromParts } from '../src/memory/index.js';

function isMemErr(code: string) {
  return (e: unknown) => e instanceof GuestMemoryError && e.code === code;
}

test('reads and writes are little-endian at guest addresses inside a region placed high', () => {
  const mem = GuestMemory.allocate(4096, { guestAddr: 0x1_0000_0000 });
  mem.writeU32(0x1_0000_0010, 0x11223344);
  assert.equal(mem.readU8(0x1_0000_0010), 0x44);
  assert.equal(mem.readU16(0x1_0000_0012), 0x1122);
  mem.writeU64(0x1_0000_0020, 0x0102030405060708n);
  assert.equal(mem.readU64(0x1_0000_0020), 0x0102030405060708n);
  assert.equal(mem.readU32(0x1_0000_0024), 0x01020304);
});

test('an access past the end of a region names the address and length', () => {
  const mem = GuestMemory.allocate(4096);
  assert.throws(() => mem.readU32(4094), (e: unknown) => e instanceof GuestMemoryError && e.code === 'out-of-range' && /0xffe/.test(e.message) && e.len === 4);
  assert.throws(() => mem.bytes(4000, 200), isMemErr('out-of-range'));
  assert.throws(() => mem.readU8(-1), isMemErr('out-of-range'));
  assert.throws(() => mem.readU8(8192), isMemErr('out-of-range'));
});

test('addresses beyond 2^53 and ranges wrapping 2^64 are rejected with their exact value', () => {
  assert.equal(addrFromParts(0x1000, 0x1, 16), 0x1_0000_1000);
  assert.throws(() => addrFromParts(0, 0x0020_0000, 16), (e: unknown) => e instanceof GuestMemoryError && e.code === 'unsafe-address' && e.message.includes('0x20000000000000'));
  assert.throws(() => addrFromParts(0xffff_fff0, 0xffff_ffff, 0x20), (e: unknown) => e instanceof GuestMemoryError && e.code === 'overflow' && e.message.includes('0xfffffffffffffff0'));
  const mem = GuestMemory.allocate(4096);
  assert.throws(() => mem.check(Number.MAX_SAFE_INTEGER - 4, 16), isMemErr('unsafe-address'));
});

test('several regions translate independently and a copy may straddle two adjacent ones', () => {
  const a = new SharedArrayBuffer(4096);
  const b = new SharedArrayBuffer(8192);
  const mem = new GuestMemory([
    { guestAddr: 0x10000, buffer: b, byteOffset: 4096, length: 4096 },
    { guestAddr: 0x0f000, buffer: a },
  ]);
  assert.deepEqual(mem.regionTable.map((r) => r.guestAddr), [0x0f000, 0x10000]);
  const src = Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  mem.copyIn(0x10000 - 32, src); // half in each region
  assert.equal(new Uint8Array(a)[4096 - 32], 1);
  assert.equal(new Uint8Array(b)[4096 + 31], 64);
  const out = new Uint8Array(64);
  mem.copyOut(0x10000 - 32, out);
  assert.deepEqual(out, src);
  // A single view cannot straddle regions of different buffers…
  assert.throws(() => mem.bytes(0x10000 - 8, 16), isMemErr('split-view'));
  // …but may straddle adjacent regions that are adjacent windows of one buffer.
  const one = new GuestMemory([
    { guestAddr: 0, buffer: b, byteOffset: 0, length: 4096 },
    { guestAddr: 4096, buffer: b, byteOffset: 4096, length: 4096 },
  ]);
  const v = one.u32Array(4096 - 8, 4);
  v[3] = 0xdeadbeef;
  assert.equal(one.readU32(4096 + 4), 0xdeadbeef);
  // A hole is not memory.
  assert.throws(() => mem.check(0x11000 - 8, 16), isMemErr('out-of-range'));
});

test('overlapping, misaligned or oversized regions are refused', () => {
  const buf = new SharedArrayBuffer(8192);
  assert.throws(() => new GuestMemory([{ guestAddr: 0, buffer: buf, length: 4096 }, { guestAddr: 2048, buffer: buf, byteOffset: 4096, length: 4096 }]), isMemErr('overlap'));
  assert.throws(() => new GuestMemory([{ guestAddr: 3, buffer: buf }]), isMemErr('bad-region'));
  assert.throws(() => new GuestMemory([{ guestAddr: 0, buffer: buf, byteOffset: 4096, length: 8192 }]), isMemErr('bad-region'));
});

test('replacing the region table bumps the generation and old addresses stop resolving', () => {
  const mem = GuestMemory.allocate(4096);
  const g = mem.generation;
  mem.readU32(0);
  mem.setRegions([{ guestAddr: 0x100000, buffer: new SharedArrayBuffer(4096) }]);
  assert.equal(mem.generation, g + 1);
  assert.throws(() => mem.readU32(0), isMemErr('out-of-range'));
  mem.writeU32(0x100000, 7);
  assert.equal(mem.readU32(0x100000), 7);
});

test('atomic u16/u32 accesses require natural alignment and see plain writes', () => {
  const mem = GuestMemory.allocate(4096);
  mem.writeU16(10, 0xbeef);
  assert.equal(mem.atomicLoad16(10), 0xbeef);
  mem.atomicStore32(12, 0xdeadbeef);
  assert.equal(mem.readU32(12), 0xdeadbeef);
  assert.throws(() => mem.atomicLoad16(11), isMemErr('misaligned'));
  assert.throws(() => mem.atomicLoad32(14), isMemErr('misaligned'));
});

test('a plain ArrayBuffer works for single-thread use', () => {
  const mem = GuestMemory.allocate(1024, { shared: false });
  assert.equal(mem.regionTable[0]!.shared, false);
  mem.atomicStore16(0, 5);
  assert.equal(mem.readU16(0), 5);
});

test('the arena aligns, runs out with a clear error, and the pool recycles buffers', () => {
  const mem = GuestMemory.allocate(65536);
  const arena = new Arena(mem, 0x1000, 0x2000);
  assert.equal(arena.alloc(10), 0x1000);
  assert.equal(arena.alloc(16, 64), 0x1040);
  assert.throws(() => arena.alloc(0x3000), isMemErr('out-of-space'));
  const pool = new BufferPool(arena, 1500, 4);
  const got = [pool.get(), pool.get(), pool.get(), pool.get()];
  assert.equal(new Set(got).size, 4);
  assert.equal(pool.get(), -1);
  pool.put(got[2]!);
  assert.equal(pool.get(), got[2]);
  pool.put(got[0]!);
  assert.throws(() => pool.put(got[0]!), isMemErr('bad-region'));
  for (const a of got) mem.check(a, 1500);
});

test('a FIFO pool hands buffers out in address order, then in the order they came back, and refuses double frees', () => {
  const mem = GuestMemory.allocate(1 << 20);
  const arena = new Arena(mem, 0x1000, 0x20000);
  const pool = new BufferPool(arena, 4096, 8, 64, 'fifo');
  const first = Array.from({ length: 8 }, () => pool.get());
  assert.deepEqual(first, first.map((_, i) => pool.base + i * 4096), 'address order');
  assert.equal(pool.get(), -1);
  // Returned in ring order 0..4, they come out 0..4 again (adjacent), after a wrap of the queue.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++) pool.put(first[i]!);
    assert.throws(() => pool.put(first[0]!), isMemErr('bad-region'));
    assert.equal(pool.available, 5);
    for (let i = 0; i < 5; i++) assert.equal(pool.get(), first[i]);
  }
  // Arbitrary order: whatever goes back comes out in the same order.
  for (const i of [6, 2, 7, 0]) pool.put(first[i]!);
  assert.deepEqual([pool.get(), pool.get(), pool.get(), pool.get(), pool.get()], [first[6], first[2], first[7], first[0], -1]);
});

test('check() answers the same inside the last-used region (its fast path) as the full lookup: bad arguments, ranges crossing out, replaced tables', () => {
  const mem = new GuestMemory([
    { guestAddr: 0x10000, buffer: new SharedArrayBuffer(4096) },
    { guestAddr: 0x11000, buffer: new SharedArrayBuffer(4096) },
  ]);
  mem.readU32(0x10000); // the first region is now the last used
  mem.check(0x10000, 4096);
  mem.check(0x10ff0, 0x20); // straddles into the adjacent region: covered
  assert.throws(() => mem.check(0x10000 + 0.5, 4), isMemErr('out-of-range'));
  assert.throws(() => mem.check(0x10000, 1.5), isMemErr('out-of-range'));
  assert.throws(() => mem.check(0x10000, -1), isMemErr('out-of-range'));
  assert.throws(() => mem.check(0x11ff0, 0x20), isMemErr('out-of-range'), 'past the last region');
  mem.setRegions([{ guestAddr: 0x20000, buffer: new SharedArrayBuffer(4096) }]);
  assert.throws(() => mem.check(0x10000, 4), isMemErr('out-of-range'), 'the old table no longer answers');
  mem.check(0x20000, 4096);
});
