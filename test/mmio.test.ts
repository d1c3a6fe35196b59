// Register-level tests of the virtio-mmio transport (virtio 1.2 §4.2): every register, the
// feature and queue selectors, the device status state machine (§2.1, §3.1.1), invalid accesses
// (wrong width, misaligned, out of range, read-only/write-only, queue setup while ready or after
// DRIVER_OK, bad ring addresses, sizes above QueueNumMax), interrupt status/ack, reset and config
// generation. The device behind the transport is the virtio-net device (NetDevice under the
// DeviceLoop) with a loopback port, inline.

import test from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import {
  DEFAULT_VENDOR_ID,
  InlineRunner,
  VIRTIO_NET_FEATURES,
  VirtioNetBackend,
  VirtioNetFrontend,
  MMIO_CONFIG_OFFSET,
  MMIO_MAGIC,
  MmioTransport,
  Reg,
  Status,
  TransportError,
  makeSeqFrame,
} from '../src/transport/index.js';
import { guestFor, makeRig, type MmioRig } from './support/mmio-rig.js';

const r = (rig: MmioRig, off: number): number => rig.t.read(off, 4);
const w = (rig: MmioRig, off: number, v: number): void => rig.t.write(off, v, 4);
const count = (rig: MmioRig, code: string): number => rig.issues.filter((i) => i.code === code).length;

/** ACK, DRIVER, accept `features`, FEATURES_OK; returns the status read back. */
function negotiate(rig: MmioRig, features: bigint): number {
  w(rig, Reg.Status, Status.ACKNOWLEDGE);
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER);
  for (let sel = 0; sel < 2; sel++) {
    w(rig, Reg.DriverFeaturesSel, sel);
    w(rig, Reg.DriverFeatures, Number((features >> BigInt(32 * sel)) & 0xffff_ffffn));
  }
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK);
  return r(rig, Reg.Status);
}

/** Programs queue `q` with `size` entries at `base` (16-aligned areas back to back). */
function setupQueue(rig: MmioRig, q: number, size: number, base: number, opts: { descAddr?: number; hi?: number } = {}): number {
  w(rig, Reg.QueueSel, q);
  w(rig, Reg.QueueNum, size);
  const desc = opts.descAddr ?? base;
  w(rig, Reg.QueueDescLow, desc);
  w(rig, Reg.QueueDescHigh, opts.hi ?? 0);
  w(rig, Reg.QueueDriverLow, base + 16 * size);
  w(rig, Reg.QueueDriverHigh, 0);
  w(rig, Reg.QueueDeviceLow, base + 16 * size + 4096);
  w(rig, Reg.QueueDeviceHigh, 0);
  w(rig, Reg.QueueReady, 1);
  return r(rig, Reg.QueueReady);
}

test('identity registers read the magic, version 2, the device id and the vendor id', async () => {
  const rig = await makeRig();
  assert.equal(r(rig, Reg.MagicValue), MMIO_MAGIC);
  assert.equal(r(rig, Reg.Version), 2);
  assert.equal(r(rig, Reg.DeviceID), 1);
  assert.equal(r(rig, Reg.VendorID), DEFAULT_VENDOR_ID);
  assert.equal(rig.issues.length, 0);
});

test('DeviceFeatures shows 32 offered bits per DeviceFeaturesSel value, and 0 past the offer', async () => {
  const rig = await makeRig();
  w(rig, Reg.DeviceFeaturesSel, 0);
  assert.equal(r(rig, Reg.DeviceFeatures), Number(VIRTIO_NET_FEATURES & 0xffff_ffffn));
  w(rig, Reg.DeviceFeaturesSel, 1);
  assert.equal(r(rig, Reg.DeviceFeatures), Number(VIRTIO_NET_FEATURES >> 32n));
  assert.equal(r(rig, Reg.DeviceFeatures) & 1, 1, 'VERSION_1 is bit 32');
  w(rig, Reg.DeviceFeaturesSel, 2);
  assert.equal(r(rig, Reg.DeviceFeatures), 0);
  w(rig, Reg.DeviceFeaturesSel, 0xffff_ffff);
  assert.equal(r(rig, Reg.DeviceFeatures), 0);
});

