// vhost-user on the packed ring (virtio 1.2 §2.8) without sockets or addons: a backend driven by
// a fake operating system with frontend PackedDriverQueues on "memfd" memory. Frames go through
// the one data path and come back reflected over many wraps of a queue whose size is not a
// power of 2; GET_VRING_BASE returns the position with its wrap counter in bit 15 (and the used
// position in bits 16–31, as QEMU reads it); SET_VRING_BASE resumes there, whether the frontend
// sends DPDK's 16-bit form or QEMU's 32-bit form; IN_ORDER returns are in order.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GuestMemory } from '../src/memory/index.js';
import { PackedDriverQueue, PackedLayout } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { Flags, HEADER_BYTES, Req, VHOST_USER_F_PROTOCOL_FEATURES, addrPayload, decodeHeader, decodeMessage, encodeMessage, memTablePayload, statePayload, u64Payload } from '../src/vhost-user/messages.js';
import { VhostUserError } from '../src/vhost-user/errors.js';
import { OFFERED_FEATURES, VhostUserBackend } from '../src/vhost-user/backend.js';
import { ReflectPort } from '../src/backend/reflect-port.js';
import { resolvePolicy } from '../src/policy/index.js';
import { FakeOs } from './support/fake-vhost-os.js';


const MEM_BYTES = 1 << 20;
const UVA = 0x7f00_0000_0000;
const GPA = 0x4000_0000;
const Q = 12; // not a power of 2: only a packed ring may have it

function send(b: VhostUserBackend, request: number, payload: Uint8Array, fds: number[] = []): Uint8Array | null {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  encodeMessage(out, request, Flags.VERSION, payload);
  return b.handle(decodeMessage(decodeHeader(out, out.length), out.subarray(HEADER_BYTES)), fds);
}

const toUva = (gpa: number): number => gpa - GPA + UVA;

function startRing(b: VhostUserBackend, os: FakeOs, i: number, l: PackedLayout, base: number): void {
  send(b, Req.SET_VRING_NUM, statePayload(i, Q));
  send(b, Req.SET_VRING_BASE, statePayload(i, base));
  send(b, Req.SET_VRING_ADDR, addrPayload({ index: i, flags: 0, descUser: toUva(l.descAddr), availUser: toUva(l.driverEventAddr), usedUser: toUva(l.deviceEventAddr), logGuest: 0 }));
  send(b, Req.SET_VRING_KICK, u64Payload(BigInt(i)), [os.eventfd()]);
  send(b, Req.SET_VRING_CALL, u64Payload(BigInt(i)), [os.eventfd()]);
  send(b, Req.SET_VRING_ENABLE, statePayload(i, 1));
}

function bringUp(extra = 0n, warnings: string[] = []) {
  const features = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VirtioF.RING_PACKED | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES | extra;
  const os = new FakeOs();
  const b = new VhostUserBackend(os, { port: new ReflectPort(), policy: resolvePolicy('vhost'), onWarning: (m) => warnings.push(m) });
  const fd = os.memfd(MEM_BYTES);
  const mem = new GuestMemory([{ guestAddr: GPA, buffer: os.files.get(fd)! }]);
  const rxL = PackedLayout.compactAt(Q, GPA, 0);
  const txL = PackedLayout.compactAt(Q, GPA + 4096, 1);
  const inOrder = (extra & VirtioF.IN_ORDER) !== 0n;
  const rxq = new PackedDriverQueue<number>(mem, rxL, { index: 0, eventIdx: true, inOrder });
  const txq = new PackedDriverQueue<number>(mem, txL, { index: 1, eventIdx: true, inOrder });
  const offered = new DataView(send(b, Req.GET_FEATURES, new Uint8Array(0))!.buffer).getBigUint64(0, true);
  assert.equal(offered, OFFERED_FEATURES);
  assert.ok(offered & VirtioF.RING_PACKED && offered & VirtioF.IN_ORDER, 'the backend offers the packed ring and IN_ORDER');
  send(b, Req.SET_OWNER, new Uint8Array(0));
  send(b, Req.SET_FEATURES, u64Payload(features));
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }]), [fd]);
  startRing(b, os, 0, rxL, 0x8000); // DPDK's form: position 0, wrap counter 1
  startRing(b, os, 1, txL, 0x8000);
  return { os, b, mem, rxq, txq, rxL, txL, bufBase: GPA + 8192 };
}

