// The MMIO virtio-net device runs NetDevice under the policy layer's DeviceLoop, inline (a
// non-blocking turn of the loop inside the QueueNotify write, timers met by polls at the loop's
// deadline) and on its own worker (the loop sleeping on the kick doorbell). Under two presets —
// 'vhost' (tx bh, event idx, one copy) and 'rfc-baseline' (kvm-71's tx timer with the ring-full
// heuristic, per-buffer interrupts, two copies) — every sequence-numbered frame must come back
// once, in order and intact; the preset must show in what the loop did; and a hostile ring must
// still end in DEVICE_NEEDS_RESET with a configuration interrupt, never a crash or a hang.

import test from 'node:test';
import assert from 'node:assert/strict';
import { Reg, Status, type VirtioNetState } from '../src/transport/index.js';
import { VIRTQ_DESC_F_NEXT, type DriverQueue } from '../src/virtqueue/index.js';
import { guestFor, makeRig, pump, waitNeedsReset, type MmioRig } from './support/mmio-rig.js';

const PRESETS = ['vhost', 'rfc-baseline'] as const;

async function deviceState(rig: MmioRig): Promise<VirtioNetState> {
  const snap = await rig.t.save();
  rig.t.resume();
  return snap.backend!.device as VirtioNetState;
}

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';
  for (const preset of PRESETS) {
    test(`the MMIO virtio-net device ${where} under '${preset}' hands back every sequence-numbered frame once, in order and intact`, async () => {
      const rig = await makeRig({ worker, device: { preset } });
      try {
        const g = guestFor(rig);
        g.init();
        g.refillRx();
        // Sizes from 60 to 1514 bytes; pump throws on a lost, repeated, reordered or corrupted frame.
        assert.equal(pump(rig, g, 0, 4000, 0, (s) => 60 + ((s * 389) % 1455)), 4000);
        const st = await deviceState(rig);
        assert.equal(st.stats.txFrames, 4000);
        assert.equal(st.stats.rxFrames, 4000);
        assert.equal(st.stats.txDropped + st.stats.rxDropped, 0);
        assert.equal(st.loop!.policy, preset);
        const c = st.loop!.counters;
        if (preset === 'rfc-baseline') {
          // kvm-71: a kick arms the tx timer (its expiry flushes), and host → guest takes a staging copy.
          assert.ok(c.timerArms! > 0 && c.timerFires! > 0, `tx timer armed ${c.timerArms} and fired ${c.timerFires} times`);
          assert.equal(st.stats.rxStagedFrames, 4000);
        } else {
          // tx=bh: kicks flush at once, no timer; one copy into the guest.
          assert.equal(c.timerArms, 0);
          assert.equal(st.stats.rxStagedFrames, 0);
        }
        assert.ok(c.interrupts! > 0, 'the loop raised used-buffer interrupts');
        assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
      } finally {
        await rig.close();
      }
    });

    test(`a hostile ring on the MMIO virtio-net device ${where} under '${preset}' yields DEVICE_NEEDS_RESET and a config interrupt, and a reset recovers`, async () => {
      const rig = await makeRig({ worker, device: { preset } });
      try {
        const g = guestFor(rig, { queueSize: 64 });
        g.init();
        g.refillRx();
        assert.equal(pump(rig, g, 0, 200, 0), 200);
        const awaitBroken = (): void => {
          waitNeedsReset(rig);
          assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
          assert.equal(rig.t.status & Status.DRIVER_OK, Status.DRIVER_OK, 'the device stays live for the driver to reset');
          assert.equal(rig.t.read(Reg.InterruptStatus, 4) & 2, 2, 'configuration change notification (§2.1.2)');
        };

        // 1: avail.idx jumps past the ring (more chains than the queue holds).
        const tx = g.net.txq as DriverQueue<number>; // split: the test writes its ring directly
        tx.ring.storeAvailIdx((tx.ring.loadAvailIdx() + 1000) & 0xffff);
        rig.t.write(Reg.QueueNotify, 1, 4);
        awaitBroken();

        // 2: after a reset, a descriptor chain that points back at its own head.
        g.init();
        assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, 0);
        g.refillRx();
        assert.equal(pump(rig, g, 0, 100, 0), 100, 'the reset device carries traffic');
        const tx2 = g.net.txq as DriverQueue<number>; // split: the test writes its ring directly
        const head = 3;
        tx2.ring.setDesc(head, 0x20000, 64, VIRTQ_DESC_F_NEXT, head);
        const idx = tx2.ring.loadAvailIdx();
        tx2.ring.setAvailEntry(idx, head);
        tx2.ring.storeAvailIdx((idx + 1) & 0xffff);
        rig.t.write(Reg.QueueNotify, 1, 4);
        awaitBroken();

        // The device thread (or the emulator's) survived both: a reset brings it back again.
        g.init();
        g.refillRx();
        assert.equal(pump(rig, g, 0, 300, 0), 300);
        assert.deepEqual(rig.issues.filter((i) => i.code === 'device-failed'), []);
      } finally {
        await rig.close();
      }
    });
  }
}
