// The frame-level pieces the real-peer backends share, tested without any addon: the ARP/ICMP
// responder (replies checked by virtq's own parser, strays counted, hostile bytes never throw),
// the TUNSETOFFLOAD mapping, and the driver → rings → device path of the TAP demo run in one
// thread (GuestNet as driver, FrameDevice as device) including mergeable receive buffers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
import { DeviceQueue, DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { ArpOp, buildArpFrame, buildIcmpEchoFrame, ipv4FromString, macFromString, parsePacket } from '../src/net/frames/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { Responder } from '../src/peers/responder.js';
import { FrameDevice } from '../src/peers/frame-device.js';
import { GuestNet, planGuestNet } from '../src/peers/guest-net.js';
import { TunF, tunOffloadFlags } from '../src/backend/tap-offload.js';

const GUEST_MAC = macFromString('52:54:00:12:34:56');
const HOST_MAC = macFromString('02:00:00:00:00:01');
const G = ipv4FromString('10.77.0.2');
const H = ipv4FromString('10.77.0.1');

function arpRequest(target: number): Uint8Array {
  const b = new Uint8Array(64);
  const n = buildArpFrame(b, 0, { op: ArpOp.REQUEST, srcMac: HOST_MAC, senderIp: H, targetIp: target });
  return b.subarray(0, n);
}

function echoRequest(dst: number, seq: number, dataBytes = 56): Uint8Array {
  const b = new Uint8Array(2048);
  const data = new Uint8Array(dataBytes).map((_, i) => (i * 7 + seq) & 0xff);
  const n = buildIcmpEchoFrame(b, 0, { link: { srcMac: HOST_MAC, dstMac: GUEST_MAC }, ip: { version: 4, src: H, dst }, kind: 'request', id: 77, seq, data });
  return b.subarray(0, n);
}

test('the responder answers an ARP request for its address with a reply the parser accepts', () => {
  const r = new Responder(GUEST_MAC, G);
  const out = new Uint8Array(128);
  const req = arpRequest(G);
  const n = r.respond(req, req.length, out);
  assert.equal(n, 42);
  const p = parsePacket(out, 0, n);
  assert.ok(!(p instanceof Error));
  assert.equal(p.l3, 'arp');
  assert.equal(p.arp.op, ArpOp.REPLY);
  assert.equal(p.arp.senderIp, G);
  assert.equal(p.arp.targetIp, H);
  assert.deepEqual([...out.subarray(p.arp.senderMacOffset, p.arp.senderMacOffset + 6)], [...GUEST_MAC]);
  assert.deepEqual([...out.subarray(0, 6)], [...HOST_MAC]);
  assert.equal(r.stats.arpReplies, 1);
});

test('the responder turns an echo request into an echo reply with valid IPv4 and ICMP checksums', () => {
  const r = new Responder(GUEST_MAC, G);
  const out = new Uint8Array(2048);
  const req = echoRequest(G, 9, 1400);
  const n = r.respond(req, req.length, out);
  assert.equal(n, req.length);
  const p = parsePacket(out, 0, n, undefined, true);
  assert.ok(!(p instanceof Error));
  assert.equal(p.l4, 'icmp');
  assert.equal(p.icmp.type, 0);
  assert.equal(p.icmp.seq, 9);
  assert.equal(p.ipv4.src, G);
  assert.equal(p.ipv4.dst, H);
  assert.equal(p.l4ChecksumOk, true);
  assert.deepEqual([...out.subarray(42, n)], [...req.subarray(42)]); // payload echoed
});

test('the responder counts frames it does not answer by reason', () => {
  const r = new Responder(GUEST_MAC, G);
  const out = new Uint8Array(2048);
  const other = ipv4FromString('10.77.0.3');
  assert.equal(r.respond(arpRequest(other), 42, out), 0);
  const e = echoRequest(other, 1);
  assert.equal(r.respond(e, e.length, out), 0);
  const v6 = new Uint8Array(90);
  v6[12] = 0x86;
  v6[13] = 0xdd; // a router solicitation or MLD report on link-up looks like this to us
  assert.equal(r.respond(v6, v6.length, out), 0);
  assert.equal(r.respond(v6, 10, out), 0);
  assert.deepEqual(r.stats.ignored, { ipv6: 1, 'arp-not-for-us': 1, 'ipv4-not-for-us': 1, 'not-echo-request': 0, malformed: 1, 'other-ethertype': 0 });
});

test('the responder never throws and never writes past its output on arbitrary bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 200 }), fc.boolean(), (bytes, asIpv4) => {
      const f = new Uint8Array(bytes);
      if (asIpv4 && f.length >= 34) {
        f[12] = 8;
        f[13] = 0;
        f[30] = 10; // dst 10.77.0.2 so the echo path is reached
        f[31] = 77;
        f[32] = 0;
        f[33] = 2;
      }
      const out = new Uint8Array(100);
      const n = new Responder(GUEST_MAC, G).respond(f, f.length, out);
      assert.ok(n >= 0 && n <= out.length);
    }),
  );
});

