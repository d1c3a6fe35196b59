import test from 'node:test';
import assert from 'node:assert/strict';
import { DescriptorChain, readFromChain, writeToChain, needEvent, DEVICE_QUEUE_STATE_WORDS, DeviceQueue } from '../src/virtqueue/index.js';
import { F_INDIRECT, F_NEXT, F_WRITE } from './support/mock-driver.js';
import { makeRig } from './support/rig.js';

test('a single readable descriptor pops as one readable buffer', () => {
  const { dev, drv, dataBase, mem } = makeRig(8);
  mem.copyIn(dataBase, Uint8Array.of(1, 2, 3, 4));
  drv.writeDesc(3, dataBase, 4, 0, 0);
  drv.makeAvailable(3);
  const c = dev.pop()!;
  assert.equal(c.head, 3);
  assert.equal(c.readableCount, 1);
  assert.equal(c.writableCount, 0);
  assert.equal(c.readableBytes, 4);
  const out = new Uint8Array(4);
  assert.equal(readFromChain(mem, c, out), 4);
  assert.deepEqual([...out], [1, 2, 3, 4]);
  assert.equal(dev.pop(), null);
});

test('a chain of readable then writable descriptors keeps order and the device writes only the writable part', () => {
  const { dev, drv, dataBase, mem } = makeRig(8);
  drv.writeChain(0, [
    { addr: dataBase, len: 10 },
    { addr: dataBase + 100, len: 6 },
    { addr: dataBase + 200, len: 8, write: true },
    { addr: dataBase + 300, len: 8, write: true },
  ]);
  drv.makeAvailable(0);
  const c = dev.pop()!;
  assert.deepEqual([c.readableCount, c.writableCount, c.readableBytes, c.writableBytes], [2, 2, 16, 16]);
  mem.fill(dataBase + 300 + 8, 8, 0xaa); // canary after the last writable buffer
  const n = writeToChain(mem, c, Uint8Array.from({ length: 20 }, (_, i) => i + 1));
  assert.equal(n, 16, 'only 16 writable bytes exist');
  assert.equal(mem.readU8(dataBase + 200), 1);
  assert.equal(mem.readU8(dataBase + 307), 16);
  assert.equal(mem.readU8(dataBase + 308), 0xaa);
  dev.addUsed(c.head, n);
  assert.equal(dev.publishUsed(), 1);
  assert.equal(drv.usedIdx(), 1);
  assert.deepEqual(drv.usedElem(0), { id: 0, len: 16 });
});

test('an indirect table is followed when negotiated', () => {
  const { dev, drv, dataBase } = makeRig(4, { indirect: true });
  const table = dataBase + 0x1000;
  drv.writeDescAt(table, 0, dataBase, 12, F_NEXT, 1);
  drv.writeDescAt(table, 1, dataBase + 64, 100, F_NEXT | F_WRITE, 2);
  drv.writeDescAt(table, 2, dataBase + 256, 100, F_WRITE, 0);
  drv.writeDesc(2, table, 48, F_INDIRECT, 0);
  drv.makeAvailable(2);
  const c = dev.pop()!;
  assert.equal(c.indirect, true);
  assert.deepEqual([c.head, c.readableCount, c.writableCount, c.writableBytes], [2, 1, 2, 200]);
  assert.deepEqual(c.addrs.slice(0, c.count), [dataBase, dataBase + 64, dataBase + 256]);
});

test('direct descriptors followed by one indirect descriptor form one chain', () => {
  const { dev, drv, dataBase } = makeRig(4, { indirect: true });
  const table = dataBase + 0x1000;
  drv.writeDescAt(table, 0, dataBase + 512, 64, F_WRITE, 0);
  drv.writeDesc(0, dataBase, 12, F_NEXT, 1);
  drv.writeDesc(1, table, 16, F_INDIRECT, 0);
  drv.makeAvailable(0);
  const c = dev.pop()!;
  assert.deepEqual([c.readableCount, c.writableCount, c.descriptors], [1, 1, 3]);
});

