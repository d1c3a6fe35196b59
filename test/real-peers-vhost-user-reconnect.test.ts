// A vhost-user frontend that reconnects many times must not leak the guest memory each
// connection mapped (issue 15: ten kill -9 cycles of testpmd left eleven memfd mappings and
// ~520 MB of Shmem per connection behind). virtq's own frontend (VhostUserFrontend, memfd guest
// memory) connects to `virtq vhost-user --backend reflect` in this process 50 times, moves
// frames through both rings each time and closes; afterwards the process maps exactly as many
// memfd regions as before and its shared RSS is back where it started (plain RSS within noise).
// Skips with a message when the addon is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVhostUser } from '../src/vhost-user/index.js';
import { VhostUserFrontend } from '../src/vhost-user/frontend.js';
import { VHOST_USER_F_PROTOCOL_FEATURES } from '../src/vhost-user/messages.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { VirtioF } from '../src/net/features.js';
import { needAddon } from './support/real-peers.js';

const MEMFD_NAME = 'virtq-guest'; // VhostUserFrontend's memfd (both its mapping and the server's show it)
const MEM_BYTES = 4 << 20;
const Q = 256;
const FRAME_BYTES = 1514;
const HDR_BYTES = 12; // virtio_net_hdr v1 (VERSION_1, no mergeable buffers)

/** Mappings of our frontends' memfds in this process (/proc/self/maps names them "/memfd:NAME (deleted)"). */
function memfdMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/memfd:${MEMFD_NAME}`)).length;
}

/** A field of /proc/self/status in KiB (VmRSS, RssShmem). */
function statusKiB(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** One connection: handshake, both rings, `Q` frames reflected back, close. Returns frames received. */
async function oneConnection(path: string): Promise<number> {
  const fe = await VhostUserFrontend.connect(path, MEM_BYTES, 20_000);
  try {
    fe.setup(VirtioF.VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES);
    const ringBytes = SplitLayout.packedBytes(Q);
    const rxL = SplitLayout.packedAt(Q, 0, 0);
    const txL = SplitLayout.packedAt(Q, ringBytes, 1);
    const rxq = new DriverQueue<number>(fe.memory, rxL, { index: 0 });
    const txq = new DriverQueue<number>(fe.memory, txL, { index: 1 });
    const rxBase = 2 * ringBytes;
    const txBase = rxBase + Q * 2048;
    // The guest touches all of its memory, as a booted guest does: a leaked mapping would hold it.
    fe.memory.fill(txBase, MEM_BYTES - txBase, 0x5a);
    fe.startRing(0, rxL);
    fe.startRing(1, txL);
    for (let i = 0; i < Q; i++) rxq.add([], [{ addr: rxBase + i * 2048, len: 2048 }], i);
    rxq.publish();
    fe.kick(0);
    for (let i = 0; i < Q; i++) {
      const at = txBase + i * 2048;
      fe.memory.fill(at, HDR_BYTES, 0); // a plain frame: no offloads
      txq.add([{ addr: at, len: HDR_BYTES + FRAME_BYTES }], [], i);
    }
    txq.publish();
    fe.kick(1);
    let got = 0;
    const ok = await waitFor(() => {
      while (rxq.reap() !== null) got++;
      while (txq.reap() !== null);
      return got === Q;
    }, 20_000);
    assert.ok(ok, `only ${got} of ${Q} frames came back`);
    return got;
  } finally {
    fe.close();
  }
}

test('50 reconnects of a frontend that moved frames leave no memfd mapping behind and shared RSS where it started', { skip: needAddon() ?? false, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-re-'));
  const path = join(dir, 'vhu.sock');
  let disconnects = 0;
  const errors: string[] = [];
  const h = await startVhostUser({ socketPath: path, backend: 'reflect', onDisconnect: (e, _f, _feat, reason) => (disconnects++, e !== null && errors.push(reason)) });
  const mapsBefore = memfdMappings();
  let shmemWarm = 0;
  let rssWarm = 0;
  let r;
  try {
    for (let i = 0; i < 50; i++) {
      assert.equal(await oneConnection(path), Q);
      // The server reports the end of a connection, then resets the backend (releasing its
      // mappings): wait for the count, not for a fixed time.
      assert.ok(await waitFor(() => disconnects === i + 1, 20_000), `connection ${i} not reported closed`);
      const released = await waitFor(() => memfdMappings() === mapsBefore, 10_000);
      assert.ok(released, `after connection ${i} the process still maps ${memfdMappings() - mapsBefore} more memfd regions than before`);
      if (i === 4) {
        // After a warm-up (JIT, worker heap, ring buffers) the steady state is measured.
        shmemWarm = statusKiB('RssShmem');
        rssWarm = statusKiB('VmRSS');
      }
    }
  } finally {
    r = await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const shmemAfter = statusKiB('RssShmem');
  const rssAfter = statusKiB('VmRSS');
  t.diagnostic(`memfd mappings before ${mapsBefore}, after ${memfdMappings()}; RssShmem after 5 cycles ${shmemWarm} KiB, after 50 ${shmemAfter} KiB; VmRSS ${rssWarm} → ${rssAfter} KiB; server mapped ${r.backend.regionsMapped} regions, released ${r.backend.regionsUnmapped}`);
  assert.deepEqual(errors, [], 'every connection ended with the frontend closing it');
  assert.equal(r.server.connections, 50);
  assert.equal(memfdMappings(), mapsBefore, 'memfd mappings back to the starting count');
  assert.equal(r.backend.regionsUnmapped, r.backend.regionsMapped, 'the server released every region it mapped');
  assert.equal(r.backend.regionsMapped, 50);
  // Each connection's guest touched 4 MiB of shared memory: 45 leaked would be 180 MiB.
  assert.ok(shmemAfter - shmemWarm < 8 * 1024, `RssShmem grew ${shmemAfter - shmemWarm} KiB over 45 reconnects`);
  assert.ok(rssAfter - rssWarm < 96 * 1024, `VmRSS grew ${rssAfter - rssWarm} KiB over 45 reconnects`);
  assert.ok(r.frames.rxFrames >= 50 * Q && r.frames.txFrames >= 50 * Q);
});
