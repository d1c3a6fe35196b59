// `virtq bench guest` (Node only, root): the Linux guest of the QEMU tests booted (a) on virtq's
// vhost-user device with a TAP port (what `virtq vhost-user --backend tap:NAME` serves) and (b)
// on QEMU's own virtio-net-pci with `-netdev tap,vhost=off`, the same -device for both, in
// alternating runs (A B, B A, A B, … so a drift of the machine falls on both alike). Each boot
// measures everything once: iperf3 guest → host and host → guest (-R) against iperf3 -s on the
// host end of the TAP, and a flood ping (interval 0) whose every reply time is kept for the p99.
// Each backend's TAP has its host end in a network namespace of its own (both are 10.78.0.2,
// the guest 10.78.0.1), with its own iperf3 server; QEMU for (b) runs inside its namespace so
// the TAP it opens is there. The vhost-user server stays up and serves each (a) boot in turn.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVhostUser, type VhostUserHandle } from '../vhost-user/index.js';
import { bootGuest, buildGuest, errText, firstAccel, GuestStudyError, guestStudyMissing, HOST_IP, qemuVersion, sh, type GuestAccel, type GuestAgent } from './guest-boot.js';
import { parseIperfJson, parseIperfUdpJson, qemuNetDevice, QEMU_MIN_QUEUE } from './guest-plan.js';
import {
  featureDiff,
  GUEST_BENCH_SCHEMA,
  guestPingCommand,
  parseGuestPing,
  summariseGuestBench,
  type GuestBackend,
  type GuestBackendRun,
  type GuestBenchReport,
  type GuestBenchRun,
} from './guest-bench-report.js';

export interface GuestBenchOptions {
  /** A/B runs (each boots the guest once per backend). */
  runs: number;
  /** iperf3 -t per direction. */
  seconds: number;
  /** Echo requests per flood ping. */
  count: number;
  /** Offered rate of the UDP host→guest run (iperf3 -b: a number of bits/s with K, M or G; default '200M'). */
  udpRate?: string;
  accel?: GuestAccel;
  /** virtq's notification policy (default 'vhost', as `virtq vhost-user`). */
  preset?: string;
  /** Where the guest is built (default $VIRTQ_CACHE_DIR or ~/.cache/virtq, then /linux-guest). */
  cacheDir?: string;
  buildScript?: string;
  onProgress?: (line: string) => void;
  onConsole?: (text: string) => void;
  /** Checked between boots; once aborted, what is done comes back (with `error`). */
  signal?: AbortSignal;
}

/** Limits the CLI checks and the runner enforces (so a library caller gets the same refusal). */
export const GUEST_BENCH_LIMITS = { runs: 1000, seconds: 3600, count: 1_000_000 } as const;

export class GuestBenchOptionError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'GuestBenchOptionError';
  }
}

/** Checks the numeric options; throws GuestBenchOptionError naming the first bad one. */
export function checkGuestBenchOptions(o: Pick<GuestBenchOptions, 'runs' | 'seconds' | 'count' | 'udpRate'>): void {
  if (o.udpRate !== undefined && !UDP_RATE.test(o.udpRate)) throw new GuestBenchOptionError(`udpRate must be iperf3 -b's form, digits with K, M or G (got ${JSON.stringify(o.udpRate)})`);
  for (const k of ['runs', 'seconds', 'count'] as const) {
    const v = o[k];
    if (!Number.isInteger(v) || v < 1 || v > GUEST_BENCH_LIMITS[k]) throw new GuestBenchOptionError(`${k} must be an integer in 1..${GUEST_BENCH_LIMITS[k]} (got ${String(v)})`);
  }
}

/** Run i's order: A B on odd runs, B A on even ones. */
export function runOrder(run: number): GuestBackend[] {
  return run % 2 === 1 ? ['virtq', 'qemu'] : ['qemu', 'virtq'];
}

function emptyRun(backend: GuestBackend): GuestBackendRun {
  return { backend, bootSeconds: NaN, features: null, g2hGbps: null, h2gGbps: null, retransmits: { g2h: null, h2g: null }, ping: null, udpH2g: null, errors: [] };
}