test('DriverFeatures assembles 64 bits through DriverFeaturesSel and is taken at FEATURES_OK', async () => {
  const rig = await makeRig();
  const want = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MAC;
  assert.equal(negotiate(rig, want) & Status.FEATURES_OK, Status.FEATURES_OK);
  assert.equal(rig.t.negotiatedFeatures, want);
  w(rig, Reg.DriverFeaturesSel, 0);
  w(rig, Reg.DriverFeatures, 0);
  assert.equal(count(rig, 'features-locked'), 1, 'DriverFeatures after FEATURES_OK is ignored');
  assert.equal(rig.t.negotiatedFeatures, want);
});

test('FEATURES_OK is refused without VERSION_1, with bits the device did not offer, and when the device rejects the set', async () => {
  const rig = await makeRig();
  assert.equal(negotiate(rig, NetF.MAC) & Status.FEATURES_OK, 0);
  assert.match(rig.t.lastRefusal ?? '', /VERSION_1/);
  w(rig, Reg.Status, 0);
  assert.equal(negotiate(rig, VirtioF.VERSION_1 | NetF.GUEST_UFO) & Status.FEATURES_OK, 0);
  assert.match(rig.t.lastRefusal ?? '', /did not offer/);
  assert.equal(count(rig, 'features-refused'), 2);

  // GUEST_TSO4 is offered, but without GUEST_CSUM accepted the net rules (§5.1.3.1) refuse it.
  w(rig, Reg.Status, 0);
  assert.equal(negotiate(rig, VirtioF.VERSION_1 | NetF.GUEST_TSO4) & Status.FEATURES_OK, 0);
  assert.match(rig.t.lastRefusal ?? '', /GUEST_TSO4 requires VIRTIO_NET_F_GUEST_CSUM/);
  w(rig, Reg.Status, 0);
  assert.equal(negotiate(rig, VirtioF.VERSION_1 | NetF.GUEST_TSO4 | NetF.GUEST_CSUM) & Status.FEATURES_OK, Status.FEATURES_OK);
});

test('status bits must be set in the order of §3.1.1 and can only be cleared by a reset', async () => {
  const rig = await makeRig();
  w(rig, Reg.Status, Status.DRIVER);
  assert.equal(r(rig, Reg.Status), 0, 'DRIVER before ACKNOWLEDGE is refused');
  w(rig, Reg.Status, Status.ACKNOWLEDGE);
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK);
  assert.equal(r(rig, Reg.Status), Status.ACKNOWLEDGE, 'DRIVER_OK before FEATURES_OK is refused');
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER);
  w(rig, Reg.Status, Status.DRIVER);
  assert.equal(r(rig, Reg.Status), Status.ACKNOWLEDGE | Status.DRIVER, 'clearing ACKNOWLEDGE is refused');
  assert.equal(count(rig, 'status-order'), 2);
  assert.equal(count(rig, 'status-cleared'), 1);
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FAILED);
  assert.equal(r(rig, Reg.Status), Status.ACKNOWLEDGE | Status.DRIVER | Status.FAILED, 'FAILED is accepted at any time');
  w(rig, Reg.Status, 0);
  assert.equal(r(rig, Reg.Status), 0);
});

test('accesses of the wrong width, misaligned or at undefined offsets are ignored, counted and read as 0', async () => {
  const rig = await makeRig();
  assert.equal(rig.t.read(Reg.MagicValue, 2), 0);
  assert.equal(rig.t.read(Reg.MagicValue, 1), 0);
  assert.equal(rig.t.read(Reg.MagicValue, 8), 0);
  rig.t.write(Reg.Status, Status.ACKNOWLEDGE, 1);
  assert.equal(r(rig, Reg.Status), 0, 'a byte write to Status is ignored');
  assert.equal(count(rig, 'bad-width'), 4);
  assert.equal(rig.t.read(Reg.Version + 1, 4), 0);
  rig.t.write(Reg.Status + 2, 1, 4);
  assert.equal(count(rig, 'unaligned'), 2);
  assert.equal(r(rig, 0x018), 0);
  assert.equal(r(rig, 0x0f8), 0);
  w(rig, 0x018, 5);
  assert.equal(rig.t.read(-4, 4), 0);
  assert.equal(rig.t.read(1.5, 4), 0);
  assert.equal(count(rig, 'out-of-range'), 5);
});

