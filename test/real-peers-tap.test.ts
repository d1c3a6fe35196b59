// The kernel as a real peer through a TAP with IFF_VNET_HDR, on virtq's one data path (NetDriver
// → rings → NetDevice + DeviceLoop → TapPort). Inside a fresh network namespace `virtq tap`
// answers for 10.77.0.2 behind vq0:
// - under the vhost preset the real iputils `ping -f -c 20000` sees 0 % loss, every request is
//   answered once, and three UDP datagrams reach the guest with NEEDS_CSUM (the TUNSETOFFLOAD
//   that followed the guest's GUEST_CSUM); a veth pair between two namespaces gives the
//   kernel-only RTT in the same run, printed beside it;
// - under rfc-baseline (global lock, tx timer, per-buffer interrupts, header apart) the same with
//   fewer pings (its 250 µs tx timer paces every reply);
// - with --no-offload the guest accepts no offload, TUNSETOFFLOAD is 0 and UDP arrives complete;
// - with --pcap and --trace, tshark decodes the capture with no malformed packet and no bad
//   checksum, every echo request and reply is in it exactly once, and `virtq trace analyze`
//   reads the trace with one complete timeline per frame the guest sent;
// - a second `virtq tap --name vq0` while the first holds it, and a --pcap file the host worker
//   cannot open, each fail with one line naming the errno, exit code 1 and no stack.
// Skips with a message when not root, or /dev/net/tun, the addon, `ip`, `ping` or `tshark` is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { firstMissing, needAddon, needRoot, needTool, needTun } from './support/real-peers.js';

const missing = firstMissing(needRoot(), needTun(), needAddon(), needTool('ip', 'iproute2'), needTool('ping', 'iputils-ping'));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const COUNT = 20000;
const BASELINE_COUNT = 3000;
const PCAP_COUNT = 1000;

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

/** One counter out of the stop report, e.g. counter(out, /(\d+) echo requests answered/). */
function counter(out: string, re: RegExp): number {
  const m = re.exec(out);
  assert.ok(m, `no ${re} in:\n${out}`);
  return Number(m[1]);
}

/**
 * Runs `virtq tap` with `args` in a fresh namespace, calls `traffic` once it is ready, stops it
 * with SIGINT and returns its output (the stop report). The namespace goes away afterwards.
 */
