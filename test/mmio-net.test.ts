// The virtio-net device (NetDevice under the DeviceLoop) behind virtio-mmio, inline and on its own
// worker, driven by an MMIO guest (the §3.1.1 register sequence, then NetDriver) with a guest
// network stack (NetEndpoint) on top: ARP and ICMP echo to
// the in-memory host stack, TSO frames accepted when negotiated and counted drops when not,
// software segmentation for a backend without GSO, mergeable rx spreading a jumbo reply over
// several buffers, reset in the middle of traffic, save/restore mid-stream with rx chains held
// by the device and replies waiting in the backend, and a hostile ring setting DEVICE_NEEDS_RESET.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { GuestMemory } from '../src/memory/index.js';
import type { DriverQueue } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { GsoType, NetHdrFlags, emptyNetHdr } from '../src/net/header.js';
import { buildTcpFrame, ipv4FromString, macFromString, TcpFlags } from '../src/net/frames/index.js';
import type { NetDeviceStats } from '../src/net/device.js';
import { InlineRunner, MmioNetGuest, MmioTransport, Reg, Status, type DeviceRunner, type MmioIssue, type MmioNetGuestOptions, type MmioSnapshot } from '../src/transport/index.js';
import { startNodeDeviceWorker } from '../src/transport/node-worker.js';
import { waitDevice, waitNeedsReset } from './support/mmio-rig.js';
import { VIRTIO_NET_FEATURES, VirtioNetBackend, VirtioNetFrontend, type VirtioNetOptions, type VirtioNetState } from '../src/transport/virtio-net.js';

const MEM_BYTES = 16 << 20;
const HOST_MAC = '52:54:00:ab:cd:ef';
const GUEST_IP = '10.0.2.15';
const HOST_IP = '10.0.2.2';

interface NetRig {
  mem: GuestMemory;
  runner: DeviceRunner;
  t: MmioTransport;
  issues: MmioIssue[];
  close(): Promise<void>;
}

async function makeRig(o: { worker: boolean; device?: VirtioNetOptions; mem?: GuestMemory; restore?: MmioSnapshot }): Promise<NetRig> {
  const mem = o.mem ?? GuestMemory.allocate(MEM_BYTES);
  const device = o.device ?? {};
  const runner: DeviceRunner = o.worker
    ? await startNodeDeviceWorker({ mem, kind: 'virtio-net', options: device, watchInterrupts: false })
    : new InlineRunner(new VirtioNetBackend(device), mem, { timers: 'manual' });
  const issues: MmioIssue[] = [];
  const opts = { mem, device: new VirtioNetFrontend(device), runner, onIssue: (i: MmioIssue) => issues.push(i) };
  const t = o.restore ? MmioTransport.restore(o.restore, opts) : new MmioTransport(opts);
  return { mem, runner, t, issues, close: () => runner.close() };
}

function guest(rig: NetRig, o: Partial<MmioNetGuestOptions> = {}, mtu?: number): MmioNetGuest {
  return new MmioNetGuest(rig.t, rig.mem, {
    arenaBase: 0x10000,
    arenaBytes: 14 << 20,
    wantFeatures: VIRTIO_NET_FEATURES,
    endpoint: { ip: ipv4FromString(GUEST_IP), peerIp: ipv4FromString(HOST_IP), peerMac: macFromString('ff:ff:ff:ff:ff:ff'), ...(mtu !== undefined ? { mtu } : {}) },
    ...o,
  });
}

/** Pumps the guest stack (and posts rx buffers) until `done()` or the deadline (then throws with `what`). */
function pumpUntil(rig: NetRig, g: MmioNetGuest, done: () => boolean, what: string, ms = 20_000): void {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    const moved = g.step() + g.refillRx();
    if (moved === 0) waitDevice(rig, 10);
  }
}

/** The device's counters and saved state, inline or on a worker (a save, then resume). */
async function deviceState(rig: NetRig): Promise<VirtioNetState> {
  const snap = await rig.t.save();
  rig.t.resume();
  return snap.backend!.device as VirtioNetState;
}

