// Device lifecycle through virtio-mmio, driven only by register reads and writes as Linux's
// virtio_mmio + virtio_net drivers do: the §3.1.1 initialisation sequence, traffic, reset in the
// middle of traffic, the device on its own worker thread, save/restore mid-stream without losing
// or duplicating a frame, DEVICE_NEEDS_RESET on a hostile ring, and negotiated features
// (mergeable rx buffers) changing what the device does.

import test from 'node:test';
import assert from 'node:assert/strict';
import { NetF, VirtioF } from '../src/net/features.js';
import { VIRTQ_DESC_F_NEXT } from '../src/virtqueue/index.js';
import { LOOPBACK_NET_FEATURES, Reg, Status, checkSeqFrame, makeSeqFrame, type MmioBus, type MmioSnapshot } from '../src/transport/index.js';
import { guestFor, makeRig, pump, waitDevice, type MmioRig } from './support/mmio-rig.js';

const NAMES = new Map<number, string>(Object.entries(Reg).map(([k, v]) => [v, k]));

function recordingBus(rig: MmioRig, log: string[]): MmioBus {
  return {
    read(off, size) {
      if (off < 0x100) log.push(`R ${NAMES.get(off) ?? off}`);
      return rig.t.read(off, size);
    },
    write(off, v, size) {
      if (off < 0x100) log.push(`W ${NAMES.get(off) ?? off}${off === Reg.Status ? '=' + v : ''}`);
      rig.t.write(off, v, size);
    },
  };
}

test('the driver initialisation of §3.1.1 runs in Linux order and reaches DRIVER_OK with both queues live', async () => {
  const rig = await makeRig();
  const log: string[] = [];
  const g = guestFor(rig);
  g.bus = recordingBus(rig, log);
  const features = g.init();
  const queueSetup = (): string[] => ['W QueueSel', 'R QueueReady', 'R QueueNumMax', 'W QueueNum', 'W QueueDescLow', 'W QueueDescHigh', 'W QueueDriverLow', 'W QueueDriverHigh', 'W QueueDeviceLow', 'W QueueDeviceHigh', 'W QueueReady', 'R QueueReady'];
  assert.deepEqual(log, [
    'R MagicValue', 'R Version', 'R DeviceID',
    'W Status=0', 'R Status',
    'R Status', 'W Status=1',
    'R Status', 'W Status=3',
    'W DeviceFeaturesSel', 'R DeviceFeatures', 'W DeviceFeaturesSel', 'R DeviceFeatures',
    'W DriverFeaturesSel', 'W DriverFeatures', 'W DriverFeaturesSel', 'W DriverFeatures',
    'R Status', 'W Status=11', 'R Status',
    'R ConfigGeneration', 'R ConfigGeneration',
    ...queueSetup(), ...queueSetup(),
    'R Status', 'W Status=15',
  ]);
  assert.equal(features, LOOPBACK_NET_FEATURES);
  assert.equal(rig.t.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  assert.deepEqual(g.mac, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  assert.equal(g.mtu, 1500);
  assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
  g.bus = rig.t;
  assert.equal(pump(rig, g, 0, 300, 0), 300);
});

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';

  test(`a device ${where} carries verified traffic and survives a reset in the middle of it`, async () => {
    const rig = await makeRig({ worker });
    try {
      const g = guestFor(rig);
      g.init();
      g.refillRx();
      assert.equal(pump(rig, g, 0, worker ? 5000 : 2000, 0), worker ? 5000 : 2000);
      // Frames in flight on both queues, then a reset.
      for (let i = 0; i < 100; i++) g.send(makeSeqFrame(g.mac, i, 200), false);
      g.flushTx();
      g.reset();
      assert.equal(rig.t.status, 0);
      for (const q of [0, 1]) {
        rig.t.write(Reg.QueueSel, q, 4);
        assert.equal(rig.t.read(Reg.QueueReady, 4), 0);
      }
      assert.equal(rig.t.read(Reg.InterruptStatus, 4), 0);
      // The driver starts over; sequence numbers restart, nothing from before the reset reappears.
      g.init();
      g.refillRx();
      assert.equal(pump(rig, g, 0, 1000, 0), 1000);
      assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
    } finally {
      await rig.close();
    }
  });

  test(`a device ${where} saved mid-stream and restored resumes without losing or duplicating a frame`, async () => {
    const rig = await makeRig({ worker, device: { backlogFrames: 64 } });
    const g = guestFor(rig, { queueSize: 128 });
    g.init();
    g.refillRx();
    let next = pump(rig, g, 0, 500, 0);
    // Post no more rx buffers: 128 frames fill the rx ring, the next ones wait in the backlog.
    let sent = next;
    const end = performance.now() + 10_000;
    while (sent < next + 180 && performance.now() < end) {
      if (g.send(makeSeqFrame(g.mac, sent, 64 + (sent % 1400)))) sent++;
      else waitDevice(rig, 5);
    }
    assert.equal(sent, next + 180);
    let backlog = 0;
    for (let i = 0; i < 200 && backlog < 180 - 128; i++) {
      waitDevice(rig, 5);
      const snap0 = await rig.t.save();
      backlog = (snap0.backend!.device as { backlog: unknown[] }).backlog.length;
      rig.t.resume();
    }
    assert.equal(backlog, 52, 'frames wait in the device backlog');
    const snapshot = JSON.parse(JSON.stringify(await rig.t.save())) as MmioSnapshot;
    await rig.close();

    const rig2 = await makeRig({ worker, device: { backlogFrames: 64 }, mem: rig.mem, restore: snapshot });
    try {
      assert.equal(rig2.t.status & Status.DRIVER_OK, Status.DRIVER_OK);
      assert.equal(rig2.t.negotiatedFeatures, LOOPBACK_NET_FEATURES);
      g.bus = rig2.t;
      next = pump(rig2, g, sent, sent + 700, next);
      assert.equal(next, sent + 700, 'every frame arrived once, in order, across the restore');
    } finally {
      await rig2.close();
    }
  });

  test(`a hostile avail index ${where} sets DEVICE_NEEDS_RESET with a config interrupt, and a reset recovers`, async () => {
    const rig = await makeRig({ worker });
    try {
      const g = guestFor(rig);
      g.init();
      g.refillRx();
      pump(rig, g, 0, 100, 0);
      const tx = g.tx!;
      tx.ring.storeAvailIdx((tx.ring.loadAvailIdx() + 1000) & 0xffff);
      rig.t.write(Reg.QueueNotify, 1, 4);
      for (let i = 0; i < 100 && (rig.t.status & Status.DEVICE_NEEDS_RESET) === 0; i++) waitDevice(rig, 10);
      assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
      assert.equal(rig.t.status & Status.DRIVER_OK, Status.DRIVER_OK);
      assert.equal(rig.t.read(Reg.InterruptStatus, 4) & 2, 2, 'configuration change notification (§2.1.2)');
      rig.t.write(Reg.QueueNotify, 1, 4); // ignored: the device waits for a reset
      rig.t.write(Reg.QueueNotify, 0, 4);
      g.init();
      assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, 0);
      g.refillRx();
      assert.equal(pump(rig, g, 0, 200, 0), 200);
    } finally {
      await rig.close();
    }
  });
}