/** iperf3 -b's syntax: digits with an optional K, M or G. */
export const UDP_RATE = /^[1-9]\d{0,5}[KMG]?$/;

/** One booted guest: features, both streams, the flood ping; a failed cell is recorded, not thrown. */
async function measure(agent: GuestAgent, out: GuestBackendRun, o: GuestBenchOptions, slow: number, say: (s: string) => void): Promise<void> {
  // The link and ARP settle before the first measured cell.
  await agent.run(`/usr/bin/ping -c 3 -w 20 ${HOST_IP} >/dev/null`, 60_000 * slow).catch(() => '');
  try {
    const f = (await agent.run('cat /sys/class/net/eth0/device/features', 30_000 * slow)).trim();
    out.features = /^[01]+$/.test(f) ? f : null;
  } catch (e) {
    out.errors.push(`features: ${errText(e)}`);
  }
  for (const [d, flag] of [['g2h', ''], ['h2g', ' -R']] as const) {
    say(`${out.backend}: iperf3 ${d}`);
    try {
      const it = parseIperfJson(await agent.run(`/usr/bin/iperf3 -c ${HOST_IP}${flag} -t ${o.seconds} -J`, (o.seconds + 30) * 1000 * slow));
      if (d === 'g2h') out.g2hGbps = it.gbps;
      else out.h2gGbps = it.gbps;
      out.retransmits[d] = it.retransmits;
    } catch (e) {
      out.errors.push(`iperf3 ${d}: ${errText(e)}`);
    }
  }
  const rate = o.udpRate ?? '200M';
  say(`${out.backend}: iperf3 -u h2g at ${rate}`);
  try {
    // 1400-byte datagrams: one frame each under the 1500 MTU (no fragments to lose as a whole).
    out.udpH2g = parseIperfUdpJson(await agent.run(`/usr/bin/iperf3 -c ${HOST_IP} -u -R -b ${rate} -l 1400 -t ${o.seconds} -J`, (o.seconds + 30) * 1000 * slow));
  } catch (e) {
    out.errors.push(`iperf3 udp h2g: ${errText(e)}`);
  }
  say(`${out.backend}: ping -i 0 -c ${o.count}`);
  try {
    out.ping = parseGuestPing(await agent.run(guestPingCommand(HOST_IP, o.count), (o.count / 50 + 60) * 1000 * slow));
  } catch (e) {
    out.errors.push(`ping: ${errText(e)}`);
  }
}