for (const size of [1, 2, 256, 32768]) {
  test(`both indices wrap past 65535 with queue size ${size}`, () => {
    const { dev, drv, dataBase, mem, layout } = makeRig(size);
    const rounds = 65536 + 300;
    const batch = Math.min(size, 4);
    let popped = 0;
    let d = 0;
    while (popped < rounds) {
      for (let k = 0; k < batch; k++) {
        const desc = (d + k) % size;
        drv.writeDesc(desc, dataBase + 64 * (desc % 64), 32, F_WRITE, 0);
        drv.makeAvailable(desc, false);
      }
      drv.publish();
      let c: DescriptorChain | null;
      let got = 0;
      while ((c = dev.popReused()) !== null) {
        assert.equal(c.head, (d + got) % size);
        dev.addUsed(c.head, got + 1);
        got++;
      }
      assert.equal(got, batch);
      assert.equal(dev.publishUsed(), batch, 'one publish per batch');
      for (let k = 0; k < batch; k++) {
        const e = drv.usedElem((popped + k) & 0xffff);
        assert.equal(e.id, (d + k) % size);
        assert.equal(e.len, k + 1);
      }
      popped += batch;
      d = (d + batch) % size;
      assert.equal(drv.usedIdx(), popped & 0xffff);
    }
    assert.equal(dev.nextAvail, rounds & 0xffff);
    assert.equal(dev.nextUsed, rounds & 0xffff);
    assert.equal(mem.readU16(layout.availAddr + 2), rounds & 0xffff);
  });
}

test('used entries are invisible to the driver until the batch is published', () => {
  const { dev, drv, dataBase } = makeRig(8);
  for (let i = 0; i < 3; i++) {
    drv.writeDesc(i, dataBase, 8, F_WRITE, 0);
    drv.makeAvailable(i);
  }
  for (let i = 0; i < 3; i++) dev.addUsed(dev.pop()!.head, 8);
  assert.equal(drv.usedIdx(), 0);
  assert.equal(dev.publishUsed(), 3);
  assert.equal(drv.usedIdx(), 3);
  assert.equal(dev.publishUsed(), 0);
});

test('vring_need_event: notify iff the event index lies in [old, new)', () => {
  // Spec §2.7.10 cases, including wrap-around.
  assert.equal(needEvent(0, 1, 0), true);
  assert.equal(needEvent(1, 1, 0), false);
  assert.equal(needEvent(5, 10, 0), true);
  assert.equal(needEvent(9, 10, 0), true);
  assert.equal(needEvent(10, 10, 0), false);
  assert.equal(needEvent(0xffff, 2, 0xfffe), true);
  assert.equal(needEvent(1, 2, 0xfffe), true);
  assert.equal(needEvent(2, 2, 0xfffe), false);
  assert.equal(needEvent(0xfffd, 2, 0xfffe), false);
  assert.equal(needEvent(3, 3, 3), false, 'empty window never notifies');
});

test('event idx: the device interrupts only when used_event is crossed, over the whole published window', () => {
  const { dev, drv, dataBase } = makeRig(16, { eventIdx: true });
  const cycle = (n: number) => {
    for (let i = 0; i < n; i++) {
      drv.writeDesc(i, dataBase, 8, F_WRITE, 0);
      drv.makeAvailable(i);
    }
    for (let i = 0; i < n; i++) dev.addUsed(dev.pop()!.head, 0);
    dev.publishUsed();
    return dev.needsNotification();
  };
  drv.setUsedEvent(0);
  assert.equal(cycle(1), true, 'first decision after reset always notifies');
  drv.setUsedEvent(5); // driver wants an interrupt when used idx passes 5
  assert.equal(cycle(3), false, 'published 1..4: event 5 not crossed');
  assert.equal(cycle(3), true, 'published 4..7 crosses 5');
  assert.equal(cycle(2), false);
});

test('event idx: enabling kicks writes avail_event = next avail and reports waiting work', () => {
  const { dev, drv, dataBase } = makeRig(8, { eventIdx: true });
  assert.equal(dev.enableNotification(), false);
  assert.equal(drv.availEvent(), 0);
  drv.writeDesc(0, dataBase, 8, 0, 0);
  drv.makeAvailable(0);
  dev.disableNotification();
  assert.equal(dev.enableNotification(), true, 'work published before enabling is reported');
  dev.pop();
  assert.equal(dev.enableNotification(), false);
  assert.equal(drv.availEvent(), 1);
  assert.equal(drv.usedFlags(), 0, 'flags stay 0 with event idx');
});

test('flags mode: NO_NOTIFY toggles and NO_INTERRUPT suppresses interrupts', () => {
  const { dev, drv, dataBase } = makeRig(8);
  dev.disableNotification();
  assert.equal(drv.usedFlags(), 1);
  assert.equal(dev.enableNotification(), false);
  assert.equal(drv.usedFlags(), 0);
  drv.writeDesc(0, dataBase, 8, 0, 0);
  drv.makeAvailable(0);
  dev.addUsed(dev.pop()!.head, 0);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), true);
  drv.setAvailFlags(1);
  drv.writeDesc(1, dataBase, 8, 0, 0);
  drv.makeAvailable(1);
  dev.addUsed(dev.pop()!.head, 0);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), false);
  assert.equal(dev.driverSuppressesInterrupts(), true);
});

