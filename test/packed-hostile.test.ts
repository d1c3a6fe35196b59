// The packed ring (virtio 1.2 §2.8) against a hostile driver and a hostile device: one named
// case per pattern (wrong wrap counters, buffer id reuse, id out of range, chains longer than the
// queue, bad indirect tables, buffers outside memory), each checking the typed error, the broken
// flag and that no byte of guest memory changed; the event suppression structures; then a
// seeded fuzz over thousands of random packed rings.

import test from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../src/memory/index.js';
import {
  DescriptorChain,
  PackedDeviceQueue,
  PackedDriverQueue,
  PackedLayout,
  VirtqueueError,
  packedRingBytes,
  openDeviceQueue,
  writeToChain,
} from '../src/virtqueue/index.js';
import { MockPackedDriver, P_AVAIL, P_INDIRECT, P_USED, P_WRITE } from './support/mock-packed-driver.js';

const MEM = 64 * 1024;
const DATA = 0x4000;
const CANARY = 0x5a;

function rig(size: number, opts: { indirect?: boolean; eventIdx?: boolean; inOrder?: boolean } = {}) {
  const mem = GuestMemory.allocate(MEM);
  mem.fill(DATA, MEM - DATA, CANARY);
  const layout = PackedLayout.compactAt(size, 0);
  const drv = new MockPackedDriver(mem, size, layout.descAddr, layout.driverEventAddr, layout.deviceEventAddr);
  const dev = new PackedDeviceQueue(mem, layout, opts);
  return { mem, layout, drv, dev };
}

const bytes = (mem: GuestMemory): Uint8Array => mem.regionTable[0]!.u8.slice();

function expectViolation(code: string, size: number, setup: (r: ReturnType<typeof rig>) => void, opts: { indirect?: boolean } = {}): void {
  const r = rig(size, opts);
  setup(r);
  const before = bytes(r.mem);
  assert.throws(() => r.dev.pop(), (e: unknown) => e instanceof VirtqueueError && e.code === code && e.message.startsWith('queue 0'));
  assert.equal(r.dev.broken, true);
  assert.equal(r.dev.error?.code, code);
  assert.deepEqual(bytes(r.mem), before, 'no byte of guest memory changed');
  assert.throws(() => r.dev.pop(), (e: unknown) => e instanceof VirtqueueError && e.code === 'queue-broken');
  assert.deepEqual(bytes(r.mem), before);
}

test('a head made available with the wrong wrap counter is not available: nothing is read or written until it is marked right (§2.8.1)', () => {
  const r = rig(4);
  r.drv.addChain(0, [{ addr: DATA, len: 64 }], { headWrap: 0 }); // AVAIL=0, USED=1: the next lap's mark
  const before = bytes(r.mem);
  assert.equal(r.dev.pending(), 0);
  assert.equal(r.dev.pop(), null);
  assert.equal(r.dev.broken, false);
  assert.deepEqual(bytes(r.mem), before);
  // The same slot with AVAIL and USED equal (what a used descriptor looks like) is not available either.
  r.mem.writeU16(r.layout.descAddr + 14, P_AVAIL | P_USED);
  assert.equal(r.dev.pop(), null);
  // Marked with the driver's real counter, it is taken.
  r.mem.writeU16(r.layout.descAddr + 14, P_AVAIL);
  const c = r.dev.pop();
  assert.ok(c);
  assert.equal(c.head, 0);
  assert.equal(c.readableBytes, 64);
});

test('a buffer id reused while its chain is in flight breaks the queue', () => {
  expectViolation('buffer-id-in-use', 8, ({ drv, dev }) => {
    drv.addChain(3, [{ addr: DATA, len: 16 }]);
    assert.ok(dev.pop());
    drv.addChain(3, [{ addr: DATA + 16, len: 16 }]);
  });
});

test('a buffer id outside the queue size breaks the queue', () => {
  expectViolation('buffer-id-out-of-range', 8, ({ drv }) => drv.addChain(8, [{ addr: DATA, len: 16 }]));
});

test('the buffer id is taken from the chain\'s last descriptor (§2.8.6)', () => {
  const r = rig(8);
  r.drv.addChain(5, [{ addr: DATA, len: 16, id: 7 }, { addr: DATA + 64, len: 32, write: true }]);
  const c = r.dev.pop();
  assert.ok(c);
  assert.equal(c.head, 5);
  assert.equal(c.count, 2);
});

