// vhost-user multiqueue (VHOST_USER_PROTOCOL_F_MQ) without sockets: GET_QUEUE_NUM and the MQ
// offer, rings of every pair started and enabled one pair at a time (the data path restarts over
// the enabled pairs), frames sent on each pair's transmit ring reflected back on the same pair's
// receive ring (steering follows the flow's transmit pair), per-pair counters, a disabled pair's
// flows moving to pair 0, every frame once and intact, and ring indices past the pairs refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../src/memory/index.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { Flags, HEADER_BYTES, Req, VHOST_USER_F_PROTOCOL_FEATURES, addrPayload, decodeHeader, decodeMessage, encodeMessage, memTablePayload, statePayload, u64Payload } from '../src/vhost-user/messages.js';
import { VhostUserError } from '../src/vhost-user/errors.js';
import { MQ_FEATURES, OFFERED_FEATURES, VhostUserBackend } from '../src/vhost-user/backend.js';
import { ReflectPort } from '../src/backend/reflect-port.js';
import { buildUdpFrame, ipv4FromString, macFromString, newFrameLayout } from '../src/net/frames/index.js';
import { resolvePolicy } from '../src/policy/index.js';
import { FakeOs } from './support/fake-vhost-os.js';


function send(b: VhostUserBackend, request: number, payload: Uint8Array, fds: number[] = []): Uint8Array | null {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  encodeMessage(out, request, Flags.VERSION, payload);
  return b.handle(decodeMessage(decodeHeader(out, out.length), out.subarray(HEADER_BYTES)), fds);
}
const u64 = (b: Uint8Array | null): bigint => new DataView(b!.buffer).getBigUint64(0, true);

const MEM_BYTES = 2 << 20;
const UVA = 0x7f00_0000_0000;
const GPA = 0x4000_0000;
const Q = 32;
const FEATURES = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | NetF.MQ | NetF.CTRL_VQ | VHOST_USER_F_PROTOCOL_FEATURES;

interface Pair {
  rxq: DriverQueue<number>;
  txq: DriverQueue<number>;
  bufBase: number;
}

/** A 2-pair backend with all four rings started; only `enabled` pairs enabled. */
function bringUp(pairs = 2) {
  const os = new FakeOs();
  const b = new VhostUserBackend(os, { port: new ReflectPort(), policy: resolvePolicy('vhost'), queuePairs: pairs });
  const fd = os.memfd(MEM_BYTES);
  const mem = new GuestMemory([{ guestAddr: GPA, buffer: os.files.get(fd)! }]);
  send(b, Req.SET_OWNER, new Uint8Array(0));
  send(b, Req.SET_FEATURES, u64Payload(FEATURES));
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }]), [fd]);
  const ringBytes = SplitLayout.packedBytes(Q);
  const qs: Pair[] = [];
  const toUva = (gpa: number): number => gpa - GPA + UVA;
  for (let p = 0; p < pairs; p++) {
    const rxL = SplitLayout.packedAt(Q, GPA + 2 * p * ringBytes, 2 * p);
    const txL = SplitLayout.packedAt(Q, GPA + (2 * p + 1) * ringBytes, 2 * p + 1);
    for (const [i, l] of [[2 * p, rxL], [2 * p + 1, txL]] as const) {
      send(b, Req.SET_VRING_NUM, statePayload(i, Q));
      send(b, Req.SET_VRING_BASE, statePayload(i, 0));
      send(b, Req.SET_VRING_ADDR, addrPayload({ index: i, flags: 0, descUser: toUva(l.descAddr), usedUser: toUva(l.usedAddr), availUser: toUva(l.availAddr), logGuest: 0 }));
      send(b, Req.SET_VRING_KICK, u64Payload(BigInt(i)), [os.eventfd()]);
      send(b, Req.SET_VRING_CALL, u64Payload(BigInt(i)), [os.eventfd()]);
    }
    qs.push({
      rxq: new DriverQueue<number>(mem, rxL, { index: 2 * p, eventIdx: true }),
      txq: new DriverQueue<number>(mem, txL, { index: 2 * p + 1, eventIdx: true }),
      bufBase: GPA + 2 * pairs * ringBytes + p * (256 << 10),
    });
  }
  const enable = (p: number, on: boolean): void => {
    send(b, Req.SET_VRING_ENABLE, statePayload(2 * p, on ? 1 : 0));
    send(b, Req.SET_VRING_ENABLE, statePayload(2 * p + 1, on ? 1 : 0));
  };
  return { os, b, mem, qs, enable };
}

const HS = 12;
const link = { srcMac: macFromString('52:54:00:00:00:01'), dstMac: macFromString('52:54:00:00:00:02') };

/** `[virtio_net_hdr][UDP frame]` of flow `srcPort` carrying sequence number `seq`. */
function udp(srcPort: number, seq: number): Uint8Array {
  const buf = new Uint8Array(HS + 200);
  const payload = new Uint8Array(32);
  new DataView(payload.buffer).setUint32(0, seq);
  payload.fill(seq & 0xff, 4);
  const len = buildUdpFrame(buf, HS, { link, ip: { version: 4, src: ipv4FromString('10.0.0.1'), dst: ipv4FromString('10.0.0.2') }, srcPort, dstPort: 9000, payload, checksum: 'full' }, newFrameLayout());
  return buf.slice(0, HS + len);
}

function postRx(mem: GuestMemory, p: Pair): void {
  for (let i = 0; i < 16; i++) p.rxq.add([], [{ addr: p.bufBase + i * 2048, len: 2048 }], i);
  p.rxq.publish();
}