test('TUNSETOFFLOAD flags follow the GUEST_* features the driver accepted', () => {
  assert.equal(tunOffloadFlags(VirtioF.VERSION_1), 0);
  assert.equal(tunOffloadFlags(NetF.GUEST_TSO4), 0, 'TSO without GUEST_CSUM is never announced');
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM), TunF.CSUM);
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN), TunF.CSUM | TunF.TSO4 | TunF.TSO6 | TunF.TSO_ECN);
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_ECN), TunF.CSUM, 'ECN only with TSO');
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_UFO | NetF.HOST_TSO4), TunF.CSUM | TunF.UFO, 'HOST_* bits are about the other direction');
});

test('a ping through the TAP demo data path (guest driver, rings, device) comes back answered', () => {
  const plan = planGuestNet(8, 2048, 12, true);
  const mem = GuestMemory.allocate(plan.totalBytes);
  const gn = new GuestNet(mem, plan, new Responder(GUEST_MAC, G));
  const rx = new DeviceQueue(mem, SplitLayout.packedAt(8, plan.rxRing, 0), { index: 0, eventIdx: true });
  const tx = new DeviceQueue(mem, SplitLayout.packedAt(8, plan.txRing, 1), { index: 1, eventIdx: true });
  const dev = new FrameDevice(mem, rx, tx, { hdrBytes: 12, mergeable: false });
  gn.fillRx();
  const buf = new Uint8Array(4096);
  for (let seq = 0; seq < 40; seq++) {
    // 40 pings through an 8-entry ring: indices wrap the ring five times.
    const req = seq === 0 ? arpRequest(G) : echoRequest(G, seq);
    buf.fill(0, 0, 12);
    buf.set(req, 12);
    assert.equal(dev.pushRx(buf, 12 + req.length), 'ok');
    dev.flush();
    gn.service();
    const n = dev.popTx(buf);
    assert.ok(n > 12, `reply ${seq} transmitted`);
    dev.flush();
    const p = parsePacket(buf, 12, n);
    assert.ok(!(p instanceof Error));
    if (seq === 0) assert.equal(p.arp.op, ArpOp.REPLY);
    else {
      assert.equal(p.icmp.type, 0);
      assert.equal(p.icmp.seq, seq);
    }
    assert.equal(dev.popTx(buf), -1);
  }
  assert.equal(gn.stats.rxFrames, 40);
  assert.equal(dev.stats.txFrames, 40);
});

test('with MRG_RXBUF a frame larger than one buffer spans chains and num_buffers says how many', () => {
  const size = 8;
  const mem = GuestMemory.allocate(1 << 16);
  const layout = SplitLayout.packedAt(size, 0, 0);
  const drv = new DriverQueue<number>(mem, layout, { index: 0 });
  const txLayout = SplitLayout.packedAt(size, SplitLayout.packedBytes(size), 1);
  new DriverQueue<number>(mem, txLayout, { index: 1 });
  const bufBase = 2 * SplitLayout.packedBytes(size);
  for (let i = 0; i < 4; i++) drv.add([], [{ addr: bufBase + i * 256, len: 256 }], i);
  drv.publish();
  const dev = new FrameDevice(mem, new DeviceQueue(mem, layout, { index: 0 }), new DeviceQueue(mem, txLayout, { index: 1 }), { hdrBytes: 12, mergeable: true });
  const frame = new Uint8Array(12 + 600).map((_, i) => i & 0xff);
  assert.equal(dev.pushRx(frame, frame.length), 'ok');
  dev.flush();
  const lens: number[] = [];
  for (let u = drv.reap(); u !== null; u = drv.reap()) lens.push(u.len);
  assert.deepEqual(lens, [256, 256, 100]);
  assert.equal(mem.bytes(bufBase + 10, 2)[0], 3, 'num_buffers = 3');
  assert.deepEqual([...mem.bytes(bufBase + 256, 256)], [...frame.subarray(256, 512)]);
  // Without enough chains left, nothing is consumed: the frame waits for buffers.
  assert.equal(dev.pushRx(frame, frame.length), 'no-buffer');
  drv.add([], [{ addr: bufBase, len: 256 }], 0);
  drv.add([], [{ addr: bufBase + 256, len: 256 }], 1);
  drv.publish();
  assert.equal(dev.pushRx(frame, frame.length), 'ok');
});

test('without MRG_RXBUF a frame larger than one receive chain is dropped and counted, the chain kept', () => {
  const plan = planGuestNet(4, 128, 12, false);
  const mem = GuestMemory.allocate(plan.totalBytes);
  const gn = new GuestNet(mem, plan, new Responder(GUEST_MAC, G));
  gn.fillRx();
  const dev = new FrameDevice(
    mem,
    new DeviceQueue(mem, SplitLayout.packedAt(4, plan.rxRing, 0), { index: 0 }),
    new DeviceQueue(mem, SplitLayout.packedAt(4, plan.txRing, 1), { index: 1 }),
    { hdrBytes: 12, mergeable: false },
  );
  const big = new Uint8Array(12 + 200);
  assert.equal(dev.pushRx(big, big.length), 'too-big');
  assert.equal(dev.stats.rxDropTooBig, 1);
  const small = new Uint8Array(12 + 60);
  for (let i = 0; i < 4; i++) assert.equal(dev.pushRx(small, small.length), 'ok', `all 4 chains still usable (${i})`);
  assert.equal(dev.pushRx(small, small.length), 'no-buffer');
});