/** Sends `n` frames tagged (round, k) and checks each comes back reflected, in order. */
function roundTrip(r: ReturnType<typeof bringUp>, round: number, n: number): void {
  const { b, mem, rxq, txq, bufBase } = r;
  for (let k = 0; k < n; k++) {
    const addr = bufBase + (Q + k) * 2048;
    const frame = new Uint8Array(12 + 64);
    frame.set([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, round & 0xff], 12);
    frame[12 + 20] = k;
    mem.copyIn(addr, frame);
    assert.ok(txq.add([{ addr, len: frame.length }], [], k) >= 0);
  }
  txq.publish();
  assert.ok(b.run());
  let tx = 0;
  for (let u = txq.reap(); u !== null; u = txq.reap()) assert.equal(u.token, tx++, 'tx chains come back');
  assert.equal(tx, n);
  let got = 0;
  for (let u = rxq.reap(); u !== null; u = rxq.reap()) {
    const f = mem.bytes(bufBase + u.token * 2048, u.len);
    assert.equal(u.len, 76);
    assert.deepEqual([...f.subarray(12, 24)], [2, 2, 2, 2, 2, round & 0xff, 1, 1, 1, 1, 1, 1], 'MACs swapped');
    assert.equal(f[12 + 20], got, 'in order');
    rxq.add([], [{ addr: bufBase + u.token * 2048, len: 2048 }], u.token);
    got++;
  }
  rxq.publish();
  assert.equal(got, n);
}

for (const inOrder of [false, true]) {
  test(`frames go round a packed ring of size ${Q} many times and come back reflected${inOrder ? ' (IN_ORDER)' : ''}`, () => {
    const r = bringUp(inOrder ? VirtioF.IN_ORDER : 0n);
    for (let i = 0; i < Q; i++) r.rxq.add([], [{ addr: r.bufBase + i * 2048, len: 2048 }], i);
    r.rxq.publish();
    for (let round = 0; round < 20; round++) roundTrip(r, round, 1 + (round % 7));
    assert.equal(r.b.frameStats.txFrames, [...Array(20).keys()].reduce((a, round) => a + 1 + (round % 7), 0));
  });
}

test('GET_VRING_BASE returns the position with its wrap counter (bit 15) and the used position (bits 16–31); both base forms resume there', () => {
  const r = bringUp();
  for (let i = 0; i < Q; i++) r.rxq.add([], [{ addr: r.bufBase + i * 2048, len: 2048 }], i);
  r.rxq.publish();
  roundTrip(r, 0, 7);
  roundTrip(r, 1, 7); // 14 descriptors on a 12-entry ring: the counters wrapped once
  const reply = send(r.b, Req.GET_VRING_BASE, statePayload(1, 0))!;
  const base = new DataView(reply.buffer, reply.byteOffset).getUint32(4, true);
  assert.equal(base & 0xffff, r.txq.availPosition, 'avail position 2, wrap counter 0');
  assert.equal(base & 0xffff, 2);
  assert.equal(base >>> 16, r.txq.usedPosition, 'the used position equals it: nothing in flight');
  // DPDK's 16-bit form: the used position follows the avail one.
  startRing(r.b, r.os, 1, r.txL, base & 0xffff);
  roundTrip(r, 2, 11);
  // QEMU's 32-bit form.
  const reply2 = send(r.b, Req.GET_VRING_BASE, statePayload(1, 0))!;
  const base2 = new DataView(reply2.buffer, reply2.byteOffset).getUint32(4, true);
  assert.equal(base2 & 0xffff, r.txq.availPosition);
  assert.equal(base2 & 0xffff, 1 | 0x8000, '13 descriptors later: position 1, wrap counter 1 again');
  startRing(r.b, r.os, 1, r.txL, base2);
  roundTrip(r, 3, 5);
});

test('a packed base whose position lies outside the queue is refused when the ring starts', () => {
  const r = bringUp();
  send(r.b, Req.GET_VRING_BASE, statePayload(1, 0));
  assert.throws(() => startRing(r.b, r.os, 1, r.txL, 0x8000 | Q), (e: unknown) => e instanceof VhostUserError && e.code === 'bad-queue' && /position 12/.test(e.message));
});

test('a packed ring restarted at its first position after an earlier device used it (QEMU after a backend it could not stop) is reported, not silently served', () => {
  const warnings: string[] = [];
  const r = bringUp(0n, warnings);
  // A fresh ring with buffers made available (AVAIL flags only) is no cause for alarm.
  for (let i = 0; i < Q; i++) r.rxq.add([], [{ addr: r.bufBase + i * 2048, len: 2048 }], i);
  r.rxq.publish();
  assert.deepEqual(warnings, []);
  roundTrip(r, 0, 5);
  // The frontend restarts the transmit ring at the initial position (QEMU's stale base: 0 with
  // wrap counter 1 in both halves) although descriptors 0–4 carry the device's USED flag.
  const stopped = send(r.b, Req.GET_VRING_BASE, statePayload(1, 0))!;
  const kept = new DataView(stopped.buffer, stopped.byteOffset).getUint32(4, true);
  startRing(r.b, r.os, 1, r.txL, 0x8000_8000);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^queue 1: packed ring started at its first position, but 5 of its 12 descriptors are marked used/);
  assert.equal(r.b.stats.lostPackedPositions, 1);
  // Resumed where GET_VRING_BASE said (a frontend that kept the position): no warning, and the
  // frames flow again.
  send(r.b, Req.GET_VRING_BASE, statePayload(1, 0));
  startRing(r.b, r.os, 1, r.txL, kept);
  assert.equal(warnings.length, 1);
  roundTrip(r, 1, 3);
});
