// Soak test of virtq's real-peer services (issue 15): N minutes of mixed traffic, reported every
// minute. In this process: `virtq vhost-user --backend reflect` (the server and data path in its
// worker) with DPDK testpmd's virtio_user forwarding through it (macswap, --tx-first), restarted
// every minute — cleanly (SIGINT: its totals are compared with virtq's) on even minutes,
// kill -9 on odd ones (a crashed frontend: virtq must reconnect and release its memory). Beside
// it: `virtq tap` in a child process with the kernel's `ping -f` through the TAP, and the
// in-process stream (`virtq bench stream`, driver and device on two workers) in another child.
// Every minute one line: frames lost (not counted as drops), drops, and this process's RSS,
// memfd mappings and fds, and the TAP process's RSS and fds. Root, the native addon,
// dpdk-testpmd and ping; a missing peer is skipped with a message.
//
//   node dist/bench/soak.js --minutes 30          (the soak; --minutes 1 to check it runs)

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { startVhostUser } from '../src/vhost-user/index.js';
import type { FrameStats } from '../src/vhost-user/index.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const MINUTE_MS = 60_000;

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('Expected a positive integer.');
  return n;
}

const opts = new Command('soak')
  .description('mixed real-peer traffic through virtq for N minutes, reported every minute')
  .option('--minutes <n>', 'how long to run', positive, 30)
  .option('--tap-name <name>', 'TAP interface for the ping -f part', 'vqsoak0')
  .option('--tap-net <prefix>', 'the TAP subnet (host .1, guest .2, /24)', '10.79.0')
  .option('--stream-preset <p>', 'preset of the in-process stream', 'vhost')
  .parse()
  .opts<{ minutes: number; tapName: string; tapNet: string; streamPreset: string }>();

const have = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const isRoot = process.getuid?.() === 0;

/** Fields of /proc/PID/status in KiB. */
function statusKiB(pid: number | 'self', field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}
function fdCount(pid: number | 'self'): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
}
function memfdMappings(pid: number | 'self'): number {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'utf8')
      .split('\n')
      .filter((l) => l.includes('/memfd:')).length;
  } catch {
    return NaN;
  }
}

/** Runs `cmd args` to its end (or kills it with `signal` after `ms`); returns exit code and output. */
function run(cmd: string, args: string[], ms: number, signal: NodeJS.Signals): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
    p.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
    const t = setTimeout(() => p.kill(signal), ms);
    const hard = setTimeout(() => p.kill('SIGKILL'), ms + 30_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      clearTimeout(hard);
      resolve({ code, out });
    });
  });
}

interface MinuteReport {
  minute: number;
  dpdk: string;
  ping: string;
  stream: string;
  lostFrames: number;
  rssKiB: number;
  memfdMappings: number;
  fds: number;
  tapRssKiB: number;
  tapFds: number;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-soak-'));
  const socket = join(dir, 'vhu.sock');
  const dpdkOk = isRoot && have('dpdk-testpmd');
  const pingOk = isRoot && have('ping') && existsSync('/dev/net/tun');
  if (!dpdkOk) process.stdout.write('soak: skipping DPDK (needs root and dpdk-testpmd)\n');
  if (!pingOk) process.stdout.write('soak: skipping ping -f through the TAP (needs root, ping, /dev/net/tun)\n');

