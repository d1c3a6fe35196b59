// vhost-user without sockets or addons: the message codec (round trips, every malformed shape a
// typed error, arbitrary bytes never anything else), and the backend state machine driven by a
// fake operating system: a frontend's DriverQueues on "memfd" memory placed at a different
// frontend virtual address, frames through the one data path (NetDeviceService: NetDevice and
// the policy's DeviceLoop) and the reflect port, offloads (TSO frames reflected whole or
// segmented in software, bad headers dropped and counted), memory table replacement while
// rings run, and a hostile frontend (overlapping or too small regions, rings outside memory,
// bad sizes, inconsistent features, refused requests) getting VhostUserError with every fd it
// sent closed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory, GuestMemoryError } from '../src/memory/index.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { NetF, VirtioF } from '../src/net/features.js';
import {
  Flags,
  HEADER_BYTES,
  Req,
  VHOST_USER_F_PROTOCOL_FEATURES,
  addrPayload,
  decodeHeader,
  decodeMessage,
  encodeMessage,
  memTablePayload,
  statePayload,
  u64Payload,
  type MemRegionDesc,
  type Message,
} from '../src/vhost-user/messages.js';
import { VhostUserError } from '../src/vhost-user/errors.js';
import { OFFERED_FEATURES, VhostUserBackend } from '../src/vhost-user/backend.js';
import { ReflectPort } from '../src/backend/reflect-port.js';
import { GsoType, NetHdrFlags, decodeNetHdr, emptyNetHdr, encodeNetHdr, type VirtioNetHdr } from '../src/net/header.js';
import { IpProto, TcpFlags, buildTcpFrame, ipv4FromString, verifyL4Checksum } from '../src/net/frames/index.js';
import { resolvePolicy } from '../src/policy/index.js';
import { FakeOs } from './support/fake-vhost-os.js';

function wire(request: number, payload: Uint8Array, flags: number = Flags.VERSION): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  encodeMessage(out, request, flags, payload);
  return out;
}

function decode(bytes: Uint8Array): Message {
  const h = decodeHeader(bytes, bytes.length);
  return decodeMessage(h, bytes.subarray(HEADER_BYTES));
}

function rejects(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof VhostUserError && e.code === code);
}

test('every request the backend understands round-trips through the codec', () => {
  const regions: MemRegionDesc[] = [
    { guestAddr: 0, sizeBytes: 0x1000_0000, userAddr: 0x7f00_0000_0000, mmapOffset: 0 },
    { guestAddr: 0x1_0000_0000, sizeBytes: 0x2000_0000, userAddr: 0x7f10_0000_0000, mmapOffset: 0x1000_0000 },
  ];
  assert.deepEqual(decode(wire(Req.SET_MEM_TABLE, memTablePayload(regions))), { request: Req.SET_MEM_TABLE, kind: 'mem', regions });
  assert.deepEqual(decode(wire(Req.SET_FEATURES, u64Payload(0x1_7000_0000n))), { request: Req.SET_FEATURES, kind: 'u64', value: 0x1_7000_0000n });
  assert.deepEqual(decode(wire(Req.SET_VRING_NUM, statePayload(1, 256))), { request: Req.SET_VRING_NUM, kind: 'state', index: 1, num: 256 });
  const addr = { index: 0, flags: 0, descUser: 0x7f00_0000_1000, usedUser: 0x7f00_0000_3000, availUser: 0x7f00_0000_2000, logGuest: 0 };
  assert.deepEqual(decode(wire(Req.SET_VRING_ADDR, addrPayload(addr))), { request: Req.SET_VRING_ADDR, kind: 'addr', addr });
  assert.deepEqual(decode(wire(Req.SET_VRING_KICK, u64Payload(0x101n))), { request: Req.SET_VRING_KICK, kind: 'fd', index: 1, noFd: true });
  assert.deepEqual(decode(wire(Req.GET_FEATURES, new Uint8Array(0))), { request: Req.GET_FEATURES, kind: 'none' });
});

