// Device lifecycle through virtio-mmio, driven only by register reads and writes as Linux's
// virtio_mmio + virtio_net drivers do: the §3.1.1 initialisation sequence, traffic, reset in the
// middle of traffic, the device on its own worker thread, save/restore mid-stream without losing
// or duplicating a frame, DEVICE_NEEDS_RESET on a hostile ring, and negotiated features
// (mergeable rx buffers) changing what the device does. The device is the one virtio-net device
// (NetDevice under the DeviceLoop) with a loopback port; the guest is the MMIO init sequence and
// NetDriver.

import test from 'node:test';
import assert from 'node:assert/strict';
import { NetF, VirtioF } from '../src/net/features.js';
import { VIRTQ_DESC_F_NEXT, type DriverQueue } from '../src/virtqueue/index.js';
import { NetHdrFlags, emptyNetHdr } from '../src/net/header.js';
import { VIRTIO_NET_FEATURES, MmioNetGuest, Reg, Status, VirtioNetFrontend, checkSeqFrame, makeSeqFrame, type MmioBus, type MmioSnapshot, type VirtioNetState } from '../src/transport/index.js';
import { guestFor, makeRig, pump, waitDevice, waitNeedsReset, type MmioRig } from './support/mmio-rig.js';

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
  assert.equal(features, VIRTIO_NET_FEATURES);
  assert.equal(rig.t.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
  assert.deepEqual([...g.mac], [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  assert.equal(g.mtu, 1500);
  assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
  g.bus = rig.t;
  g.refillRx();
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
      for (let i = 0; i < 100; i++) g.send(makeSeqFrame(g.mac, i, 200));
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
    const rig = await makeRig({ worker });
    const g = guestFor(rig, { queueSize: 128 });
    g.init();
    g.refillRx();
    let next = pump(rig, g, 0, 500, 0);
    // Fill the rx ring, then receive nothing: 128 frames take its buffers, the next ones wait
    // in the loopback port (and move into the device's replay queue when saved).
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
    await rig.close();

    const rig2 = await makeRig({ worker, mem: rig.mem, restore: snapshot });
    try {
      assert.equal(rig2.t.status & Status.DRIVER_OK, Status.DRIVER_OK);
      assert.equal(rig2.t.negotiatedFeatures, VIRTIO_NET_FEATURES);
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
      const tx = g.net.txq as DriverQueue<number>; // split: the test writes its ring directly
      tx.ring.storeAvailIdx((tx.ring.loadAvailIdx() + 1000) & 0xffff);
      rig.t.write(Reg.QueueNotify, 1, 4);
      waitNeedsReset(rig);
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
  const tx = g.net.txq as DriverQueue<number>; // split: the test writes its ring directly
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

test('with MRG_RXBUF a frame spans several small rx buffers; without it, each frame lands in one buffer of at least 1526 bytes', async () => {
  const rig = await makeRig();
  const g = guestFor(rig, { driver: { mergeableBufBytes: 512 } });
  g.init();
  assert.equal(g.features & NetF.MRG_RXBUF, NetF.MRG_RXBUF);
  g.refillRx();
  assert.equal(pump(rig, g, 0, 400, 0, (s) => 60 + ((s * 131) % 1455)), 400);
  const st = rig.backend!.device!.stats;
  assert.ok(st.rxBuffers - st.rxFrames > 300, `extra buffers ${st.rxBuffers - st.rxFrames}`);

  // Regression: a delivery that runs out of rx buffers half-way rewinds the queue; used elements
  // of earlier frames in the same pass must still be published.
  const small = guestFor(rig, { driver: { mergeableBufBytes: 512 }, queueSize: 64 });
  small.init();
  small.refillRx();
  assert.equal(pump(rig, small, 0, 300, 0, () => 1514, 5000), 300);

  const g2 = guestFor(rig, { wantFeatures: VIRTIO_NET_FEATURES & ~(NetF.MRG_RXBUF | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN) });
  g2.init();
  assert.equal(g2.net.rxMode, 'small');
  assert.ok(g2.net.rxBufBytes >= 1526, `buffers of ${g2.net.rxBufBytes} bytes (§5.1.6.3.1)`);
  g2.refillRx();
  assert.equal(pump(rig, g2, 0, 300, 0, () => 1514), 300);
  const st2 = rig.backend!.device!.stats;
  assert.equal(st2.rxBuffers, st2.rxFrames, 'one buffer per frame');
  assert.equal(st2.rxDropped, 0);
});

test('event idx and indirect descriptors follow the negotiated features', async () => {
  for (const want of [VirtioF.VERSION_1, VIRTIO_NET_FEATURES]) {
    const rig = await makeRig();
    // Header and frame in two descriptors: an indirect table when negotiated.
    const g = guestFor(rig, { wantFeatures: want, driver: { txLayout: 'header-apart' } });
    g.init();
    assert.equal(g.net.txq.eventIdx, (want & VirtioF.EVENT_IDX) !== 0n);
    assert.equal(g.net.txq.indirect, (want & VirtioF.INDIRECT_DESC) !== 0n);
    g.refillRx();
    assert.equal(pump(rig, g, 0, 500, 0), 500);
    assert.equal(g.net.txq.stats.indirectChains > 0, (want & VirtioF.INDIRECT_DESC) !== 0n);
  }
});

test('a NEEDS_CSUM frame is passed on as NEEDS_CSUM with GUEST_CSUM, and checksummed by the device without it', async () => {
  const { buildUdpFrame, newFrameLayout, parsePacket } = await import('../src/net/frames/index.js');
  for (const guestCsum of [true, false]) {
    const rig = await makeRig();
    // GUEST_TSO4/6 and GUEST_ECN depend on GUEST_CSUM (§5.1.3.1): they go with it.
    const want = guestCsum ? VIRTIO_NET_FEATURES : VIRTIO_NET_FEATURES & ~(NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN);
    let ok: boolean | null = null;
    let flags = -1;
    const g = guestFor(rig, {
      wantFeatures: want,
      onReceive: (f, off, len, hdr) => {
        flags = hdr.flags;
        const p = parsePacket(f, off, off + len, undefined, true);
        ok = p instanceof Error ? null : p.l4ChecksumOk;
      },
    });
    g.init();
    g.refillRx();
    const buf = new Uint8Array(200);
    const layout = newFrameLayout();
    const mac = Uint8Array.from(g.mac);
    const len = buildUdpFrame(buf, 0, { link: { srcMac: mac, dstMac: mac }, ip: { version: 4, src: 0x0a000001, dst: 0x0a000002 }, srcPort: 1000, dstPort: 2000, payload: new Uint8Array(100).fill(7), checksum: 'partial' }, layout);
    const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, csumStart: layout.l4Offset, csumOffset: 6 };
    assert.equal(g.send(buf.subarray(0, len), hdr), true);
    g.flushTx();
    g.receive();
    if (guestCsum) {
      assert.equal(flags & NetHdrFlags.NEEDS_CSUM, NetHdrFlags.NEEDS_CSUM, 'NEEDS_CSUM passed through to the receiving driver');
    } else {
      assert.equal(flags, 0);
      assert.equal(ok, true, 'the device completed the checksum');
      assert.equal(rig.backend!.device!.stats.txCsumCompleted, 1);
    }
  }
});

test('an emulator on an event loop gets its interrupt line from the async watcher of a worker device', async () => {
  const { GuestMemory } = await import('../src/memory/index.js');
  const { MmioTransport } = await import('../src/transport/index.js');
  const { startNodeDeviceWorker } = await import('../src/transport/node-worker.js');
  const mem = GuestMemory.allocate(8 << 20);
  const options = { backend: { type: 'loopback' } } as const;
  const runner = await startNodeDeviceWorker({ mem, kind: 'virtio-net', options }); // watchInterrupts on
  const edges: boolean[] = [];
  let raised: () => void = () => {};
  const t = new MmioTransport({ mem, device: new VirtioNetFrontend(options), runner, onInterrupt: (a) => { edges.push(a); if (a) raised(); } });
  try {
    let got = 0;
    const g = new MmioNetGuest(t, mem, {
      arenaBase: 0x10000,
      arenaBytes: 7 << 20,
      onReceive: (f, off, len) => {
        assert.equal(checkSeqFrame(f, off, len), got);
        got++;
      },
    });
    g.init();
    g.refillRx();
    // The line is level-triggered, as on real hardware: a raise that lands while the line is still
    // high (the rx completion of the previous frame, say) makes no new edge, so the emulator waits
    // for the level, and only when it is low for an edge from the async watcher.
    let edgeWaits = 0;
    const waitLine = async (what: string): Promise<void> => {
      if (t.interruptAsserted) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const irq = new Promise<void>((r) => (raised = r));
      await Promise.race([irq, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`no interrupt for ${what}`)), 10_000)))]);
      clearTimeout(timer);
      edgeWaits++;
    };
    for (let i = 0; i < 50; i++) {
      g.send(makeSeqFrame(g.mac, i, 300));
      g.flushTx();
      // Interrupt-driven only: every receive follows the line going (or being) high.
      while (got <= i) {
        await waitLine(`frame ${i}`);
        g.acknowledgeInterrupt();
        g.receive();
      }
    }
    assert.equal(got, 50);
    // The line starts low, so at least the first frame came through a rising edge of the watcher.
    assert.ok(edgeWaits >= 1 && edges.filter((e) => e).length >= 1, `edge waits ${edgeWaits}`);
  } finally {
    await runner.close();
  }
});