test('notify-on-empty interrupts when the ring drains even if the driver suppressed interrupts', () => {
  const { dev, drv, dataBase } = makeRig(8, { notifyOnEmpty: true });
  drv.setAvailFlags(1);
  for (let i = 0; i < 2; i++) {
    drv.writeDesc(i, dataBase, 8, 0, 0);
    drv.makeAvailable(i);
  }
  const a = dev.pop()!;
  const b = dev.pop()!;
  dev.addUsed(a.head, 0);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), false, 'one chain still in flight');
  dev.addUsed(b.head, 0);
  dev.publishUsed();
  assert.equal(dev.needsNotification(), true, 'nothing available, nothing in flight');
});

test('snapshot and restore mid-stream continue without losing or repeating a chain', () => {
  const { dev, drv, dataBase, mem, layout } = makeRig(8, { eventIdx: true });
  for (let i = 0; i < 6; i++) {
    drv.writeDesc(i, dataBase + 16 * i, 16, F_WRITE, 0);
    drv.makeAvailable(i);
  }
  for (let i = 0; i < 3; i++) dev.addUsed(dev.pop()!.head, 1);
  dev.publishUsed();
  dev.needsNotification();
  const snap = structuredClone(dev.snapshot());
  assert.deepEqual([snap.nextAvail, snap.nextUsed, snap.inFlight, snap.broken], [3, 3, 0, false]);
  const dev2 = DeviceQueue.fromSnapshot(mem, layout, snap);
  const heads: number[] = [];
  let c;
  while ((c = dev2.pop()) !== null) {
    heads.push(c.head);
    dev2.addUsed(c.head, 2);
  }
  dev2.publishUsed();
  assert.deepEqual(heads, [3, 4, 5]);
  assert.equal(drv.usedIdx(), 6);
  assert.deepEqual(drv.usedElem(3), { id: 3, len: 2 });
});

test('state kept in a shared block lets a second DeviceQueue object continue the first one\'s work', () => {
  const { mem, layout, drv, dataBase } = makeRig(8);
  const block = new Int32Array(new SharedArrayBuffer(4 * DEVICE_QUEUE_STATE_WORDS));
  const a = new DeviceQueue(mem, layout, { stateBlock: block });
  a.resetState();
  const b = new DeviceQueue(mem, layout, { stateBlock: block });
  for (let i = 0; i < 4; i++) {
    drv.writeDesc(i, dataBase, 8, 0, 0);
    drv.makeAvailable(i);
  }
  assert.equal(a.pop()!.head, 0);
  assert.equal(b.pop()!.head, 1, 'b sees a\'s next-avail index');
  a.addUsed(0, 0);
  b.addUsed(1, 0);
  a.publishUsed();
  assert.equal(drv.usedIdx(), 2);
  assert.equal(b.inFlight, 0);
});

test('unpop gives popped chains back so the next pops return them again, and refuses more than are in flight', () => {
  const { dev, drv, dataBase } = makeRig(8);
  for (let i = 0; i < 3; i++) {
    drv.writeDesc(i, dataBase + i * 64, 64, F_WRITE, 0);
    drv.makeAvailable(i);
  }
  const heads = [dev.pop()!.head, dev.pop()!.head];
  assert.deepEqual(heads, [0, 1]);
  assert.equal(dev.inFlight, 2);
  dev.unpop(2);
  assert.equal(dev.inFlight, 0);
  assert.deepEqual([dev.pop()!.head, dev.pop()!.head, dev.pop()!.head], [0, 1, 2]);
  assert.equal(drv.usedIdx(), 0, 'nothing reached the used ring');
  assert.throws(() => dev.unpop(4), /unpop\(4\) with 3 chains in flight/);
});

test('enableNotificationAfter asks for a kick only past the given avail index and reports buffers added since', () => {
  const { dev, drv, dataBase } = makeRig(8, { eventIdx: true });
  drv.writeDesc(0, dataBase, 64, F_WRITE, 0);
  drv.makeAvailable(0);
  dev.pop();
  dev.unpop(1); // the one buffer is too small for the frame: wait for more
  const starvedAt = dev.availIdx();
  assert.equal(dev.enableNotificationAfter(starvedAt), false, 'no new buffers yet');
  assert.equal(drv.availEvent(), starvedAt, 'avail_event set to the current avail.idx (kick on the next add)');
  drv.writeDesc(1, dataBase + 64, 64, F_WRITE, 0);
  drv.makeAvailable(1);
  assert.equal(dev.enableNotificationAfter(starvedAt), true, 'a buffer was added after the starvation point');
});