/** Runs the A/B benchmark; a missing tool or a guest that does not boot is a GuestStudyError. */
export async function runGuestBench(o: GuestBenchOptions): Promise<GuestBenchReport> {
  checkGuestBenchOptions(o);
  const missing = guestStudyMissing();
  if (missing !== null) throw new GuestStudyError('missing', `the guest benchmark needs root, QEMU and the tools: ${missing}`);
  const t0 = performance.now();
  const dir = buildGuest(o.cacheDir, o.buildScript);
  const say = (s: string): void => o.onProgress?.(s);
  let accel = firstAccel(o.accel);
  const tag = `vqb${process.pid % 100000}`;
  const ns: Record<GuestBackend, string> = { virtq: `${tag}a`, qemu: `${tag}b` };
  const tap: Record<GuestBackend, string> = { virtq: `${tag}a`, qemu: `${tag}b` };
  const work = mkdtempSync(join(tmpdir(), 'virtq-bench-guest-'));
  const sock = join(work, 'vhu.sock');
  const preset = o.preset ?? 'vhost';
  const qemuDevice = qemuNetDevice({ queueSize: QEMU_MIN_QUEUE, gso: true, mergeable: true, eventIdx: true });
  const netdev: Record<GuestBackend, readonly string[]> = {
    virtq: ['-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
    qemu: ['-netdev', `tap,id=n0,ifname=${tap.qemu},script=no,downscript=no,vhost=off`],
  };
  const report: GuestBenchReport = {
    schema: GUEST_BENCH_SCHEMA,
    accel,
    qemuVersion: qemuVersion(),
    kernel: join(dir, 'vmlinuz'),
    initramfsVersion: readFileSync(join(dir, 'VERSION'), 'utf8').trim(),
    preset,
    qemuDevice,
    netdev: { virtq: netdev.virtq.join(' '), qemu: netdev.qemu.join(' ') },
    runs: o.runs,
    seconds: o.seconds,
    count: o.count,
    udpRate: o.udpRate ?? '200M',
    host: { cpus: cpus().length, loadavg: loadavg() },
    results: [],
    summary: [],
    featureDiff: null,
    totalSeconds: 0,
  };
  const children: ChildProcess[] = [];
  let h: VhostUserHandle | null = null;
  const hostEnd = (b: GuestBackend): void => {
    sh('ip', ['netns', 'exec', ns[b], 'ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', tap[b]]);
    sh('ip', ['netns', 'exec', ns[b], 'ip', 'link', 'set', tap[b], 'up']);
    sh('ip', ['netns', 'exec', ns[b], 'ip', 'link', 'set', 'lo', 'up']);
    children.push(spawn('ip', ['netns', 'exec', ns[b], 'iperf3', '-s', '--forceflush'], { stdio: ['ignore', 'ignore', 'ignore'] }));
  };
  try {
    for (const b of ['virtq', 'qemu'] as const) {
      spawnSync('ip', ['netns', 'del', ns[b]]);
      sh('ip', ['netns', 'add', ns[b]]);
    }
    // (a) virtq's TAP: opened by the vhost-user server here, then moved (its fd stays valid).
    h = await startVhostUser({ socketPath: sock, backend: 'tap', tapName: tap.virtq, preset });
    sh('ip', ['link', 'set', tap.virtq, 'netns', ns.virtq]);
    hostEnd('virtq');
    // (b) QEMU's TAP: a persistent one in its namespace, which QEMU (run there) attaches to.
    sh('ip', ['netns', 'exec', ns.qemu, 'ip', 'tuntap', 'add', 'dev', tap.qemu, 'mode', 'tap']);
    hostEnd('qemu');
    for (let run = 1; run <= o.runs; run++) {
      const order = runOrder(run);
      const done: Partial<Record<GuestBackend, GuestBackendRun>> = {};
      for (const b of order) {
        if (o.signal?.aborted === true) throw new GuestStudyError('agent', 'interrupted');
        say(`run ${run}/${o.runs}: booting on ${b === 'virtq' ? 'virtq (vhost-user + TAP)' : 'QEMU virtio-net + TAP (vhost=off)'} (${accel})`);
        const booted = await bootGuest({
          dir,
          accel,
          kvmRequired: o.accel === 'kvm',
          netdev: netdev[b],
          device: qemuDevice,
          ...(b === 'qemu' ? { prefix: ['ip', 'netns', 'exec', ns.qemu] } : {}),
          ...(o.onConsole !== undefined ? { onConsole: o.onConsole } : {}),
          onKvmRefused: (why) => say(`KVM refused (${why}); booting under TCG`),
        });
        children.push(booted.agent.q);
        if (booted.kvmRefused !== undefined) report.kvmRefused = booted.kvmRefused;
        report.accel = accel = booted.accel;
        const r = emptyRun(b);
        r.bootSeconds = booted.bootSeconds;
        try {
          await measure(booted.agent, r, o, accel === 'tcg' ? 4 : 1, (s) => say(`run ${run}/${o.runs}: ${s}`));
        } finally {
          await booted.agent.quit(30_000);
        }
        done[b] = r;
      }
      report.results.push({ run, order, virtq: done.virtq!, qemu: done.qemu! } satisfies GuestBenchRun);
    }
  } catch (e) {
    if (!(e instanceof GuestStudyError) || e.code === 'missing' || report.results.length === 0) throw e;
    // Runs already done are kept; the report says why it stopped.
    report.error = e.message;
  } finally {
    for (const c of children) c.kill('SIGKILL');
    if (h !== null) await h.stop().catch(() => undefined);
    for (const b of ['virtq', 'qemu'] as const) spawnSync('ip', ['netns', 'del', ns[b]]);
    rmSync(work, { recursive: true, force: true });
  }
  report.summary = summariseGuestBench(report.results);
  const first = report.results[0];
  report.featureDiff = first !== undefined ? featureDiff(first.virtq.features, first.qemu.features) : null;
  report.totalSeconds = (performance.now() - t0) / 1000;
  return report;
}
