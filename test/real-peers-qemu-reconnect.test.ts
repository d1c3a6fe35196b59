// A fault real deployments meet: virtq's vhost-user backend killed with SIGKILL under a running
// Linux guest, then started again on the same socket. QEMU's chardev `reconnect=1` connects
// again; with the backend gone it could not GET_VRING_BASE, so it restores each split ring's
// position from the used index in guest memory (virtio_queue_restore_last_avail_idx) and hands
// it over with SET_VRING_BASE; the new backend must resume from there (§2.7: entries between
// used.idx and avail.idx are re-processed) and the guest's network must come back by itself.
// One TCG boot in agent mode: 3 pings, a flood ping during which the backend is killed and
// restarted, then 3000 flood pings through the new backend with 0 % loss.
// (A packed ring cannot be restored this way: QEMU keeps no position for it in guest memory —
// its virtio_queue_packed_restore_last_avail_idx is empty — see docs/real-peers.md.)
// Skips with a message when not root, or the addon, qemu-system-x86_64, apt-get or ping is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootGuest, buildGuest, HOST_IP, type GuestAgent } from '../src/study/guest-boot.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const missing = firstMissing(needRoot(), needAddon(), needTool('qemu-system-x86_64', 'qemu-system-x86'), needTool('apt-get', 'apt'), needTool('ping', 'iputils-ping'));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

interface Backend {
  child: ChildProcess;
  out(): string;
}

/** `virtq vhost-user` with the host stack on `sock`, as a process of its own (so it can be killed). */
async function startBackend(sock: string): Promise<Backend> {
  const child = spawn(process.execPath, [CLI, 'vhost-user', '--socket', sock, '--backend', 'hoststack', '--address', HOST_IP, '--preset', 'vhost'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  for (let i = 0; i < 200 && !/^ready$/m.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /^ready$/m, `virtq vhost-user did not come up:\n${out}`);
  return { child, out: () => out };
}

function pingCounts(text: string): { transmitted: number; received: number } {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  assert.ok(m, `no ping summary in:\n${text}`);
  return { transmitted: Number(m[1]), received: Number(m[2]) };
}

test('virtq killed with SIGKILL under a running Linux guest and started again: QEMU reconnects, the split rings resume from the used index, and 3000 flood pings then lose nothing', { skip: missing ?? false, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-reconnect-'));
  const sock = join(dir, 'vhu.sock');
  let first: Backend | null = null;
  let second: Backend | null = null;
  let agent: GuestAgent | null = null;
  try {
    first = await startBackend(sock);
    const boot = await bootGuest({
      dir: buildGuest(),
      accel: 'tcg',
      kvmRequired: false,
      // reconnect=1: QEMU retries the socket every second after the backend goes away.
      netdev: ['-chardev', `socket,id=c0,path=${sock},reconnect=1`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
      // vectors=0 (INTx): QEMU 7.2 under TCG crashes in msix_set_vector_notifiers with vhost-user and MSI-X.
      device: 'virtio-net-pci,netdev=n0,romfile=,vectors=0',
    });
    agent = boot.agent;
    const before = pingCounts(await agent.run(`/usr/bin/ping -c 3 -w 30 ${HOST_IP}`, 60_000));
    assert.equal(before.received, 3, 'the guest reaches the host stack before the kill');

    // A flood in the background, killed into: the rings hold buffers the first backend popped
    // and never used when it dies.
    await agent.run(`(/usr/bin/ping -f -q -c 1000000 -w 8 ${HOST_IP} > /tmp/flood 2>&1 &)`, 30_000);
    await new Promise((r) => setTimeout(r, 2000));
    first.child.kill('SIGKILL');
    await new Promise((r) => first!.child.once('exit', r));
    t.diagnostic(`first backend killed; its output:\n${first.out().trim()}`);
    second = await startBackend(sock);

    // Wait for QEMU's reconnect (its retry is 1 s) and the flood's end, then the proof.
    const during = pingCounts(await agent.run('while pidof ping >/dev/null; do sleep 1; done; cat /tmp/flood', 120_000));
    t.diagnostic(`flood across the kill: ${during.received}/${during.transmitted} answered`);
    let back = false;
    for (let i = 0; i < 10 && !back; i++) back = pingCounts(await agent.run(`/usr/bin/ping -c 1 -w 3 ${HOST_IP}`, 60_000)).received === 1;
    assert.ok(back, `the guest's network did not come back after the restart; virtq said:\n${second.out()}`);
    const after = pingCounts(await agent.run(`/usr/bin/ping -f -q -c 3000 -w 120 ${HOST_IP}`, 180_000));
    assert.equal(after.transmitted, 3000);
    assert.equal(after.received, 3000, '0 % loss through the restarted backend');
  } finally {
    await agent?.quit(10_000);
    for (const b of [first, second]) if (b !== null && b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGINT');
    if (second !== null) await new Promise((r) => (second!.child.exitCode !== null ? r(null) : second!.child.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
  assert.ok(second !== null);
  const report = second.out();
  t.diagnostic(`restarted backend:\n${report.trim()}`);
  // The restarted backend served the guest and saw no protocol error from QEMU's reconnect.
  assert.match(report, /stopped after 1 connection\(s\), 0 protocol error\(s\)/);
  assert.match(report, /drops: tx 0 \(none\), rx 0 \(none\); ring errors 0/);
  const echo = /echo requests (\d+)/.exec(report);
  assert.ok(echo !== null && Number(echo[1]) >= 3000, `the restarted host stack answered the flood: ${echo?.[0]}`);
});