test('malformed messages are typed errors naming the request', () => {
  rejects(() => decodeHeader(new Uint8Array(11), 11), 'truncated');
  rejects(() => decode(wire(Req.GET_FEATURES, new Uint8Array(0), 0x2)), 'bad-version');
  rejects(() => decode(wire(Req.SET_VRING_NUM, new Uint8Array(4))), 'bad-size');
  rejects(() => decode(wire(Req.SET_VRING_ADDR, new Uint8Array(39))), 'bad-size');
  rejects(() => decode(wire(Req.SET_MEM_TABLE, new Uint8Array(4))), 'bad-size');
  rejects(() => decode(wire(Req.SET_MEM_TABLE, memTablePayload([]))), 'bad-memory');
  const nine = Array.from({ length: 9 }, (_, i) => ({ guestAddr: i * 4096, sizeBytes: 4096, userAddr: i * 4096, mmapOffset: 0 }));
  rejects(() => decode(wire(Req.SET_MEM_TABLE, memTablePayload(nine))), 'bad-memory');
  rejects(() => decode(wire(99, new Uint8Array(0))), 'unknown-request');
  const huge = wire(Req.SET_FEATURES, u64Payload(0n));
  new DataView(huge.buffer).setUint32(8, 1 << 20, true);
  rejects(() => decodeHeader(huge, huge.length), 'bad-size');
  const beyond = memTablePayload([{ guestAddr: 0, sizeBytes: 4096, userAddr: 0, mmapOffset: 0 }]);
  new DataView(beyond.buffer).setBigUint64(8 + 8, 1n << 60n, true);
  rejects(() => decode(wire(Req.SET_MEM_TABLE, beyond)), 'bad-memory');
  assert.match(String((() => { try { decode(wire(Req.SET_VRING_NUM, new Uint8Array(4))); } catch (e) { return (e as Error).message; } return ''; })()), /SET_VRING_NUM/);
});

test('arbitrary bytes decode to a message or a VhostUserError, nothing else', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.integer({ min: 0, max: 30 }), (bytes, req) => {
      const b = new Uint8Array(Math.max(bytes.length, HEADER_BYTES));
      b.set(bytes);
      const v = new DataView(b.buffer);
      v.setUint32(0, req, true);
      v.setUint32(4, 1, true);
      v.setUint32(8, Math.min(v.getUint32(8, true) & 0x1ff, b.length - HEADER_BYTES), true);
      try {
        decode(b);
      } catch (e) {
        assert.ok(e instanceof VhostUserError, String(e));
      }
    }),
  );
});

const MEM_BYTES = 1 << 20;
const UVA = 0x7f00_0000_0000; // where the frontend has the memory mapped
const GPA = 0x4000_0000; // where its guest sees it
const Q = 16;

function send(b: VhostUserBackend, request: number, payload: Uint8Array, fds: number[] = []): Uint8Array | null {
  return b.handle(decode(wire(request, payload)), fds);
}

/** A backend brought up like QEMU does it, with frontend DriverQueues on the shared memory. */
function bringUp(features = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES, preset = 'vhost') {
  const os = new FakeOs();
  const b = new VhostUserBackend(os, { port: new ReflectPort(), policy: resolvePolicy(preset) });
  const fd = os.memfd(MEM_BYTES);
  const mem = new GuestMemory([{ guestAddr: GPA, buffer: os.files.get(fd)! }]);
  const ringBytes = SplitLayout.packedBytes(Q);
  const rxL = SplitLayout.packedAt(Q, GPA, 0);
  const txL = SplitLayout.packedAt(Q, GPA + ringBytes, 1);
  const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
  const rxq = new DriverQueue<number>(mem, rxL, { index: 0, eventIdx });
  const txq = new DriverQueue<number>(mem, txL, { index: 1, eventIdx });
  assert.equal(new DataView(send(b, Req.GET_FEATURES, new Uint8Array(0))!.buffer).getBigUint64(0, true), OFFERED_FEATURES);
  send(b, Req.SET_OWNER, new Uint8Array(0));
  send(b, Req.SET_FEATURES, u64Payload(features));
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }]), [fd]);
  const calls = [os.eventfd(), os.eventfd()];
  for (const [i, l] of [rxL, txL].entries()) {
    send(b, Req.SET_VRING_NUM, statePayload(i, Q));
    send(b, Req.SET_VRING_BASE, statePayload(i, 0));
    const toUva = (gpa: number): number => gpa - GPA + UVA;
    send(b, Req.SET_VRING_ADDR, addrPayload({ index: i, flags: 0, descUser: toUva(l.descAddr), usedUser: toUva(l.usedAddr), availUser: toUva(l.availAddr), logGuest: 0 }));
    send(b, Req.SET_VRING_KICK, u64Payload(BigInt(i)), [os.eventfd()]);
    send(b, Req.SET_VRING_CALL, u64Payload(BigInt(i)), [calls[i]!]);
    send(b, Req.SET_VRING_ENABLE, statePayload(i, 1));
  }
  return { os, b, mem, rxq, txq, calls, fd, bufBase: GPA + 2 * ringBytes };
}

