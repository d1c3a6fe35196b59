// The device side against a hostile driver: one named regression per item of DESIGN.md's
// "Hostile input" list, then a seeded fuzz over thousands of random rings. Every case checks the
// typed error, the broken flag, and that no byte of guest memory outside the chain's writable
// buffers and the used ring changed.

import test from 'node:test';
import assert from 'node:assert/strict';
import { DescriptorChain, DeviceQueue, SplitLayout, VirtqueueError, writeToChain, usedRingBytes } from '../src/virtqueue/index.js';
import { GuestMemory } from '../src/memory/index.js';
import { F_INDIRECT, F_NEXT, F_WRITE, MockDriver } from './support/mock-driver.js';
import { makeRig } from './support/rig.js';

const CANARY = 0x5a;

function snapshot(mem: GuestMemory): Uint8Array {
  const r = mem.regionTable[0]!;
  return r.u8.slice();
}

/** Runs `setup`, snapshots memory, pops once and asserts the violation leaves memory untouched. */
function expectViolation(
  code: string,
  size: number,
  setup: (rig: ReturnType<typeof makeRig>) => void,
  opts: { indirect?: boolean } = {},
): void {
  const rig = makeRig(size, opts, 64 * 1024);
  rig.mem.fill(rig.dataBase, rig.memBytes - rig.dataBase, CANARY);
  setup(rig);
  const before = snapshot(rig.mem);
  assert.throws(() => rig.dev.pop(), (e: unknown) => e instanceof VirtqueueError && e.code === code && e.message.startsWith('queue 0'));
  assert.equal(rig.dev.broken, true);
  assert.equal(rig.dev.error?.code, code);
  assert.deepEqual(snapshot(rig.mem), before, 'no byte of guest memory changed');
  // A broken queue stays broken and does nothing: no hang, no write.
  assert.throws(() => rig.dev.pop(), (e: unknown) => e instanceof VirtqueueError && e.code === 'queue-broken');
  assert.throws(() => rig.dev.addUsed(0, 0), (e: unknown) => e instanceof VirtqueueError && e.code === 'queue-broken');
  assert.deepEqual(snapshot(rig.mem), before);
}

test('a chain that points back to its own head breaks the queue and writes nothing', () => {
  expectViolation('descriptor-loop', 8, ({ drv, dataBase }) => {
    drv.writeDesc(2, dataBase, 16, F_NEXT, 2);
    drv.makeAvailable(2);
  });
});

test('a chain longer than the queue (a two-descriptor cycle) is caught by the TTL', () => {
  expectViolation('descriptor-loop', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 16, F_NEXT, 1);
    drv.writeDesc(1, dataBase, 16, F_NEXT, 0);
    drv.makeAvailable(0);
  });
});

test('an avail ring entry naming a head outside the queue', () => {
  expectViolation('head-out-of-range', 8, ({ drv }) => drv.makeAvailable(8));
});

test('a next index outside the descriptor table', () => {
  expectViolation('next-out-of-range', 8, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 16, F_NEXT, 200);
    drv.makeAvailable(0);
  });
});

test('avail.idx jumping more than the queue size ahead', () => {
  expectViolation('avail-idx-jump', 8, ({ drv }) => drv.setAvailIdx(9));
  expectViolation('avail-idx-jump', 8, ({ drv }) => drv.setAvailIdx(0xffff)); // moving backwards = a huge jump
});

test('a buffer outside guest memory', () => {
  expectViolation('bad-address', 8, ({ drv, memBytes }) => {
    drv.writeDesc(0, memBytes - 8, 16, F_WRITE, 0);
    drv.makeAvailable(0);
  });
});

test('a buffer address beyond 2^53 and a buffer wrapping 2^64', () => {
  expectViolation('bad-address', 8, ({ drv }) => {
    drv.writeDesc(0, 1n << 60n, 16, 0, 0);
    drv.makeAvailable(0);
  });
  expectViolation('bad-address', 8, ({ drv }) => {
    drv.writeDesc(0, 0xffff_ffff_ffff_fff0n, 0x100, F_WRITE, 0);
    drv.makeAvailable(0);
  });
});