test('status reads the pre-reset value until the device thread confirms the reset, and a dead device is reported, not thrown', async () => {
  const { GuestMemory } = await import('../src/memory/index.js');
  const { MmioTransport, DeviceSignals } = await import('../src/transport/index.js');
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
  const t = new MmioTransport({ mem, device: new VirtioNetFrontend(), runner, onIssue: (i) => issues.push(i.code) });
  t.write(Reg.Status, Status.ACKNOWLEDGE, 4);
  t.write(Reg.Status, 0, 4);
  assert.equal(t.read(Reg.Status, 4), Status.ACKNOWLEDGE, 'reset still in progress');
  t.write(Reg.Status, Status.ACKNOWLEDGE, 4);
  assert.deepEqual(issues, ['reset-in-progress']);
  done = true;
  assert.equal(t.read(Reg.Status, 4), 0, 'reset complete');
  dead = true;
  const g = new MmioNetGuest(t, mem, { arenaBase: 0x10000, arenaBytes: 900 << 10, queueSize: 64 });
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
          const q = s.queue === 0 ? g.net.rxq : g.net.txq;
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
    const g = guestFor(rig, { driver: { mergeableBufBytes: 512 }, queueSize: 64 });
    g.init();
    g.refillRx();
    assert.equal(pump(rig, g, 0, 500, 0, () => 1514), 500, 'mergeable frames over 512-byte buffers');
    // Fill the rx ring, then keep sending: frames wait in the port, the device has nothing to do.
    g.refillRx();
    for (let i = 0; i < 40; i++) {
      assert.ok(g.send(makeSeqFrame(g.mac, 500 + i, 1514)));
      g.flushTx();
    }
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