/** Resolves the host's MAC by ARP, then pings `count` times; returns the sequence numbers answered, in order. */
function arpAndPing(rig: NetRig, g: MmioNetGuest, count: number, payload: (seq: number) => number, id = 7): number[] {
  const ep = g.endpoint!;
  ep.sendArpRequest();
  pumpUntil(rig, g, () => ep.stats.arpRepliesIn === 1, 'the ARP reply');
  assert.deepEqual([...ep.peerMac], [...macFromString(HOST_MAC)]);
  const answered: number[] = [];
  ep.onEchoReply = (rid, seq, ok) => {
    assert.equal(rid, id);
    assert.ok(ok, `echo reply ${seq} carries the request's data`);
    answered.push(seq);
  };
  for (let seq = 0; seq < count; seq++) {
    assert.ok(ep.sendEchoRequest(id, seq, payload(seq)));
    if (seq % 8 === 7) pumpUntil(rig, g, () => answered.length === seq + 1, `echo reply ${seq}`);
  }
  pumpUntil(rig, g, () => answered.length === count, 'every echo reply');
  return answered;
}

const range = (n: number, from = 0): number[] => Array.from({ length: n }, (_, i) => from + i);

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';

  test(`NetDevice ${where} negotiates every offered feature through MMIO and answers ARP and ICMP echo from the host stack`, async () => {
    const rig = await makeRig({ worker, device: { mac: '52:54:00:12:34:56', backend: { type: 'host-stack', hostMac: HOST_MAC, hostIp: HOST_IP, guestIp: GUEST_IP } } });
    try {
      const g = guest(rig);
      assert.equal(g.init(), VIRTIO_NET_FEATURES);
      assert.equal(rig.t.status, Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK);
      assert.deepEqual([...g.mac], [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
      assert.equal(g.mtu, 1500);
      assert.ok(g.linkUp());
      g.refillRx();
      assert.deepEqual(arpAndPing(rig, g, 40, (s) => 8 + ((s * 37) % 1400)), range(40));
      const st = await deviceState(rig);
      assert.equal(st.stats.txFrames, 41);
      assert.equal(st.stats.rxFrames, 41);
      assert.equal(st.stats.txDropped + st.stats.rxDropped, 0);
      assert.equal(st.hostStack!.stats.echoRequestsIn, 40);
      assert.equal(rig.issues.length, 0, JSON.stringify(rig.issues));
    } finally {
      await rig.close();
    }
  });

  test(`NetDevice ${where} reset in the middle of a ping flood drops what was in flight and serves the re-initialised driver`, async () => {
    const rig = await makeRig({ worker });
    try {
      const g = guest(rig, { driver: { rxBuffers: 4 } });
      g.init();
      g.refillRx();
      const ep = g.endpoint!;
      ep.peerMac = macFromString(HOST_MAC);
      for (let s = 0; s < 30; s++) ep.sendEchoRequest(1, s, 1000);
      g.step(); // requests go out; with 4 rx buffers most replies wait in the device
      g.reset();
      assert.equal(rig.t.status, 0);
      assert.equal(rig.t.read(Reg.InterruptStatus, 4), 0);
      g.init();
      g.refillRx();
      // Nothing from before the reset may reappear: a reply to id 1 now would fail this check.
      assert.deepEqual(arpAndPing(rig, g, 30, () => 500, 2), range(30));
      const st = await deviceState(rig);
      assert.equal(st.stats.rxFrames, 31, 'the new incarnation delivered only its own replies');
    } finally {
      await rig.close();
    }
  });

  test(`NetDevice ${where} saved mid-stream, with rx chains held for a jumbo reply and replies waiting in the backend, resumes without losing or duplicating a frame`, async () => {
    const device: VirtioNetOptions = { mtu: 9000, queueSize: 64 };
    const rig = await makeRig({ worker, device });
    // 10 mergeable rx buffers of 1526 bytes, refilled only when the test says so.
    const g = guest(rig, { queueSize: 64, driver: { rxBuffers: 10, mergeableBufBytes: 1526, refillThreshold: 1000 } });
    g.init();
    assert.ok((g.features & NetF.MRG_RXBUF) !== 0n);
    const ep = g.endpoint!;
    ep.peerMac = macFromString(HOST_MAC);
    const answered: number[] = [];
    ep.onEchoReply = (_id, seq, ok) => {
      assert.ok(ok);
      answered.push(seq);
    };
    // 10 rx buffers of 1526 bytes: two 6000-byte replies fit (4 buffers each), the third finds 2.
    assert.equal(g.refillRx(), 10);
    for (let s = 0; s < 20; s++) assert.ok(ep.sendEchoRequest(3, s, 6000));
    for (let i = 0; i < 50 && answered.length < 2; i++) {
      // Receive only: no refill.
      g.acknowledgeInterrupt();
      g.receive();
      if (i === 0) {
        while (ep.hasOutput) {
          const h = emptyNetHdr();
          const buf = new Uint8Array(9100);
          const n = ep.nextFrame(buf, 0, buf.length, h);
          assert.ok(g.send(buf.subarray(0, n), h));
        }
        g.flushTx();
      }
      waitDevice(rig, 10);
    }
    assert.deepEqual(answered, [0, 1]);
    let st: VirtioNetState | null = null;
    for (let i = 0; i < 100; i++) {
      st = await deviceState(rig);
      if (st.stats.txFrames === 20) break;
      waitDevice(rig, 10);
    }
    const snapshot = JSON.parse(JSON.stringify(await rig.t.save())) as MmioSnapshot;
    const saved = snapshot.backend!.device as VirtioNetState;
    assert.equal(saved.stats.txFrames, 20);
    assert.equal(saved.replay.length, 18, 'the replies not yet delivered are in the snapshot');
    assert.equal(saved.rxNextAvail, 8, 'the two chains held for the third reply went back to the ring');
    await rig.close();

    const rig2 = await makeRig({ worker, device, mem: rig.mem, restore: snapshot });
    try {
      g.bus = rig2.t;
      assert.equal(rig2.t.negotiatedFeatures, g.features);
      pumpUntil(rig2, g, () => answered.length === 20, 'the replies after the restore');
      assert.deepEqual(answered, range(20), 'every reply once, in order');
      const snap2 = await rig2.t.save();
      rig2.t.resume();
      assert.equal(snap2.backend!.queues[0]!.inFlight, 0, 'no rx chain was lost in the device across the restore');
      const after = snap2.backend!.device as VirtioNetState;
      assert.equal(after.stats.rxFrames, 20);
      assert.ok(after.stats.rxBuffers >= 80, `a 6042-byte reply spans 4 buffers (rxBuffers ${after.stats.rxBuffers})`);
      assert.equal(after.stats.rxDropped, 0);
    } finally {
      await rig2.close();
    }
  });

  test(`a hostile avail index on NetDevice's transmit queue ${where} sets DEVICE_NEEDS_RESET with a config interrupt, and a reset recovers`, async () => {
    const rig = await makeRig({ worker });
    try {
      const g = guest(rig);
      g.init();
      g.refillRx();
      arpAndPing(rig, g, 5, () => 64);
      const tx = g.net.txq as DriverQueue<number>; // split: the test writes its ring directly
      tx.ring.storeAvailIdx((tx.ring.loadAvailIdx() + 1000) & 0xffff);
      rig.t.write(Reg.QueueNotify, 1, 4);
      waitNeedsReset(rig);
      assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, Status.DEVICE_NEEDS_RESET);
      assert.equal(rig.t.read(Reg.InterruptStatus, 4) & 2, 2, 'configuration change notification (§2.1.2)');
      g.init();
      assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, 0);
      g.refillRx();
      assert.deepEqual(arpAndPing(rig, g, 10, () => 100), range(10));
    } finally {
      await rig.close();
    }
  });
}

