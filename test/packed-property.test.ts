// Property tests (fast-check, seeded) for the packed ring (virtio 1.2 §2.8) and IN_ORDER on both
// layouts: random interleavings of driver adds and publishes, device pops, used returns and
// publishes, and driver reaps, on random queue sizes (packed sizes need not be powers of 2),
// with and without event idx, indirect tables and IN_ORDER batching. Every buffer comes back
// exactly once with the length the device reported, no descriptor leaks, the indices agree with
// a reference model; and the wrap-counter arithmetic matches a step-by-step walk of the ring.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import {
  DescriptorChain,
  PACKED_START,
  WRAP_BIT,
  compactRingLayout,
  openDeviceQueue,
  openDriverQueue,
  packedAdvance,
  packedDistance,
  packedNeedEvent,
  packedRetreat,
  type RingKind,
} from '../src/virtqueue/index.js';

const SEED = Number(process.env.VIRTQ_PROP_SEED ?? 20261204);
const RUNS = Number(process.env.VIRTQ_PROP_RUNS ?? 150);

type Op =
  | { kind: 'add'; readable: number[]; writable: number[] }
  | { kind: 'publish' }
  | { kind: 'pop' }
  | { kind: 'use'; lenFrac: number; zero: boolean }
  | { kind: 'publishUsed' }
  | { kind: 'reap' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), readable: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 3 }), writable: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'pop' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('use' as const), lenFrac: fc.double({ min: 0, max: 1, noNaN: true }), zero: fc.boolean() }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'publishUsed' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'reap' as const }) },
);

for (const kind of ['packed', 'split'] as RingKind[]) {
  for (const inOrder of [false, true]) {
    if (kind === 'split' && !inOrder) continue; // virtqueue-property.test.ts covers it
    test(`${kind} ring${inOrder ? ' with IN_ORDER and batched used returns' : ''}: random interleavings return every buffer once, leak nothing, and match the model`, () => {
      const sizes = kind === 'packed' ? [1, 2, 3, 5, 8, 13, 64] : [1, 2, 4, 8, 16, 64];
      fc.assert(
        fc.property(fc.constantFrom(...sizes), fc.boolean(), fc.boolean(), fc.array(opArb, { minLength: 30, maxLength: 400, size: 'max' }), (size, eventIdx, indirect, ops) => {
          const mem = GuestMemory.allocate(1 << 20);
          const layout = compactRingLayout(kind, size, 0);
          const drv = openDriverQueue<number>(mem, layout, { eventIdx, indirect, indirectArea: 0x40000, indirectMaxSegments: 8, inOrder });
          const dev = openDeviceQueue(mem, layout, { eventIdx, indirect, inOrder, batchUsed: inOrder });
          let nextToken = 0;
          const outstanding = new Map<number, { writable: number }>();
          const addedUnpublished: number[] = [];
          const availQueue: number[] = [];
          const inFlight: { head: number; token: number; writable: number }[] = [];
          const usedUnpublished: { token: number; len: number }[] = [];
          const usedQueue: { token: number; len: number }[] = [];
          const headToken = new Map<number, number>();
          let popped = 0;
          let reaped = 0;
          const chain = new DescriptorChain();
          for (const op of ops) {
            switch (op.kind) {
              case 'add': {
                const total = op.readable.length + op.writable.length;
                if (total === 0 || total > size) break;
                const token = nextToken++;
                const head = drv.add(op.readable.map((len, i) => ({ addr: 0x80000 + 512 * i, len })), op.writable.map((len, i) => ({ addr: 0xa0000 + 512 * i, len })), token);
                if (head < 0) break;
                outstanding.set(token, { writable: op.writable.reduce((a, b) => a + b, 0) });
                headToken.set(head, token);
                addedUnpublished.push(token);
                break;
              }
              case 'publish': {
                assert.equal(drv.publish(), addedUnpublished.length);
                availQueue.push(...addedUnpublished.splice(0));
                drv.kickNeeded();
                break;
              }
              case 'pop': {
                if (kind === 'packed') assert.equal(dev.pending(), availQueue.length, 'pending counts the published chains');
                const c = dev.pop(chain);
                if (availQueue.length === 0) {
                  assert.equal(c, null);
                  break;
                }
                assert.ok(c);
                const token = availQueue.shift()!;
                assert.equal(headToken.get(c.head), token, 'device sees chains in the order they were made available');
                assert.equal(c.writableBytes, outstanding.get(token)!.writable);
                inFlight.push({ head: c.head, token, writable: c.writableBytes });
                popped++;
                break;
              }
              case 'use': {
                if (inFlight.length === 0) break;
                const k = inOrder ? 0 : Math.min(inFlight.length - 1, Math.floor(op.lenFrac * inFlight.length));
                const e = inFlight.splice(k, 1)[0]!;
                const len = op.zero ? 0 : Math.floor(op.lenFrac * e.writable);
                dev.addUsed(e.head, len);
                usedUnpublished.push({ token: e.token, len });
                break;
              }
              case 'publishUsed': {
                assert.equal(dev.publishUsed(), usedUnpublished.length);
                usedQueue.push(...usedUnpublished.splice(0));
                dev.needsNotification();
                break;
              }
              case 'reap': {
                const u = drv.reap();
                if (usedQueue.length === 0) {
                  assert.equal(u, null);
                  break;
                }
                assert.ok(u);
                const exp = usedQueue.shift()!;
                assert.equal(u.token, exp.token);
                assert.equal(u.len, exp.len);
                assert.ok(outstanding.delete(exp.token), 'each buffer comes back exactly once');
                reaped++;
                break;
              }
            }
            assert.equal(dev.nextAvail, popped & 0xffff);
            assert.equal(dev.nextUsed, (reaped + usedQueue.length + usedUnpublished.length) & 0xffff);
          }
          drv.publish();
          let c;
          while ((c = dev.pop(chain)) !== null) inFlight.push({ head: c.head, token: headToken.get(c.head)!, writable: c.writableBytes });
          for (const e of inFlight) dev.addUsed(e.head, 0);
          dev.publishUsed();
          let u;
          while ((u = drv.reap()) !== null) assert.ok(outstanding.delete(u.token), 'drained buffer returned exactly once');
          assert.equal(drv.numFree, size, 'no descriptor leaked');
          assert.equal(drv.outstanding, 0);
          assert.equal(outstanding.size, 0, 'every buffer came back');
        }),
        { seed: SEED, numRuns: RUNS, verbose: 1 },
      );
    });
  }
}