test('a write whose value is not a number (a bigint from a 64-bit access path) is ignored and counted, never thrown', async () => {
  const rig = await makeRig();
  const big = 1n as unknown as number; // what an emulator passing a 64-bit bus value hands in
  assert.doesNotThrow(() => rig.t.write(Reg.Status, big, 4));
  assert.doesNotThrow(() => rig.t.write(MMIO_CONFIG_OFFSET, big, 1));
  assert.doesNotThrow(() => rig.t.write(Reg.QueueNum, Symbol('x') as unknown as number, 4));
  assert.equal(r(rig, Reg.Status), 0, 'Status did not change');
  assert.equal(count(rig, 'bad-value'), 3);
  // A later well-formed write still works.
  w(rig, Reg.Status, Status.ACKNOWLEDGE);
  assert.equal(r(rig, Reg.Status), Status.ACKNOWLEDGE);
});

test('writes to read-only registers are ignored and reads of write-only registers return 0', async () => {
  const rig = await makeRig();
  for (const off of [Reg.MagicValue, Reg.Version, Reg.DeviceID, Reg.VendorID, Reg.DeviceFeatures, Reg.QueueNumMax, Reg.InterruptStatus, Reg.ConfigGeneration, Reg.SHMLenLow]) w(rig, off, 0x1234);
  assert.equal(count(rig, 'read-only'), 9);
  assert.equal(r(rig, Reg.MagicValue), MMIO_MAGIC);
  assert.equal(r(rig, Reg.DeviceID), 1);
  w(rig, Reg.QueueSel, 1);
  assert.equal(r(rig, Reg.QueueNumMax), 256, 'QueueNumMax write did not stick');
  for (const off of [Reg.DeviceFeaturesSel, Reg.DriverFeatures, Reg.DriverFeaturesSel, Reg.QueueSel, Reg.QueueNum, Reg.QueueNotify, Reg.InterruptACK, Reg.QueueDescLow, Reg.QueueDescHigh, Reg.QueueDriverLow, Reg.QueueDriverHigh, Reg.QueueDeviceLow, Reg.QueueDeviceHigh, Reg.SHMSel]) {
    assert.equal(r(rig, off), 0, `read of write-only 0x${off.toString(16)}`);
  }
  assert.equal(count(rig, 'write-only'), 14);
});

test('QueueNumMax follows QueueSel and reads 0 for a queue the device does not have', async () => {
  const rig = await makeRig({ device: { queueSize: 128 } });
  for (const q of [0, 1]) {
    w(rig, Reg.QueueSel, q);
    assert.equal(r(rig, Reg.QueueNumMax), 128);
    assert.equal(r(rig, Reg.QueueReady), 0);
  }
  w(rig, Reg.QueueSel, 2);
  assert.equal(r(rig, Reg.QueueNumMax), 0);
  assert.equal(r(rig, Reg.QueueReady), 0);
  w(rig, Reg.QueueNum, 64);
  w(rig, Reg.QueueReady, 1);
  assert.equal(count(rig, 'queue-not-available'), 2);
});

test('a queue refuses to become ready with a size above QueueNumMax, a size not a power of 2, misaligned or unmapped rings', async () => {
  const rig = await makeRig({ device: { queueSize: 128 } });
  negotiate(rig, VIRTIO_NET_FEATURES);
  assert.equal(setupQueue(rig, 0, 256, 0x10000), 0, 'size above QueueNumMax');
  assert.equal(setupQueue(rig, 0, 100, 0x10000), 0, 'size not a power of 2');
  assert.equal(setupQueue(rig, 0, 0, 0x10000), 0, 'size 0');
  assert.equal(setupQueue(rig, 0, 128, 0x10000, { descAddr: 0x10008 }), 0, 'descriptor table not 16-aligned');
  assert.match(rig.t.lastRefusal ?? '', /16-byte aligned/);
  assert.equal(setupQueue(rig, 0, 128, 0x10000, { descAddr: 0x7ff0_0000 }), 0, 'descriptor table outside guest memory');
  assert.equal(setupQueue(rig, 0, 128, 0x10000, { hi: 0x0030_0000 }), 0, 'address beyond 2^53');
  // Driver area misaligned by one byte.
  w(rig, Reg.QueueDescLow, 0x10000);
  w(rig, Reg.QueueDescHigh, 0);
  w(rig, Reg.QueueDriverLow, 0x10801);
  w(rig, Reg.QueueReady, 1);
  assert.equal(r(rig, Reg.QueueReady), 0, 'driver area not 2-aligned');
  assert.equal(count(rig, 'bad-queue-setup'), 7);
  assert.equal(setupQueue(rig, 0, 128, 0x10000), 1, 'a valid setup is accepted');
});