/** One TCP frame of `payloadBytes` from the guest to the host's port 5001, as a TSO4 GSO frame. */
function gsoFrame(g: MmioNetGuest, payloadBytes: number): { frame: Uint8Array; hdr: ReturnType<typeof emptyNetHdr> } {
  const frame = new Uint8Array(54 + payloadBytes);
  const payload = new Uint8Array(payloadBytes).map((_, i) => i & 0xff);
  const n = buildTcpFrame(frame, 0, {
    link: { srcMac: Uint8Array.from(g.mac), dstMac: macFromString(HOST_MAC) },
    ip: { version: 4, src: ipv4FromString(GUEST_IP), dst: ipv4FromString(HOST_IP) },
    srcPort: 40000,
    dstPort: 5001,
    seq: 1,
    ack: 0,
    flags: TcpFlags.ACK | TcpFlags.PSH,
    payload,
  });
  const hdr = emptyNetHdr();
  hdr.flags = NetHdrFlags.NEEDS_CSUM;
  hdr.gsoType = GsoType.TCPV4;
  hdr.gsoSize = 1448;
  hdr.hdrLen = 54;
  hdr.csumStart = 34;
  hdr.csumOffset = 16;
  return { frame: frame.subarray(0, n), hdr };
}

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';
  test(`a guest TCP stream ${where} goes out as TSO frames when HOST_TSO4 is negotiated and reaches the host stack's sink intact`, async () => {
    const rig = await makeRig({ worker, device: { backend: { type: 'host-stack', sinkPort: 5001, sinkVerify: true } } });
    try {
      const g = guest(rig);
      g.init();
      assert.ok((g.features & NetF.HOST_TSO4) !== 0n);
      g.refillRx();
      const ep = g.endpoint!;
      ep.peerMac = macFromString(HOST_MAC);
      ep.gso = true;
      ep.partialCsum = true;
      ep.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 60_000, totalBytes: 600_000 });
      pumpUntil(rig, g, () => ep.sourceDone, 'the stream to be acknowledged');
      const st = await deviceState(rig);
      assert.ok(st.stats.txGsoFrames > 0 && st.stats.txGsoFrames <= 20, `GSO frames: ${st.stats.txGsoFrames}`);
      assert.equal(st.stats.txDropped, 0);
      assert.equal(st.hostStack!.sink!.payloadBytes, 600_000);
      assert.equal(st.hostStack!.sink!.errors, 0, st.hostStack!.sink!.firstError);
    } finally {
      await rig.close();
    }
  });
}

