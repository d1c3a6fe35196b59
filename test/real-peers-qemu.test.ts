// Linux's own virtio_net driver as a real peer: QEMU (TCG) boots Debian's kernel with a busybox
// initramfs whose /init runs iputils `ping -f` from 10.78.0.1 to 10.78.0.2, which virtq's
// vhost-user backend (responder) answers; guest memory is a shared memfd the backend maps.
// 0 % loss and matching counters are required. The guest is built once by
// support/build-linux-guest.sh (apt-get download, nothing installed) and cached in
// $VIRTQ_CACHE_DIR or ~/.cache/virtq. VIRTQ_QEMU_PINGS sets the ping count (default 20000; 70000
// wraps the 16-bit ring indices). Skips with a message when not root, or the addon,
// qemu-system-x86_64, apt-get or ping is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startVhostUser } from '../src/vhost-user/index.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const missing = firstMissing(needRoot(), needAddon(), needTool('qemu-system-x86_64', 'qemu-system-x86'), needTool('apt-get', 'apt'), needTool('ping', 'iputils-ping'));
const BUILD = fileURLToPath(new URL('../../test/support/build-linux-guest.sh', import.meta.url));
const PINGS = Number(process.env['VIRTQ_QEMU_PINGS'] ?? 20000);

test(`Linux virtio_net in a QEMU guest pings virtq's vhost-user backend: ${PINGS} flood pings, 0 % loss`, { skip: missing ?? false, timeout: 300_000 }, async (t) => {
  const cache = join(process.env['VIRTQ_CACHE_DIR'] ?? join(homedir(), '.cache', 'virtq'), 'linux-guest');
  const built = spawnSync('bash', [BUILD, cache], { encoding: 'utf8' });
  assert.equal(built.status, 0, `building the guest failed:\n${built.stderr}`);
  const dir = mkdtempSync(join(tmpdir(), 'virtq-qemu-'));
  const sock = join(dir, 'vhu.sock');
  const disconnects: (string | null)[] = [];
  const h = await startVhostUser({ socketPath: sock, backend: 'responder', address: '10.78.0.2', onDisconnect: (e) => disconnects.push(e) });
  let out = '';
  const started = performance.now();
  try {
    const q = spawn(
      'qemu-system-x86_64',
      [
        '-M', 'pc', '-accel', 'tcg', '-cpu', 'max', '-m', '512', '-smp', '1', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
        '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
        '-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0',
        // vectors=0 (INTx): QEMU 7.2 under TCG crashes in msix_set_vector_notifiers with vhost-user and MSI-X.
        '-device', 'virtio-net-pci,netdev=n0,romfile=,vectors=0',
        '-kernel', join(cache, 'vmlinuz'), '-initrd', join(cache, 'initramfs.gz'),
        '-append', `console=ttyS0 quiet panic=-1 VQCOUNT=${PINGS}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    q.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    q.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const code = await new Promise<number | null>((res) => q.on('exit', (c) => res(c)));
    assert.equal(code, 0, `qemu exited with ${code}:\n${out.slice(-3000)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const r = await h.stop();
  const section = /VQ-BEGIN([\s\S]*)VQ-END/.exec(out)?.[1] ?? '';
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(section);
  const rtt = /rtt min\/avg\/max\/mdev = ([\d./]+) ms/.exec(section);
  assert.ok(m && rtt, `no ping summary in the guest output:\n${out.slice(-3000)}`);
  t.diagnostic(`guest ping -f: ${m[2]}/${m[1]} in ${m[3]} ms guest time, rtt min/avg/max/mdev ${rtt[1]} ms; boot+test ${((performance.now() - started) / 1000).toFixed(1)} s wall`);
  t.diagnostic(`virtq device: ${r.frames.txFrames} frames from the driver, ${r.frames.rxFrames} to it, ${r.backend.calls} calls, ${r.backend.memTables} memory table(s); responder ${r.responder?.echoReplies} echo / ${r.responder?.arpReplies} ARP replies, ignored ${JSON.stringify(r.responder?.ignored)}`);
  assert.equal(Number(m[1]), PINGS);
  assert.equal(Number(m[2]), PINGS, '0 % loss');
  assert.equal(r.responder?.echoReplies, PINGS);
  assert.deepEqual(disconnects, [null], 'QEMU disconnected without a protocol error');
  assert.equal(r.server.protocolErrors, 0);
});
