// Linux's own virtio_net driver as a real peer: QEMU (TCG) boots Debian's kernel with a busybox
// initramfs whose /init runs iputils `ping -f` from 10.78.0.1 to 10.78.0.2, which virtq's
// vhost-user backend (responder) answers; guest memory is a shared memfd the backend maps.
// 0 % loss and matching counters are required. The guest is built once by
// support/build-linux-guest.sh (apt-get download, nothing installed) and cached in
// $VIRTQ_CACHE_DIR or ~/.cache/virtq. VIRTQ_QEMU_PINGS sets the ping count (default 20000; 70000
// wraps the 16-bit ring indices). A second test puts a TAP behind the device (`--backend tap:vq1`)
// so the guest pings the host kernel through virtq. Skips with a message when not root, or the addon,
// qemu-system-x86_64, apt-get or ping is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startVhostUser } from '../src/vhost-user/index.js';
import { firstMissing, needAddon, needRoot, needTool, needTun } from './support/real-peers.js';

const missing = firstMissing(needRoot(), needAddon(), needTool('qemu-system-x86_64', 'qemu-system-x86'), needTool('apt-get', 'apt'), needTool('ping', 'iputils-ping'));
const BUILD = fileURLToPath(new URL('../../test/support/build-linux-guest.sh', import.meta.url));
const PINGS = Number(process.env['VIRTQ_QEMU_PINGS'] ?? 20000);

function guestCache(): string {
  const cache = join(process.env['VIRTQ_CACHE_DIR'] ?? join(homedir(), '.cache', 'virtq'), 'linux-guest');
  const built = spawnSync('bash', [BUILD, cache], { encoding: 'utf8' });
  assert.equal(built.status, 0, `building the guest failed:\n${built.stderr}`);
  return cache;
}

/** Boots the guest against the vhost-user socket; resolves with its console output. */
async function bootGuest(cache: string, sock: string, pings: number): Promise<string> {
  let out = '';
  const q = spawn(
    'qemu-system-x86_64',
    [
      '-M', 'pc', '-accel', 'tcg', '-cpu', 'max', '-m', '512', '-smp', '1', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
      '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
      '-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0',
      // vectors=0 (INTx): QEMU 7.2 under TCG crashes in msix_set_vector_notifiers with vhost-user and MSI-X.
      '-device', 'virtio-net-pci,netdev=n0,romfile=,vectors=0',
      '-kernel', join(cache, 'vmlinuz'), '-initrd', join(cache, 'initramfs.gz'),
      '-append', `console=ttyS0 quiet panic=-1 VQCOUNT=${pings}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  q.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  q.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const code = await new Promise<number | null>((res) => q.on('exit', (c) => res(c)));
  assert.equal(code, 0, `qemu exited with ${code}:\n${out.slice(-3000)}`);
  return out;
}

function guestPing(out: string): { transmitted: number; received: number; timeMs: number; rtt: string } {
  const section = /VQ-BEGIN([\s\S]*)VQ-END/.exec(out)?.[1] ?? '';
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(section);
  const rtt = /rtt min\/avg\/max\/mdev = ([\d./]+) ms/.exec(section);
  assert.ok(m && rtt, `no ping summary in the guest output:\n${out.slice(-3000)}`);
  return { transmitted: Number(m[1]), received: Number(m[2]), timeMs: Number(m[3]), rtt: rtt[1]! };
}

test(`Linux virtio_net in a QEMU guest pings virtq's vhost-user backend: ${PINGS} flood pings, 0 % loss`, { skip: missing ?? false, timeout: 300_000 }, async (t) => {
  const cache = guestCache();
  const dir = mkdtempSync(join(tmpdir(), 'virtq-qemu-'));
  const sock = join(dir, 'vhu.sock');
  const disconnects: (string | null)[] = [];
  const h = await startVhostUser({ socketPath: sock, backend: 'responder', address: '10.78.0.2', onDisconnect: (e) => disconnects.push(e) });
  const started = performance.now();
  let out: string;
  try {
    out = await bootGuest(cache, sock, PINGS);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const r = await h.stop();
  const p = guestPing(out);
  t.diagnostic(`guest ping -f: ${p.received}/${p.transmitted} in ${p.timeMs} ms guest time, rtt min/avg/max/mdev ${p.rtt} ms; boot+test ${((performance.now() - started) / 1000).toFixed(1)} s wall`);
  t.diagnostic(`virtq device: ${r.frames.txFrames} frames from the driver, ${r.frames.rxFrames} to it, ${r.backend.calls} calls, ${r.backend.memTables} memory table(s); host stack ${r.hoststack?.echoRequestsIn} echo / ${r.hoststack?.arpRequestsIn} ARP requests answered, ignored ${r.hoststack?.ignored}`);
  assert.equal(p.transmitted, PINGS);
  assert.equal(p.received, PINGS, '0 % loss');
  assert.equal(r.hoststack?.echoRequestsIn, PINGS);
  assert.equal(r.hoststack?.controlDrops, 0);
  assert.deepEqual(disconnects, [null], 'QEMU disconnected without a protocol error');
  assert.equal(r.server.protocolErrors, 0);
});

const tapMissing = missing ?? firstMissing(needTun(), needTool('ip', 'iproute2'));
const TAP_PINGS = 5000;

test(`the Linux guest reaches the host kernel through virtq's device and a TAP: ${TAP_PINGS} flood pings, 0 % loss`, { skip: tapMissing ?? false, timeout: 300_000 }, async (t) => {
  const cache = guestCache();
  const ns = `vqq${process.pid % 100000}`;
  spawnSync('ip', ['netns', 'del', ns]);
  assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  const dir = mkdtempSync(join(tmpdir(), 'virtq-qemu-'));
  const sock = join(dir, 'vhu.sock');
  // virtq runs inside the namespace (the TAP lives there); QEMU reaches it through the socket.
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const v = spawn('ip', ['netns', 'exec', ns, process.execPath, cli, 'vhost-user', '--socket', sock, '--backend', 'tap:vq1', '--tap-address', '10.78.0.2/24'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let vout = '';
  v.stdout!.on('data', (d: Buffer) => (vout += d.toString()));
  v.stderr!.on('data', (d: Buffer) => (vout += d.toString()));
  const vexit = new Promise<number | null>((res) => v.on('exit', (c) => res(c)));
  try {
    for (let i = 0; i < 100 && !vout.includes('ready\n'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(vout.includes('ready\n'), `virtq vhost-user did not come up:\n${vout}`);
    const out = await bootGuest(cache, sock, TAP_PINGS);
    v.kill('SIGINT');
    assert.equal(await vexit, 0, vout);
    const p = guestPing(out);
    t.diagnostic(`guest ping -f through virtq + TAP to the host kernel: ${p.received}/${p.transmitted} in ${p.timeMs} ms guest time, rtt min/avg/max/mdev ${p.rtt} ms`);
    t.diagnostic(vout.trim().split('\n').slice(-3).join(' | '));
    assert.equal(p.transmitted, TAP_PINGS);
    assert.equal(p.received, TAP_PINGS, '0 % loss');
    assert.match(vout, /0 protocol error\(s\)/);
  } finally {
    v.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    spawnSync('ip', ['netns', 'del', ns]);
  }
});