  let last: FrameStats | null = null;
  let leftInRing = 0;
  let disconnects = 0;
  const vhu = await startVhostUser({
    socketPath: socket,
    backend: 'reflect',
    onDisconnect: (_e, f, _features, _reason, b) => {
      last = f;
      leftInRing = b.txLeftInRingAtStop;
      disconnects++;
    },
  });
  let tap: ChildProcess | null = null;
  if (pingOk) {
    tap = spawn(process.execPath, [CLI, 'tap', '--name', opts.tapName, '--address', `${opts.tapNet}.1/24`, '--guest-address', `${opts.tapNet}.2`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      let out = '';
      tap!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (/ready/.test(out)) resolve();
      });
      tap!.on('exit', (code) => reject(new Error(`virtq tap exited with ${code} before it was ready: ${out}`)));
    });
  }

  const rows: MinuteReport[] = [];
  let lostTotal = 0;
  let prevTx = 0;
  let prevLeft = 0;
  let prevDrops = 0;
  process.stdout.write(`soak: ${opts.minutes} min; minute | DPDK | ping -f | stream | lost (not counted) | RSS KiB, memfd maps, fds | TAP RSS KiB, fds\n`);
  for (let m = 1; m <= opts.minutes; m++) {
    const started = Date.now();
    const clean = m % 2 === 1; // odd minutes: SIGINT (totals compared), even: kill -9
    const workMs = MINUTE_MS - 8_000;
    let lost = 0;
    let dpdkJob: Promise<string> = Promise.resolve('skipped');
    let pingJob: Promise<string> = Promise.resolve('skipped');
    if (dpdkOk) {
      const prefix = `virtq-soak-${process.pid}-${m}`;
      const before = disconnects; // the connection of this minute ends after this count
      dpdkJob = (
        run('dpdk-testpmd', ['-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_virtio_user0,path=${socket},queues=1,queue_size=256`, '--', '--forward-mode=macswap', '--tx-first', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '600'], workMs, clean ? 'SIGINT' : 'SIGKILL').then(async (r) => {
          rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
          const end = Date.now() + 10_000;
          while (disconnects === before && Date.now() < end) await new Promise((res) => setTimeout(res, 20));
          const f = last as FrameStats | null;
          const drops = f !== null ? f.txDropped + f.rxDropped : 0;
          const tx = f?.txFrames ?? 0;
          const dTx = tx - prevTx;
          const dLeft = leftInRing - prevLeft;
          const dDrops = drops - prevDrops;
          prevTx = tx;
          prevLeft = leftInRing;
          prevDrops = drops;
          if (!clean) return `kill -9 after ${dTx} frames (reconnect ${disconnects === before ? 'NOT seen' : 'seen'})`;
          const i = r.out.indexOf('Accumulated forward statistics for all ports');
          const pmdTx = Number(/TX-packets:\s+(\d+)/.exec(r.out.slice(i))?.[1] ?? NaN);
          const pmdDropped = Number(/RX-dropped:\s+(\d+)/.exec(r.out.slice(i))?.[1] ?? 0) + Number(/TX-dropped:\s+(\d+)/.exec(r.out.slice(i))?.[1] ?? 0);
          // Frames testpmd sent that virtq neither took nor found still in the ring when testpmd
          // stopped it (those resume at the returned base, as with vhost: not lost).
          const unaccounted = i < 0 ? NaN : Math.max(0, pmdTx - dTx - dLeft);
          lost += Number.isNaN(unaccounted) ? 0 : unaccounted;
          return `${pmdTx} sent, ${dTx} taken (+${dLeft} in the ring at stop), ${dDrops + pmdDropped} dropped`;
        })
      );
    }
    if (pingOk) {
      pingJob = (
        run('ping', ['-f', '-q', '-w', String(Math.floor(workMs / 1000)), `${opts.tapNet}.2`], workMs + 5_000, 'SIGINT').then((r) => {
          const sent = Number(/(\d+) packets transmitted/.exec(r.out)?.[1] ?? NaN);
          const got = Number(/(\d+) received/.exec(r.out)?.[1] ?? NaN);
          // ping -f stops at the deadline with at most one echo in flight: that one is not lost.
          const unanswered = Math.max(0, sent - got - 1);
          lost += Number.isNaN(unanswered) ? 0 : unanswered;
          return `${got}/${sent} answered`;
        })
      );
    }
    const streamJob = (
      run(process.execPath, [CLI, 'bench', 'stream', '--runs', '1', '--seconds', String(Math.floor(workMs / 1000) - 3), '--warmup-ms', '1000', '--preset', opts.streamPreset], workMs + 20_000, 'SIGINT').then((r) => {
        const gbps = /([\d.]+)\s*Gb\/s/.exec(r.out)?.[1];
        return r.code === 0 ? `${gbps ?? '?'} Gb/s` : `FAILED (exit ${r.code}): ${r.out.trim().split('\n').slice(-2).join(' ')}`;
      })
    );
    const results = await Promise.all([dpdkJob, pingJob, streamJob]);
    lostTotal += lost;
    const row: MinuteReport = {
      minute: m,
      dpdk: results[0]!,
      ping: results[1]!,
      stream: results[2]!,
      lostFrames: lost,
      rssKiB: statusKiB('self', 'VmRSS'),
      memfdMappings: memfdMappings('self'),
      fds: fdCount('self'),
      tapRssKiB: tap?.pid !== undefined ? statusKiB(tap.pid, 'VmRSS') : NaN,
      tapFds: tap?.pid !== undefined ? fdCount(tap.pid) : NaN,
    };
    rows.push(row);
    process.stdout.write(`${m} | ${row.dpdk} | ${row.ping} | ${row.stream} | ${row.lostFrames} | ${row.rssKiB}, ${row.memfdMappings}, ${row.fds} | ${row.tapRssKiB}, ${row.tapFds}\n`);
    const left = MINUTE_MS - (Date.now() - started);
    if (left > 0 && m < opts.minutes) await new Promise((res) => setTimeout(res, left));
  }
  const r = await vhu.stop();
  if (tap !== null) {
    tap.kill('SIGINT');
    await new Promise((res) => tap!.on('exit', res));
  }
  rmSync(dir, { recursive: true, force: true });
  const first = rows[0];
  const lastRow = rows[rows.length - 1];
  process.stdout.write(
    `soak done: ${opts.minutes} min, ${r.server.connections} vhost-user connections, frames lost (not counted as drops) ${lostTotal}; ` +
      `virtq drops tx ${r.frames.txDropped} rx ${r.frames.rxDropped}, reflect full ${r.reflect?.dropsFull ?? 0}; ` +
      `regions mapped ${r.backend.regionsMapped}, released ${r.backend.regionsUnmapped}; ` +
      (first && lastRow ? `RSS ${first.rssKiB} → ${lastRow.rssKiB} KiB, memfd mappings ${first.memfdMappings} → ${lastRow.memfdMappings}, fds ${first.fds} → ${lastRow.fds}` : '') +
      '\n',
  );
  process.stdout.write(JSON.stringify({ minutes: opts.minutes, lostTotal, rows, regionsMapped: r.backend.regionsMapped, regionsUnmapped: r.backend.regionsUnmapped }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`soak failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
