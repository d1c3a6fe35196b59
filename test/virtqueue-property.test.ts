// Property tests (fast-check, seeded): random interleavings of driver adds and publishes, device
// pops, used pushes and publishes, and driver reaps, on random queue sizes, with and without
// event idx and indirect tables. Every buffer comes back exactly once with the length the
// device reported, no descriptor leaks, and the indices agree with a small reference model.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import { DescriptorChain, DeviceQueue, DriverQueue, SplitLayout, needEvent, u16Distance } from '../src/virtqueue/index.js';

const SEED = Number(process.env.VIRTQ_PROP_SEED ?? 20261125);
const RUNS = Number(process.env.VIRTQ_PROP_RUNS ?? 150);

type Op =
  | { kind: 'add'; readable: number[]; writable: number[] }
  | { kind: 'publish' }
  | { kind: 'pop' }
  | { kind: 'use'; lenFrac: number }
  | { kind: 'publishUsed' }
  | { kind: 'reap' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('add' as const), readable: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 3 }), writable: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 3 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'publish' as const }) },
  { weight: 4, arbitrary: fc.constant({ kind: 'pop' as const }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('use' as const), lenFrac: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'publishUsed' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'reap' as const }) },
);

test('random driver/device interleavings return every buffer once, leak nothing, and match the index model', () => {
  fc.assert(
    fc.property(
      fc.constantFrom(1, 2, 4, 8, 16, 64),
      fc.boolean(),
      fc.boolean(),
      fc.array(opArb, { minLength: 30, maxLength: 400, size: 'max' }),
      (size, eventIdx, indirect, ops) => {
        const mem = GuestMemory.allocate(1 << 20);
        const layout = SplitLayout.packedAt(size, 0);
        const drv = new DriverQueue<number>(mem, layout, { eventIdx, indirect, indirectArea: 0x40000, indirectMaxSegments: 8 });
        const dev = new DeviceQueue(mem, layout, { eventIdx, indirect });
        // Reference model.
        let nextToken = 0;
        const outstanding = new Map<number, { writable: number }>(); // token -> writable bytes
        const addedUnpublished: number[] = [];
        const availQueue: number[] = []; // published, not popped (tokens in order)
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
              if (op.readable.length + op.writable.length === 0) break;
              if (op.readable.length + op.writable.length > size) break; // §2.7.5.3.1: no chain longer than the queue
              const token = nextToken++;
              const head = drv.add(op.readable.map((len, i) => ({ addr: 0x80000 + 512 * i, len })), op.writable.map((len, i) => ({ addr: 0xa0000 + 512 * i, len })), token);
              if (head < 0) break;
              const writable = op.writable.reduce((a, b) => a + b, 0);
              outstanding.set(token, { writable });
              headToken.set(head, token);
              addedUnpublished.push(token);
              break;
            }
            case 'publish': {
              const n = drv.publish();
              assert.equal(n, addedUnpublished.length);
              availQueue.push(...addedUnpublished.splice(0));
              drv.kickNeeded();
              break;
            }
            case 'pop': {
              const c = dev.pop(chain);
              if (availQueue.length === 0) {
                assert.equal(c, null);
                break;
              }
              assert.ok(c);
              const token = availQueue.shift()!;
              assert.equal(headToken.get(c.head), token, 'device sees chains in avail order');
              assert.equal(c.writableBytes, outstanding.get(token)!.writable);
              inFlight.push({ head: c.head, token, writable: c.writableBytes });
              popped++;
              break;
            }
            case 'use': {
              if (inFlight.length === 0) break;
              // Complete out of order: pick by fraction.
              const k = Math.min(inFlight.length - 1, Math.floor(op.lenFrac * inFlight.length));
              const e = inFlight.splice(k, 1)[0]!;
              const len = Math.floor(op.lenFrac * e.writable);
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
          assert.equal(u16Distance(dev.nextUsed, 0), (reaped + usedQueue.length + usedUnpublished.length) & 0xffff);
        }
        // Drain everything and check for leaks.
        drv.publish();
        availQueue.push(...addedUnpublished.splice(0));
        let c;
        while ((c = dev.pop(chain)) !== null) inFlight.push({ head: c.head, token: headToken.get(c.head)!, writable: c.writableBytes });
        for (const e of inFlight) dev.addUsed(e.head, 0);
        dev.publishUsed();
        let u;
        while ((u = drv.reap()) !== null) assert.ok(outstanding.delete(u.token), 'drained buffer returned exactly once');
        assert.equal(drv.numFree, size, 'no descriptor leaked');
        assert.equal(drv.outstanding, 0);
        assert.equal(outstanding.size, 0, 'every buffer came back');
      },
    ),
    { seed: SEED, numRuns: RUNS, verbose: 1 },
  );
});

test('needEvent matches its definition over random u16 windows', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 0, max: 32768 }), fc.integer({ min: 0, max: 65535 }), (old, n, event) => {
      const newIdx = (old + n) & 0xffff;
      // event in [old, new) walking forward from old
      const inWindow = u16Distance(event, old) < n;
      assert.equal(needEvent(event, newIdx, old), inWindow);
    }),
    { seed: SEED, numRuns: 2000 },
  );
});