// ---- wrap-counter arithmetic (§2.8.1) ----

/** The reference: walk one slot at a time, flipping the counter past the last slot. */
function walk(pw: number, n: number, size: number): number {
  let pos = pw & 0x7fff;
  let wrap = pw & WRAP_BIT;
  for (let i = 0; i < n; i++) {
    pos++;
    if (pos === size) {
      pos = 0;
      wrap ^= WRAP_BIT;
    }
  }
  return pos | wrap;
}

const sizeArb = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 32768 }));
const pwArb = (size: number) => fc.tuple(fc.integer({ min: 0, max: size - 1 }), fc.boolean()).map(([p, w]) => p | (w ? WRAP_BIT : 0));

test('wrap counters: advance matches a slot-by-slot walk, retreat inverts it, distance measures it', () => {
  fc.assert(
    fc.property(
      sizeArb.chain((size) => fc.tuple(fc.constant(size), pwArb(size), fc.integer({ min: 0, max: size }))),
      ([size, pw, n]) => {
        const a = packedAdvance(pw, n, size);
        if (n <= 200) assert.equal(a, walk(pw, n, size));
        assert.equal(packedRetreat(a, n, size), pw);
        assert.equal(packedDistance(a, pw, size), n === 2 * size ? 0 : n);
        // Two full laps bring both the position and the counter back.
        assert.equal(packedAdvance(packedAdvance(pw, size, size), size, size), pw);
        assert.notEqual(packedAdvance(pw, size, size) & WRAP_BIT, pw & WRAP_BIT, 'one lap flips the counter');
      },
    ),
    { seed: SEED, numRuns: 3000 },
  );
});

test('wrap counters: the event check fires exactly when the published range passed over the event slot', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 40 }).chain((size) => fc.tuple(fc.constant(size), pwArb(size), fc.integer({ min: 0, max: size }), pwArb(size))),
      ([size, old, n, event]) => {
        const now = packedAdvance(old, n, size);
        let passed = false;
        let p = old;
        for (let i = 0; i < n; i++) {
          if (p === event) passed = true;
          p = walk(p, 1, size);
        }
        assert.equal(packedNeedEvent(event, now, old, size), passed);
      },
    ),
    { seed: SEED, numRuns: 3000 },
  );
  assert.equal(PACKED_START, WRAP_BIT, 'both counters start at 1 (§2.8.1)');
});