test('a descriptor chain that loops breaks the device into DEVICE_NEEDS_RESET instead of hanging it', async () => {
  const rig = await makeRig();
  const g = guestFor(rig);
  g.init();
  g.refillRx();
  const tx = g.tx!;
  const head = 5;
  tx.ring.setDesc(head, 0x20000, 64, VIRTQ_DESC_F_NEXT, head);
  const idx = tx.ring.loadAvailIdx();
  tx.ring.setAvailEntry(idx, head);
  tx.ring.storeAvailIdx((idx + 1) & 0xffff);
  rig.t.write(Reg.QueueNotify, 1, 4);
  assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  assert.deepEqual(rig.edges, [true]);
  const host = (rig.runner as unknown as { host: { stats: { lastError: string } } }).host;
  assert.match(host.stats.lastError, /loops/);
});

test('with MRG_RXBUF a frame spans several small rx buffers; without it, frames too big for one buffer are counted drops', async () => {
  const rig = await makeRig();
  const g = guestFor(rig, { rxBufBytes: 512 });
  g.init();
  assert.equal(g.features & NetF.MRG_RXBUF, NetF.MRG_RXBUF);
  g.refillRx();
  assert.equal(pump(rig, g, 0, 400, 0, (s) => 60 + ((s * 131) % 1455)), 400);
  assert.ok(rig.backend!.stats.rxExtraBuffers > 300, `extra buffers ${rig.backend!.stats.rxExtraBuffers}`);

  // Regression: a delivery that runs out of rx buffers half-way rewinds the queue; used elements
  // of earlier frames in the same pass must still be published (they were lost before the fix).
  const small = guestFor(rig, { rxBufBytes: 512, queueSize: 64 });
  small.init();
  small.refillRx();
  assert.equal(pump(rig, small, 0, 300, 0, () => 1514, 5000), 300);

  const g2 = guestFor(rig, { rxBufBytes: 512, wantFeatures: LOOPBACK_NET_FEATURES & ~NetF.MRG_RXBUF });
  g2.init();
  g2.refillRx();
  const sizes = [100, 1000, 400, 1514, 300];
  for (let i = 0; i < sizes.length; i++) g2.send(makeSeqFrame(g2.mac, i, sizes[i]!));
  const got: number[] = [];
  g2.receive((f) => got.push(checkSeqFrame(f) as number));
  assert.deepEqual(got, [0, 2, 4]);
  assert.equal(g2.stats.rxShort, 2, 'the dropped frames came back as empty buffers');
  assert.equal(rig.backend!.stats.rxDrops.bufferTooSmall, 2);
});