test('a ring area across two adjacent regions of one buffer is legal: ready at QueueReady and running after DRIVER_OK', async () => {
  const sab = new SharedArrayBuffer(1 << 20);
  // Guest RAM as two regions split inside queue 0's descriptor table (0x10000 + 128 × 16 bytes).
  const cut = 0x10800 - 0x400;
  const mem = new GuestMemory([
    { guestAddr: 0, buffer: sab, byteOffset: 0, length: cut },
    { guestAddr: cut, buffer: sab, byteOffset: cut, length: sab.byteLength - cut },
  ]);
  const rig = await makeRig({ mem, device: { queueSize: 128 } });
  negotiate(rig, VIRTIO_NET_FEATURES);
  assert.equal(setupQueue(rig, 0, 128, 0x10000), 1, rig.t.lastRefusal ?? '');
  assert.equal(setupQueue(rig, 1, 128, 0x20000), 1);
  w(rig, Reg.Status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  w(rig, Reg.QueueNotify, 1);
  assert.equal(r(rig, Reg.Status) & Status.DEVICE_NEEDS_RESET, 0, 'the device runs');
  assert.equal(count(rig, 'device-failed'), 0);
  await rig.close();
});

test('a ring area across regions of different buffers is refused at QueueReady with the reason, never at DRIVER_OK', async () => {
  const cut = 0x10800 - 0x400;
  const mem = new GuestMemory([
    { guestAddr: 0, buffer: new SharedArrayBuffer(cut) },
    { guestAddr: cut, buffer: new SharedArrayBuffer(1 << 20) },
  ]);
  const rig = await makeRig({ mem, device: { queueSize: 128 } });
  negotiate(rig, VIRTIO_NET_FEATURES);
  assert.equal(setupQueue(rig, 0, 128, 0x10000), 0);
  assert.match(rig.t.lastRefusal ?? '', /descriptor area .* spans two regions backed by different buffers/);
  await rig.close();
});

test('queue setup registers are locked while the queue is ready and after DRIVER_OK', async () => {
  const rig = await makeRig();
  negotiate(rig, VIRTIO_NET_FEATURES);
  assert.equal(setupQueue(rig, 0, 64, 0x10000), 1);
  w(rig, Reg.QueueNum, 32);
  w(rig, Reg.QueueDescLow, 0x20000);
  assert.equal(count(rig, 'queue-locked'), 2);
  w(rig, Reg.QueueReady, 0); // allowed before DRIVER_OK: the driver stops using the queue
  assert.equal(r(rig, Reg.QueueReady), 0);
  assert.equal(setupQueue(rig, 0, 64, 0x10000), 1);
  assert.equal(setupQueue(rig, 1, 64, 0x20000), 1);
  w(rig, Reg.Status, r(rig, Reg.Status) | Status.DRIVER_OK);
  assert.equal(r(rig, Reg.Status) & Status.DRIVER_OK, Status.DRIVER_OK);
  w(rig, Reg.QueueSel, 1);
  w(rig, Reg.QueueNum, 32);
  w(rig, Reg.QueueDeviceLow, 0x30000);
  w(rig, Reg.QueueReady, 1);
  assert.equal(count(rig, 'setup-after-driver-ok'), 3);
  assert.equal(r(rig, Reg.QueueReady), 1);
});

for (const worker of [false, true]) {
  test(`QueueReady=0 after DRIVER_OK reads back 0 and the device stops consuming the queue (§4.2.2), ${worker ? 'device on a worker' : 'inline device'}`, { timeout: 60_000 }, async () => {
    const rig = await makeRig({ worker });
    try {
      negotiate(rig, VIRTIO_NET_FEATURES);
      assert.equal(setupQueue(rig, 0, 64, 0x10000), 1);
      assert.equal(setupQueue(rig, 1, 64, 0x20000), 1);
      w(rig, Reg.Status, r(rig, Reg.Status) | Status.DRIVER_OK);
      w(rig, Reg.QueueSel, 1);
      w(rig, Reg.QueueReady, 0);
      assert.equal(r(rig, Reg.QueueReady), 0, 'reads back the last value written');
      assert.equal(count(rig, 'queue-stopped'), 1);
      assert.equal(count(rig, 'setup-after-driver-ok'), 0);
      assert.equal(r(rig, Reg.Status) & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET, 'the device asks for a reset');
      assert.notEqual(r(rig, Reg.InterruptStatus) & 2, 0, 'with a configuration change notification');
      // A chain made available on the stopped queue afterwards is never consumed.
      const txL = SplitLayout.modern(64, 0x20000, 0x20000 + 16 * 64, 0x20000 + 16 * 64 + 4096, 1);
      const txq = new DriverQueue<number>(rig.mem, txL, { index: 1 });
      rig.mem.fill(0x80000, 12 + 60, 0);
      txq.add([{ addr: 0x80000, len: 72 }], [], 0);
      txq.publish();
      w(rig, Reg.QueueNotify, 1);
      w(rig, Reg.QueueNotify, 0);
      await new Promise((res) => setTimeout(res, 300));
      assert.equal(rig.mem.atomicLoad16(txL.usedAddr + 2), 0, 'used.idx did not move');
      assert.equal(count(rig, 'notify-bad-queue'), 1);
      // The driver's reset brings the device back.
      w(rig, Reg.Status, 0);
      assert.equal(r(rig, Reg.Status), 0);
    } finally {
      await rig.close();
    }
  });
}

test('QueueNotify before DRIVER_OK or for a queue that is not ready is ignored and counted', async () => {
  const rig = await makeRig();
  w(rig, Reg.QueueNotify, 0);
  assert.equal(count(rig, 'notify-before-driver-ok'), 1);
  negotiate(rig, VIRTIO_NET_FEATURES);
  setupQueue(rig, 0, 64, 0x10000);
  w(rig, Reg.Status, r(rig, Reg.Status) | Status.DRIVER_OK);
  w(rig, Reg.QueueNotify, 1);
  w(rig, Reg.QueueNotify, 7);
  w(rig, Reg.QueueNotify, 0);
  assert.equal(count(rig, 'notify-bad-queue'), 2);
});

test('InterruptStatus holds used-buffer events until InterruptACK, driving the line up and down', async () => {
  const rig = await makeRig();
  const g = guestFor(rig);
  g.init();
  g.refillRx();
  assert.equal(r(rig, Reg.InterruptStatus), 0);
  g.send(makeSeqFrame(g.mac, 0, 100));
  g.flushTx();
  assert.equal(r(rig, Reg.InterruptStatus), 1, 'used buffer notification');
  assert.equal(rig.t.interruptAsserted, true);
  assert.deepEqual(rig.edges, [true]);
  w(rig, Reg.InterruptACK, 0xfffffffc); // undefined bits only: nothing happens
  assert.equal(r(rig, Reg.InterruptStatus), 1);
  w(rig, Reg.InterruptACK, 1);
  assert.equal(r(rig, Reg.InterruptStatus), 0);
  assert.deepEqual(rig.edges, [true, false]);
  assert.equal(rig.t.interruptAsserted, false);
});

test('reset clears status, features, every queue and InterruptStatus, and stops the device', async () => {
  const rig = await makeRig();
  const g = guestFor(rig);
  g.init();
  g.refillRx();
  g.send(makeSeqFrame(g.mac, 0, 100));
  g.flushTx();
  assert.notEqual(r(rig, Reg.InterruptStatus), 0);
  w(rig, Reg.Status, 0);
  assert.equal(r(rig, Reg.Status), 0);
  assert.equal(r(rig, Reg.InterruptStatus), 0);
  assert.equal(rig.t.negotiatedFeatures, 0n);
  for (const q of [0, 1]) {
    w(rig, Reg.QueueSel, q);
    assert.equal(r(rig, Reg.QueueReady), 0, `queue ${q} not ready after reset`);
  }
  assert.deepEqual(rig.edges, [true, false]);
  w(rig, Reg.QueueNotify, 1);
  assert.equal(count(rig, 'notify-before-driver-ok'), 1);
  // The driver may initialise again from scratch.
  g.init();
  g.refillRx();
  assert.equal(g.send(makeSeqFrame(g.mac, 1, 100)), true);
  g.flushTx();
  g.receive();
  assert.deepEqual(g.received, [0 + 1], 'frame 1 came back intact, nothing from before the reset');
});

test('config space reads mac, status and mtu at 1, 2 and 4 byte widths; writes and bad accesses are ignored', async () => {
  const rig = await makeRig({ device: { mac: '02:00:00:aa:bb:cc', mtu: 9000 } });
  const c = MMIO_CONFIG_OFFSET;
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => rig.t.read(c + i, 1)), [2, 0, 0, 0xaa, 0xbb, 0xcc]);
  assert.equal(rig.t.read(c, 4), 0xaa000002);
  assert.equal(rig.t.read(c + 6, 2), 1, 'LINK_UP');
  assert.equal(rig.t.read(c + 8, 2), 1, 'max_virtqueue_pairs');
  assert.equal(rig.t.read(c + 10, 2), 9000);
  rig.t.write(c, 0xff, 1);
  assert.equal(rig.t.read(c, 1), 2);
  assert.equal(count(rig, 'config-read-only'), 1);
  assert.equal(rig.t.read(c + 24, 1), 0);
  assert.equal(rig.t.read(c + 24, 2), 0);
  assert.equal(rig.t.read(c + 0x80, 4), 0);
  assert.equal(count(rig, 'out-of-range'), 3);
  assert.equal(rig.t.read(c + 1, 2), 0);
  assert.equal(rig.t.read(c + 2, 4), 0);
  assert.equal(count(rig, 'unaligned'), 2);
  assert.equal(rig.t.read(c, 8), 0);
  assert.equal(rig.t.read(c, 3), 0);
  assert.equal(count(rig, 'bad-width'), 2);
});

