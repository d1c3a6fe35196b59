import test from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../src/memory/index.js';
import { DeviceQueue, DriverQueue, SplitLayout, VirtqueueError, readFromChain, writeToChain } from '../src/virtqueue/index.js';

function pair(size: number, opts: { eventIdx?: boolean; indirect?: boolean } = {}) {
  const mem = GuestMemory.allocate(1 << 20);
  const layout = SplitLayout.packedAt(size, 0);
  const indirectArea = 0x40000;
  const drv = new DriverQueue<number>(mem, layout, { ...opts, indirectArea, indirectMaxSegments: 8 });
  const dev = new DeviceQueue(mem, layout, opts);
  return { mem, layout, drv, dev, data: 0x80000 };
}

const isVq = (code: string) => (e: unknown) => e instanceof VirtqueueError && e.code === code;

test('a chain added by the driver reaches the device with its bytes, and the used length comes back', () => {
  const { mem, drv, dev, data } = pair(8);
  mem.copyIn(data, new TextEncoder().encode('hello'));
  const head = drv.add([{ addr: data, len: 5 }], [{ addr: data + 64, len: 32 }], 42);
  assert.ok(head >= 0);
  assert.equal(dev.pop(), null, 'not visible before publish');
  assert.equal(drv.publish(), 1);
  const c = dev.pop()!;
  const buf = new Uint8Array(5);
  readFromChain(mem, c, buf);
  assert.equal(new TextDecoder().decode(buf), 'hello');
  const n = writeToChain(mem, c, new TextEncoder().encode('world!'));
  dev.addUsed(c.head, n);
  dev.publishUsed();
  const u = drv.reap()!;
  assert.deepEqual([u.head, u.len, u.token], [head, 6, 42]);
  assert.equal(drv.reap(), null);
  assert.equal(drv.numFree, 8);
});

test('indirect chains take one ring descriptor and parse identically on the device', () => {
  const { drv, dev, data } = pair(4, { indirect: true });
  const segs = [1, 2, 3].map((i) => ({ addr: data + 256 * i, len: 100 + i }));
  for (let k = 0; k < 4; k++) assert.ok(drv.add(segs, [{ addr: data, len: 50 }], k) >= 0);
  assert.equal(drv.numFree, 0);
  assert.equal(drv.stats.indirectChains, 4);
  drv.publish();
  for (let k = 0; k < 4; k++) {
    const c = dev.pop()!;
    assert.equal(c.indirect, true);
    assert.deepEqual(c.lens.slice(0, c.count), [101, 102, 103, 50]);
    dev.addUsed(c.head, 50);
  }
  dev.publishUsed();
  for (let k = 0; k < 4; k++) assert.equal(drv.reap()!.token, k);
  assert.equal(drv.numFree, 4);
});

test('a failed add for lack of descriptors forces the next kick even if the device suppressed kicks', () => {
  const { drv, dev, data } = pair(2);
  dev.disableNotification();
  assert.ok(drv.add1(data, 10, false, 1) >= 0);
  drv.publish();
  assert.equal(drv.kickNeeded(), false, 'device set NO_NOTIFY');
  assert.equal(drv.add([{ addr: data, len: 1 }, { addr: data, len: 1 }], [], 2), -1);
  assert.equal(drv.kickNeeded(), true);
  assert.equal(drv.kickNeeded(), false);
});

test('event idx kicks: the driver kicks only when avail_event is crossed by the added batch', () => {
  const { drv, dev, data } = pair(16, { eventIdx: true });
  dev.enableNotification(); // avail_event = 0
  drv.add1(data, 8, false, 0);
  drv.publish();
  assert.equal(drv.kickNeeded(), true, 'window [0,1) contains 0');
  drv.add1(data, 8, false, 1);
  drv.add1(data, 8, false, 2);
  drv.publish();
  assert.equal(drv.kickNeeded(), false, 'avail_event still 0: window [1,3) misses it');
  while (dev.pop()) { /* drain */ }
  dev.enableNotification(); // avail_event = 3
  drv.add1(data, 8, false, 3);
  drv.add1(data, 8, false, 4);
  drv.publish();
  assert.equal(drv.kickNeeded(), true, 'window [3,5) contains 3');
});

test('delayed interrupts ask for an interrupt after three quarters of the outstanding buffers', () => {
  const { drv, dev, data, mem, layout } = pair(16, { eventIdx: true });
  for (let i = 0; i < 8; i++) drv.add1(data, 8, true, i);
  drv.publish();
  assert.equal(drv.enableInterruptsDelayed(), false);
  assert.equal(mem.readU16(layout.availAddr + 4 + 2 * 16), 6, 'used_event = 0 + 3/4 × 8');
  for (let i = 0; i < 6; i++) {
    dev.addUsed(dev.pop()!.head, 0);
    dev.publishUsed();
    assert.equal(dev.needsNotification(), i === 6 || i === 0 ? true : false);
  }
  dev.addUsed(dev.pop()!.head, 0);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), true, 'used idx passes 6');
});

test('interrupt suppression in flags mode and the enable re-check', () => {
  const { drv, dev, data } = pair(8);
  drv.disableInterrupts();
  drv.add1(data, 8, true, 0);
  drv.publish();
  dev.addUsed(dev.pop()!.head, 4);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), false);
  assert.equal(drv.enableInterrupts(), true, 'a used element is already waiting');
  assert.equal(drv.reap()!.len, 4);
  assert.equal(drv.enableInterrupts(), false);
});