test('frames sent by a frontend driver come back reflected through the backend, with calls', () => {
  const { os, b, mem, rxq, txq, calls, bufBase } = bringUp();
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  let got = 0;
  for (let round = 0; round < 5; round++) {
    // 5 × 10 frames through 16-entry rings: the indices wrap.
    for (let k = 0; k < 10; k++) {
      const addr = bufBase + (Q + k) * 2048;
      const frame = new Uint8Array(12 + 64);
      frame.set([1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, round], 12);
      frame[12 + 20] = k;
      mem.copyIn(addr, frame);
      txq.add([{ addr, len: frame.length }], [], k);
    }
    txq.publish();
    assert.ok(b.run(), 'the data path runs (until idle: the fake OS has no fds to sleep on)');
    let tx = 0;
    for (let u = txq.reap(); u !== null; u = txq.reap()) tx++;
    assert.equal(tx, 10);
    for (let u = rxq.reap(); u !== null; u = rxq.reap()) {
      const f = mem.bytes(bufBase + u.token * 2048, u.len);
      assert.equal(u.len, 76);
      assert.equal(f[10], 1, 'num_buffers = 1');
      assert.deepEqual([...f.subarray(12, 24)], [2, 2, 2, 2, 2, round, 1, 1, 1, 1, 1, 1], 'MACs swapped');
      rxq.add([], [{ addr: bufBase + u.token * 2048, len: 2048 }], u.token);
      got++;
    }
    rxq.publish();
  }
  assert.equal(got, 50);
  assert.deepEqual(b.frameStats.txFrames, 50);
  assert.ok(os.signals.includes(calls[0]!) && os.signals.includes(calls[1]!));
});

test('a sender that outruns a receive ring with no buffers keeps sending: the reflect port drops and counts, and delivers again once buffers come', () => {
  const { b, mem, rxq, txq, bufBase } = bringUp();
  const reflect = b.port as ReflectPort;
  const rounds = 200; // 3200 frames, the port holds 1024
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < Q; k++) {
      const addr = bufBase + (Q + k) * 2048;
      mem.copyIn(addr, new Uint8Array(12 + 60).fill(round & 0xff).fill(0, 0, 12));
      txq.add([{ addr, len: 72 }], [], k);
    }
    txq.publish();
    b.run();
    let used = 0;
    while (txq.reap() !== null) used++;
    assert.equal(used, Q, `round ${round}: every chain the sender made available was consumed`);
  }
  assert.equal(b.frameStats.txFrames, rounds * Q);
  assert.equal(reflect.stats.reflected + reflect.stats.dropsFull, rounds * Q, 'every frame either waits in the port or is counted as dropped');
  assert.equal(reflect.stats.dropsFull, rounds * Q - 1024);
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  b.run();
  let got = 0;
  while (rxq.reap() !== null) got++;
  assert.equal(got, Q, 'buffers posted later are filled from the frames that waited');
});

test('a memory table replaced while rings run keeps them running on the new mapping', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp();
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  // Same memory, now announced as two regions (DPDK grows its table like this at run time).
  const fd = [...os.files.keys()][0]!;
  const half = MEM_BYTES / 2;
  const second = os.memfd(half);
  os.files.set(second, os.files.get(fd)!); // fake: the second "file" maps the same bytes
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }, { guestAddr: GPA + MEM_BYTES, sizeBytes: half, userAddr: UVA + MEM_BYTES, mmapOffset: 0 }]), [fd, second]);
  assert.equal(b.mem.regionTable.length, 2);
  mem.copyIn(bufBase + 20 * 2048, new Uint8Array(12 + 60).fill(7).fill(0, 0, 12)); // a zero header: a plain frame
  txq.add([{ addr: bufBase + 20 * 2048, len: 72 }], [], 0);
  txq.publish();
  b.run();
  assert.equal(rxq.reap()?.len, 72);
});

