// The kernel as a real peer through a TAP with IFF_VNET_HDR: inside a fresh network namespace,
// `virtq tap` answers for 10.77.0.2 behind vq0 and the real iputils `ping -f -c 20000` must see
// 0 % loss, and three UDP datagrams arrive with NEEDS_CSUM (TUN_F_CSUM in effect); in the same run a veth pair between two namespaces gives the kernel-only RTT for
// comparison. Both RTT lines are printed as test diagnostics. Skips with a message when not
// root, or /dev/net/tun, the addon, `ip` or `ping` (iputils-ping) is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { firstMissing, needAddon, needRoot, needTool, needTun } from './support/real-peers.js';

const missing = firstMissing(needRoot(), needTun(), needAddon(), needTool('ip', 'iproute2'), needTool('ping', 'iputils-ping'));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const COUNT = 20000;

function ns(name: string, ...cmd: string[]): string {
  return execFileSync('ip', ['netns', 'exec', name, ...cmd], { encoding: 'utf8' });
}

interface PingResult {
  transmitted: number;
  received: number;
  rtt: string;
  timeMs: number;
}

function parsePing(out: string): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received.*time (\d+)ms/.exec(out);
  const rtt = /rtt min\/avg\/max\/mdev = ([\d./]+) ms/.exec(out);
  assert.ok(m && rtt, `unexpected ping output:\n${out}`);
  return { transmitted: Number(m[1]), received: Number(m[2]), rtt: rtt[1]!, timeMs: Number(m[3]) };
}

test(`the kernel's ping -f -c ${COUNT} reaches virtq's guest through a TAP with 0 % loss (veth RTT alongside)`, { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const tag = `vq${process.pid % 100000}`;
  const nsTap = `${tag}tap`;
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const cleanup = (): void => {
    for (const n of [nsTap, nsA, nsB]) spawnSync('ip', ['netns', 'del', n]);
  };
  cleanup();
  execFileSync('ip', ['netns', 'add', nsTap]);
  let child: ReturnType<typeof spawn> | null = null;
  try {
    ns(nsTap, 'ip', 'link', 'set', 'lo', 'up');
    child = spawn('ip', ['netns', 'exec', nsTap, process.execPath, CLI, 'tap', '--name', 'vq0', '--address', '10.77.0.1/24', '--guest-address', '10.77.0.2'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child!.on('exit', (c) => res(c)));
    for (let i = 0; i < 100 && !out.includes('ready\n'); i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(out.includes('ready\n'), `virtq tap did not come up:\n${out}`);
    const tap = parsePing(ns(nsTap, 'ping', '-f', '-q', '-c', String(COUNT), '10.77.0.2'));
    // UDP from the kernel with TUN_F_CSUM announced arrives with NEEDS_CSUM (partial checksum).
    ns(nsTap, 'bash', '-c', 'for i in 1 2 3; do echo virtq > /dev/udp/10.77.0.2/9; done');
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const code = await exited;
    child = null;
    assert.equal(code, 0, `virtq tap exited with ${code}:\n${out}`);

    // Kernel-only reference in the same run: two namespaces joined by a veth pair.
    execFileSync('ip', ['netns', 'add', nsA]);
    execFileSync('ip', ['netns', 'add', nsB]);
    execFileSync('ip', ['link', 'add', `${tag}x`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', nsB]);
    ns(nsA, 'ip', 'addr', 'add', '10.78.9.1/24', 'dev', `${tag}x`);
    ns(nsB, 'ip', 'addr', 'add', '10.78.9.2/24', 'dev', `${tag}y`);
    ns(nsA, 'ip', 'link', 'set', `${tag}x`, 'up');
    ns(nsB, 'ip', 'link', 'set', `${tag}y`, 'up');
    const veth = parsePing(ns(nsA, 'ping', '-f', '-q', '-c', String(COUNT), '10.78.9.2'));

    t.diagnostic(`virtq TAP: ${tap.received}/${tap.transmitted} in ${tap.timeMs} ms, rtt min/avg/max/mdev ${tap.rtt} ms`);
    t.diagnostic(`veth ref : ${veth.received}/${veth.transmitted} in ${veth.timeMs} ms, rtt min/avg/max/mdev ${veth.rtt} ms`);
    t.diagnostic(out.trim().split('\n').slice(-3).join(' | '));
    assert.equal(tap.transmitted, COUNT);
    assert.equal(tap.received, COUNT, '0 % loss through virtq');
    assert.match(out, new RegExp(`${COUNT} echo replies`), 'the counters match the pings');
    assert.match(out, /no rx buffer 0/);
    assert.match(out, /\(3 with NEEDS_CSUM\)/, 'the offload set with TUNSETOFFLOAD reached the guest as virtio_net_hdr flags');
  } finally {
    child?.kill('SIGKILL');
    cleanup();
  }
});