test('event idx and indirect descriptors follow the negotiated features', async () => {
  for (const want of [VirtioF.VERSION_1, LOOPBACK_NET_FEATURES]) {
    const rig = await makeRig();
    const g = guestFor(rig, { wantFeatures: want });
    g.init();
    assert.equal(g.tx!.eventIdx, (want & VirtioF.EVENT_IDX) !== 0n);
    assert.equal(g.tx!.indirect, (want & VirtioF.INDIRECT_DESC) !== 0n);
    g.refillRx();
    assert.equal(pump(rig, g, 0, 500, 0), 500);
    assert.equal(g.tx!.stats.indirectChains > 0, (want & VirtioF.INDIRECT_DESC) !== 0n);
  }
});

test('a NEEDS_CSUM frame is passed on as NEEDS_CSUM with GUEST_CSUM, and checksummed by the device without it', async () => {
  const { buildUdpFrame, newFrameLayout, parsePacket } = await import('../src/net/frames/index.js');
  for (const guestCsum of [true, false]) {
    const rig = await makeRig();
    const want = guestCsum ? LOOPBACK_NET_FEATURES : LOOPBACK_NET_FEATURES & ~NetF.GUEST_CSUM;
    const g = guestFor(rig, { wantFeatures: want });
    g.init();
    g.refillRx();
    const buf = new Uint8Array(200);
    const layout = newFrameLayout();
    const mac = Uint8Array.from(g.mac);
    const len = buildUdpFrame(buf, 0, { link: { srcMac: mac, dstMac: mac }, ip: { version: 4, src: 0x0a000001, dst: 0x0a000002 }, srcPort: 1000, dstPort: 2000, payload: new Uint8Array(100).fill(7), checksum: 'partial' }, layout);
    assert.equal(g.send(buf.subarray(0, len), true, { start: layout.l4Offset, offset: 6 }), true);
    let ok: boolean | null = null;
    let flags = -1;
    g.receive((f) => {
      flags = g.lastRxFlags;
      const p = parsePacket(f, 0, f.length, undefined, true);
      ok = p instanceof Error ? null : p.l4ChecksumOk;
    });
    if (guestCsum) {
      assert.equal(flags & 1, 1, 'NEEDS_CSUM passed through to the receiving driver');
    } else {
      assert.equal(flags, 0);
      assert.equal(ok, true, 'the device completed the checksum');
      assert.equal(rig.backend!.stats.checksumsCompleted, 1);
    }
  }
});

test('an emulator on an event loop gets its interrupt line from the async watcher of a worker device', async () => {
  const { GuestMemory } = await import('../src/memory/index.js');
  const { MmioTransport, LoopbackNetFrontend } = await import('../src/transport/index.js');
  const { startNodeDeviceWorker } = await import('../src/transport/node-worker.js');
  const mem = GuestMemory.allocate(4 << 20);
  const runner = await startNodeDeviceWorker({ mem, kind: 'net-loopback' }); // watchInterrupts on
  const edges: boolean[] = [];
  let raised: () => void = () => {};
  const t = new MmioTransport({ mem, device: new LoopbackNetFrontend(), runner, onInterrupt: (a) => { edges.push(a); if (a) raised(); } });
  try {
    const g = new (await import('../src/transport/index.js')).GuestNetDriver(t, mem, { arenaBase: 0x10000, arenaBytes: 3 << 20 });
    g.init();
    g.refillRx();
    let got = 0;
    for (let i = 0; i < 50; i++) {
      const irq = new Promise<void>((r) => (raised = r));
      g.send(makeSeqFrame(g.mac, i, 300));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([irq, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`no interrupt for frame ${i}`)), 5000)))]);
      clearTimeout(timer);
      g.acknowledgeInterrupt();
      g.receive((f) => {
        assert.equal(checkSeqFrame(f), got);
        got++;
      });
      for (let k = 0; k < 100 && got <= i; k++) {
        await new Promise((r) => setTimeout(r, 2));
        g.acknowledgeInterrupt();
        g.receive((f) => {
          assert.equal(checkSeqFrame(f), got);
          got++;
        });
      }
      g.refillRx();
    }
    assert.equal(got, 50);
    assert.ok(edges.filter((e) => e).length >= 50, `rising edges ${edges.filter((e) => e).length}`);
  } finally {
    await runner.close();
  }
});