test('SET_MEM_TABLE while rings run releases the previous mapping, after every view moved to the new one, and frames keep flowing', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp();
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  const frame = (k: number): void => {
    mem.copyIn(bufBase + (20 + k) * 2048, new Uint8Array(12 + 60).fill(7).fill(0, 0, 12));
    txq.add([{ addr: bufBase + (20 + k) * 2048, len: 72 }], [], k);
    txq.publish();
  };
  frame(0);
  b.run();
  assert.equal(rxq.reap()?.len, 72);
  const first = os.mapped[0]!;
  assert.equal(os.unmapped.length + 0, 0, 'nothing released while the table stands');
  const fd = [...os.files.keys()][0]!;
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }]), [fd]);
  assert.ok(os.unmapped.length === 1 && os.unmapped[0] === first, 'the old mapping is released at once');
  assert.ok(b.mem.regionTable.every((r) => r.buffer !== first), 'no region refers to the released mapping');
  frame(1);
  b.run();
  assert.equal(rxq.reap()?.len, 72, 'the rings run on the new mapping');
  assert.equal(b.stats.regionsMapped, 2);
  assert.equal(b.stats.regionsUnmapped, 1);
});

test('a refused memory table releases what it mapped and the running table stays; a reset releases every mapping', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp();
  const fd = [...os.files.keys()][0]!;
  const other = os.memfd(8192);
  // Regions 0 and 1 overlap in the frontend's address space: refused after both were mapped.
  assert.throws(
    () => send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: GPA, sizeBytes: MEM_BYTES, userAddr: UVA, mmapOffset: 0 }, { guestAddr: GPA + MEM_BYTES, sizeBytes: 8192, userAddr: UVA + 4096, mmapOffset: 0 }]), [fd, other]),
    (e: unknown) => e instanceof VhostUserError && e.code === 'bad-memory',
  );
  // Compared by identity, as indices into os.mapped (deepEqual would compare megabytes).
  const released = (): number[] => os.unmapped.map((u) => os.mapped.indexOf(u)).sort();
  assert.deepEqual(released(), [1, 2], 'both mappings of the refused table are released, the running one is not');
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  mem.copyIn(bufBase + 20 * 2048, new Uint8Array(72));
  txq.add([{ addr: bufBase + 20 * 2048, len: 72 }], [], 0);
  txq.publish();
  b.run();
  assert.equal(rxq.reap()?.len, 72, 'the running table still serves');
  b.reset();
  assert.deepEqual(released(), [0, 1, 2], 'after a reset every mapping is released');
  assert.equal(b.mem.regionTable.length, 0);
  assert.throws(() => b.mem.readU8(GPA), (e: unknown) => e instanceof GuestMemoryError && e.code === 'out-of-range', 'guest memory after release is a typed error');
});

test('a ring area across two adjacent memory regions is refused when the ring starts, with the reason, never accepted and broken later', () => {
  const os = new FakeOs();
  const b = new VhostUserBackend(os, { port: new ReflectPort(), policy: resolvePolicy('vhost') });
  const half = 65536;
  const [a, c] = [os.memfd(half), os.memfd(half)];
  send(b, Req.SET_OWNER, new Uint8Array(0));
  send(b, Req.SET_FEATURES, u64Payload(VirtioF.VERSION_1));
  // Guest memory 0..128 KiB, contiguous in both address spaces, announced as two regions.
  send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: half, userAddr: UVA, mmapOffset: 0 }, { guestAddr: half, sizeBytes: half, userAddr: UVA + half, mmapOffset: 0 }]), [a, c]);
  send(b, Req.SET_VRING_NUM, statePayload(0, Q));
  // The descriptor table (16 × 16 bytes) starts 64 bytes before the boundary.
  send(b, Req.SET_VRING_ADDR, addrPayload({ index: 0, flags: 0, descUser: UVA + half - 64, availUser: UVA + half + 4096, usedUser: UVA + half + 8192, logGuest: 0 }));
  assert.throws(
    () => send(b, Req.SET_VRING_KICK, u64Payload(0n), [os.eventfd()]),
    (e: unknown) => e instanceof VhostUserError && e.code === 'bad-queue' && /descriptor table .* crosses the end of the memory region/.test(e.message),
  );
  assert.equal(b.kickFds().length, 0, 'the ring never ran');
});