test('a TSO frame from a driver that did not negotiate HOST_TSO4 is dropped with the reason gso-type-not-negotiated, and traffic goes on', async () => {
  const rig = await makeRig({ worker: false });
  try {
    const g = guest(rig, { wantFeatures: VIRTIO_NET_FEATURES & ~(NetF.HOST_TSO4 | NetF.HOST_TSO6 | NetF.HOST_ECN) });
    g.init();
    assert.equal(g.features & NetF.HOST_TSO4, 0n);
    g.refillRx();
    // Small enough for the driver's non-GSO tx buffers: only its header says TSO.
    const { frame, hdr } = gsoFrame(g, 1400);
    hdr.gsoSize = 700;
    assert.ok(g.send(frame, hdr));
    g.flushTx();
    const st = await deviceState(rig);
    assert.deepEqual(st.stats.txDrops, { 'gso-type-not-negotiated': 1 });
    assert.equal(st.stats.txFrames, 0);
    assert.deepEqual(arpAndPing(rig, g, 5, () => 56), range(5));
  } finally {
    await rig.close();
  }
});

test('with a backend that takes no GSO, NetDevice segments the guest TSO frame in software and the sink gets every byte', async () => {
  const rig = await makeRig({ worker: false, device: { backend: { type: 'host-stack', acceptsGso: false, acceptsPartialCsum: false, sinkPort: 5001 } } });
  try {
    const g = guest(rig);
    g.init();
    g.refillRx();
    const { frame, hdr } = gsoFrame(g, 8000);
    assert.ok(g.send(frame, hdr));
    g.flushTx();
    const st = await deviceState(rig);
    assert.equal(st.stats.txGsoFrames, 1);
    assert.equal(st.stats.txSwSegments, Math.ceil(8000 / 1448));
    assert.equal(st.stats.txDropped, 0);
    assert.equal(st.hostStack!.sink!.payloadBytes, 8000);
  } finally {
    await rig.close();
  }
});