test('a used element naming a chain that is not outstanding breaks the driver queue', () => {
  const { drv, dev, data } = pair(8);
  drv.add1(data, 8, true, 0);
  drv.publish();
  dev.pop();
  dev.addUsed(5, 0); // head 5 was never handed out
  dev.publishUsed();
  assert.throws(() => drv.reap(), isVq('used-id-not-head'));
  assert.equal(drv.broken, true);
  assert.throws(() => drv.add1(data, 8, true, 1), isVq('queue-broken'));
});

test('a used length larger than the chain\'s writable bytes breaks the driver queue', () => {
  const { drv, dev, data } = pair(8);
  drv.add1(data, 8, true, 0);
  drv.publish();
  dev.addUsed(dev.pop()!.head, 9);
  dev.publishUsed();
  assert.throws(() => drv.reap(), isVq('used-len-too-large'));
});

test('a used id outside the queue and a used.idx jump are caught', () => {
  const a = pair(8);
  a.drv.add1(a.data, 8, true, 0);
  a.drv.publish();
  a.dev.pop();
  a.dev.addUsed(0, 0);
  a.mem.writeU32(a.layout.usedAddr + 4, 99); // device scribbles the id
  a.dev.publishUsed();
  assert.throws(() => a.drv.reap(), isVq('used-id-out-of-range'));
  const b = pair(8);
  b.mem.writeU16(b.layout.usedAddr + 2, 100);
  assert.throws(() => b.drv.reap(), isVq('used-idx-jump'));
});

test('fetch counters: availFetches/usedFetches move only on index reads that found new entries; popsSinceFetch/reapsSinceFetch count the entries taken after that read', () => {
  const { drv, dev, data } = pair(16);
  const add = (n: number): void => {
    for (let i = 0; i < n; i++) drv.add1(data + i * 64, 64, false, i);
    drv.publish();
  };
  add(3);
  const a0 = dev.availFetches;
  const popped: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = dev.pop()!;
    popped.push(dev.popsSinceFetch);
    dev.addUsed(c.head, 0);
  }
  assert.equal(dev.availFetches, a0 + 1, 'one fresh read of avail.idx for the three');
  assert.deepEqual(popped, [0, 1, 2]);
  assert.equal(dev.pop(), null);
  assert.equal(dev.availFetches, a0 + 1, 'an empty re-read is not a fetch');
  add(2);
  dev.addUsed(dev.pop()!.head, 0);
  assert.equal(dev.availFetches, a0 + 2);
  assert.equal(dev.popsSinceFetch, 0, 'the first pop after the new fetch');
  dev.publishUsed();
  const u0 = drv.usedFetches;
  const reaped: number[] = [];
  while (drv.reap() !== null) reaped.push(drv.reapsSinceFetch);
  assert.equal(drv.usedFetches, u0 + 1);
  assert.deepEqual(reaped, [0, 1, 2, 3]);
  // The entry left from the second publish: the same fetch, one pop after it.
  dev.addUsed(dev.pop()!.head, 0);
  assert.equal(dev.popsSinceFetch, 1);
  dev.publishUsed();
  assert.ok(drv.reap() !== null);
  assert.equal(drv.reapsSinceFetch, 0);
  // Across the u16 wrap of the ring indices.
  for (let round = 0; round < 20_000; round++) {
    add(4);
    for (let i = 0; i < 4; i++) {
      const c = dev.pop()!;
      assert.equal(dev.popsSinceFetch, i);
      dev.addUsed(c.head, 0);
    }
    dev.publishUsed();
    for (let i = 0; i < 4; i++) {
      assert.ok(drv.reap() !== null);
      assert.equal(drv.reapsSinceFetch, i);
    }
  }
});

test('ring words are written only when they differ, so a word a peer scribbled over is still written with the right value', () => {
  // Both sides skip writing a descriptor, avail entry or used element that already holds the
  // value (the line then stays shared); the check must be against memory, not a shadow.
  const { mem, layout, drv, dev, data } = pair(4);
  const scribble = (addr: number, bytes: number) => mem.copyIn(addr, new Uint8Array(bytes).fill(0xa5));
  for (let round = 0; round < 12; round++) {
    // The same buffer each round: after the first lap every word already holds its value,
    // except in the rounds where the areas were scribbled over just before.
    if (round % 3 === 2) {
      scribble(layout.descAddr, 16 * 4); // the descriptor table
      scribble(layout.availAddr + 4, 2 * 4); // avail.ring[] (not flags and idx)
    }
    const head = drv.add1(data, 64, true, round);
    drv.publish();
    const c = dev.pop()!;
    assert.equal(c.head, head, `round ${round}: head`);
    assert.deepEqual([c.addrs[0], c.lens[0], c.count, c.writableBytes], [data, 64, 1, 64], `round ${round}: descriptor`);
    if (round % 3 === 1) scribble(layout.usedAddr + 4, 8 * 4); // used.ring[] (not flags and idx)
    dev.addUsed(c.head, round % 2);
    dev.publishUsed();
    const u = drv.reap()!;
    assert.deepEqual([u.head, u.len, u.token], [head, round % 2, round], `round ${round}: used element`);
  }
});