test('GET_VRING_BASE stops the ring and returns the next available index; a restart resumes there', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp(VirtioF.VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES);
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  for (let k = 0; k < 3; k++) txq.add([{ addr: bufBase + (8 + k) * 2048, len: 80 }], [], k);
  txq.publish();
  b.run();
  const r = send(b, Req.GET_VRING_BASE, statePayload(1, 0))!;
  assert.deepEqual([...r], [...statePayload(1, 3)]);
  assert.deepEqual(b.kickFds().length, 1, 'only the receive ring still runs');
  void mem;
  void os;
});

test('a hostile frontend gets a typed error and every fd it sent is closed', () => {
  const cases: [string, (b: VhostUserBackend, os: FakeOs) => void, string][] = [
    ['overlapping regions', (b, os) => {
      const a = os.memfd(8192);
      const c = os.memfd(8192);
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 8192, userAddr: 0x10000, mmapOffset: 0 }, { guestAddr: 4096, sizeBytes: 8192, userAddr: 0x20000, mmapOffset: 0 }]), [a, c]);
    }, 'bad-memory'],
    ['regions overlapping in the frontend address space', (b, os) => {
      const a = os.memfd(8192);
      const c = os.memfd(8192);
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 8192, userAddr: 0x10000, mmapOffset: 0 }, { guestAddr: 65536, sizeBytes: 8192, userAddr: 0x11000, mmapOffset: 0 }]), [a, c]);
    }, 'bad-memory'],
    ['a region larger than its file', (b, os) => {
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 1 << 20, userAddr: 0, mmapOffset: 0 }]), [os.memfd(4096)]);
    }, 'bad-memory'],
    ['a memory table with the wrong number of fds', (b, os) => {
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 4096, userAddr: 0, mmapOffset: 0 }]), [os.memfd(4096), os.memfd(4096)]);
    }, 'bad-fds'],
    ['a queue size that is not a power of 2', (b) => void send(b, Req.SET_VRING_NUM, statePayload(0, 100)), 'bad-queue'],
    ['a queue index out of range', (b) => void send(b, Req.SET_VRING_NUM, statePayload(5, 256)), 'bad-queue'],
    ['ring addresses outside every region', (b, os) => {
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 65536, userAddr: 0x10000, mmapOffset: 0 }]), [os.memfd(65536)]);
      send(b, Req.SET_VRING_NUM, statePayload(0, 256));
      send(b, Req.SET_VRING_ADDR, addrPayload({ index: 0, flags: 0, descUser: 0x10000 + 64000, usedUser: 0x10000, availUser: 0x10000, logGuest: 0 }));
      send(b, Req.SET_VRING_KICK, u64Payload(0n), [os.eventfd()]);
    }, 'bad-queue'],
    ['misaligned ring addresses', (b, os) => {
      send(b, Req.SET_MEM_TABLE, memTablePayload([{ guestAddr: 0, sizeBytes: 65536, userAddr: 0x10000, mmapOffset: 0 }]), [os.memfd(65536)]);
      send(b, Req.SET_VRING_NUM, statePayload(0, 16));
      send(b, Req.SET_VRING_ADDR, addrPayload({ index: 0, flags: 0, descUser: 0x10008, usedUser: 0x12000, availUser: 0x11000, logGuest: 0 }));
      send(b, Req.SET_VRING_KICK, u64Payload(0n), [os.eventfd()]);
    }, 'bad-queue'],
    ['features never offered', (b) => void send(b, Req.SET_FEATURES, u64Payload(OFFERED_FEATURES | NetF.HOST_UFO)), 'bad-state'],
    ['dirty logging', (b) => void send(b, Req.SET_LOG_BASE, new Uint8Array(0)), 'unsupported'],
    ['a kick without an fd (polling mode)', (b) => void send(b, Req.SET_VRING_KICK, u64Payload(0x100n)), 'unsupported'],
    ['fds attached to a request that takes none', (b, os) => void send(b, Req.SET_OWNER, new Uint8Array(0), [os.eventfd()]), 'bad-fds'],
  ];
  for (const [what, run, code] of cases) {
    const os = new FakeOs();
    const b = new VhostUserBackend(os, { port: new ReflectPort() });
    const before = os.closed.length;
    const sent: number[] = [];
    const origMemfd = os.memfd.bind(os);
    const origEventfd = os.eventfd.bind(os);
    os.memfd = (n: number) => { const fd = origMemfd(n); sent.push(fd); return fd; };
    os.eventfd = () => { const fd = origEventfd(); sent.push(fd); return fd; };
    assert.throws(() => run(b, os), (e: unknown) => e instanceof VhostUserError && e.code === code, what);
    b.reset();
    for (const fd of sent) assert.ok(os.closed.includes(fd), `${what}: fd ${fd} closed (closed: ${os.closed.slice(before)})`);
  }
});