async function withTap(tag: string, args: string[], traffic: (nsName: string) => void | Promise<void>): Promise<string> {
  const nsTap = `${tag}tap`;
  spawnSync('ip', ['netns', 'del', nsTap]);
  execFileSync('ip', ['netns', 'add', nsTap]);
  let child: ReturnType<typeof spawn> | null = null;
  try {
    ns(nsTap, 'ip', 'link', 'set', 'lo', 'up');
    child = spawn('ip', ['netns', 'exec', nsTap, process.execPath, CLI, 'tap', '--name', 'vq0', '--address', '10.77.0.1/24', '--guest-address', '10.77.0.2', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child!.on('exit', (c) => res(c)));
    for (let i = 0; i < 400 && !out.includes('ready\n') && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(out.includes('ready\n'), `virtq tap did not come up:\n${out}`);
    await traffic(nsTap);
    // Frames still in flight (the UDP datagrams) reach the guest before the stop.
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    const code = await exited;
    child = null;
    assert.equal(code, 0, `virtq tap exited with ${code}:\n${out}`);
    return out;
  } finally {
    child?.kill('SIGKILL');
    spawnSync('ip', ['netns', 'del', nsTap]);
  }
}

/** UDP from the kernel: with TUN_F_CSUM in effect it leaves the TAP with a partial checksum (NEEDS_CSUM). */
function sendUdp(nsName: string): void {
  ns(nsName, 'bash', '-c', 'for i in 1 2 3; do echo virtq > /dev/udp/10.77.0.2/9; done');
}

/** What every run must show: no frame dropped anywhere, no queue broken, the requests answered once each. */
function assertClean(out: string, echoRequests: number): void {
  assert.equal(counter(out, /(\d+) echo requests answered/), echoRequests, 'every echo request reached the guest once');
  assert.equal(counter(out, /(\d+) replies dropped/), 0);
  assert.equal(counter(out, /drops: rx (\d+)/), 0, 'no frame dropped host → guest');
  assert.equal(counter(out, /, tx (\d+), tap write/), 0, 'no frame dropped guest → host');
  assert.equal(counter(out, /tap write (\d+)/), 0);
  assert.equal(counter(out, /queue errors (\d+)/), 0);
  assert.doesNotMatch(out, /failure:/);
  // The guest sent each reply once and the device passed each one to the TAP.
  const sent = counter(out, /(\d+) sent,/);
  assert.equal(counter(out, /(\d+) guest→TAP/), sent, 'the device passed every frame the guest sent');
}

test(`vhost preset: the kernel's ping -f -c ${COUNT} reaches virtq's guest through a TAP with 0 % loss (veth RTT alongside)`, { skip: missing ?? false, timeout: 180_000 }, async (t) => {
  const tag = `vq${process.pid % 100000}`;
  let tap: PingResult | null = null;
  const out = await withTap(tag, ['--preset', 'vhost'], (n) => {
    tap = parsePing(ns(n, 'ping', '-f', '-q', '-c', String(COUNT), '10.77.0.2'));
    sendUdp(n);
  });
  // Kernel-only reference in the same run: two namespaces joined by a veth pair.
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const cleanup = (): void => {
    for (const n of [nsA, nsB]) spawnSync('ip', ['netns', 'del', n]);
  };
  cleanup();
  let veth: PingResult;
  try {
    execFileSync('ip', ['netns', 'add', nsA]);
    execFileSync('ip', ['netns', 'add', nsB]);
    execFileSync('ip', ['link', 'add', `${tag}x`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', nsB]);
    ns(nsA, 'ip', 'addr', 'add', '10.78.9.1/24', 'dev', `${tag}x`);
    ns(nsB, 'ip', 'addr', 'add', '10.78.9.2/24', 'dev', `${tag}y`);
    ns(nsA, 'ip', 'link', 'set', `${tag}x`, 'up');
    ns(nsB, 'ip', 'link', 'set', `${tag}y`, 'up');
    veth = parsePing(ns(nsA, 'ping', '-f', '-q', '-c', String(COUNT), '10.78.9.2'));
  } finally {
    cleanup();
  }
  const p = tap as PingResult | null;
  assert.ok(p !== null);
  t.diagnostic(`virtq TAP: ${p.received}/${p.transmitted} in ${p.timeMs} ms, rtt min/avg/max/mdev ${p.rtt} ms`);
  t.diagnostic(`veth ref : ${veth.received}/${veth.transmitted} in ${veth.timeMs} ms, rtt min/avg/max/mdev ${veth.rtt} ms`);
  t.diagnostic(out.trim().split('\n').slice(-3).join(' | '));
  assert.equal(p.transmitted, COUNT);
  assert.equal(p.received, COUNT, '0 % loss through virtq');
  assert.match(out, /preset vhost/);
  assert.match(out, /TUNSETOFFLOAD 0xf,/, 'the guest took CSUM and TSO4/6/ECN, so the TAP offers them');
  assert.match(out, /VIRTIO_NET_F_GUEST_CSUM .*VIRTIO_NET_F_MRG_RXBUF .*VIRTIO_F_EVENT_IDX/);
  assertClean(out, COUNT);
  assert.equal(counter(out, /\((\d+) with NEEDS_CSUM/), 3, 'the offload set with TUNSETOFFLOAD reached the guest as virtio_net_hdr flags');
});

test(`rfc-baseline preset (global lock, tx timer, per-buffer interrupts): ping -f -c ${BASELINE_COUNT} with 0 % loss and UDP with NEEDS_CSUM`, { skip: missing ?? false, timeout: 180_000 }, async (t) => {
  const tag = `vr${process.pid % 100000}`;
  let p: PingResult | null = null;
  const out = await withTap(tag, ['--preset', 'rfc-baseline'], (n) => {
    p = parsePing(ns(n, 'ping', '-f', '-q', '-c', String(BASELINE_COUNT), '10.77.0.2'));
    sendUdp(n);
  });
  const r = p as PingResult | null;
  assert.ok(r !== null);
  t.diagnostic(`virtq TAP (rfc-baseline): ${r.received}/${r.transmitted} in ${r.timeMs} ms, rtt ${r.rtt} ms`);
  assert.equal(r.received, BASELINE_COUNT, '0 % loss through virtq');
  assert.match(out, /preset rfc-baseline, rings rx 128 tx 128/);
  // No GSO in 2008: checksum offload only, no mergeable buffers, no event idx.
  assert.match(out, /TUNSETOFFLOAD 0x1,/);
  assert.doesNotMatch(out, /MRG_RXBUF|EVENT_IDX|TSO/);
  assertClean(out, BASELINE_COUNT);
  assert.equal(counter(out, /\((\d+) with NEEDS_CSUM/), 3);
});

test('--no-offload: the guest accepts no offload, TUNSETOFFLOAD is 0 and UDP arrives with its checksum complete', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const tag = `vn${process.pid % 100000}`;
  let p: PingResult | null = null;
  const out = await withTap(tag, ['--no-offload'], (n) => {
    p = parsePing(ns(n, 'ping', '-f', '-q', '-c', '200', '10.77.0.2'));
    sendUdp(n);
  });
  assert.equal((p as PingResult | null)?.received, 200);
  assert.match(out, /TUNSETOFFLOAD 0x0,/);
  assert.doesNotMatch(out, /VIRTIO_NET_F_(GUEST_)?CSUM/);
  assertClean(out, 200);
  assert.equal(counter(out, /\((\d+) with NEEDS_CSUM/), 0);
  assert.ok(counter(out, /(\d+) received \(/) >= 203, 'the UDP datagrams reached the guest');
});

test('--queues 2: a multiqueue TAP (IFF_MULTI_QUEUE) with one queue per pair; flows spread over both pairs, every echo answered once, nothing dropped', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const tag = `vm${process.pid % 100000}`;
  let p: PingResult | null = null;
  const out = await withTap(tag, ['--queues', '2'], (n) => {
    assert.equal(ns(n, 'ls', '/sys/class/net/vq0/queues').split(/\s+/).filter((q) => q.startsWith('rx-')).length, 2, 'two TAP queues');
    p = parsePing(ns(n, 'ping', '-f', '-q', '-c', '500', '10.77.0.2'));
    // 64 UDP flows (distinct ports): the kernel picks a TAP queue per flow hash.
    ns(n, 'bash', '-c', 'for port in $(seq 9000 9063); do echo virtq > /dev/udp/10.77.0.2/$port; done');
  });
  assert.equal((p as PingResult | null)?.received, 500, '0 % loss over two pairs');
  assert.match(out, /2 queue pairs/);
  assertClean(out, 500);
  const pairs = /pairs: 0: TAP→guest (\d+) guest→TAP (\d+); 1: TAP→guest (\d+) guest→TAP (\d+)/.exec(out);
  assert.ok(pairs, `no per-pair line:\n${out}`);
  const [rx0, tx0, rx1, tx1] = pairs.slice(1).map(Number) as [number, number, number, number];
  assert.ok(rx0 > 0 && rx1 > 0, `both pairs received frames from the TAP (${rx0}, ${rx1})`);
  assert.equal(rx0 + rx1, counter(out, /(\d+) frames TAP→guest/), 'the pairs\' counts sum to the device\'s');
  assert.equal(tx0 + tx1, counter(out, /(\d+) guest→TAP/));
  assert.ok(rx0 + rx1 >= 500 + 64, 'every echo request and datagram reached a guest');
});

const pcapMissing = missing ?? needTool('tshark', 'tshark');

test(`--pcap and --trace: tshark decodes every frame, each echo once, no malformed packet or bad checksum; trace analyze reads one timeline per frame sent`, { skip: pcapMissing ?? false, timeout: 180_000 }, async () => {
  const tag = `vp${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), 'virtq-tap-'));
  try {
    const pcap = join(dir, 'tap.pcap');
    const trace = join(dir, 'tap.trace');
    const out = await withTap(tag, ['--pcap', pcap, '--trace', trace], (n) => {
      const p = parsePing(ns(n, 'ping', '-f', '-q', '-c', String(PCAP_COUNT), '-s', '1000', '10.77.0.2'));
      assert.equal(p.received, PCAP_COUNT);
      sendUdp(n);
    });
    assertClean(out, PCAP_COUNT);
    const recorded = counter(out, /pcap: (\d+) frames recorded/);
    assert.equal(counter(out, /frames recorded, (\d+) errors/), 0);
    const tshark = (...a: string[]): string => execFileSync('tshark', ['-n', '-r', pcap, '-o', 'ip.check_checksum:TRUE', '-o', 'udp.check_checksum:TRUE', ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const all = tshark('-T', 'fields', '-e', 'frame.number').trim().split('\n');
    assert.equal(all.length, recorded, 'tshark read every recorded frame');
    const bad = tshark('-Y', '_ws.malformed || _ws.expert.severity == error').trim();
    assert.equal(bad, '', `tshark found malformed packets or errors:\n${bad}`);
    // Every echo request and every reply exactly once (the guest answered each, the TAP saw each).
    const echoes = tshark('-Y', 'icmp.type == 8 || icmp.type == 0', '-T', 'fields', '-e', 'icmp.type', '-e', 'icmp.seq').trim().split('\n');
    for (const type of ['8', '0']) {
      const seqs = echoes.filter((l) => l.split('\t')[0] === type).map((l) => Number(l.split('\t')[1]));
      assert.equal(seqs.length, PCAP_COUNT, `echo ${type === '8' ? 'requests' : 'replies'} in the capture`);
      assert.equal(new Set(seqs).size, PCAP_COUNT, 'no echo twice');
    }
    // The UDP datagrams were recorded with their partial checksum completed (checked above) and intact.
    assert.equal(tshark('-Y', 'udp.dstport == 9 && data.data == 76:69:72:74:71:0a').trim().split('\n').length, 3);

    // The trace: one complete timeline per frame the guest sent (tx queue identities), read back by analyze.
    const sent = counter(out, /(\d+) sent,/);
    const report = JSON.parse(execFileSync(process.execPath, [CLI, 'trace', 'analyze', trace, '--json'], { encoding: 'utf8' })) as { run: { incomplete?: number; workload?: string }; packets: number; outOfOrder: number; sumMismatches: number; skippedLines: number };
    assert.equal(report.run.workload, 'virtq tap');
    assert.equal(report.packets, sent, 'a timeline for every frame the guest sent');
    assert.equal(report.run.incomplete, 0, 'every traced frame has every point');
    assert.equal(report.outOfOrder, 0);
    assert.equal(report.sumMismatches, 0);
    assert.equal(report.skippedLines, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Asserts that a failed `virtq tap` printed exactly one line on stderr, no stack, and exited 1. */
function assertOneLineFailure(r: { status: number | null; stdout: string; stderr: string }, line: RegExp): void {
  assert.equal(r.status, 1, `exit code 1:\n${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `no stack:\n${r.stderr}`);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line on stderr:\n${r.stderr}`);
  assert.match(r.stderr, line);
}

test('operational failures of `virtq tap` are one line naming the errno, exit 1, no stack: a TAP name already in use, a pcap file the host worker cannot open', { skip: missing ?? false, timeout: 120_000 }, async () => {
  const tapArgs = (nsName: string, extra: string[]): string[] => ['netns', 'exec', nsName, process.execPath, CLI, 'tap', '--name', 'vq0', '--address', '10.77.0.1/24', '--guest-address', '10.77.0.2', '--ms', '2000', ...extra];
  // A second `virtq tap --name vq0` while the first holds vq0.
  await withTap('vqbusy', [], (nsName) => {
    const r = spawnSync('ip', tapArgs(nsName, []), { encoding: 'utf8', timeout: 60_000 });
    assertOneLineFailure(r, /^virtq: TUNSETIFF vq0 failed: errno 16 \(EBUSY\)$/m);
  });
  // The pcap file is opened in the host worker: /proc takes no new files (ENOENT).
  const nsPcap = 'vqpcapfail';
  spawnSync('ip', ['netns', 'del', nsPcap]);
  execFileSync('ip', ['netns', 'add', nsPcap]);
  try {
    const r = spawnSync('ip', tapArgs(nsPcap, ['--pcap', '/proc/virtq-no-such.pcap']), { encoding: 'utf8', timeout: 60_000 });
    assertOneLineFailure(r, /^virtq: tap host worker: ENOENT: no such file or directory, open '\/proc\/virtq-no-such\.pcap'$/m);
  } finally {
    spawnSync('ip', ['netns', 'del', nsPcap]);
  }
});
