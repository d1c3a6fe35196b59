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
import { accessSync, constants as fsConstants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

export type GuestAccel = 'auto' | 'kvm' | 'tcg';

/** Why the guest study cannot run or broke (a missing tool, the guest never came up). */
export class GuestStudyError extends Error {
  constructor(
    readonly code: 'missing' | 'build' | 'boot' | 'agent',
    message: string,
  ) {
    super(message);
    this.name = 'GuestStudyError';
  }
}

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

const GUEST_IP = '10.78.0.1';
const HOST_IP = '10.78.0.2';

/** The first missing prerequisite as a sentence, or null. */
export function guestStudyMissing(): string | null {
  if (process.getuid?.() !== 0) return 'not root (the TAP and the network namespace need root)';
  for (const [tool, pkg] of [
    ['qemu-system-x86_64', 'qemu-system-x86'],
    ['ip', 'iproute2'],
    ['iperf3', 'iperf3'],
    ['ping', 'iputils-ping'],
    ['ethtool', 'ethtool'],
    ['apt-get', 'apt'],
  ] as const) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} not found (apt-get install ${pkg})`;
  }
  if (!existsSync('/dev/net/tun')) return '/dev/net/tun missing';
  return null;
}

function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function defaultBuildScript(): string {
  // dist/src/study/ → the package root's test/support/.
  return fileURLToPath(new URL('../../../test/support/build-linux-guest.sh', import.meta.url));
}

/** Builds (or reuses) the guest; returns its directory. */
export function buildGuest(cacheDir?: string, script = defaultBuildScript()): string {
  const dir = join(cacheDir ?? process.env['VIRTQ_CACHE_DIR'] ?? join(homedir(), '.cache', 'virtq'), 'linux-guest');
  if (!existsSync(script)) throw new GuestStudyError('build', `the guest build script ${script} is missing (it ships with the source tree, not the npm package)`);
  const r = spawnSync('bash', [script, dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new GuestStudyError('build', `building the guest failed (${script} ${dir}):\n${r.stderr}`);
  return dir;
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new GuestStudyError('missing', `${cmd} ${args.join(' ')} failed: ${r.stderr.trim()}`);
}

/** The serial console of one booted guest in agent mode: runs a command, returns what it printed. */
class GuestAgent {
  private out = '';
  private seq = 0;
  private exited = false;
  readonly exit: Promise<number | null>;

  constructor(
    readonly q: ChildProcess,
    echo?: (text: string) => void,
  ) {
    const take = (d: Buffer): void => {
      const t = d.toString('latin1');
      this.out += t;
      echo?.(t);
    };
    q.stdout!.on('data', take);
    q.stderr!.on('data', take);
    this.exit = new Promise((res) => q.on('exit', (c) => ((this.exited = true), res(c))));
  }

  get console(): string {
    return this.out;
  }

  /** Waits until `text` appears after `from` in the console (or the guest exits, or the time is up). */
  async waitFor(text: string, timeoutMs: number, from = 0): Promise<number> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const at = this.out.indexOf(text, from);
      if (at >= 0) return at;
      if (this.exited) throw new GuestStudyError('agent', `the guest exited while waiting for ${text}:\n${this.out.slice(-2000)}`);
      if (Date.now() > until) throw new GuestStudyError('agent', `no ${text} within ${timeoutMs / 1000} s:\n${this.out.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Runs one shell line in the guest; resolves with its output (stdout and stderr). */
  async run(cmd: string, timeoutMs: number): Promise<string> {
    const n = ++this.seq;
    const from = this.out.length;
    this.q.stdin!.write(`echo VQ-B-${n}; ${cmd} 2>&1; echo VQ-E-${n}\n`);
    // The serial console ends lines with \r\n (the tty's onlcr).
    const b = await this.waitFor(`VQ-B-${n}\r\n`, timeoutMs, from);
    const e = await this.waitFor(`VQ-E-${n}\r\n`, timeoutMs, b);
    return this.out.slice(b + `VQ-B-${n}\r\n`.length, e).replace(/\r\n/g, '\n');
  }

  async quit(timeoutMs: number): Promise<void> {
    if (!this.exited) this.q.stdin!.write('quit\n');
    const t = setTimeout(() => this.q.kill('SIGKILL'), timeoutMs);
    await this.exit;
    clearTimeout(t);
  }
}

/**
 * A row's preset as the real guest runs it: without the model's 2008 costs (PolicyConfig.costs),
 * which stand in for exits, injections and system calls that a real guest and host pay themselves.
 */
export function guestPolicySpec(policy: string): string {
  return JSON.stringify({ base: policy, costs: { exitUs: 0, irqInjectUs: 0, syscallUs: 0, guestPacketUs: 0 } });
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs every row of `o.rows` against the guest; driver rows are recorded as such, not run. */
export async function runGuestStudy(o: GuestStudyOptions): Promise<GuestStudyResult> {
  const missing = guestStudyMissing();
  if (missing !== null) throw new GuestStudyError('missing', `the guest study needs root, QEMU and the tools: ${missing}`);
  const t0 = performance.now();
  const dir = buildGuest(o.cacheDir, o.buildScript);
  let accel: 'kvm' | 'tcg' = o.accel === 'tcg' ? 'tcg' : o.accel === 'kvm' || kvmUsable() ? 'kvm' : 'tcg';
  const qemuVersion = /version ([^\s]+)/.exec(spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 'unknown';
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
      const bootStart = performance.now();
      const launch = (): GuestAgent => new GuestAgent(spawn(
        'qemu-system-x86_64',
        [
          '-M', 'pc', '-accel', accel, '-cpu', 'max', '-m', '512', '-smp', '1', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
          '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
          '-chardev', `socket,id=c0,path=${sock}`, '-netdev', 'vhost-user,id=n0,chardev=c0',
          '-device', qemuDevice,
          '-kernel', join(dir, 'vmlinuz'), '-initrd', join(dir, 'initramfs.gz'),
          '-append', 'console=ttyS0 quiet panic=-1 VQMODE=agent',
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      ), o.onConsole);
      let agent = launch();
      children.push(agent.q);
      try {
        await agent.waitFor('VQ-AGENT-READY', 120_000 * slow());
      } catch (e) {
        agent.q.kill('SIGKILL');
        if (accel !== 'kvm' || o.accel === 'kvm') throw new GuestStudyError('boot', `the guest did not come up: ${errText(e)}`);
        // /dev/kvm opens but KVM cannot run this guest (nested virtualisation refusing an MSR, say): TCG from here on.
        info.kvmRefused = (/qemu-system-x86_64: (.*)/.exec(agent.console)?.[1] ?? errText(e)).slice(0, 300);
        info.accel = accel = 'tcg';
        o.onProgress?.(`guest: KVM refused (${info.kvmRefused}); booting under TCG`);
        agent = launch();
        children.push(agent.q);
        try {
          await agent.waitFor('VQ-AGENT-READY', 120_000 * slow());
        } catch (e2) {
          agent.q.kill('SIGKILL');
          throw new GuestStudyError('boot', `the guest did not come up: ${errText(e2)}`);
        }
      }
      const boot = { key: g.key, qemuDevice, rows: g.rows.map((r) => r.name), bootSeconds: (performance.now() - bootStart) / 1000 };
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