test('ConfigGeneration changes with the config space and a config-change interrupt follows after DRIVER_OK', async () => {
  const rig = await makeRig();
  const g0 = r(rig, Reg.ConfigGeneration);
  rig.front.setLinkUp(false);
  rig.t.configChanged();
  const g1 = r(rig, Reg.ConfigGeneration);
  assert.notEqual(g1, g0);
  assert.equal(r(rig, Reg.InterruptStatus), 0, 'no config interrupt before DRIVER_OK');
  const g = guestFor(rig);
  g.init();
  assert.equal(g.linkUp(), false);
  rig.front.setLinkUp(true);
  rig.t.configChanged();
  assert.notEqual(r(rig, Reg.ConfigGeneration), g1);
  assert.equal(r(rig, Reg.InterruptStatus), 2, 'configuration change notification');
  assert.equal(g.acknowledgeInterrupt(), 2);
  assert.equal(g.linkUp(), true);
  assert.equal(r(rig, Reg.InterruptStatus), 0);
});

test('shared memory registers report no region and QueueReset is refused without RING_RESET', async () => {
  const rig = await makeRig();
  w(rig, Reg.SHMSel, 0);
  for (const off of [Reg.SHMLenLow, Reg.SHMLenHigh, Reg.SHMBaseLow, Reg.SHMBaseHigh]) assert.equal(r(rig, off), 0xffff_ffff);
  w(rig, Reg.QueueReset, 1);
  assert.equal(r(rig, Reg.QueueReset), 0);
  assert.equal(count(rig, 'not-negotiated'), 1);
});

