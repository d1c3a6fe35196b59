// Real-peer benchmark (root, native addon, dpdk-dev, iputils-ping): measured side by side in one
// run, N times each, reported as min / median / max and as ratios.
//   1. DPDK virtio_user (testpmd macswap) → virtq's vhost-user device (reflect), packets/s;
//   2. the same DPDK driver → DPDK's own C vhost backend (a second testpmd with net_vhost), packets/s;
//   3. the kernel's ping -f through `virtq tap` vs through a veth pair, RTT avg.
// Packets/s: testpmd's accumulated TX-packets divided by the time from its "start packet
// forwarding" line to the SIGINT that stops it (testpmd's --stats-period timer interrupts the
// vhost-user handshake of its virtio_user port, so the per-second samples are not used).
//
//   node dist/bench/real-peers.js [--quick] [--json] [--runs N] [--seconds S]

import { Command } from 'commander';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startVhostUser } from '../src/vhost-user/index.js';

interface Stat {
  min: number;
  median: number;
  max: number;
  samples: number[];
}

function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] ?? NaN, median: s[Math.floor(s.length / 2)] ?? NaN, max: s[s.length - 1] ?? NaN, samples: xs };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Pmd {
  out: () => string;
  /** performance.now() when testpmd said it started forwarding (NaN before). */
  startedAt: () => number;
  stop: () => Promise<number>;
}

