// The study's rows against a real Linux guest (Node only, root): QEMU boots the guest of the
// QEMU tests (test/support/build-linux-guest.sh: Debian's kernel, a busybox initramfs with
// iperf3 and iputils ping, in agent mode) on virtq's vhost-user device with a TAP backend whose
// host end lives in a private network namespace (10.78.0.2, iperf3 -s there; the guest is
// 10.78.0.1). For each device row: the row's preset is switched in (VhostUserHandle.setPreset,
// the guest stays up), then the guest runs iperf3 to the host (guest → host), iperf3 -R (host →
// guest) and ping -f, each between markers on the serial console; the device's counters before
// and after each cell give its mechanism figures. Rows that need other QEMU device settings
// (ring size, offered features) get their own boot; the vhost-user server stays up and serves
// each boot's QEMU in turn. KVM when /dev/kvm opens, else TCG (said in the report).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bootGuest,
  buildGuest,
  errText,
  firstAccel,
  GuestStudyError,
  guestStudyMissing,
  HOST_IP,
  qemuVersion as readQemuVersion,
  sh,
  type GuestAccel,
} from './guest-boot.js';
import { startVhostUser, type VhostUserHandle } from '../vhost-user/index.js';
import {
  bootGroups,
  guestDeviceSettings,
  guestHome,
  guestMechanism,
  parseIperfJson,
  parsePingSummary,
  qemuNetDevice,
  type GuestPingCell,
  type GuestRowResult,
  type GuestStreamCell,
  type GuestStudyInfo,
} from './guest-plan.js';
import type { StudyPreset } from './presets-source.js';

export { GuestStudyError, guestStudyMissing, buildGuest, type GuestAccel } from './guest-boot.js';

export interface GuestStudyOptions {
  rows: readonly StudyPreset[];
  /** iperf3 -t per stream cell. */
  seconds: number;
  /** ping -f -c per ping cell. */
  count: number;
  accel?: GuestAccel;
  /** Where the guest is built (default $VIRTQ_CACHE_DIR or ~/.cache/virtq, then /linux-guest). */
  cacheDir?: string;
  /** The build script (default: test/support/build-linux-guest.sh of this package). */
  buildScript?: string;
  /** Cells to run per device row (default all). */
  cells?: { streams?: boolean; ping?: boolean };
  /** Called with a short line before each boot and cell. */
  onProgress?: (line: string) => void;
  /** Called with everything the guest's console prints (debugging). */
  onConsole?: (text: string) => void;
  /** Checked before each cell; once aborted the boot powers off and what is done comes back. */
  signal?: AbortSignal;
}

export interface GuestStudyResult {
  info: GuestStudyInfo;
  /** By row slug. */
  rows: Map<string, GuestRowResult>;
}

/**
 * A row's preset as the real guest runs it: without the model's 2008 costs (PolicyConfig.costs),
 * which stand in for exits, injections and system calls that a real guest and host pay themselves.
 */
export function guestPolicySpec(policy: string): string {
  return JSON.stringify({ base: policy, costs: { exitUs: 0, irqInjectUs: 0, syscallUs: 0, guestPacketUs: 0, guestRxPacketUs: 0, guestTxKiBUs: 0, guestRxKiBUs: 0, backendReadKiBUs: 0, timerFireUs: 0, absorbOwnWork: false } });
}

