// virtq's vhost-user-net backend on the packed ring (virtio 1.2 §2.8) against DPDK's virtio_user
// driver in dpdk-testpmd: with packed_vq=1, and with packed_vq=1,in_order=1, at queue sizes 256
// and 1024, testpmd negotiates VIRTIO_F_RING_PACKED (bit 34, and IN_ORDER bit 35) — checked both
// in what virtq saw and in testpmd's own "features after negotiate" debug line — and forwards
// (macswap through virtq's reflect port) with zero drops and counters that agree. Skips with a
// message when the addon, root or dpdk-testpmd (Debian dpdk-dev) is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVhostUser } from '../src/vhost-user/index.js';
import { VirtioF } from '../src/net/features.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const dpdkMissing = firstMissing(needAddon(), needRoot(), needTool('dpdk-testpmd', 'dpdk-dev'));

function parseTestpmd(out: string): { rx: number; tx: number; rxDropped: number; txDropped: number } | null {
  const i = out.indexOf('Accumulated forward statistics for all ports');
  if (i < 0) return null;
  const s = out.slice(i);
  const num = (re: RegExp): number => Number(re.exec(s)?.[1] ?? NaN);
  return { rx: num(/RX-packets:\s+(\d+)/), tx: num(/TX-packets:\s+(\d+)/), rxDropped: num(/RX-dropped:\s+(\d+)/), txDropped: num(/TX-dropped:\s+(\d+)/) };
}

for (const inOrder of [false, true]) {
  for (const queueSize of [256, 1024]) {
    // virtio_user's in_order defaults to 1: spelled out both ways.
    const vdevArgs = `packed_vq=1,in_order=${inOrder ? 1 : 0}`;
    test(`DPDK virtio_user with ${vdevArgs}, queue size ${queueSize}, negotiates the packed ring with virtq and forwards with zero drops`, { skip: dpdkMissing ?? false, timeout: 90_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'virtq-vhp-'));
      const path = join(dir, 'vhu.sock');
      const prefix = `virtq-packed-${process.pid}-${queueSize}-${inOrder ? 1 : 0}`;
      const disconnects: (string | null)[] = [];
      let features = 0n;
      const h = await startVhostUser({ socketPath: path, backend: 'reflect', preset: 'vhost', onDisconnect: (e, _f, feat) => (disconnects.push(e), (features = feat)) });
      let output = '';
      let stopped: ReturnType<typeof h.stop> | null = null;
      const runMs = 3000;
      try {
        const pmd = spawn(
          'dpdk-testpmd',
          [
            '-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix,
            '--log-level=pmd.net.virtio.init:debug',
            `--vdev=net_virtio_user0,path=${path},queues=1,queue_size=${queueSize},${vdevArgs}`,
            '--', '--forward-mode=macswap', '--tx-first', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '60',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        pmd.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
        pmd.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
        let exitCode: number | null | undefined;
        const exited = new Promise<number | null>((res) => pmd.on('exit', (code) => res((exitCode = code))));
        // The run is timed from when forwarding starts: EAL start-up (512 MB of memory without
        // hugepages) takes seconds on a loaded machine, and a timer from spawn then stops
        // testpmd right after its first burst (seen: RX 32, TX 64).
        for (let i = 0; i < 400 && exitCode === undefined && !output.includes('start packet forwarding'); i++) await new Promise((r) => setTimeout(r, 100));
        const timer = setTimeout(() => pmd.kill('SIGINT'), runMs);
        const hard = setTimeout(() => pmd.kill('SIGKILL'), runMs + 30_000);
        const code = await exited;
        clearTimeout(timer);
        clearTimeout(hard);
        assert.equal(code, 0, `testpmd exited with ${code}:\n${output.slice(-3000)}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
        rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
        // Always stopped: a failed run must not leave the server's worker keeping the process alive.
        stopped = h.stop();
        stopped.catch(() => {}); // awaited below when the run succeeded
      }
      const r = (await stopped)!;
      const pmd = parseTestpmd(output);
      assert.ok(pmd, `no totals in testpmd output:\n${output.slice(-3000)}`);
      // testpmd's own view of the negotiation (virtio_negotiate_features' debug line).
      const m = /features after negotiate = (?:0x)?([0-9a-f]+)/i.exec(output);
      assert.ok(m, `no "features after negotiate" line in testpmd's output:\n${output.slice(0, 3000)}`);
      const pmdFeatures = BigInt(`0x${m[1]}`);
      t.diagnostic(`testpmd features after negotiate 0x${pmdFeatures.toString(16)}; RX ${pmd.rx} TX ${pmd.tx} (dropped ${pmd.rxDropped}/${pmd.txDropped}); virtq from driver ${r.frames.txFrames} (+${r.backend.txLeftInRingAtStop} in the ring at stop), to driver ${r.frames.rxFrames}`);
      assert.ok((pmdFeatures & VirtioF.RING_PACKED) !== 0n, 'testpmd negotiated bit 34 (RING_PACKED)');
      assert.ok((features & VirtioF.RING_PACKED) !== 0n, 'virtq saw RING_PACKED negotiated');
      assert.equal((pmdFeatures & VirtioF.IN_ORDER) !== 0n, inOrder, 'IN_ORDER (bit 35) as asked');
      assert.equal((features & VirtioF.IN_ORDER) !== 0n, inOrder);
      assert.equal(disconnects.length, 1);
      assert.equal(disconnects[0], null, 'the frontend disconnected without a protocol error');
      assert.equal(pmd.rxDropped + pmd.txDropped, 0);
      assert.equal(r.frames.txDropped + r.frames.rxDropped, 0, `device drops: ${JSON.stringify(r.counters)}`);
      assert.ok(pmd.tx >= 20_000, `too few packets moved: ${pmd.tx}\n${output.slice(-2500)}`);
      assert.equal(r.frames.txFrames + r.backend.txLeftInRingAtStop, pmd.tx, 'every frame testpmd sent reached virtq or was still in the ring when testpmd stopped it');
      assert.equal(r.frames.rxFrames, r.frames.txFrames, 'virtq reflected every frame');
      assert.ok(pmd.tx - pmd.rx >= 0 && pmd.tx - pmd.rx <= queueSize, `testpmd TX ${pmd.tx} vs RX ${pmd.rx}`);
    });
  }
}