test('a driver that corrupts its ring breaks the data path with a named failure, and the err fds get signalled', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp();
  const errFd = os.eventfd();
  send(b, Req.SET_VRING_ERR, u64Payload(1n), [errFd]);
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  txq.add([{ addr: bufBase + 10 * 2048, len: 80 }], [], 0);
  // The descriptor now points far outside guest memory.
  const desc = txq.layout.descAddr;
  const d = mem.bytes(desc, 8);
  new DataView(d.buffer, d.byteOffset, 8).setBigUint64(0, 0x7fff_0000_0000n, true);
  txq.publish();
  b.run();
  assert.match(b.service!.failure ?? '', /device needs reset: .*queue 1/);
  assert.equal(b.frameStats.queueErrors, 1);
  b.signalErrors();
  assert.ok(os.signals.includes(errFd));
});

// ---- offloads through the one data path (NetDevice behind the protocol)

const G_MAC = Uint8Array.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const H_MAC = Uint8Array.from([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);

/** A TCP/IPv4 frame of `payloadBytes` with a TSO4 header as Linux writes it (partial checksum). */
function tsoFrame(payloadBytes: number, hdrFlags: number = NetHdrFlags.NEEDS_CSUM): { frame: Uint8Array; hdr: VirtioNetHdr } {
  const frame = new Uint8Array(54 + payloadBytes);
  const n = buildTcpFrame(frame, 0, {
    link: { srcMac: G_MAC, dstMac: H_MAC },
    ip: { version: 4, src: ipv4FromString('10.78.0.1'), dst: ipv4FromString('10.78.0.2') },
    srcPort: 40000,
    dstPort: 5201,
    seq: 1000,
    ack: 1,
    flags: TcpFlags.ACK | TcpFlags.PSH,
    payload: new Uint8Array(payloadBytes).map((_, i) => (i * 7) & 0xff),
    checksum: 'partial',
  });
  const hdr = emptyNetHdr();
  hdr.flags = hdrFlags;
  hdr.gsoType = GsoType.TCPV4;
  hdr.gsoSize = 1448;
  hdr.hdrLen = 54;
  hdr.csumStart = 34;
  hdr.csumOffset = 16;
  return { frame: frame.subarray(0, n), hdr };
}

/** Writes [virtio_net_hdr v1][frame] at `addr` and makes it available on the transmit queue. */
function transmit(mem: GuestMemory, txq: DriverQueue<number>, addr: number, hdr: VirtioNetHdr, frame: Uint8Array): void {
  const buf = new Uint8Array(12 + frame.length);
  encodeNetHdr(hdr, 'v1', buf, 0);
  buf.set(frame, 12);
  mem.copyIn(addr, buf);
  txq.add([{ addr, len: buf.length }], [], 0);
  txq.publish();
}

/** Every frame the receive queue returned: header and frame bytes (mergeable buffers joined). */
function received(mem: GuestMemory, rxq: DriverQueue<number>, bufBase: number): { hdr: VirtioNetHdr; frame: Uint8Array }[] {
  const out: { hdr: VirtioNetHdr; frame: Uint8Array }[] = [];
  let parts: Uint8Array[] = [];
  let left = 0;
  for (let u = rxq.reap(); u !== null; u = rxq.reap()) {
    const bytes = mem.bytes(bufBase + u.token * 2048, u.len).slice();
    if (left === 0) {
      const h = decodeNetHdr(bytes, 0, 'v1', emptyNetHdr());
      assert.ok(!(h instanceof Error));
      left = h.numBuffers;
      parts = [bytes.subarray(12)];
      out.push({ hdr: h, frame: new Uint8Array(0) });
    } else {
      parts.push(bytes);
    }
    if (--left === 0) {
      const f = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) {
        f.set(p, at);
        at += p.length;
      }
      out[out.length - 1]!.frame = f;
    }
  }
  return out;
}

const OFFLOAD_BASE = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES | NetF.CSUM | NetF.HOST_TSO4;