function testpmd(args: string[]): Pmd {
  // stdbuf: testpmd's stdout is a pipe here, so without line buffering its lines arrive at exit.
  const p = spawn('stdbuf', ['-oL', 'dpdk-testpmd', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let startedAt = NaN;
  const onData = (d: Buffer): void => {
    out += d.toString('latin1');
    if (Number.isNaN(startedAt) && out.includes('start packet forwarding')) startedAt = performance.now();
  };
  p.stdout.on('data', onData);
  p.stderr.on('data', onData);
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  return {
    out: () => out,
    startedAt: () => startedAt,
    stop: async () => {
      const at = performance.now();
      p.kill('SIGINT');
      const t = setTimeout(() => p.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(t);
      return at;
    },
  };
}

/** TX packets per second of forwarding, from the accumulated totals. */
async function runClient(c: Pmd, seconds: number): Promise<number> {
  for (let i = 0; i < 200 && Number.isNaN(c.startedAt()); i++) await sleep(50);
  await sleep(seconds * 1000);
  const stoppedAt = await c.stop();
  const out = c.out();
  const tail = out.slice(out.indexOf('Accumulated forward statistics'));
  const tx = Number(/TX-packets:\s+(\d+)/.exec(tail)?.[1] ?? NaN);
  if (!(tx > 0)) throw new Error(`testpmd forwarded nothing:\n${out.slice(-2000)}`);
  return tx / ((stoppedAt - c.startedAt()) / 1000);
}

function clientArgs(prefix: string, sock: string): string[] {
  return [
    '-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix,
    `--vdev=net_virtio_user0,path=${sock},queues=1,queue_size=256`,
    '--', '--forward-mode=macswap', '--tx-first', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '3600',
  ];
}

async function dpdkThroughVirtq(seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-bench-'));
  const sock = join(dir, 'vhu.sock');
  const h = await startVhostUser({ socketPath: sock, backend: 'reflect' });
  const prefix = `virtq-bench-c${process.pid}`;
  try {
    return await runClient(testpmd(clientArgs(prefix, sock)), seconds);
  } finally {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  }
}

async function dpdkThroughDpdk(seconds: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-bench-'));
  const sock = join(dir, 'vhost.sock');
  const sp = `virtq-bench-s${process.pid}`;
  const cp = `virtq-bench-c${process.pid}`;
  // The backend's forwarding lcore is 0 (main lcore 1), the client's is 1: one poller per vCPU,
  // as with virtq (testpmd's lcore 1 + virtq's worker).
  const server = testpmd([
    '-l', '0-1', '--main-lcore', '1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', sp,
    `--vdev=net_vhost0,iface=${sock},queues=1`,
    '--', '--forward-mode=io', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '3600',
  ]);
  try {
    for (let i = 0; i < 100 && !server.out().includes('Port 0:'); i++) await sleep(100);
    return await runClient(testpmd(clientArgs(cp, sock)), seconds);
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
    for (const p of [sp, cp]) rmSync(`/var/run/dpdk/${p}`, { recursive: true, force: true });
  }
}

interface PingRtt {
  avgMs: number;
  line: string;
}

function parsePing(out: string): PingRtt {
  const m = /rtt min\/avg\/max\/mdev = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms/.exec(out);
  if (!m) throw new Error(`no RTT in ping output:\n${out}`);
  return { avgMs: Number(m[2]), line: `${m[1]}/${m[2]}/${m[3]}/${m[4]}` };
}

async function tapVsVeth(count: number): Promise<{ tap: PingRtt; veth: PingRtt }> {
  const tag = `vqb${process.pid % 10000}`;
  const nsT = `${tag}t`;
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const del = (): void => {
    for (const n of [nsT, nsA, nsB]) spawnSync('ip', ['netns', 'del', n]);
  };
  const ns = (n: string, ...cmd: string[]): string => execFileSync('ip', ['netns', 'exec', n, ...cmd], { encoding: 'utf8' });
  del();
  try {
    execFileSync('ip', ['netns', 'add', nsT]);
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const child = spawn('ip', ['netns', 'exec', nsT, process.execPath, cli, 'tap', '--name', 'vq0', '--address', '10.77.0.1/24', '--guest-address', '10.77.0.2'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    for (let i = 0; i < 100 && !out.includes('ready'); i++) await sleep(50);
    const tap = parsePing(ns(nsT, 'ping', '-f', '-q', '-c', String(count), '10.77.0.2'));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    child.kill('SIGINT');
    await exited;
    execFileSync('ip', ['netns', 'add', nsA]);
    execFileSync('ip', ['netns', 'add', nsB]);
    execFileSync('ip', ['link', 'add', `${tag}x`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', nsB]);
    ns(nsA, 'ip', 'addr', 'add', '10.78.9.1/24', 'dev', `${tag}x`);
    ns(nsB, 'ip', 'addr', 'add', '10.78.9.2/24', 'dev', `${tag}y`);
    ns(nsA, 'ip', 'link', 'set', `${tag}x`, 'up');
    ns(nsB, 'ip', 'link', 'set', `${tag}y`, 'up');
    const veth = parsePing(ns(nsA, 'ping', '-f', '-q', '-c', String(count), '10.78.9.2'));
    return { tap, veth };
  } finally {
    del();
  }
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--quick', 'one short run of each')
    .option('--json', 'print JSON')
    .option('--runs <n>', 'runs of each measurement', '3')
    .option('--seconds <s>', 'seconds per DPDK run', '8')
    .parse()
    .opts<{ quick?: boolean; json?: boolean; runs: string; seconds: string }>();
  const runs = o.quick ? 1 : Number(o.runs);
  const seconds = o.quick ? 3 : Number(o.seconds);
  const pings = o.quick ? 5000 : 20000;
  const virtq: number[] = [];
  const dpdk: number[] = [];
  const tapAvg: number[] = [];
  const vethAvg: number[] = [];
  const lines: string[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved so that machine noise hits all three alike.
    virtq.push(await dpdkThroughVirtq(seconds));
    dpdk.push(await dpdkThroughDpdk(seconds));
    const p = await tapVsVeth(pings);
    tapAvg.push(p.tap.avgMs);
    vethAvg.push(p.veth.avgMs);
    lines.push(`run ${i + 1}: tap rtt ${p.tap.line} ms, veth rtt ${p.veth.line} ms`);
  }
  const v = stat(virtq);
  const d = stat(dpdk);
  const t = stat(tapAvg);
  const e = stat(vethAvg);
  const result = {
    runs,
    secondsPerDpdkRun: seconds,
    pingsPerRun: pings,
    dpdkVirtioUserToVirtqPps: v,
    dpdkVirtioUserToDpdkVhostPps: d,
    virtqOverDpdkRatio: v.median / d.median,
    tapRttAvgMs: t,
    vethRttAvgMs: e,
    tapOverVethRttRatio: t.median / e.median,
  };
  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const f = (s: Stat, digits = 0): string => `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}`;
  process.stdout.write(
    `real peers, ${runs} run(s), min / median / max\n` +
      `  DPDK virtio_user → virtq vhost-user (reflect)   ${f(v)} packets/s each way\n` +
      `  DPDK virtio_user → DPDK net_vhost (testpmd io)  ${f(d)} packets/s each way\n` +
      `  ratio virtq / DPDK (medians)                    ${result.virtqOverDpdkRatio.toFixed(3)}\n` +
      `  ping -f through virtq tap, RTT avg              ${f(t, 3)} ms\n` +
      `  ping -f through veth, RTT avg                   ${f(e, 3)} ms\n` +
      `  ratio tap / veth (medians)                      ${result.tapOverVethRttRatio.toFixed(2)}\n` +
      lines.map((l) => `  ${l}\n`).join(''),
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