function transmit(mem: GuestMemory, p: Pair, frames: Uint8Array[]): void {
  frames.forEach((f, k) => {
    const addr = p.bufBase + (64 + k) * 2048;
    mem.copyIn(addr, f);
    p.txq.add([{ addr, len: f.length }], [], k);
  });
  p.txq.publish();
}

/** Received frames per pair: [srcPort, seq] of each, with the payload checked intact. */
function receive(mem: GuestMemory, p: Pair): [number, number][] {
  const out: [number, number][] = [];
  for (let u = p.rxq.reap(); u !== null; u = p.rxq.reap()) {
    const f = mem.bytes(p.bufBase + u.token * 2048, u.len);
    const frame = f.subarray(HS);
    const l4 = 14 + 20;
    const srcPort = (frame[l4]! << 8) | frame[l4 + 1]!;
    const seq = new DataView(frame.buffer, frame.byteOffset + l4 + 8).getUint32(0);
    for (let i = 4; i < 32; i++) assert.equal(frame[l4 + 8 + i], seq & 0xff, 'payload intact');
    out.push([srcPort, seq]);
    p.rxq.add([], [{ addr: p.bufBase + u.token * 2048, len: 2048 }], u.token);
  }
  p.rxq.publish();
  for (let u = p.txq.reap(); u !== null; u = p.txq.reap());
  return out;
}

test('GET_QUEUE_NUM says the pairs served; MQ and CTRL_VQ are offered only with more than one pair', () => {
  const one = new VhostUserBackend(new FakeOs(), { port: new ReflectPort() });
  assert.equal(u64(send(one, Req.GET_QUEUE_NUM, new Uint8Array(0))), 1n);
  assert.equal(u64(send(one, Req.GET_FEATURES, new Uint8Array(0))), OFFERED_FEATURES);
  const two = new VhostUserBackend(new FakeOs(), { port: new ReflectPort(), queuePairs: 2 });
  assert.equal(u64(send(two, Req.GET_QUEUE_NUM, new Uint8Array(0))), 2n);
  assert.equal(u64(send(two, Req.GET_FEATURES, new Uint8Array(0))), OFFERED_FEATURES | MQ_FEATURES);
  assert.throws(() => new VhostUserBackend(new FakeOs(), { port: new ReflectPort(), queuePairs: 0 }), (e: unknown) => e instanceof VhostUserError && e.code === 'bad-queue');
});

test('a ring index past the pairs served is refused with a reason naming the pairs', () => {
  const { b } = bringUp(2);
  assert.throws(
    () => send(b, Req.SET_VRING_NUM, statePayload(4, Q)),
    (e: unknown) => e instanceof VhostUserError && e.code === 'bad-queue' && /4 queues: 2 pairs/.test(e.message),
  );
});

test("two pairs: the data path follows SET_VRING_ENABLE, each pair's flows come back on that pair, every frame once and intact", () => {
  const { b, mem, qs, enable } = bringUp(2);
  const [p0, p1] = qs as [Pair, Pair];
  postRx(mem, p0);
  postRx(mem, p1);
  enable(0, true);
  assert.ok(b.service !== null, 'pair 0 enabled: the data path runs');
  assert.equal(b.service.devices.length, 1);
  transmit(mem, p0, [udp(1000, 1), udp(1001, 2)]);
  b.run();
  assert.deepEqual(receive(mem, p0).sort(), [[1000, 1], [1001, 2]]);

  enable(1, true);
  assert.equal(b.service!.devices.length, 2, 'pair 1 enabled: the data path restarts over both pairs');
  assert.equal(b.stats.serviceStarts, 2);
  const sent0: [number, number][] = [];
  const sent1: [number, number][] = [];
  const got0: [number, number][] = [];
  const got1: [number, number][] = [];
  let seq = 100;
  for (let round = 0; round < 6; round++) {
    const f0 = [0, 1, 2].map((k) => [2000 + k, seq++] as [number, number]);
    const f1 = [0, 1, 2].map((k) => [3000 + k, seq++] as [number, number]);
    transmit(mem, p0, f0.map(([s, n]) => udp(s, n)));
    transmit(mem, p1, f1.map(([s, n]) => udp(s, n)));
    sent0.push(...f0);
    sent1.push(...f1);
    b.run();
    got0.push(...receive(mem, p0));
    got1.push(...receive(mem, p1));
  }
  assert.deepEqual(got0.sort(), sent0.sort(), 'pair 0 flows back on pair 0, each frame once');
  assert.deepEqual(got1.sort(), sent1.sort(), 'pair 1 flows back on pair 1, each frame once');
  const c = b.counters;
  assert.ok((c['pair0.rxFrames'] ?? 0) > 0 && (c['pair1.rxFrames'] ?? 0) > 0, 'per-pair counters both non-zero');
  assert.equal(c['pair1.txFrames'], 18);
  assert.equal(b.frameStats.txFrames, 2 + 36);

  // Pair 1 disabled (VQ_PAIRS_SET 1 in the frontend): its flows now come back on pair 0.
  enable(1, false);
  assert.equal(b.service!.devices.length, 1);
  transmit(mem, p0, [udp(3000, 999)]);
  b.run();
  assert.deepEqual(receive(mem, p0), [[3000, 999]]);
  assert.deepEqual(receive(mem, p1), []);
});

test('pair 0 disabled stops the data path even when pair 1 is enabled', () => {
  const { b, enable } = bringUp(2);
  enable(1, true);
  assert.equal(b.service, null);
  enable(0, true);
  assert.equal(b.service!.devices.length, 2);
  enable(0, false);
  assert.equal(b.service, null);
});