test('mergeable rx spreads a jumbo echo reply over several buffers; without MRG_RXBUF the driver posts MTU-sized buffers and the reply lands in one', async () => {
  for (const mrg of [true, false]) {
    const rig = await makeRig({ worker: false, device: { mtu: 9000 } });
    try {
      const g = guest(rig, { wantFeatures: mrg ? VIRTIO_NET_FEATURES : VIRTIO_NET_FEATURES & ~(NetF.MRG_RXBUF | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN), driver: { mergeableBufBytes: 1526 } });
      g.init();
      assert.equal((g.features & NetF.MRG_RXBUF) !== 0n, mrg);
      g.refillRx();
      const ep = g.endpoint!;
      ep.peerMac = macFromString(HOST_MAC);
      const answered: number[] = [];
      ep.onEchoReply = (_id, seq, ok) => {
        assert.ok(ok);
        answered.push(seq);
      };
      ep.sendEchoRequest(9, 0, 8000);
      ep.sendEchoRequest(9, 1, 100);
      pumpUntil(rig, g, () => answered.includes(1), 'the small reply');
      const st = await deviceState(rig);
      assert.deepEqual(answered, [0, 1]);
      assert.equal(st.stats.rxDropped, 0);
      if (mrg) {
        assert.equal(st.stats.rxBuffers - st.stats.rxFrames, Math.ceil((12 + 8042) / 1526) - 1, 'the jumbo reply took 6 buffers');
      } else {
        // §5.1.6.3.1: without MRG_RXBUF each buffer holds a whole frame of the negotiated MTU.
        assert.ok(g.net.rxBufBytes >= 12 + 9000 + 14, `rx buffers of ${g.net.rxBufBytes} bytes`);
        assert.equal(st.stats.rxBuffers, st.stats.rxFrames);
      }
    } finally {
      await rig.close();
    }
  }
});

test('the adapter offers what NetDevice implements, refuses dependent features without their base, and exposes struct virtio_net_config', async () => {
  const rig = await makeRig({ worker: false, device: { mac: '02:00:00:00:00:01', mtu: 4000, withhold: ['GUEST_ECN'] } });
  try {
    const f = VIRTIO_NET_FEATURES & ~NetF.GUEST_ECN;
    assert.equal(rig.t.read(Reg.DeviceID, 4), 1);
    const front = new VirtioNetFrontend({ withhold: ['GUEST_ECN'] });
    assert.equal(front.offeredFeatures, f);
    assert.match(front.checkFeatures(VirtioF.VERSION_1 | NetF.HOST_TSO4) ?? '', /CSUM/);
    assert.equal(front.checkFeatures(VirtioF.VERSION_1 | NetF.CSUM | NetF.HOST_TSO4), null);
    const g = guest(rig, {}, 4000);
    assert.equal(g.init(), f);
    assert.deepEqual([...g.mac], [2, 0, 0, 0, 0, 1]);
    assert.equal(g.mtu, 4000);
    assert.equal(rig.t.read(0x100 + 8, 2), 1, 'max_virtqueue_pairs');
  } finally {
    await rig.close();
  }
});

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';
  test(`a save ${where} that would have to drop frames the backend has ready is refused with save-refused, and after resume every reply still arrives once`, async () => {
    const rig = await makeRig({ worker, device: { replayFrames: 2 } });
    try {
      const g = guest(rig);
      g.init();
      const ep = g.endpoint!;
      ep.peerMac = macFromString(HOST_MAC);
      const answered: number[] = [];
      ep.onEchoReply = (_id, seq) => answered.push(seq);
      // No rx buffers yet: the five replies wait in the host stack.
      for (let s = 0; s < 5; s++) ep.sendEchoRequest(4, s, 64);
      while (ep.hasOutput) {
        const h = emptyNetHdr();
        const buf = new Uint8Array(2048);
        assert.ok(g.send(buf.subarray(0, ep.nextFrame(buf, 0, buf.length, h)), h));
      }
      g.flushTx();
      let reaped = 0;
      for (let i = 0; i < 100 && reaped < 5; i++) {
        reaped += g.net.reapTx(); // the device took the requests; the stack queued the replies then
        if (reaped < 5) waitDevice(rig, 10);
      }
      assert.equal(reaped, 5);
      await assert.rejects(rig.t.save(), worker ? /save failed: virtio-net: the backend has more than 2 frames/ : { name: 'VirtioNetError', code: 'save-refused' });
      rig.t.resume();
      pumpUntil(rig, g, () => answered.length === 5, 'the replies after the refused save');
      assert.deepEqual(answered, range(5));
    } finally {
      await rig.close();
    }
  });
}