test('a chain longer than the queue (NEXT on every descriptor, round the ring) is refused', () => {
  expectViolation('chain-too-long', 4, ({ drv }) => {
    const bufs = Array.from({ length: 4 }, (_, i) => ({ addr: DATA + 64 * i, len: 16 }));
    drv.addChain(0, bufs);
    // The last descriptor keeps NEXT: the walk would run round the ring again.
    drv.mem.writeU16(drv.ringAddr + 16 * 3 + 14, drv.mem.readU16(drv.ringAddr + 16 * 3 + 14) | 1);
  });
});

test('a chain that runs into descriptors still in flight is refused', () => {
  expectViolation('chain-too-long', 4, ({ drv, dev }) => {
    drv.addChain(0, [{ addr: DATA, len: 16 }, { addr: DATA + 16, len: 16 }]);
    assert.ok(dev.pop());
    drv.addChain(1, [{ addr: DATA + 64, len: 16 }, { addr: DATA + 80, len: 16 }, { addr: DATA + 96, len: 16 }]);
  });
});

test('bad indirect tables: not negotiated, with NEXT, bad length, nested, larger than the queue', () => {
  expectViolation('indirect-not-negotiated', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len: 32, flags: P_INDIRECT }]));
  expectViolation('indirect-with-next', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len: 32, flags: P_INDIRECT }, { addr: DATA + 64, len: 16 }]), { indirect: true });
  for (const len of [0, 24]) expectViolation('indirect-bad-length', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len, flags: P_INDIRECT }]), { indirect: true });
  expectViolation('nested-indirect', 8, ({ drv }) => {
    drv.writeDescAt(DATA, 0, DATA + 0x100, 16, 0, 0);
    drv.writeDescAt(DATA, 1, DATA + 0x200, 16, 0, P_INDIRECT);
    drv.addChain(0, [{ addr: DATA, len: 32, flags: P_INDIRECT }]);
  }, { indirect: true });
  // A table of more entries than the queue size: refused by its length, never read.
  expectViolation('chain-too-long', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len: 16 * 9, flags: P_INDIRECT }]), { indirect: true });
  expectViolation('bad-address', 8, ({ drv }) => drv.addChain(0, [{ addr: MEM - 16, len: 64, flags: P_INDIRECT }]), { indirect: true });
});

test('an indirect table is walked in order, its WRITE flags honoured and its NEXT/id ignored (§2.8.7)', () => {
  const r = rig(4, { indirect: true });
  r.drv.writeDescAt(DATA, 0, DATA + 0x100, 10, 99, 1);
  r.drv.writeDescAt(DATA, 1, DATA + 0x200, 20, 99, P_WRITE);
  r.drv.writeDescAt(DATA, 2, DATA + 0x300, 30, 99, P_WRITE);
  r.drv.addChain(2, [{ addr: DATA, len: 48, flags: P_INDIRECT }]);
  const c = r.dev.pop();
  assert.ok(c);
  assert.equal(c.head, 2);
  assert.equal(c.indirect, true);
  assert.deepEqual([c.readableBytes, c.writableBytes, c.count], [10, 50, 3]);
});

test('buffers outside guest memory, beyond 2^53, wrapping 2^64; zero length; readable after writable', () => {
  expectViolation('bad-address', 8, ({ drv }) => drv.addChain(0, [{ addr: MEM - 8, len: 16 }]));
  expectViolation('bad-address', 8, ({ drv }) => drv.addChain(0, [{ addr: 1n << 60n, len: 16 }]));
  expectViolation('bad-address', 8, ({ drv }) => drv.addChain(0, [{ addr: 0xffff_ffff_ffff_fff0n, len: 32 }]));
  expectViolation('zero-length-descriptor', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len: 0 }]));
  expectViolation('readable-after-writable', 8, ({ drv }) => drv.addChain(0, [{ addr: DATA, len: 16, write: true }, { addr: DATA + 16, len: 16 }]));
});

