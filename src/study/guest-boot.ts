// Booting the Linux guest of the QEMU tests (test/support/build-linux-guest.sh: Debian's kernel,
// a busybox initramfs with iperf3 and iputils ping, in agent mode) and talking to it over its
// serial console; shared by `virtq study --guest qemu` (guest-qemu.ts) and `virtq bench guest`
// (guest-bench.ts). Node only, root. What a caller puts behind the guest's NIC (the -netdev) and
// where the host end of the link lives (a network namespace) is the caller's; here: the
// prerequisites, the guest build, one boot with KVM (falling back to TCG when KVM refuses the
// guest) and the agent that runs shell lines in the guest between markers.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export type GuestAccel = 'auto' | 'kvm' | 'tcg';

/** Why the guest cannot run or broke (a missing tool, the guest never came up). */
export class GuestStudyError extends Error {
  constructor(
    readonly code: 'missing' | 'build' | 'boot' | 'agent',
    message: string,
  ) {
    super(message);
    this.name = 'GuestStudyError';
  }
}

/** The guest's address on its eth0 (the initramfs sets it) and the host end's on the TAP. */
export const GUEST_IP = '10.78.0.1';
export const HOST_IP = '10.78.0.2';

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

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', fsConstants.R_OK | fsConstants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The accelerator to try first: TCG when asked, else KVM when asked or when /dev/kvm opens. */
export function firstAccel(asked: GuestAccel | undefined): 'kvm' | 'tcg' {
  return asked === 'tcg' ? 'tcg' : asked === 'kvm' || kvmUsable() ? 'kvm' : 'tcg';
}

export function qemuVersion(): string {
  return /version ([^\s]+)/.exec(spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1] ?? 'unknown';
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

/** Runs a host command that must succeed (ip …); a failure is a GuestStudyError naming it. */
export function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new GuestStudyError('missing', `${cmd} ${args.join(' ')} failed: ${(r.stderr ?? r.error?.message ?? '').trim()}`);
}

/** The serial console of one booted guest in agent mode: runs a command, returns what it printed. */
export class GuestAgent {
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

export interface GuestBootOptions {
  /** The guest's directory (buildGuest). */
  dir: string;
  /** The accelerator to try first (firstAccel). */
  accel: 'kvm' | 'tcg';
  /** Whether KVM was asked for explicitly: then a refusal is an error, not a fall-back to TCG. */
  kvmRequired: boolean;
  /** QEMU arguments that give the guest its NIC backend (-netdev … and whatever it needs, id n0). */
  netdev: readonly string[];
  /** The -device value of the NIC (guest-plan.ts qemuNetDevice). */
  device: string;
  /** A command QEMU runs under (e.g. ['ip', 'netns', 'exec', NS]) so a TAP it opens lives there. */
  prefix?: readonly string[];
  /** Everything the console prints (debugging). */
  onConsole?: (text: string) => void;
  /** Said when KVM refused the guest and the boot goes on under TCG. */
  onKvmRefused?: (why: string) => void;
}

export interface GuestBoot {
  agent: GuestAgent;
  /** What the guest finally runs under. */
  accel: 'kvm' | 'tcg';
  /** QEMU's own words when /dev/kvm opened but KVM could not run the guest. */
  kvmRefused?: string;
  bootSeconds: number;
}

/** Boot timeout: TCG boots slowly, and the machine may be loaded. */
export function bootTimeoutMs(accel: 'kvm' | 'tcg'): number {
  return 120_000 * (accel === 'tcg' ? 4 : 1);
}

/**
 * Boots the guest in agent mode and waits for its VQ-AGENT-READY. When KVM refuses the guest
 * (nested virtualisation refusing an MSR, say) and KVM was not required, boots again under TCG.
 * A guest that never comes up is a GuestStudyError('boot') with the console's tail.
 */
export async function bootGuest(o: GuestBootOptions): Promise<GuestBoot> {
  const t0 = performance.now();
  const launch = (accel: 'kvm' | 'tcg'): GuestAgent => {
    const qemu = [
      'qemu-system-x86_64',
      '-M', 'pc', '-accel', accel, '-cpu', 'max', '-m', '512', '-smp', '1', '-nodefaults', '-display', 'none', '-serial', 'stdio', '-no-reboot',
      '-object', 'memory-backend-memfd,id=mem,size=512M,share=on', '-numa', 'node,memdev=mem',
      ...o.netdev,
      '-device', o.device,
      '-kernel', join(o.dir, 'vmlinuz'), '-initrd', join(o.dir, 'initramfs.gz'),
      '-append', 'console=ttyS0 quiet panic=-1 VQMODE=agent',
    ];
    const argv = [...(o.prefix ?? []), ...qemu];
    return new GuestAgent(spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] }), o.onConsole);
  };
  let accel = o.accel;
  let agent = launch(accel);
  try {
    await agent.waitFor('VQ-AGENT-READY', bootTimeoutMs(accel));
    return { agent, accel, bootSeconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    agent.q.kill('SIGKILL');
    if (accel !== 'kvm' || o.kvmRequired) throw new GuestStudyError('boot', `the guest did not come up: ${errText(e)}`);
    const kvmRefused = (/qemu-system-x86_64: (.*)/.exec(agent.console)?.[1] ?? errText(e)).slice(0, 300);
    o.onKvmRefused?.(kvmRefused);
    accel = 'tcg';
    agent = launch(accel);
    try {
      await agent.waitFor('VQ-AGENT-READY', bootTimeoutMs(accel));
    } catch (e2) {
      agent.q.kill('SIGKILL');
      throw new GuestStudyError('boot', `the guest did not come up: ${errText(e2)}`);
    }
    return { agent, accel, kvmRefused, bootSeconds: (performance.now() - t0) / 1000 };
  }
}

export function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