test('a TSO frame from the driver comes back whole, header kept, when the driver also takes GUEST_TSO4', () => {
  const { b, mem, rxq, txq, bufBase } = bringUp(OFFLOAD_BASE | NetF.GUEST_CSUM | NetF.GUEST_TSO4);
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  const { frame, hdr } = tsoFrame(3000);
  transmit(mem, txq, bufBase + 40 * 2048, hdr, frame);
  b.run();
  assert.equal(txq.reap()?.token, 0);
  const got = received(mem, rxq, bufBase);
  assert.equal(got.length, 1);
  const r = got[0]!;
  assert.equal(r.hdr.gsoType, GsoType.TCPV4);
  assert.equal(r.hdr.gsoSize, 1448);
  assert.equal(r.hdr.flags & NetHdrFlags.NEEDS_CSUM, NetHdrFlags.NEEDS_CSUM);
  assert.equal(r.hdr.numBuffers, 2, 'mergeable: 3054 + 12 bytes over two 2048-byte buffers');
  assert.deepEqual([...r.frame.subarray(0, 12)], [...G_MAC, ...H_MAC], 'MACs swapped');
  assert.deepEqual([...r.frame.subarray(12)], [...frame.subarray(12)], 'the rest intact');
  const c = b.counters;
  assert.equal(c['dev.txGsoFrames'], 1);
  assert.equal(c['dev.txSwSegments'], 0);
});

/**
 * Posts rx buffers, sends a 3000-byte TSO frame and checks what the driver receives: its three
 * MSS segments, no GSO type, no partial checksum, every TCP checksum valid.
 */
function sendTsoExpectSegments(r: ReturnType<typeof bringUp>): { hdr: VirtioNetHdr; frame: Uint8Array }[] {
  const { b, mem, rxq, txq, bufBase } = r;
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  const { frame, hdr } = tsoFrame(3000);
  transmit(mem, txq, bufBase + 40 * 2048, hdr, frame);
  b.run();
  const got = received(mem, rxq, bufBase);
  assert.deepEqual(got.map((g) => g.frame.length), [54 + 1448, 54 + 1448, 54 + 104]);
  for (const g of got) {
    assert.equal(g.hdr.gsoType, GsoType.NONE);
    assert.equal(g.hdr.flags & NetHdrFlags.NEEDS_CSUM, 0);
    assert.ok(verifyL4Checksum(g.frame, 4, 14, IpProto.TCP, 34, g.frame.length - 34), 'TCP checksum valid');
  }
  return got;
}

test('without GUEST_TSO4/GUEST_CSUM the device segments a TSO frame in software and completes every checksum', () => {
  const r = bringUp(OFFLOAD_BASE);
  for (const g of sendTsoExpectSegments(r)) assert.equal(g.hdr.flags, 0, 'a completely checksummed frame (§5.1.6.2)');
  assert.equal(r.b.counters['dev.txSwSegments'], 3);
});

test('a feature set that breaks a dependency rule is taken as real backends take it; the data path leaves the offloads whose requirement is missing unused', () => {
  // QEMU with `-device virtio-net-pci,guest_csum=off` offers GUEST_TSO4 without GUEST_CSUM and
  // Linux accepts it (seen: SET_FEATURES 0x17000bb80); HOST_TSO4 without CSUM is the tx mirror.
  const features = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES | NetF.CSUM | NetF.HOST_TSO4 | NetF.GUEST_TSO4 | NetF.GUEST_ECN;
  const r = bringUp(features);
  assert.equal(r.b.negotiatedFeatures, features, 'what the frontend set is what it gets back');
  assert.equal(r.b.unusedFeatures, NetF.GUEST_TSO4 | NetF.GUEST_ECN, 'GUEST_TSO4 needs GUEST_CSUM, GUEST_ECN then needs a GUEST_TSO');
  // No GSO frame and no partial checksum toward this guest: MSS segments, fully checksummed.
  sendTsoExpectSegments(r);

  // The tx mirror: HOST_TSO4 set without CSUM is not used, so a TSO frame from this driver is
  // dropped and counted (a driver without CSUM sends no partial checksum), its chain returned.
  const t = bringUp(VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES | NetF.HOST_TSO4);
  assert.equal(t.b.unusedFeatures, NetF.HOST_TSO4);
  const f2 = tsoFrame(3000);
  transmit(t.mem, t.txq, t.bufBase + 40 * 2048, f2.hdr, f2.frame);
  t.b.run();
  assert.equal(t.txq.reap()?.token, 0, 'the chain is returned');
  assert.equal(t.b.frameStats.txDropped, 1);
});