test('used descriptors: one per chain at the chain\'s first slot, flags = both bits of the device counter, WRITE only when data was written', () => {
  const r = rig(3);
  r.drv.addChain(1, [{ addr: DATA, len: 16 }, { addr: DATA + 64, len: 64, write: true }]);
  r.drv.addChain(0, [{ addr: DATA + 256, len: 16 }]);
  const a = r.dev.pop()!;
  const aId = a.head;
  const b = r.dev.pop()!;
  assert.equal(writeToChain(r.mem, a, new Uint8Array(100).fill(1)), 64, 'never past the writable buffers');
  assert.equal(r.mem.readU8(DATA + 64 + 64), CANARY);
  r.dev.addUsed(b.head, 0); // out of order: used descriptors go in completion order
  r.dev.addUsed(aId, 64);
  assert.equal(r.drv.usedAt(0, 1), null, 'nothing visible before publishUsed');
  assert.equal(r.dev.publishUsed(), 2);
  assert.deepEqual(r.drv.usedAt(0, 1), { id: 0, len: 0, flags: P_AVAIL | P_USED });
  // The second used descriptor goes at position 0 + 1 (chain 0 took one slot), then the position wraps.
  assert.deepEqual(r.drv.usedAt(1, 1), { id: 1, len: 64, flags: P_AVAIL | P_USED | P_WRITE });
  // Next lap: the driver's counter is 0 at position 0 (it wrapped after slot 2).
  r.drv.addChain(2, [{ addr: DATA, len: 16 }]);
  assert.equal(r.drv.wrap, 0);
  const c = r.dev.pop()!;
  assert.equal(c.head, 2);
  r.dev.addUsed(2, 0);
  r.dev.publishUsed();
  assert.deepEqual(r.drv.usedAt(0, 0), { id: 2, len: 0, flags: 0 }, 'a used mark with counter 0 clears both bits');
});

test('event suppression: the device honours DISABLE, ENABLE and a descriptor-specific event, and writes its own', () => {
  const r = rig(8, { eventIdx: true });
  r.drv.setDriverEvent(0, 1); // DISABLE
  for (let i = 0; i < 3; i++) r.drv.addChain(i, [{ addr: DATA + 64 * i, len: 16 }]);
  for (let i = 0; i < 3; i++) r.dev.addUsed(r.dev.pop()!.head, 0);
  r.dev.publishUsed();
  assert.equal(r.dev.needsNotification(), false, 'DISABLE');
  r.drv.setDriverEvent(0, 0); // ENABLE
  r.drv.addChain(3, [{ addr: DATA, len: 16 }]);
  r.dev.addUsed(r.dev.pop()!.head, 0);
  r.dev.publishUsed();
  assert.equal(r.dev.needsNotification(), true, 'ENABLE');
  // DESC: notify when the used position passes slot 6 of lap 1.
  r.drv.setDriverEvent(6 | 0x8000, 2);
  r.drv.addChain(4, [{ addr: DATA, len: 16 }]);
  r.dev.addUsed(r.dev.pop()!.head, 0);
  r.dev.publishUsed(); // used position 4 → 5
  assert.equal(r.dev.needsNotification(), false, 'event slot not reached');
  r.drv.addChain(5, [{ addr: DATA, len: 16 }]);
  r.drv.addChain(6, [{ addr: DATA, len: 16 }]);
  r.dev.addUsed(r.dev.pop()!.head, 0);
  r.dev.addUsed(r.dev.pop()!.head, 0);
  r.dev.publishUsed(); // 5 → 7 passes 6
  assert.equal(r.dev.needsNotification(), true, 'event slot passed');
  // Device side: disable writes DISABLE; enable with event idx asks at its next position.
  r.dev.disableNotification();
  assert.deepEqual(r.drv.deviceEvent(), { offWrap: 0, flags: 1 });
  assert.equal(r.dev.enableNotification(), false);
  assert.deepEqual(r.drv.deviceEvent(), { offWrap: 7 | 0x8000, flags: 2 });
  r.drv.addChain(7, [{ addr: DATA, len: 16 }]);
  r.dev.disableNotification();
  assert.equal(r.dev.enableNotification(), true, 'the re-check sees a chain that arrived meanwhile');
});

test('unpop gives chains back so the next pop returns them again, wrap counter included', () => {
  const r = rig(3);
  r.drv.addChain(0, [{ addr: DATA, len: 16 }, { addr: DATA + 16, len: 16 }]);
  r.drv.addChain(1, [{ addr: DATA + 32, len: 16 }]);
  assert.equal(r.dev.pending(), 2);
  r.dev.pop();
  r.dev.pop();
  assert.equal(r.dev.availPosition, 0); // wrapped: position 0, counter 0
  r.dev.unpop(2);
  assert.equal(r.dev.availPosition, 0x8000);
  assert.equal(r.dev.pending(), 2);
  assert.equal(r.dev.pop()!.head, 0);
  assert.equal(r.dev.pop()!.head, 1);
});