test('the mmio-net-ping example pings the host stack through a device on a worker and prints ping\'s RTT summary', async () => {
  const script = new URL('../examples/mmio-net-ping.js', import.meta.url);
  const { stdout } = await promisify(execFile)(process.execPath, [script.pathname, '--count', '20'], { timeout: 30_000 });
  assert.match(stdout, /arp: 10\.0\.2\.2 is at 52:54:00:ab:cd:ef/);
  assert.match(stdout, /20 packets transmitted, 20 received, 0 with wrong data/);
  assert.match(stdout, /rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms/);
  assert.match(stdout, /reset: status 0, ignored accesses 0/);
});

test('config.mtu limits frames only for a driver that negotiated VIRTIO_NET_F_MTU; without it standard 1500-byte frames pass', async () => {
  for (const takeMtu of [true, false]) {
    const rig = await makeRig({ worker: false, device: { mtu: 1000 } });
    try {
      const g = guest(rig, { wantFeatures: takeMtu ? VIRTIO_NET_FEATURES : VIRTIO_NET_FEATURES & ~NetF.MTU });
      g.init();
      g.refillRx();
      const ep = g.endpoint!;
      ep.peerMac = macFromString(HOST_MAC);
      const answered: number[] = [];
      ep.onEchoReply = (_id, seq) => answered.push(seq);
      ep.sendEchoRequest(5, 0, 1400); // a 1442-byte frame: over 1000 + 18, under 1500 + 18
      ep.sendEchoRequest(5, 1, 500);
      pumpUntil(rig, g, () => answered.includes(1), 'the small reply');
      const st = await deviceState(rig);
      if (takeMtu) {
        assert.equal(g.mtu, 1000);
        assert.deepEqual(answered, [1]);
        assert.deepEqual(st.stats.txDrops, { 'frame-too-long': 1 });
      } else {
        assert.deepEqual(answered, [0, 1]);
        assert.equal(st.stats.txDropped, 0);
      }
    } finally {
      await rig.close();
    }
  }
});

test('random virtio_net_hdr and frames from the guest are each forwarded or dropped with a counted reason, and the device keeps answering', async () => {
  const fc = (await import('fast-check')).default;
  const rig = await makeRig({ worker: false });
  try {
    const g = guest(rig);
    g.init();
    g.refillRx();
    const u16 = fc.integer({ min: 0, max: 0xffff });
    let sent = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            flags: fc.integer({ min: 0, max: 255 }),
            gsoType: fc.constantFrom(0, 1, 3, 4, 5, 0x81, 0x7f, 255),
            hdrLen: u16,
            gsoSize: u16,
            csumStart: u16,
            csumOffset: u16,
            frame: fc.uint8Array({ minLength: 1, maxLength: 3000 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        (frames) => {
          for (const f of frames) {
            const hdr = { ...emptyNetHdr(), ...f };
            assert.ok(g.send(f.frame, hdr));
            g.flushTx();
            sent++;
          }
          assert.equal(rig.t.status & Status.DEVICE_NEEDS_RESET, 0, 'bad headers are not ring violations');
          return true;
        },
      ),
      { numRuns: 100 },
    );
    const st = await deviceState(rig);
    assert.equal(st.stats.txChains, sent);
    assert.equal(st.stats.txFrames + st.stats.txDropped, sent, `every chain forwarded or dropped: ${JSON.stringify(st.stats.txDrops)}`);
    assert.ok(st.stats.txDropped > 0);
    assert.deepEqual(arpAndPing(rig, g, 5, () => 64), range(5));
  } finally {
    await rig.close();
  }
});