/** Runs every row of `o.rows` against the guest; driver rows are recorded as such, not run. */
export async function runGuestStudy(o: GuestStudyOptions): Promise<GuestStudyResult> {
  const missing = guestStudyMissing();
  if (missing !== null) throw new GuestStudyError('missing', `the guest study needs root, QEMU and the tools: ${missing}`);
  const t0 = performance.now();
  const dir = buildGuest(o.cacheDir, o.buildScript);
  let accel: 'kvm' | 'tcg' = firstAccel(o.accel);
  const qemuVersion = readQemuVersion();
  const info: GuestStudyInfo = {
    vmm: 'qemu',
    accel,
    qemuVersion,
    kernel: join(dir, 'vmlinuz'),
    initramfsVersion: readFileSync(join(dir, 'VERSION'), 'utf8').trim(),
    seconds: o.seconds,
    count: o.count,
    boots: [],
    totalSeconds: 0,
  };
  const rows = new Map<string, GuestRowResult>();
  const aborted = (): boolean => o.signal?.aborted === true;
  const device = o.rows.filter((r) => guestHome(r).home === 'device');
  for (const r of o.rows) {
    const h = guestHome(r);
    rows.set(r.slug, { home: h.home, note: h.note, device: guestDeviceSettings(r), stream: h.home === 'device' ? { g2h: null, h2g: null } : null, ping: null });
  }
  if (device.length === 0) return { info, rows };

  // The TAP's host end in a private namespace: its address, routes and iperf3 never touch the host's.
  const tag = `vqg${process.pid % 100000}`;
  const ns = tag;
  const tapName = tag;
  const work = mkdtempSync(join(tmpdir(), 'virtq-guest-study-'));
  const sock = join(work, 'vhu.sock');
  spawnSync('ip', ['netns', 'del', ns]);
  sh('ip', ['netns', 'add', ns]);
  const children: ChildProcess[] = [];
  let h: VhostUserHandle | null = null;
  // Cell timeouts: TCG boots and runs slowly, and the machine may be loaded.
  const slow = (): number => (accel === 'tcg' ? 4 : 1);
  try {
    h = await startVhostUser({ socketPath: sock, backend: 'tap', tapName, preset: guestPolicySpec(device[0]!.policy) });
    // The TAP fd stays valid when its interface moves to the namespace; the address goes there too.
    sh('ip', ['link', 'set', tapName, 'netns', ns]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${HOST_IP}/24`, 'dev', tapName]);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', tapName, 'up']);
    sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    const srv = spawn('ip', ['netns', 'exec', ns, 'iperf3', '-s', '--forceflush'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(srv);
    const wants = { streams: o.cells?.streams ?? true, ping: o.cells?.ping ?? true };
    for (const g of bootGroups(device)) {
      if (aborted()) break;
      const qemuDevice = qemuNetDevice(g.settings);
      o.onProgress?.(`guest: booting (${accel}) for ${g.rows.length} row(s), ${qemuDevice.split(',').slice(4).join(',')}`);
      const booted = await bootGuest({
        dir,
        accel,
        kvmRequired: o.accel === 'kvm',
        netdev: ['-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0'],
        device: qemuDevice,
        ...(o.onConsole !== undefined ? { onConsole: o.onConsole } : {}),
        onKvmRefused: (why) => o.onProgress?.(`guest: KVM refused (${why}); booting under TCG`),
      });
      const agent = booted.agent;
      children.push(agent.q);
      if (booted.kvmRefused !== undefined) info.kvmRefused = booted.kvmRefused;
      info.accel = accel = booted.accel;
      const boot = { key: g.key, qemuDevice, rows: g.rows.map((r) => r.name), bootSeconds: booted.bootSeconds };
      info.boots.push(boot);
      // The link and ARP settle before the first measured cell.
      await agent.run(`/usr/bin/ping -c 3 -w 20 ${HOST_IP} >/dev/null`, 60_000 * slow()).catch(() => '');
      try {
        for (const row of g.rows) {
          if (aborted()) break;
          const res = rows.get(row.slug)!;
          let before = await h.setPreset(guestPolicySpec(row.policy));
          const cell = async <T extends { mechanism: unknown; error?: string }>(what: string, make: (out: string) => T, empty: T, cmd: string, timeoutMs: number): Promise<T> => {
            o.onProgress?.(`guest: ${row.name}: ${what}`);
            let out: T;
            try {
              const text = await agent.run(cmd, timeoutMs);
              out = make(text);
            } catch (e) {
              out = { ...empty, error: errText(e) };
            }
            const after = await h!.counters();
            out.mechanism = guestMechanism(before, after);
            before = after;
            return out;
          };
          const streamTimeout = (o.seconds + 30) * 1000 * slow();
          if (wants.streams) {
            for (const [d, flag] of [['g2h', ''], ['h2g', ' -R']] as const) {
              res.stream![d] = await cell<GuestStreamCell>(
                `iperf3 ${d}`,
                (text) => ({ iperf: parseIperfJson(text), mechanism: null }),
                { iperf: null, mechanism: null },
                `/usr/bin/iperf3 -c ${HOST_IP}${flag} -t ${o.seconds} -J`,
                streamTimeout,
              );
            }
          }
          if (wants.ping) {
            res.ping = await cell<GuestPingCell>(
              `ping -f -c ${o.count}`,
              (text) => ({ count: o.count, ping: parsePingSummary(text), mechanism: null }),
              { count: o.count, ping: null, mechanism: null },
              `/usr/bin/ping -f -q -c ${o.count} -w ${Math.ceil(o.count / 50) + 30} ${HOST_IP}`,
              (o.count / 50 + 60) * 1000 * slow(),
            );
          }
        }
      } finally {
        await agent.quit(30_000);
      }
    }
  } finally {
    for (const c of children) c.kill('SIGKILL');
    if (h !== null) await h.stop().catch(() => undefined);
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(work, { recursive: true, force: true });
  }
  info.totalSeconds = (performance.now() - t0) / 1000;
  return { info, rows };
}
