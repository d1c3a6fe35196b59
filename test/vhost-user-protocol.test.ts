// vhost-user without sockets or addons: the message codec (round trips, every malformed shape a
// typed error, arbitrary bytes never anything else), and the backend state machine driven by a
// fake operating system: a frontend's DriverQueues on "memfd" memory placed at a different
// frontend virtual address, reflected frames, memory table replacement while rings run, and a
// hostile frontend (overlapping or too small regions, rings outside memory, bad sizes, refused
// requests) getting VhostUserError with every fd it sent closed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { GuestMemory } from '../src/memory/index.js';
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
import { OFFERED_FEATURES, VhostUserBackend, reflectHandler, type VhostOs } from '../src/vhost-user/backend.js';

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

// A fake OS: "fds" are numbers standing for memfds (SharedArrayBuffers) and eventfds.
class FakeOs implements VhostOs {
  files = new Map<number, SharedArrayBuffer>();
  closed: number[] = [];
  signals: number[] = [];
  private next = 100;
  memfd(sizeBytes: number): number {
    const fd = this.next++;
    this.files.set(fd, new SharedArrayBuffer(sizeBytes));
    return fd;
  }
  eventfd(): number {
    return this.next++;
  }
  fileSize(fd: number): number {
    return this.files.get(fd)?.byteLength ?? 0;
  }
  mmapShared(fd: number, len: number, off: number): SharedArrayBuffer {
    const f = this.files.get(fd);
    if (!f || off !== 0 || len > f.byteLength) throw new Error('fake mmap: only whole-file mappings');
    return f;
  }
  close(fd: number): void {
    this.closed.push(fd);
  }
  signal(fd: number): void {
    this.signals.push(fd);
  }
}

const MEM_BYTES = 1 << 20;
const UVA = 0x7f00_0000_0000; // where the frontend has the memory mapped
const GPA = 0x4000_0000; // where its guest sees it
const Q = 16;

function send(b: VhostUserBackend, request: number, payload: Uint8Array, fds: number[] = []): Uint8Array | null {
  return b.handle(decode(wire(request, payload)), fds);
}

/** A backend brought up like QEMU does it, with frontend DriverQueues on the shared memory. */
function bringUp(features = VirtioF.VERSION_1 | VirtioF.EVENT_IDX | NetF.MRG_RXBUF | VHOST_USER_F_PROTOCOL_FEATURES) {
  const os = new FakeOs();
  const b = new VhostUserBackend(os, reflectHandler);
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
    while (b.service()) {
      /* until idle */
    }
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
  mem.copyIn(bufBase + 20 * 2048, new Uint8Array(12 + 60).fill(7));
  txq.add([{ addr: bufBase + 20 * 2048, len: 72 }], [], 0);
  txq.publish();
  b.service();
  assert.equal(rxq.reap()?.len, 72);
});

test('GET_VRING_BASE stops the ring and returns the next available index; a restart resumes there', () => {
  const { os, b, mem, rxq, txq, bufBase } = bringUp(VirtioF.VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES);
  for (let i = 0; i < 4; i++) rxq.add([], [{ addr: bufBase + i * 2048, len: 2048 }], i);
  rxq.publish();
  for (let k = 0; k < 3; k++) txq.add([{ addr: bufBase + (8 + k) * 2048, len: 80 }], [], k);
  txq.publish();
  b.service();
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
    ['features never offered', (b) => void send(b, Req.SET_FEATURES, u64Payload(OFFERED_FEATURES | NetF.HOST_TSO4)), 'bad-state'],
    ['dirty logging', (b) => void send(b, Req.SET_LOG_BASE, new Uint8Array(0)), 'unsupported'],
    ['a kick without an fd (polling mode)', (b) => void send(b, Req.SET_VRING_KICK, u64Payload(0x100n)), 'unsupported'],
    ['fds attached to a request that takes none', (b, os) => void send(b, Req.SET_OWNER, new Uint8Array(0), [os.eventfd()]), 'bad-fds'],
  ];
  for (const [what, run, code] of cases) {
    const os = new FakeOs();
    const b = new VhostUserBackend(os, reflectHandler);
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

test('a driver that corrupts its ring makes service() throw a VirtqueueError and the err fds get signalled', async () => {
  const { VirtqueueError } = await import('../src/virtqueue/index.js');
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
  assert.throws(() => b.service(), (e: unknown) => e instanceof VirtqueueError);
  b.signalErrors();
  assert.ok(os.signals.includes(errFd));
});
