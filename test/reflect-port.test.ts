// ReflectPort (DPDK's macswap as a NetPort): every frame comes back once, in order, with its
// Ethernet destination and source swapped and every other byte intact, whatever its length —
// short frames (copied byte by byte) and long ones (copied as a block) alike, at any offset in
// the guest's buffer. Frames shorter than two MAC addresses are dropped and counted; a full
// slot ring drops and counts instead of blocking. Runs everywhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReflectPort } from '../src/backend/reflect-port.js';
import { emptyNetHdr } from '../src/net/header.js';

test('every frame comes back once, in order, MACs swapped and the rest intact (short and long, any offset)', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.uint8Array({ minLength: 12, maxLength: 3000 }), fc.nat(64)), { minLength: 1, maxLength: 8 }), (frames) => {
      const port = new ReflectPort(16);
      port.negotiated(0n);
      for (const [f, pad] of frames) {
        const buf = new Uint8Array(pad + f.length + 7).fill(0xa5);
        buf.set(f, pad);
        port.send(buf, pad, f.length, emptyNetHdr());
      }
      for (const [f] of frames) {
        const r = port.peekRx();
        assert.ok(r !== null);
        const got = r.bytes.subarray(r.offset, r.offset + r.lenBytes);
        const want = new Uint8Array(f.length);
        want.set(f.subarray(6, 12), 0);
        want.set(f.subarray(0, 6), 6);
        want.set(f.subarray(12), 12);
        assert.deepEqual(got, want);
        port.consumeRx();
      }
      assert.equal(port.peekRx(), null);
      assert.equal(port.stats.reflected, frames.length);
    }),
    { numRuns: 200 },
  );
});

test('a frame shorter than two MAC addresses is dropped and counted; a full ring drops and counts', () => {
  const port = new ReflectPort(2);
  port.negotiated(0n);
  port.send(new Uint8Array(11), 0, 11, emptyNetHdr());
  assert.equal(port.stats.dropsShort, 1);
  assert.equal(port.peekRx(), null);
  for (let i = 0; i < 3; i++) port.send(new Uint8Array(60).fill(i), 0, 60, emptyNetHdr());
  assert.equal(port.stats.reflected, 2);
  assert.equal(port.stats.dropsFull, 1);
  assert.equal(port.peekRx()!.bytes[20], 0);
  port.consumeRx();
  assert.equal(port.peekRx()!.bytes[20], 1);
});