test('a transport refuses a frontend with device id 0, bad queue sizes or without VERSION_1', () => {
  const mem = GuestMemory.allocate(1 << 16);
  const runner = new InlineRunner(new VirtioNetBackend(), mem);
  const bad = (patch: Record<string, unknown>): void => {
    const front = new VirtioNetFrontend();
    for (const [k, v] of Object.entries(patch)) Object.defineProperty(front, k, { value: v });
    assert.throws(() => new MmioTransport({ mem, device: front, runner }), TransportError);
  };
  bad({ deviceId: 0 });
  bad({ queueMaxSizes: [100] });
  bad({ offeredFeatures: NetF.MAC });
});

test('no sequence of guest accesses makes the transport throw or change its identity registers', async () => {
  const rig = await makeRig();
  const offsets = fc.oneof(
    fc.constantFrom(...Object.values(Reg)),
    fc.integer({ min: 0, max: 0x1ff }),
    fc.integer({ min: -8, max: 0x2000 }),
  );
  const access = fc.record({
    write: fc.boolean(),
    offset: offsets,
    size: fc.constantFrom(1, 2, 4, 4, 4, 8, 3),
    value: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 1, 3, 7, 11, 15, 64, 128, 256)),
  });
  fc.assert(
    fc.property(fc.array(access, { maxLength: 200 }), (ops) => {
      w(rig, Reg.Status, 0);
      for (const op of ops) {
        if (op.write) rig.t.write(op.offset, op.value, op.size);
        else rig.t.read(op.offset, op.size);
      }
      return r(rig, Reg.MagicValue) === MMIO_MAGIC && r(rig, Reg.Version) === 2 && r(rig, Reg.DeviceID) === 1;
    }),
    { numRuns: 300 },
  );
});