test('garbage written over NetDevice\'s live rings never escapes the transport: the device breaks cleanly or carries on, and a reset recovers', async () => {
  const fc = (await import('fast-check')).default;
  const rig = await makeRig({ worker: false });
  try {
    const g = guest(rig, { queueSize: 64 });
    fc.assert(
      fc.property(
        fc.array(fc.record({ queue: fc.constantFrom(0, 1), area: fc.constantFrom('desc', 'avail', 'used'), offset: fc.nat({ max: 1100 }), bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }), { minLength: 1, maxLength: 8 }),
        (scribbles) => {
          g.init();
          g.refillRx();
          g.endpoint!.peerMac = macFromString(HOST_MAC);
          g.endpoint!.sendEchoRequest(1, 0, 100);
          g.step();
          for (const s of scribbles) {
            const q = s.queue === 0 ? g.net.rxq : g.net.txq;
            const base = s.area === 'desc' ? q.layout.descAddr : s.area === 'avail' ? q.layout.availAddr : q.layout.usedAddr;
            rig.mem.copyIn(base + s.offset, s.bytes);
            rig.t.write(Reg.QueueNotify, s.queue, 4);
          }
          const st = rig.t.status;
          if (st & Status.DEVICE_NEEDS_RESET) assert.equal(rig.t.read(Reg.InterruptStatus, 4) & 2, 2);
          else assert.equal(st & Status.DRIVER_OK, Status.DRIVER_OK);
          return true;
        },
      ),
      { numRuns: 100 },
    );
    g.init();
    g.refillRx();
    assert.deepEqual(arpAndPing(rig, g, 10, () => 64), range(10), 'a reset brings the device back');
  } finally {
    await rig.close();
  }
});

for (const worker of [false, true]) {
  const where = worker ? 'on its own worker' : 'inline';
  test(`a TSO stream ${where} saved mid-stream and restored on a new device reaches the sink complete, in order and verified`, async () => {
    const device: VirtioNetOptions = { backend: { type: 'host-stack', sinkPort: 5001, sinkVerify: true } };
    const rig = await makeRig({ worker, device });
    const g = guest(rig);
    g.init();
    g.refillRx();
    const ep = g.endpoint!;
    ep.peerMac = macFromString(HOST_MAC);
    ep.gso = true;
    ep.partialCsum = true;
    const total = 3_000_000;
    const src = ep.startSource({ srcPort: 40000, dstPort: 5001, msgBytes: 60_000, totalBytes: total, windowBytes: 400_000 });
    pumpUntil(rig, g, () => src.ackedBytes >= 1_000_000, 'a third of the stream');
    // Frames in the tx ring and ACKs in the host stack at this point travel in the snapshot.
    g.step();
    const snapshot = JSON.parse(JSON.stringify(await rig.t.save())) as MmioSnapshot;
    const mid = (snapshot.backend!.device as VirtioNetState).hostStack!.sink!;
    assert.ok(mid.payloadBytes > 0 && mid.payloadBytes < total, `sink at ${mid.payloadBytes}`);
    await rig.close();
    const rig2 = await makeRig({ worker, device, mem: rig.mem, restore: snapshot });
    try {
      g.bus = rig2.t;
      pumpUntil(rig2, g, () => ep.sourceDone, 'the rest of the stream');
      const sink = (await deviceState(rig2)).hostStack!.sink!;
      assert.equal(sink.payloadBytes, total);
      assert.equal(sink.errors, 0, sink.firstError);
      assert.equal(src.badAcks, 0);
    } finally {
      await rig2.close();
    }
  });
}