test('status reads the pre-reset value until the device thread confirms the reset, and a dead device is reported, not thrown', async () => {
  const { GuestMemory } = await import('../src/memory/index.js');
  const { MmioTransport, LoopbackNetFrontend, DeviceSignals } = await import('../src/transport/index.js');
  const mem = GuestMemory.allocate(1 << 20);
  let done = false;
  let dead = false;
  const runner = {
    signals: new DeviceSignals(),
    onSignal: null,
    activate: () => {
      if (dead) throw new Error('worker gone');
    },
    notify: () => {
      if (dead) throw new Error('worker gone');
    },
    reset: () => done,
    resetDone: () => done,
    save: () => Promise.resolve({ queues: [], device: null }),
    resume: () => {},
    close: () => Promise.resolve(),
  };
  const issues: string[] = [];
  const t = new MmioTransport({ mem, device: new LoopbackNetFrontend(), runner, onIssue: (i) => issues.push(i.code) });
  t.write(Reg.Status, Status.ACKNOWLEDGE, 4);
  t.write(Reg.Status, 0, 4);
  assert.equal(t.read(Reg.Status, 4), Status.ACKNOWLEDGE, 'reset still in progress');
  t.write(Reg.Status, Status.ACKNOWLEDGE, 4);
  assert.deepEqual(issues, ['reset-in-progress']);
  done = true;
  assert.equal(t.read(Reg.Status, 4), 0, 'reset complete');
  dead = true;
  const g = new (await import('../src/transport/index.js')).GuestNetDriver(t, mem, { arenaBase: 0x10000, arenaBytes: 512 << 10, queueSize: 64 });
  g.init(); // DRIVER_OK reaches a dead device
  assert.equal(t.read(Reg.Status, 4) & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
  assert.ok(issues.includes('device-failed'));
});

test('garbage written over the live rings never escapes the transport: the device breaks cleanly or carries on, and a reset recovers', async () => {
  const fc = (await import('fast-check')).default;
  const rig = await makeRig();
  const g = guestFor(rig, { queueSize: 64 });
  fc.assert(
    fc.property(
      fc.array(fc.record({ queue: fc.constantFrom(0, 1), area: fc.constantFrom('desc', 'avail', 'used'), offset: fc.nat({ max: 1100 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }), { minLength: 1, maxLength: 8 }),
      (scribbles) => {
        g.init();
        g.refillRx();
        pump(rig, g, 0, 20, 0);
        for (const s of scribbles) {
          const q = s.queue === 0 ? g.rx! : g.tx!;
          const base = s.area === 'desc' ? q.layout.descAddr : s.area === 'avail' ? q.layout.availAddr : q.layout.usedAddr;
          rig.mem.copyIn(base + s.offset, s.bytes);
          rig.t.write(Reg.QueueNotify, s.queue, 4);
        }
        const st = rig.t.status;
        // Either broken with the config interrupt, or still running.
        if (st & Status.DEVICE_NEEDS_RESET) assert.equal(rig.t.read(Reg.InterruptStatus, 4) & 2, 2);
        else assert.equal(st & Status.DRIVER_OK, Status.DRIVER_OK);
        return true;
      },
    ),
    { numRuns: 150 },
  );
  g.init();
  g.refillRx();
  assert.equal(pump(rig, g, 0, 100, 0), 100, 'a reset brings the device back');
});

test('a worker device starved of rx buffers sleeps on its doorbell instead of spinning, and wakes on the refill', async () => {
  const rig = await makeRig({ worker: true });
  try {
    const g = guestFor(rig, { rxBufBytes: 512, queueSize: 64 });
    g.init();
    g.refillRx();
    assert.equal(pump(rig, g, 0, 500, 0, () => 1514), 500, 'mergeable frames over 512-byte buffers');
    // Fill the rx ring, then keep sending: frames wait in the device, which has nothing to do.
    for (let i = 0; i < 40; i++) g.send(makeSeqFrame(g.mac, 500 + i, 1514));
    const runner = rig.runner as unknown as { kick: { sleepers(): number } };
    let asleep = false;
    for (let i = 0; i < 100 && !asleep; i++) {
      await new Promise((r) => setTimeout(r, 10));
      asleep = runner.kick.sleepers() === 1;
    }
    assert.equal(asleep, true, 'the device loop blocks while it waits for rx buffers');
    assert.equal(pump(rig, g, 540, 1000, 500, () => 1514), 1000, 'the refill kick wakes it and nothing was lost');
  } finally {
    await rig.close();
  }
});
