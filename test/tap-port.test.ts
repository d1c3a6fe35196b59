// TapPort against a fake TAP fd (an IoAddon whose read/write/ioctls are recorded): the vnet
// header size and TUNSETOFFLOAD follow the negotiated features, frames written carry the
// virtio_net_hdr first (num_buffers 0), frames read are decoded, offered once until consumed,
// and a read shorter than a header is counted and skipped; a property test sends frames short and
// long from any offset. Runs everywhere (no addon needed).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TapPort } from '../src/backend/tap-port.js';
import { TunF, tunOffloadFlags } from '../src/backend/tap-offload.js';
import type { IoAddon } from '../src/backend/native.js';
import { NetF, VirtioF } from '../src/net/features.js';
import { emptyNetHdr, GsoType, NetHdrFlags } from '../src/net/header.js';

const EAGAIN = 11;

function fakeTap(): { io: IoAddon; written: Uint8Array[]; toRead: Uint8Array[]; hdrSz: number[]; offload: number[] } {
  const written: Uint8Array[] = [];
  const toRead: Uint8Array[] = [];
  const hdrSz: number[] = [];
  const offload: number[] = [];
  const io = {
    setVnetHdrSz: (_fd: number, n: number) => (hdrSz.push(n), 0),
    setOffload: (_fd: number, f: number) => (offload.push(f), 0),
    write: (_fd: number, buf: Uint8Array, len: number) => (written.push(buf.slice(0, len)), len),
    read: (_fd: number, buf: Uint8Array) => {
      const f = toRead.shift();
      if (f === undefined) return -EAGAIN;
      buf.set(f);
      return f.length;
    },
    constants: { EAGAIN },
  } as unknown as IoAddon;
  return { io, written, toRead, hdrSz, offload };
}

test('negotiated(): header size and TUNSETOFFLOAD follow what the guest accepted', () => {
  const t = fakeTap();
  const port = new TapPort(t.io, 7, 'vq0');
  port.negotiated(VirtioF.VERSION_1 | NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN);
  assert.deepEqual(t.hdrSz, [12]);
  assert.equal(t.offload[0], TunF.CSUM | TunF.TSO4 | TunF.TSO6 | TunF.TSO_ECN);
  port.negotiated(0n); // a legacy driver without MRG_RXBUF: 10-byte header, no offloads
  assert.equal(t.hdrSz[1], 10);
  assert.equal(t.offload[1], 0);
  port.negotiated(NetF.MRG_RXBUF);
  assert.equal(t.hdrSz[2], 12);
});

test('send() writes the virtio_net_hdr then the frame; peekRx() decodes one frame until consumeRx()', () => {
  const t = fakeTap();
  const port = new TapPort(t.io, 7);
  port.negotiated(VirtioF.VERSION_1 | NetF.GUEST_CSUM);
  const frame = Uint8Array.from({ length: 60 }, (_, i) => i);
  const hdr = { ...emptyNetHdr(), flags: NetHdrFlags.NEEDS_CSUM, csumStart: 34, csumOffset: 6, numBuffers: 9 };
  port.send(frame, 0, 60, hdr);
  const w = t.written[0]!;
  assert.equal(w.length, 72);
  assert.equal(w[0], NetHdrFlags.NEEDS_CSUM);
  assert.equal(w[6]! | (w[7]! << 8), 34);
  assert.equal(w[10]! | (w[11]! << 8), 0, 'num_buffers is not passed to the kernel');
  assert.deepEqual(w.subarray(12), frame);

  const rx = new Uint8Array(12 + 100);
  rx[1] = GsoType.TCPV4;
  rx[4] = 0xb4; // gso_size 1460
  rx[5] = 0x05;
  rx.fill(0xab, 12);
  t.toRead.push(new Uint8Array(5), rx); // a runt read first: counted and skipped
  const f = port.peekRx();
  assert.ok(f !== null);
  assert.equal(port.stats.rxBadHeader, 1);
  assert.equal(f.lenBytes, 100);
  assert.equal(f.hdr.gsoType, GsoType.TCPV4);
  assert.equal(f.hdr.gsoSize, 1460);
  assert.equal(f.bytes[f.offset], 0xab);
  assert.equal(port.peekRx(), f, 'the same frame until consumed');
  port.consumeRx();
  assert.equal(port.stats.rxFrames, 1);
  assert.equal(port.peekRx(), null, 'EAGAIN: nothing ready');
  assert.equal(port.rxReady(), false);
});

test('TUNSETOFFLOAD flags follow the GUEST_* features the driver accepted', () => {
  assert.equal(tunOffloadFlags(VirtioF.VERSION_1), 0);
  assert.equal(tunOffloadFlags(NetF.GUEST_TSO4), 0, 'TSO without GUEST_CSUM is never announced');
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM), TunF.CSUM);
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.GUEST_ECN), TunF.CSUM | TunF.TSO4 | TunF.TSO6 | TunF.TSO_ECN);
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_ECN), TunF.CSUM, 'ECN only with TSO');
  assert.equal(tunOffloadFlags(NetF.GUEST_CSUM | NetF.GUEST_UFO | NetF.HOST_TSO4), TunF.CSUM | TunF.UFO, 'HOST_* bits are about the other direction');
});

test('send() writes every frame intact after its header, short or long, from any offset in guest memory', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.nat(64), (frame, pad) => {
      const t = fakeTap();
      const port = new TapPort(t.io, 7);
      port.negotiated(VirtioF.VERSION_1);
      const mem = new Uint8Array(pad + frame.length + 5).fill(0x5a);
      mem.set(frame, pad);
      port.send(mem, pad, frame.length, emptyNetHdr());
      const w = t.written[0]!;
      assert.equal(w.length, 12 + frame.length);
      assert.deepEqual(w.subarray(12), frame);
      assert.equal(port.stats.txFrames, 1);
    }),
    { numRuns: 200 },
  );
});