test('a snapshot restores positions, wrap counters and the chains in flight', () => {
  const r = rig(5);
  for (let i = 0; i < 4; i++) r.drv.addChain(i, [{ addr: DATA + 64 * i, len: 16 }]);
  for (let i = 0; i < 4; i++) r.dev.pop();
  r.dev.addUsed(1, 0);
  r.dev.addUsed(0, 0);
  r.dev.publishUsed();
  const s = JSON.parse(JSON.stringify(r.dev.snapshot()));
  const q = new PackedDeviceQueue(r.mem, r.layout);
  q.restore(s);
  assert.equal(q.inFlight, 2);
  q.addUsed(3, 0);
  q.addUsed(2, 0);
  q.publishUsed();
  assert.deepEqual(r.drv.usedAt(2, 1)?.id, 3);
  assert.deepEqual(r.drv.usedAt(3, 1)?.id, 2);
  assert.throws(() => q.addUsed(2, 0), (e: unknown) => e instanceof VirtqueueError && e.code === 'bad-argument');
});

// ---- the driver against a hostile device ----

function driverRig(size: number) {
  const mem = GuestMemory.allocate(MEM);
  const layout = PackedLayout.compactAt(size, 0);
  const drv = new PackedDriverQueue<number>(mem, layout);
  const writeUsed = (pos: number, id: number, len: number, wrap = 1): void => {
    mem.writeU32(layout.descAddr + 16 * pos + 8, len);
    mem.writeU16(layout.descAddr + 16 * pos + 12, id);
    mem.writeU16(layout.descAddr + 16 * pos + 14, (wrap ? P_AVAIL | P_USED : 0) | (len > 0 ? P_WRITE : 0));
  };
  return { mem, layout, drv, writeUsed };
}

test('the driver refuses a used descriptor naming an id outside the queue, an id not outstanding, or more bytes than the chain holds', () => {
  for (const [id, len, code] of [
    [9, 0, 'used-id-out-of-range'],
    [2, 0, 'used-id-not-head'],
    [0, 65, 'used-len-too-large'],
  ] as const) {
    const r = driverRig(8);
    assert.equal(r.drv.add([], [{ addr: DATA, len: 64 }], 7), 0);
    r.drv.publish();
    r.writeUsed(0, id, len);
    assert.throws(() => r.drv.reap(), (e: unknown) => e instanceof VirtqueueError && e.code === code);
    assert.equal(r.drv.broken, true);
    assert.throws(() => r.drv.reap(), (e: unknown) => e instanceof VirtqueueError && e.code === 'queue-broken');
  }
});

test('the driver ignores a used mark with the wrong wrap counter until the right one appears', () => {
  const r = driverRig(4);
  r.drv.add1(DATA, 16, false, 1);
  r.drv.publish();
  r.writeUsed(0, 0, 0, 0);
  assert.equal(r.drv.reap(), null);
  r.writeUsed(0, 0, 0, 1);
  assert.equal(r.drv.reap()?.token, 1);
});

