// The control virtqueue over virtio-mmio, inline and across a real device worker: the guest
// (MmioNetGuest + ControlDriver) negotiates CTRL_VQ, sets up queue 2 (or 2N with MQ, virtio 1.2
// §5.1.2), and its commands are answered by the device's ControlQueue in the device loop: acks,
// VIRTIO_NET_ERR for malformed commands with the queue still working after them, and the rx
// filter applied to frames the loopback port hands back (promisc off: a frame to another MAC is
// dropped, every frame to the guest's MAC arrives once, in order and intact); the control state
// (filter, offloads) saved with the device and restored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeRig, guestFor, waitDevice, pump, type MmioRig, type SeqGuest } from './support/mmio-rig.js';
import { GUEST_NET_FEATURES, VIRTIO_NET_CTRL_FEATURES, VirtioNetError, VirtioNetFrontend, makeSeqFrame, type MmioSnapshot } from '../src/transport/index.js';
import { CtrlClass, encodeControl } from '../src/net/control.js';
import type { ControlReply } from '../src/net/control-driver.js';
import { NetF } from '../src/net/features.js';
import { HashReport } from '../src/net/header.js';
import { rssInput, toeplitz } from '../src/net/rss.js';
import { buildUdpFrame, ipv4FromString, newFrameLayout } from '../src/net/frames/index.js';

function reply(rig: MmioRig, g: SeqGuest): ControlReply {
  const end = performance.now() + 20_000;
  for (;;) {
    const r = g.pollControl();
    if (r !== null) return r;
    if (performance.now() > end) throw new Error('no reply to the control command in 20 s');
    g.acknowledgeInterrupt();
    waitDevice(rig, 20);
  }
}

function command(rig: MmioRig, g: SeqGuest, cmd: Parameters<SeqGuest['sendControl']>[0]): ControlReply {
  g.sendControl(cmd);
  return reply(rig, g);
}

/** Sends frames (seq, dst MAC) and returns the sequence numbers the guest received. */
function roundTrip(rig: MmioRig, g: SeqGuest, frames: [number, Uint8Array][]): (number | string)[] {
  for (const [seq, dst] of frames) assert.ok(g.send(makeSeqFrame(dst, seq, 200)));
  g.flushTx();
  const expected = frames.filter(([, d]) => d === g.mac).length;
  const end = performance.now() + 20_000;
  while (g.received.length < expected && performance.now() < end) {
    g.acknowledgeInterrupt();
    g.receive();
    if (g.received.length < expected) waitDevice(rig, 20);
  }
  // A filtered frame would have arrived together with its neighbours: one more look.
  waitDevice(rig, 20);
  g.acknowledgeInterrupt();
  g.receive();
  return g.received.splice(0);
}

for (const worker of [false, true]) {
  const where = worker ? 'on a device worker' : 'inline';
  test(`mmio ${where}: the guest's control commands are acked, malformed ones get VIRTIO_NET_ERR, and promisc off filters frames to other MACs`, { timeout: 60_000 }, async () => {
    const rig = await makeRig({ worker, device: { controlQueue: true } });
    try {
      const g = guestFor(rig, { wantFeatures: GUEST_NET_FEATURES | VIRTIO_NET_CTRL_FEATURES });
      const f = g.init();
      assert.ok((f & NetF.CTRL_VQ) !== 0n && (f & NetF.CTRL_RX) !== 0n);
      assert.equal(g.controlIndex, 2);
      g.refillRx();
      const other = Uint8Array.of(0x52, 0x54, 0, 9, 9, 9);
      // Promiscuous at reset: a frame to another MAC still arrives.
      assert.deepEqual(roundTrip(rig, g, [[0, g.mac], [1, other], [2, g.mac]]), [0, 1, 2]);
      assert.equal(command(rig, g, Uint8Array.of(9, 0)), 'err', 'unknown class');
      assert.equal(command(rig, g, Uint8Array.of(CtrlClass.RX, 0)), 'err', 'rx mode without its byte');
      assert.equal(command(rig, g, encodeControl({ kind: 'rx-mode', mode: 'promisc', on: false })), 'ok');
      assert.equal(command(rig, g, { kind: 'mac-table', unicast: [], multicast: [], unicastOverflow: false, multicastOverflow: false }), 'ok');
      assert.deepEqual(roundTrip(rig, g, [[3, g.mac], [4, other], [5, g.mac]]), [3, 5], 'the frame to another MAC is filtered');
      assert.equal(command(rig, g, { kind: 'mac-table', unicast: [other], multicast: [], unicastOverflow: false, multicastOverflow: false }), 'ok');
      assert.deepEqual(roundTrip(rig, g, [[6, g.mac], [7, other]]), [6, 7], 'a MAC in the table passes');
      assert.equal(command(rig, g, { kind: 'coalesce', direction: 'rx', maxPackets: 0, maxUsecs: 0 }), 'ok');
      // The data path is intact after all of it.
      assert.equal(pump(rig, g, 100, 400, 100), 400);
      assert.equal(g.control!.stats.err, 2);
      assert.equal(g.control!.stats.badReplies, 0);
      if (!worker) {
        const s = rig.backend!.service!;
        assert.equal(s.control!.stats.ok, 4);
        assert.equal(s.devices[0]!.stats.rxDrops['rx-filtered-address'], 1);
      }
    } finally {
      await rig.close();
    }
  });
}

