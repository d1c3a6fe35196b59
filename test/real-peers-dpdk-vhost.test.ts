// virtq's *driver* against a real device: DPDK's own vhost-user backend (net_vhost in
// dpdk-testpmd, io forwarding, so every frame comes back) with virtq as the vhost-user frontend.
// virtq's DriverQueues run on a memfd shared with DPDK; 100 000 numbered frames go out on the
// transmit ring and must all come back on the receive ring, in order and intact, and DPDK's
// counters and GET_VRING_BASE must agree. Skips when the addon, root or dpdk-testpmd is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { VirtioF } from '../src/net/features.js';
import { VHOST_USER_F_PROTOCOL_FEATURES } from '../src/vhost-user/index.js';
import { VhostUserFrontend } from '../src/vhost-user/frontend.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const missing = firstMissing(needAddon(), needRoot(), needTool('dpdk-testpmd', 'dpdk-dev'), needTool('stdbuf', 'coreutils'));
const FRAMES = Number(process.env['VIRTQ_DPDK_FRAMES'] ?? 100_000);
const FRAME_BYTES = 64;
const HDR = 12;

/** Two rings back to back from guest address 0, then queueSize rx buffers and queueSize tx buffers. */
function planRings(queueSize: number, bufBytes: number): { rxRing: number; txRing: number; rxBufs: number; txBufs: number; totalBytes: number } {
  const ringBytes = SplitLayout.packedBytes(queueSize);
  const rxBufs = 2 * ringBytes;
  const txBufs = rxBufs + queueSize * bufBytes;
  return { rxRing: 0, txRing: ringBytes, rxBufs, txBufs, totalBytes: txBufs + queueSize * bufBytes };
}

test(`virtq's driver sends ${FRAMES} frames through DPDK's vhost-user device and gets every one back in order`, { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-dpdkdev-'));
  const sock = join(dir, 'vhost.sock');
  const prefix = `virtq-dev-${process.pid}`;
  const pmd = spawn('stdbuf', ['-oL', 'dpdk-testpmd', '-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_vhost0,iface=${sock},queues=1`, '--', '--forward-mode=io', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  pmd.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  pmd.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const exited = new Promise<number | null>((r) => pmd.on('exit', (c) => r(c)));
  let fe: VhostUserFrontend | null = null;
  try {
    for (let i = 0; i < 200 && !out.includes('Port 0:'); i++) await new Promise((r) => setTimeout(r, 50));
    const q = 256;
    const plan = planRings(q, 2048);
    fe = await VhostUserFrontend.connect(sock, Math.ceil(plan.totalBytes / 4096) * 4096);
    const features = fe.setup(VirtioF.VERSION_1 | VirtioF.EVENT_IDX | VHOST_USER_F_PROTOCOL_FEATURES);
    assert.ok(features & VirtioF.VERSION_1, 'DPDK accepts VERSION_1');
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    const mem = fe.memory;
    const rxL = SplitLayout.packedAt(q, plan.rxRing, 0);
    const txL = SplitLayout.packedAt(q, plan.txRing, 1);
    const rxq = new DriverQueue<number>(mem, rxL, { index: 0, eventIdx });
    const txq = new DriverQueue<number>(mem, txL, { index: 1, eventIdx });
    fe.startRing(0, rxL);
    fe.startRing(1, txL);
    for (let i = 0; i < q; i++) rxq.add([], [{ addr: plan.rxBufs + i * 2048, len: 2048 }], i);
    rxq.publish();
    fe.kick(0);
    const freeTx: number[] = [];
    for (let i = q - 1; i >= 0; i--) freeTx.push(i);
    const frame = new Uint8Array(HDR + FRAME_BYTES);
    frame.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x88, 0xb5], HDR); // local MACs, experimental ethertype
    const view = new DataView(frame.buffer);
    const got = new Uint8Array(HDR + FRAME_BYTES);
    const gotView = new DataView(got.buffer);
    let sent = 0;
    let received = 0;
    let bad = 0;
    const deadline = Date.now() + 60_000;
    const t0 = performance.now();
    while (received < FRAMES && Date.now() < deadline) {
      for (let u = txq.reap(); u !== null; u = txq.reap()) freeTx.push(u.token);
      let added = 0;
      // At most half the receive ring in flight: DPDK drops what the receive ring cannot take.
      while (sent < FRAMES && freeTx.length > 0 && added < 64 && sent - received < q / 2) {
        const slot = freeTx.pop()!;
        view.setUint32(HDR + 14, sent, true);
        for (let k = HDR + 18; k < frame.length; k++) frame[k] = (sent + k) & 0xff;
        const addr = plan.txBufs + slot * 2048;
        mem.copyIn(addr, frame);
        txq.add([{ addr, len: frame.length }], [], slot);
        sent++;
        added++;
      }
      if (added > 0) {
        txq.publish();
        if (txq.kickNeeded()) fe.kick(1);
      }
      let reposted = 0;
      for (let u = rxq.reap(); u !== null; u = rxq.reap()) {
        const addr = plan.rxBufs + u.token * 2048;
        if (u.len !== frame.length) bad++;
        else {
          mem.copyOut(addr, got);
          const seq = gotView.getUint32(HDR + 14, true);
          if (seq !== received) bad++;
          else for (let k = HDR + 18; k < got.length; k++) if (got[k] !== ((seq + k) & 0xff)) { bad++; break; }
        }
        received++;
        rxq.add([], [{ addr, len: 2048 }], u.token);
        reposted++;
      }
      if (reposted > 0) {
        rxq.publish();
        if (rxq.kickNeeded()) fe.kick(0);
      }
      if (added === 0 && reposted === 0) await new Promise((r) => setImmediate(r));
    }
    const txBase = fe.stopRing(1);
    const rxBase = fe.stopRing(0);
    t.diagnostic(`sent ${sent}, received ${received}, bad ${bad} in ${((performance.now() - t0) / 1000).toFixed(1)} s; GET_VRING_BASE tx ${txBase} rx ${rxBase}; features 0x${features.toString(16)}`);
    assert.equal(received, FRAMES, 'every frame came back');
    assert.equal(bad, 0, 'in order and intact');
    assert.equal(txBase, FRAMES & 0xffff, 'DPDK consumed exactly what was sent (16-bit index, wrapped)');
  } finally {
    fe?.close();
    pmd.kill('SIGINT');
    const kill = setTimeout(() => pmd.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(kill);
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  }
  const tail = out.slice(out.indexOf('Accumulated forward statistics'));
  const rx = Number(/RX-packets:\s+(\d+)/.exec(tail)?.[1]);
  const tx = Number(/TX-packets:\s+(\d+)/.exec(tail)?.[1]);
  t.diagnostic(`testpmd (net_vhost, io): RX ${rx} TX ${tx}`);
  assert.equal(rx, FRAMES);
  assert.equal(tx, FRAMES);
});
