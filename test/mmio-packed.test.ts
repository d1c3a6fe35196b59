// virtio-mmio with VIRTIO_F_RING_PACKED (virtio 1.2 §2.8, §4.2.2: QueueDesc/QueueDriver/QueueDevice
// are the descriptor ring and the two event suppression areas) and VIRTIO_F_IN_ORDER: a device
// that offers them (like QEMU's packed=on, in_order=on) and a driver that asks for them carry
// verified traffic inline and on a worker, on a queue size that is not a power of 2, and a save
// mid-stream restores the ring positions with their wrap counters without losing or duplicating
// a frame. A device that does not offer the packed ring is never driven with one.

import test from 'node:test';
import assert from 'node:assert/strict';
import { VirtioF } from '../src/net/features.js';
import { PackedDriverQueue } from '../src/virtqueue/index.js';
import { GUEST_NET_FEATURES, Reg, Status, makeSeqFrame, type MmioSnapshot, type VirtioNetState } from '../src/transport/index.js';
import { guestFor, makeRig, pump, waitDevice } from './support/mmio-rig.js';

const PACKED_DEVICE = { packed: true, inOrder: true, queueSize: 256 };

for (const inOrder of [false, true]) {
  for (const worker of [false, true]) {
    const where = `${worker ? 'on its own worker' : 'inline'}${inOrder ? ', IN_ORDER' : ''}`;
    test(`a device ${where} negotiates the packed ring through MMIO, carries verified traffic over wraps and survives a reset`, async () => {
      const rig = await makeRig({ worker, device: PACKED_DEVICE });
      try {
        const want = GUEST_NET_FEATURES | VirtioF.RING_PACKED | (inOrder ? VirtioF.IN_ORDER : 0n);
        const g = guestFor(rig, { wantFeatures: want, queueSize: 200 });
        const features = g.init();
        assert.ok(features & VirtioF.RING_PACKED);
        assert.equal((features & VirtioF.IN_ORDER) !== 0n, inOrder);
        assert.ok(g.net!.txq instanceof PackedDriverQueue && g.net!.rxq instanceof PackedDriverQueue, 'the driver runs packed queues');
        assert.equal(g.net!.txq.size, 200);
        rig.t.write(Reg.QueueSel, 1, 4);
        assert.equal(rig.t.read(Reg.QueueReady, 4), 1, 'a size that is not a power of 2 (200) is accepted for a packed ring');
        g.refillRx();
        // 2000 frames go round a 200-entry ring many times: both wrap counters flip repeatedly.
        assert.equal(pump(rig, g, 0, 2000, 0), 2000);
        g.reset();
        g.init();
        g.refillRx();
        assert.equal(pump(rig, g, 0, 500, 0), 500, 'the reset device starts again at position 0, wrap counter 1');
        assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
      } finally {
        await rig.close();
      }
    });
  }
}

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';
  test(`a packed-ring device ${where} saved mid-stream and restored resumes at the saved positions and wrap counters without losing or duplicating a frame`, async () => {
    const rig = await makeRig({ worker, device: PACKED_DEVICE });
    const g = guestFor(rig, { queueSize: 128, wantFeatures: GUEST_NET_FEATURES | VirtioF.RING_PACKED | VirtioF.IN_ORDER });
    g.init();
    g.refillRx();
    let next = pump(rig, g, 0, 500, 0);
    g.refillRx();
    let sent = next;
    const end = performance.now() + 10_000;
    while (sent < next + 180 && performance.now() < end) {
      if (g.send(makeSeqFrame(g.mac, sent, 64 + (sent % 1400)))) {
        sent++;
        g.flushTx();
      } else waitDevice(rig, 5);
    }
    assert.equal(sent, next + 180);
    let waiting = 0;
    for (let i = 0; i < 200 && waiting < 180 - 128; i++) {
      waitDevice(rig, 5);
      const snap0 = await rig.t.save();
      waiting = (snap0.backend!.device as VirtioNetState).replay.length;
      rig.t.resume();
    }
    assert.equal(waiting, 52, 'frames wait for rx buffers in the device');
    const snapshot = JSON.parse(JSON.stringify(await rig.t.save())) as MmioSnapshot;
    for (const q of snapshot.backend!.queues) {
      assert.equal(q?.ring, 'packed');
      assert.equal(typeof q?.availPosition, 'number', 'the snapshot carries the ring position and its wrap counter');
    }
    await rig.close();

    const rig2 = await makeRig({ worker, mem: rig.mem, restore: snapshot, device: PACKED_DEVICE });
    try {
      assert.equal(rig2.t.status & Status.DRIVER_OK, Status.DRIVER_OK);
      g.bus = rig2.t;
      next = pump(rig2, g, sent, sent + 700, next);
      assert.equal(next, sent + 700, 'every frame arrived once, in order, across the restore');
    } finally {
      await rig2.close();
    }
  });
}

test('a driver cannot set up a packed ring on a device that does not offer it: the size rule of the split ring applies', async () => {
  const rig = await makeRig({ device: { queueSize: 256 } });
  try {
    const g = guestFor(rig, { wantFeatures: GUEST_NET_FEATURES | VirtioF.RING_PACKED, queueSize: 256 });
    const features = g.init();
    assert.equal(features & VirtioF.RING_PACKED, 0n, 'not offered, not negotiated');
    assert.ok(!(g.net!.txq instanceof PackedDriverQueue));
    g.refillRx();
    assert.equal(pump(rig, g, 0, 200, 0), 200);
  } finally {
    await rig.close();
  }
});