test('mmio: with MQ the control queue is queue 2N, max_virtqueue_pairs is in config space, and VQ_PAIRS_SET beyond the pairs set up is refused', { timeout: 60_000 }, async () => {
  const rig = await makeRig({ device: { controlQueue: true, queuePairs: 2 } });
  try {
    assert.equal(rig.front.queueMaxSizes.length, 5);
    const g = guestFor(rig, { wantFeatures: GUEST_NET_FEATURES | VIRTIO_NET_CTRL_FEATURES | NetF.MQ });
    const f = g.init();
    assert.ok((f & NetF.MQ) !== 0n);
    assert.equal(g.controlIndex, 4);
    g.refillRx();
    // This guest set up pair 0 only: the device runs one pair and refuses two.
    assert.equal(command(rig, g, { kind: 'mq-pairs', pairs: 2 }), 'err');
    assert.equal(command(rig, g, { kind: 'mq-pairs', pairs: 1 }), 'ok');
    assert.equal(pump(rig, g, 0, 200, 0), 200);
  } finally {
    await rig.close();
  }
});

test('mmio: queuePairs > 1 without the control queue is a bad-options error (MQ requires CTRL_VQ)', () => {
  assert.throws(() => new VirtioNetFrontend({ queuePairs: 2 }), (e: unknown) => e instanceof VirtioNetError && e.code === 'bad-options');
});

test('mmio: a device saved with promisc off and restored still filters (the control state travels in the snapshot)', { timeout: 60_000 }, async () => {
  const rig = await makeRig({ device: { controlQueue: true } });
  const g = guestFor(rig, { wantFeatures: GUEST_NET_FEATURES | VIRTIO_NET_CTRL_FEATURES });
  g.init();
  g.refillRx();
  assert.equal(command(rig, g, { kind: 'rx-mode', mode: 'promisc', on: false }), 'ok');
  const snapshot = JSON.parse(JSON.stringify(await rig.t.save())) as MmioSnapshot;
  await rig.close();
  const rig2 = await makeRig({ device: { controlQueue: true }, mem: rig.mem, restore: snapshot });
  try {
    g.bus = rig2.t;
    const other = Uint8Array.of(0x52, 0x54, 0, 9, 9, 9);
    assert.deepEqual(roundTrip(rig2, g, [[0, g.mac], [1, other], [2, g.mac]]), [0, 2]);
    assert.equal(command(rig2, g, { kind: 'rx-mode', mode: 'promisc', on: true }), 'ok', 'the restored control queue answers');
    assert.deepEqual(roundTrip(rig2, g, [[3, other]]), [3]);
  } finally {
    await rig2.close();
  }
});

test('mmio with rss: RSS and HASH_REPORT negotiated, the RSS fields in config space, and after RSS_CONFIG every frame arrives with its hash report', { timeout: 60_000 }, async () => {
  const rig = await makeRig({ device: { controlQueue: true, queuePairs: 2, rss: true } });
  try {
    const reports: number[] = [];
    const hashes: number[] = [];
    const g = guestFor(rig, { wantFeatures: GUEST_NET_FEATURES | VIRTIO_NET_CTRL_FEATURES | NetF.MQ | NetF.RSS | NetF.HASH_REPORT });
    const onReceive = g.opts.onReceive!;
    (g.opts as { onReceive: typeof onReceive }).onReceive = (b, o, l, h) => (reports.push(h.hashReport), hashes.push(h.hashValue), onReceive(b, o, l, h));
    const f = g.init();
    assert.ok((f & NetF.RSS) !== 0n && (f & NetF.HASH_REPORT) !== 0n);
    assert.equal(g.net.hdrBytes, 20, 'the header carries hash_value and hash_report');
    const cfgBytes = Array.from({ length: 24 }, (_, i) => rig.t.read(0x100 + i, 1));
    assert.equal(cfgBytes[17], 40, 'rss_max_key_size');
    assert.equal(cfgBytes[18]! | (cfgBytes[19]! << 8), 128, 'rss_max_indirection_table_length');
    g.refillRx();
    // This guest runs pair 0 only: every table entry names queue 0.
    const key = Uint8Array.from({ length: 40 }, (_, i) => i * 7);
    assert.equal(command(rig, g, { kind: 'rss', steering: true, config: { hashTypes: 0x3f, key, indirection: new Uint16Array(8), unclassifiedQueue: 0, maxTxVq: 1 } }), 'ok');
    assert.equal(command(rig, g, { kind: 'rss', steering: true, config: { hashTypes: 0x3f, key, indirection: Uint16Array.of(0, 5), unclassifiedQueue: 0, maxTxVq: 1 } }), 'err', 'queue 5 of 2 pairs');
    assert.equal(pump(rig, g, 0, 100, 0), 100);
    // The sequence frames are not IP: unclassified, NONE; the data path is intact either way.
    assert.ok(reports.length >= 100 && reports.every((r) => r === 0));
    // A UDP/IPv4 frame comes back with its UDPv4 hash (the loopback hands it back as sent).
    const udpFrame = new Uint8Array(100);
    const n = buildUdpFrame(udpFrame, 0, { link: { srcMac: g.mac, dstMac: g.mac }, ip: { version: 4, src: ipv4FromString('10.0.0.1'), dst: ipv4FromString('10.0.0.2') }, srcPort: 1234, dstPort: 53, payload: new Uint8Array(8), checksum: 'full' }, newFrameLayout());
    const seen = reports.length;
    assert.ok(g.send(udpFrame.subarray(0, n)));
    g.flushTx();
    const end = performance.now() + 20_000;
    while (reports.length === seen && performance.now() < end) {
      g.acknowledgeInterrupt();
      g.receive();
      if (reports.length === seen) waitDevice(rig, 20);
    }
    g.received.splice(0);
    const input = new Uint8Array(40);
    const want = rssInput(udpFrame, 0, n, 0x3f, input)!;
    assert.deepEqual([reports[seen], hashes[seen]], [HashReport.UDPV4, toeplitz(key, input, want.lenBytes)]);
  } finally {
    await rig.close();
  }
});