// ---- seeded fuzz ----

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('fuzz: thousands of random packed rings never escape a typed error, hang, or write outside writable buffers and the ring', () => {
  const seed = Number(process.env.VIRTQ_FUZZ_SEED ?? 0x9ac4ed);
  const iterations = Number(process.env.VIRTQ_FUZZ_ITERATIONS ?? 3000);
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const memBytes = 32 * 1024;
  const sizes = [1, 2, 3, 4, 7, 8, 16, 32];
  const codes = new Map<string, number>();
  let chainsOk = 0;
  for (let it = 0; it < iterations; it++) {
    const size = sizes[int(sizes.length)]!;
    const indirect = rnd() < 0.5;
    const eventIdx = rnd() < 0.5;
    const mem = GuestMemory.allocate(memBytes);
    const layout = PackedLayout.compactAt(size, 0);
    const u8 = mem.regionTable[0]!.u8;
    for (let i = 0; i < memBytes; i++) u8[i] = int(256);
    const drv = new MockPackedDriver(mem, size, layout.descAddr, layout.driverEventAddr, layout.deviceEventAddr);
    const randAddr = (): number | bigint => {
      const r = rnd();
      if (r < 0.85) return 0x2000 + int(memBytes - 0x2000);
      if (r < 0.9) return memBytes + int(1 << 20);
      if (r < 0.95) return BigInt(int(2 ** 31)) << 32n;
      return 0xffff_ffff_ffff_ff00n + BigInt(int(256));
    };
    const randFlags = (): number => {
      let f = 0;
      if (rnd() < 0.5) f |= 1;
      if (rnd() < 0.4) f |= P_WRITE;
      if (rnd() < 0.08) f |= P_INDIRECT;
      // Mostly marked available for lap 1, sometimes the other marks (wrong counters, used).
      const m = rnd();
      f |= m < 0.8 ? P_AVAIL : m < 0.87 ? P_USED : m < 0.94 ? P_AVAIL | P_USED : 0;
      return f;
    };
    for (let i = 0; i < size; i++) {
      const flags = randFlags();
      const len = flags & P_INDIRECT ? 16 * (1 + int(4)) - (rnd() < 0.1 ? 8 : 0) : rnd() < 0.05 ? 0 : rnd() < 0.1 ? int(2 ** 32) : 1 + int(512);
      drv.writeDescAt(layout.descAddr, i, randAddr(), len, rnd() < 0.9 ? int(size) : int(65536), flags);
    }
    for (let t = 0; t < 4; t++) {
      for (let i = 0; i < 8; i++) drv.writeDescAt(0x2000 + 0x100 * t, i, randAddr(), rnd() < 0.05 ? 0 : 1 + int(512), int(65536), randFlags() & ~(P_AVAIL | P_USED));
    }
    const before = u8.slice();
    const dev = new PackedDeviceQueue(mem, layout, { indirect, eventIdx });
    const allowed = new Uint8Array(memBytes);
    // The device writes used descriptors' len/id/flags in the ring and its event structure.
    allowed.fill(1, layout.descAddr, layout.descAddr + packedRingBytes(size));
    allowed.fill(1, layout.deviceEventAddr, layout.deviceEventAddr + 4);
    const chain = new DescriptorChain();
    let pops = 0;
    try {
      for (let pass = 0; pass < 3; pass++) {
        dev.pending();
        for (;;) {
          const c = dev.pop(chain);
          if (c === null) break;
          assert.ok(++pops <= 3 * size, 'never more chains than the ring holds per pass');
          for (let k = c.readableCount; k < c.count; k++) allowed.fill(1, c.addrs[k]!, c.addrs[k]! + c.lens[k]!);
          const n = writeToChain(mem, c, new Uint8Array(Math.min(c.writableBytes, 600)).fill(0xee));
          if (rnd() < 0.8) dev.addUsed(c.head, n);
          chainsOk++;
        }
        dev.publishUsed();
        dev.needsNotification();
        dev.enableNotification();
      }
    } catch (e) {
      if (!(e instanceof VirtqueueError)) assert.fail(`seed ${seed} iteration ${it}: untyped exception ${String(e)}`);
      assert.equal(dev.broken, true, `seed ${seed} iteration ${it}: error without broken flag (${e.code})`);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
    for (let i = 0; i < memBytes; i++) {
      if (u8[i] !== before[i] && allowed[i] === 0) assert.fail(`seed ${seed} iteration ${it}: byte at 0x${i.toString(16)} changed outside writable buffers and the ring`);
    }
  }
  assert.ok(chainsOk > 100, `only ${chainsOk} valid chains`);
  assert.ok(codes.size >= 8, `only ${codes.size} violation kinds: ${[...codes.keys()].join(', ')}`);
  for (const c of ['buffer-id-in-use', 'buffer-id-out-of-range', 'chain-too-long']) assert.ok(codes.has(c), `the fuzz reached ${c}: ${[...codes.keys()].join(', ')}`);
});

test('publish counts only the chains added since the previous publish, with or without a kick decision between', () => {
  const mem = GuestMemory.allocate(MEM);
  const drv = new PackedDriverQueue<number>(mem, PackedLayout.compactAt(8, 0));
  drv.add1(DATA, 16, false, 1);
  assert.equal(drv.publish(), 1);
  drv.add1(DATA, 16, false, 2);
  drv.add1(DATA, 16, false, 3);
  assert.equal(drv.publish(), 2);
  assert.equal(drv.publish(), 0);
});

test('a packed device queue refuses a shared state block (the global-lock model is the split ring\'s)', () => {
  const mem = GuestMemory.allocate(MEM);
  assert.throws(() => openDeviceQueue(mem, PackedLayout.compactAt(8, 0), { stateBlock: new Int32Array(16) }), (e: unknown) => e instanceof VirtqueueError && e.code === 'bad-argument');
});