test('a chain whose lengths sum past 2^32 - 1', () => {
  // One lazily-committed 2 GiB region: the descriptors reuse it, so no page is touched.
  const size = 4;
  const gm = new GuestMemory([{ guestAddr: 0, buffer: new SharedArrayBuffer(2 ** 31) }]);
  const layout = SplitLayout.packedAt(size, 0);
  const dev = new DeviceQueue(gm, layout);
  const drv = new MockDriver(gm, size, layout.descAddr, layout.availAddr, layout.usedAddr);
  drv.writeDesc(0, 0x10000, 0x7fff0000, F_NEXT, 1);
  drv.writeDesc(1, 0x10000, 0x7fff0000, F_NEXT, 2);
  drv.writeDesc(2, 0x10000, 0x20001, F_WRITE, 0);
  drv.makeAvailable(0);
  assert.throws(() => dev.pop(), (e: unknown) => e instanceof VirtqueueError && e.code === 'chain-too-large' && e.context.index === 2);
  assert.equal(dev.broken, true);
});

test('nested indirect tables', () => {
  expectViolation('nested-indirect', 4, ({ drv, dataBase }) => {
    const t = dataBase + 0x100;
    drv.writeDescAt(t, 0, t, 16, F_INDIRECT, 0);
    drv.writeDesc(0, t, 16, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
});

/** Pops one chain whose indirect table sits at `tableAddr` and checks its two buffers. */
function popIndirectAt(rig: ReturnType<typeof makeRig>, tableAddr: number, buf: number): void {
  rig.drv.writeDescAt(tableAddr, 0, buf, 16, F_NEXT, 1);
  rig.drv.writeDescAt(tableAddr, 1, buf + 16, 32, F_WRITE, 0);
  rig.drv.writeDesc(0, tableAddr, 32, F_INDIRECT, 0);
  rig.drv.makeAvailable(0);
  const c = rig.dev.pop();
  assert.ok(c !== null);
  assert.equal(rig.dev.broken, false);
  assert.equal(c.indirect, true);
  assert.deepEqual([c.count, c.readableCount, c.addrs[0], c.lens[0], c.addrs[1], c.lens[1]], [2, 1, buf, 16, buf + 16, 32]);
}

test('an indirect table that is not 16-byte aligned is accepted (§2.7.5.3: only the queue areas have alignment rules)', () => {
  for (const misalign of [8, 4, 2, 1]) {
    const rig = makeRig(4, { indirect: true }, 64 * 1024);
    popIndirectAt(rig, rig.dataBase + 0x100 + misalign, rig.dataBase + 0x1000);
  }
});

test('an indirect table spanning two adjacent memory regions is accepted', () => {
  const size = 4;
  const a = new SharedArrayBuffer(0x4000);
  const b = new SharedArrayBuffer(0x4000);
  const mem = new GuestMemory([{ guestAddr: 0, buffer: a }, { guestAddr: 0x4000, buffer: b }]);
  const layout = SplitLayout.packedAt(size, 0);
  const dev = new DeviceQueue(mem, layout, { indirect: true });
  const drv = new MockDriver(mem, size, layout.descAddr, layout.availAddr, layout.usedAddr);
  popIndirectAt({ mem, layout, dev, drv, dataBase: 0x1000, memBytes: 0x8000 }, 0x4000 - 16, 0x5000);
});

test('a huge indirect table is refused by its length before it is read (§2.7.5.3.1: no chain longer than the Queue Size)', () => {
  // 16 Mi entries named on a queue of 8, far past the end of memory: refused by length alone.
  expectViolation('chain-too-long', 8, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 16 * 2 ** 24, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
  // One entry more than the queue size.
  expectViolation('chain-too-long', 8, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 16 * 9, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
  // Direct descriptors before the table count too: 2 + 3 > 4.
  expectViolation('chain-too-long', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 16, F_NEXT, 1);
    drv.writeDesc(1, dataBase, 16, F_NEXT, 2);
    drv.writeDesc(2, dataBase + 0x100, 48, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
});

test('an indirect table of exactly the queue size is accepted', () => {
  const rig = makeRig(8, { indirect: true }, 64 * 1024);
  const t = rig.dataBase + 0x100;
  for (let k = 0; k < 8; k++) rig.drv.writeDescAt(t, k, rig.dataBase + 0x1000 + 16 * k, 16, k < 7 ? F_NEXT : 0, k + 1);
  rig.drv.writeDesc(0, t, 16 * 8, F_INDIRECT, 0);
  rig.drv.makeAvailable(0);
  assert.equal(rig.dev.pop()?.count, 8);
});

test('an indirect table whose length is not a multiple of 16, or zero', () => {
  expectViolation('indirect-bad-length', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 24, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
  expectViolation('indirect-bad-length', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 0, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
});

test('INDIRECT when the feature was not negotiated, and INDIRECT together with NEXT', () => {
  expectViolation('indirect-not-negotiated', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 32, F_INDIRECT, 0);
    drv.makeAvailable(0);
  });
  expectViolation('indirect-with-next', 4, ({ drv, dataBase }) => {
    drv.writeDesc(0, dataBase, 32, F_INDIRECT | F_NEXT, 1);
    drv.makeAvailable(0);
  }, { indirect: true });
});

test('an indirect table that loops on itself', () => {
  expectViolation('descriptor-loop', 4, ({ drv, dataBase }) => {
    const t = dataBase + 0x100;
    drv.writeDescAt(t, 0, dataBase, 8, F_NEXT, 1);
    drv.writeDescAt(t, 1, dataBase, 8, F_NEXT, 0);
    drv.writeDesc(0, t, 32, F_INDIRECT, 0);
    drv.makeAvailable(0);
  }, { indirect: true });
});

test('a writable descriptor before a readable one', () => {
  expectViolation('readable-after-writable', 4, ({ drv, dataBase }) => {
    drv.writeChain(0, [{ addr: dataBase, len: 8, write: true }, { addr: dataBase + 8, len: 8 }]);
    drv.makeAvailable(0);
  });
});

test('a zero-length buffer', () => {
  expectViolation('zero-length-descriptor', 4, ({ drv, dataBase }) => {
    drv.writeChain(0, [{ addr: dataBase, len: 8 }, { addr: dataBase + 8, len: 0, write: true }]);
    drv.makeAvailable(0);
  });
});

test('a broken queue leaves another queue on the same memory working', () => {
  const mem = GuestMemory.allocate(1 << 16);
  const l0 = SplitLayout.packedAt(8, 0);
  const l1 = SplitLayout.packedAt(8, 0x2000);
  const q0 = new DeviceQueue(mem, l0, { index: 0 });
  const q1 = new DeviceQueue(mem, l1, { index: 1 });
  const d0 = new MockDriver(mem, 8, l0.descAddr, l0.availAddr, l0.usedAddr);
  const d1 = new MockDriver(mem, 8, l1.descAddr, l1.availAddr, l1.usedAddr);
  d0.writeDesc(0, 0x8000, 16, F_NEXT, 0);
  d0.makeAvailable(0);
  d1.writeDesc(0, 0x8000, 16, F_WRITE, 0);
  d1.makeAvailable(0);
  assert.throws(() => q0.pop(), (e: unknown) => e instanceof VirtqueueError && e.context.queue === 0);
  const c = q1.pop()!;
  q1.addUsed(c.head, 16);
  q1.publishUsed();
  assert.equal(d1.usedIdx(), 1);
  assert.equal(q1.broken, false);
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

test('fuzz: thousands of random rings never escape a typed error, hang, or write outside writable buffers', () => {
  const seed = Number(process.env.VIRTQ_FUZZ_SEED ?? 0x5eed);
  const iterations = Number(process.env.VIRTQ_FUZZ_ITERATIONS ?? 3000);
  const rnd = mulberry32(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const memBytes = 32 * 1024;
  const sizes = [1, 2, 4, 8, 16, 32];
  const codes = new Map<string, number>();
  let chainsOk = 0;
  for (let it = 0; it < iterations; it++) {
    const size = sizes[int(sizes.length)]!;
    const indirect = rnd() < 0.5;
    const eventIdx = rnd() < 0.5;
    const mem = GuestMemory.allocate(memBytes);
    const layout = SplitLayout.packedAt(size, 0);
    const u8 = mem.regionTable[0]!.u8;
    // Random bytes everywhere, then a biased-valid descriptor table so parsing goes deep.
    for (let i = 0; i < memBytes; i++) u8[i] = int(256);
    const drv = new MockDriver(mem, size, layout.descAddr, layout.availAddr, layout.usedAddr);
    const randAddr = (): number | bigint => {
      const r = rnd();
      if (r < 0.85) return 0x2000 + int(memBytes - 0x2000);
      if (r < 0.9) return memBytes + int(1 << 20);
      if (r < 0.95) return BigInt(int(2 ** 31)) << 32n;
      return 0xffff_ffff_ffff_ff00n + BigInt(int(256));
    };
    const tableEntries = (n: number, base: number) => {
      for (let i = 0; i < n; i++) {
        let flags = 0;
        if (rnd() < 0.5) flags |= F_NEXT;
        if (rnd() < 0.4) flags |= F_WRITE;
        if (rnd() < 0.08) flags |= F_INDIRECT;
        const len = rnd() < 0.05 ? 0 : rnd() < 0.1 ? int(2 ** 32) : 1 + int(512);
        const next = rnd() < 0.9 ? int(n) : int(65536);
        drv.writeDescAt(base, i, randAddr(), flags & F_INDIRECT ? 16 * (1 + int(4)) - (rnd() < 0.1 ? 8 : 0) : len, flags, next);
      }
    };
    tableEntries(size, layout.descAddr);
    for (let t = 0; t < 4; t++) tableEntries(8, 0x2000 + 0x100 * t); // plausible indirect tables
    for (let i = 0; i < size; i++) mem.writeU16(layout.availAddr + 4 + 2 * i, rnd() < 0.9 ? int(size) : int(65536));
    mem.writeU16(layout.availAddr + 2, rnd() < 0.9 ? int(size + 1) : int(65536));
    mem.writeU16(layout.usedAddr + 2, 0);
    const before = u8.slice();
    const dev = new DeviceQueue(mem, layout, { indirect, eventIdx });
    const allowed = new Uint8Array(memBytes); // bytes the device may change
    allowed.fill(1, layout.usedAddr, layout.usedAddr + usedRingBytes(size));
    const chain = new DescriptorChain();
    let pops = 0;
    try {
      for (;;) {
        const c = dev.pop(chain);
        if (c === null) break;
        assert.ok(++pops <= size, 'never more chains than the queue size per pass');
        for (let k = c.readableCount; k < c.count; k++) allowed.fill(1, c.addrs[k]!, c.addrs[k]! + c.lens[k]!);
        const n = writeToChain(mem, c, new Uint8Array(Math.min(c.writableBytes, 600)).fill(0xee));
        dev.addUsed(c.head, n);
        chainsOk++;
      }
      dev.publishUsed();
      dev.needsNotification();
      dev.enableNotification();
    } catch (e) {
      if (!(e instanceof VirtqueueError)) {
        assert.fail(`seed ${seed} iteration ${it}: untyped exception ${String(e)}`);
      }
      assert.equal(dev.broken, true, `seed ${seed} iteration ${it}: error without broken flag`);
      codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
    }
    for (let i = 0; i < memBytes; i++) {
      if (u8[i] !== before[i] && allowed[i] === 0) {
        assert.fail(`seed ${seed} iteration ${it}: byte at 0x${i.toString(16)} changed outside writable buffers and the used ring`);
      }
    }
  }
  // The fuzz must reach both good chains and a variety of violations to mean anything.
  assert.ok(chainsOk > 100, `only ${chainsOk} valid chains`);
  assert.ok(codes.size >= 8, `only ${codes.size} violation kinds: ${[...codes.keys()].join(', ')}`);
});
