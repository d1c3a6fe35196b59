// Real-peer benchmark (root, native addon, dpdk-dev, iputils-ping): measured side by side in one
// run, N times each, reported as min / median / max and as ratios.
//   1. DPDK virtio_user (testpmd macswap) → virtq's vhost-user device (reflect), packets/s;
//   2. the same DPDK driver → DPDK's own C vhost backend (a second testpmd with net_vhost), packets/s;
//   3. the kernel's ping -f through `virtq tap` vs through a veth pair, RTT avg.
// virtq's rows (1 and 3) run once per --presets entry (default: vhost, and vhost-busypoll, whose
// device spins up to 50 µs with kicks off before sleeping, as vhost_net's busyloop_timeout).
// Packets/s: testpmd's accumulated TX-packets divided by the time from its "start packet
// forwarding" line to the SIGINT that stops it (testpmd's --stats-period timer interrupts the
// vhost-user handshake of its virtio_user port, so the per-second samples are not used).
//
//   node dist/bench/real-peers.js [--quick] [--json] [--runs N] [--seconds S] [--presets a,b] [--only dpdk|tap]

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

async function dpdkThroughVirtq(seconds: number, preset: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-bench-'));
  const sock = join(dir, 'vhu.sock');
  const h = await startVhostUser({ socketPath: sock, backend: 'reflect', preset });
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

async function pingThroughTap(count: number, preset: string): Promise<PingRtt> {
  const nsT = `vqb${process.pid % 10000}t`;
  spawnSync('ip', ['netns', 'del', nsT]);
  try {
    execFileSync('ip', ['netns', 'add', nsT]);
    const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
    const child = spawn('ip', ['netns', 'exec', nsT, process.execPath, cli, 'tap', '--name', 'vq0', '--address', '10.77.0.1/24', '--guest-address', '10.77.0.2', '--preset', preset], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => child.on('exit', () => r()));
    try {
      for (let i = 0; i < 200 && !out.includes('ready'); i++) await sleep(50);
      return parsePing(execFileSync('ip', ['netns', 'exec', nsT, 'ping', '-f', '-q', '-c', String(count), '10.77.0.2'], { encoding: 'utf8' }));
    } finally {
      child.kill('SIGINT');
      await exited;
    }
  } finally {
    spawnSync('ip', ['netns', 'del', nsT]);
  }
}

function pingThroughVeth(count: number): PingRtt {
  const tag = `vqb${process.pid % 10000}`;
  const nsA = `${tag}a`;
  const nsB = `${tag}b`;
  const del = (): void => {
    for (const n of [nsA, nsB]) spawnSync('ip', ['netns', 'del', n]);
  };
  const ns = (n: string, ...cmd: string[]): string => execFileSync('ip', ['netns', 'exec', n, ...cmd], { encoding: 'utf8' });
  del();
  try {
    execFileSync('ip', ['netns', 'add', nsA]);
    execFileSync('ip', ['netns', 'add', nsB]);
    execFileSync('ip', ['link', 'add', `${tag}x`, 'netns', nsA, 'type', 'veth', 'peer', 'name', `${tag}y`, 'netns', nsB]);
    ns(nsA, 'ip', 'addr', 'add', '10.78.9.1/24', 'dev', `${tag}x`);
    ns(nsB, 'ip', 'addr', 'add', '10.78.9.2/24', 'dev', `${tag}y`);
    ns(nsA, 'ip', 'link', 'set', `${tag}x`, 'up');
    ns(nsB, 'ip', 'link', 'set', `${tag}y`, 'up');
    return parsePing(ns(nsA, 'ping', '-f', '-q', '-c', String(count), '10.78.9.2'));
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
    .option('--pings <n>', 'ping -f round trips per run (default 20000, 5000 with --quick)')
    .option('--presets <list>', "virtq's notification presets, comma-separated (a row each)", 'vhost,vhost-busypoll')
    .option('--only <what>', "only the DPDK rows ('dpdk') or only the ping rows ('tap')")
    .parse()
    .opts<{ quick?: boolean; json?: boolean; runs: string; seconds: string; pings?: string; presets: string; only?: string }>();
  const runs = o.quick ? 1 : Number(o.runs);
  const seconds = o.quick ? 3 : Number(o.seconds);
  const pings = o.pings !== undefined ? Number(o.pings) : o.quick ? 5000 : 20000;
  const presets = o.presets.split(',').filter((x) => x !== '');
  if (o.only !== undefined && o.only !== 'dpdk' && o.only !== 'tap') throw new Error(`--only ${o.only}: expected dpdk or tap`);
  const doDpdk = o.only !== 'tap';
  const doTap = o.only !== 'dpdk';
  const virtq = new Map<string, number[]>(presets.map((p) => [p, []]));
  const tapAvg = new Map<string, number[]>(presets.map((p) => [p, []]));
  const dpdk: number[] = [];
  const vethAvg: number[] = [];
  const lines: string[] = [];
  for (let i = 0; i < runs; i++) {
    // Interleaved so that machine noise hits every row alike.
    if (doDpdk) {
      for (const p of presets) virtq.get(p)!.push(await dpdkThroughVirtq(seconds, p));
      dpdk.push(await dpdkThroughDpdk(seconds));
    }
    if (doTap) {
      const parts: string[] = [];
      for (const p of presets) {
        const r = await pingThroughTap(pings, p);
        tapAvg.get(p)!.push(r.avgMs);
        parts.push(`tap (${p}) rtt ${r.line} ms`);
      }
      const e = pingThroughVeth(pings);
      vethAvg.push(e.avgMs);
      lines.push(`run ${i + 1}: ${parts.join(', ')}, veth rtt ${e.line} ms`);
    }
  }
  const d = stat(dpdk);
  const e = stat(vethAvg);
  const rows = presets.map((p) => {
    const v = stat(virtq.get(p)!);
    const t = stat(tapAvg.get(p)!);
    return { preset: p, dpdkVirtioUserToVirtqPps: v, virtqOverDpdkRatio: v.median / d.median, tapRttAvgMs: t, tapOverVethRttRatio: t.median / e.median };
  });
  const result = { runs, secondsPerDpdkRun: seconds, pingsPerRun: pings, dpdkVirtioUserToDpdkVhostPps: d, vethRttAvgMs: e, presets: rows };
  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const f = (s: Stat, digits = 0): string => `${s.min.toFixed(digits)} / ${s.median.toFixed(digits)} / ${s.max.toFixed(digits)}`;
  const pad = (x: string): string => x.padEnd(54);
  let text = `real peers, ${runs} run(s), min / median / max\n`;
  if (doDpdk) {
    for (const r of rows) text += `  ${pad(`DPDK virtio_user → virtq vhost-user (${r.preset})`)}${f(r.dpdkVirtioUserToVirtqPps)} packets/s each way\n`;
    text += `  ${pad('DPDK virtio_user → DPDK net_vhost (testpmd io)')}${f(d)} packets/s each way\n`;
    for (const r of rows) text += `  ${pad(`ratio virtq (${r.preset}) / DPDK (medians)`)}${r.virtqOverDpdkRatio.toFixed(3)}\n`;
  }
  if (doTap) {
    for (const r of rows) text += `  ${pad(`ping -f through virtq tap (${r.preset}), RTT avg`)}${f(r.tapRttAvgMs, 3)} ms\n`;
    text += `  ${pad('ping -f through veth, RTT avg')}${f(e, 3)} ms\n`;
    for (const r of rows) text += `  ${pad(`ratio tap (${r.preset}) / veth (medians)`)}${r.tapOverVethRttRatio.toFixed(2)}\n`;
  }
  process.stdout.write(text + lines.map((l) => `  ${l}\n`).join(''));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