test('one notify of GSO chains cut into 48-byte segments is worked off in bounded passes, and every chain still completes', () => {
  const { b, mem, txq, bufBase } = bringUp(OFFLOAD_BASE);
  const chains = 8;
  const payload = 60_000;
  for (let k = 0; k < chains; k++) {
    const { frame, hdr } = tsoFrame(payload);
    hdr.gsoSize = 48; // the smallest gso_size the device accepts: 1250 segments per chain
    transmit(mem, txq, bufBase + 4096 + k * 65536, hdr, frame);
  }
  const before = b.counters.devIterations ?? 0;
  b.run();
  let used = 0;
  while (txq.reap() !== null) used++;
  assert.equal(used, chains, 'every chain was consumed (no work lost between passes)');
  const segments = b.counters['dev.txSwSegments']!;
  assert.equal(segments, chains * Math.ceil(payload / 48));
  // 10 000 segments at most ~4096 (+ one drain call) per pass: at least three passes did work,
  // where one pass used to take them all.
  const passes = (b.counters.devIterations ?? 0) - before;
  assert.ok(passes >= 3, `${segments} segments in ${passes} loop iterations`);
});

test('a TSO header without NEEDS_CSUM from the driver is dropped and counted, and its chain still returned', () => {
  const { b, mem, rxq, txq, bufBase } = bringUp(OFFLOAD_BASE | NetF.GUEST_CSUM | NetF.GUEST_TSO4);
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  const { frame, hdr } = tsoFrame(3000, 0);
  transmit(mem, txq, bufBase + 40 * 2048, hdr, frame);
  b.run();
  assert.equal(txq.reap()?.token, 0, 'used: the driver gets its buffer back');
  assert.equal(rxq.reap(), null, 'nothing reflected');
  assert.equal(b.frameStats.txDropped, 1);
  assert.equal(b.counters['dev.txDrops.gso-without-needs-csum'], 1);
});

test('under the rfc-baseline preset (global lock held, per-buffer interrupts) every frame is reflected once', () => {
  const { os, b, mem, rxq, txq, calls, bufBase } = bringUp(undefined, 'rfc-baseline');
  for (let i = 0; i < Q; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  for (let k = 0; k < 8; k++) {
    const f = new Uint8Array(12 + 60);
    f.set([...H_MAC, ...G_MAC], 12);
    f[12 + 20] = k;
    mem.copyIn(bufBase + (Q + k) * 2048, f);
    txq.add([{ addr: bufBase + (Q + k) * 2048, len: f.length }], [], k);
  }
  txq.publish();
  // The tx timer of the baseline may defer the flush: run until every frame came back.
  const seen: number[] = [];
  for (let round = 0; round < 100 && seen.length < 8; round++) {
    b.run();
    for (let u = rxq.reap(); u !== null; u = rxq.reap()) seen.push(mem.bytes(bufBase + u.token * 2048, u.len)[12 + 20]!);
  }
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.ok((b.counters.devLockAcquisitions ?? 0) > 0, 'the loop took the global lock');
  assert.ok(os.signals.filter((fd) => fd === calls[0]).length >= 1);
});

test('GET_VRING_BASE on the receive ring gives back buffers held for an unfinished mergeable frame', () => {
  const { b, mem, rxq, txq, bufBase } = bringUp();
  // One 64-byte buffer: the reflected 212-byte frame needs four, so the device pops it and waits.
  rxq.add([], [{ addr: bufBase, len: 64 }], 0);
  rxq.publish();
  const f = new Uint8Array(12 + 200);
  f.set([...H_MAC, ...G_MAC], 12);
  mem.copyIn(bufBase + 20 * 2048, f);
  txq.add([{ addr: bufBase + 20 * 2048, len: f.length }], [], 0);
  txq.publish();
  b.run();
  assert.equal(b.service!.rxq.nextAvail, 1, 'the device popped the buffer');
  assert.equal(b.service!.rxq.inFlight, 1, 'and holds it, unused');
  const r = send(b, Req.GET_VRING_BASE, statePayload(0, 0))!;
  assert.deepEqual([...r], [...statePayload(0, 0)], 'the ring resumes at the held buffer: it was never used (virtio 1.2 §2.7.14)');
  assert.equal(rxq.reap(), null, 'nothing was written to the driver');
});
