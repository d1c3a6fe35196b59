// v86's network paths side by side (issue 21): the same guest (test/support/build-v86-guest.sh)
// boots in v86 in this process, and each run pings the host kernel and moves TCP both ways
// (busybox nc, BYTES each way) through a real TAP whose far end is a network namespace
// (bench/support/netns-tcp-end.ts), with one of three network paths:
//   own     v86's own virtio-net, its frames written to and read from the TAP directly (no virtq)
//   route1  v86's own virtio-net, its frames through virtq's driver queue and the one NetDevice
//           (V86NetAdapter, device inline on the emulator's thread), the TAP behind it
//   route2  v86's NIC off, virtq's device as the guest's PCI virtio-net (V86VirtioPci, inline,
//           rings in v86's memory; the guest's own virtio_net driver negotiates offloads)
// The TAP is polled every --poll-ms on the emulator's thread in all three (v86 has no fd wake-up).
// Cases alternate inside each round; min/median/max over --runs per case, and each case's
// median beside `own`'s. Root, the native addon, /dev/net/tun, iproute2 and the v86 package.
//
//   node dist/bench/v86-nics.js --runs 3 --count 200 --tcp-bytes 1048576

import { writeFileSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { V86NetAdapter, V86VirtioPci } from '../src/v86/index.js';
import { TapDevice } from '../src/backend/tap.js';
import { TapPort } from '../src/backend/tap-port.js';
import { loadIo } from '../src/backend/native.js';
import { emptyNetHdr } from '../src/net/header.js';
import { NetnsTcpEnd } from './support/netns-tcp-end.js';

const CASES = ['own', 'route1', 'route2'] as const;
type Case = (typeof CASES)[number];

interface RunResult {
  case: Case;
  bootS: number;
  pingAvgMs: number;
  pingMaxMs: number;
  pingLoss: number;
  g2hMbps: number;
  h2gMbps: number;
  intact: boolean;
}

function positive(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('Expected a positive integer.');
  return n;
}

const o = new Command('v86-nics')
  .description("v86's own NIC vs virtq route 1 vs route 2: ping RTT and TCP both ways through a TAP")
  .option('--runs <n>', 'runs per case', positive, 3)
  .option('--count <n>', 'pings per run (busybox ping -A)', positive, 200)
  .option('--tcp-bytes <n>', 'bytes of TCP each way per run', positive, 1 << 20)
  .option('--poll-ms <n>', "how often the TAP is polled on the emulator's thread", positive, 1)
  .option('--cases <list>', `subset of ${CASES.join(',')}`, CASES.join(','))
  .option('--guest <dir>', 'the guest cache', join(homedir(), '.cache', 'virtq', 'v86-guest'))
  .option('--json <file>', 'write the runs as JSON')
  .parse()
  .opts<{ runs: number; count: number; tcpBytes: number; pollMs: number; cases: string; guest: string; json?: string }>();
const cases = o.cases.split(',').map((c) => {
  if (!(CASES as readonly string[]).includes(c)) {
    console.error(`error: --cases: unknown case '${c}' (known: ${CASES.join(', ')})`);
    process.exit(2);
  }
  return c as Case;
});

let V86: typeof import('v86').V86;
try {
  V86 = (await import('v86')).V86;
} catch {
  console.error('error: the v86 package is not installed (npm ci)');
  process.exit(2);
}
const wasmPath = fileURLToPath(new URL('v86.wasm', import.meta.resolve('v86')));
const file = (name: string): { buffer: ArrayBuffer } => {
  const b = readFileSync(join(o.guest, name));
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
};

function line(out: string, tag: string): string {
  return new RegExp(`^${tag} (.*)$`, 'm').exec(out)?.[1] ?? '';
}

async function runOnce(which: Case, round: number): Promise<RunResult> {
  const tapName = `vq86b${round}${which.slice(-1)}`;
  const ns = `vq86b-${process.pid}-${round}-${which}`;
  const emu = new V86({
    wasm_path: wasmPath,
    bios: file('bios.bin'),
    vga_bios: file('vgabios.bin'),
    bzimage: file('vmlinuz'),
    initrd: file('initramfs.gz'),
    cmdline: `console=ttyS0 quiet tsc=reliable mitigations=off random.trust_cpu=on VQCOUNT=${o.count} VQIP=10.86.0.1 VQPEER=10.86.0.2 VQTCP=${o.tcpBytes} VQPORT=7070`,
    memory_size: 128 << 20,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: { type: which === 'route2' ? ('none' as 'virtio') : 'virtio' },
  });
  // run() (and the PCI attach) only after v86 has loaded its images.
  const loaded = new Promise<void>((resolve) => emu.add_listener('emulator-loaded', () => resolve()));
  const far = await NetnsTcpEnd.create(ns, { bytes: o.tcpBytes });
  let tap: TapDevice | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;
  let adapter: V86NetAdapter | null = null;
  let pci: V86VirtioPci | null = null;
  const io = loadIo();
  const openTap = (features: bigint): TapPort => {
    tap?.close();
    tap = TapDevice.open(tapName, features);
    void far.start(tapName).catch((e: unknown) => console.error(`TCP end: ${String(e)}`));
    return new TapPort(io, tap.fd, tap.name);
  };
  try {
    await loaded;
    if (which === 'own') {
      // No virtq: v86's frames straight to the TAP (no vnet header offloads: features 0).
      const port = openTap(0n);
      port.negotiated(0n);
      const hdr = emptyNetHdr();
      const bus = (emu as unknown as { bus: { send(e: string, v: Uint8Array): void } }).bus;
      const drain = (): void => {
        for (let r = port.peekRx(); r !== null; r = port.peekRx()) {
          bus.send('net0-receive', r.bytes.slice(r.offset, r.offset + r.lenBytes));
          port.consumeRx();
        }
      };
      // Read back right after each write too, as virtq's device pass does (the kernel often
      // answers within the write).
      emu.add_listener('net0-send', (f: Uint8Array) => (port.send(f, 0, f.length, hdr), drain()));
      timer = setInterval(drain, o.pollMs);
    } else if (which === 'route1') {
      adapter = await V86NetAdapter.attach(emu, { runner: 'inline', pollMs: o.pollMs, device: { preset: 'vhost' }, port: openTap });
    } else {
      pci = V86VirtioPci.attach(emu, { pollMs: o.pollMs, device: { preset: 'vhost' }, port: openTap });
    }
    const t0 = performance.now();
    let out = '';
    let bootS = 0;
    let rxEndAt = 0;
    const done = new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${which}: the guest did not finish within 300 s:\n${out.slice(-2000)}`)), 300_000);
      let cur = '';
      emu.add_listener('serial0-output-byte', (b: number) => {
        const c = String.fromCharCode(b);
        if (c === '\r') return;
        if (c !== '\n') {
          cur += c;
          return;
        }
        out += cur + '\n';
        if (cur.startsWith('VQ-ARPING')) bootS = (performance.now() - t0) / 1000;
        if (cur.startsWith('VQ-TCP-RX-END')) rxEndAt = Date.now();
        if (cur === 'VQ-DONE') {
          clearTimeout(t);
          resolve();
        }
        cur = '';
      });
    });
    await emu.run();
    await done;
    await emu.stop();
    const rtt = /round-trip min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(out);
    const counts = /(\d+) packets transmitted, (\d+) packets received/.exec(out);
    const r = await far.result();
    const txSha = line(out, 'VQ-TCP-SHA').split(/\s+/)[1];
    const rxSha = line(out, 'VQ-TCP-RX').split(/\s+/)[1];
    const intact = r.sink?.bytes === o.tcpBytes && r.sink.sha256 === txSha && r.source?.sha256 === rxSha && Number(line(out, 'VQ-TCP-RX').split(/\s+/)[0]) === o.tcpBytes;
    return {
      case: which,
      bootS,
      pingAvgMs: rtt ? Number(rtt[2]) : NaN,
      pingMaxMs: rtt ? Number(rtt[3]) : NaN,
      pingLoss: counts ? Number(counts[1]) - Number(counts[2]) : NaN,
      g2hMbps: r.sink ? (r.sink.bytes * 8) / (r.sink.ms * 1000) : NaN,
      // From the source's accept to the guest's line after its nc exited (wall clocks of this
      // machine; the serial line adds well under a millisecond to seconds-long transfers).
      h2gMbps: r.source?.acceptedAt && rxEndAt > r.source.acceptedAt ? (r.source.bytes * 8) / ((rxEndAt - r.source.acceptedAt) * 1000) : NaN,
      intact,
    };
  } finally {
    if (timer !== null) clearInterval(timer);
    await adapter?.close();
    await pci?.close();
    await emu.destroy();
    (tap as TapDevice | null)?.close();
    await far.close();
  }
}

const stats = (xs: number[]): string => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (s.length === 0) return 'n/a';
  const med = s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  const f = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(3));
  return `${f(s[0]!)} / ${f(med)} / ${f(s[s.length - 1]!)}`;
};
const median = (xs: number[]): number => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

console.log(`v86-nics — ${new Date().toISOString()}, node ${process.version}; command: node dist/bench/v86-nics.js ${process.argv.slice(2).join(' ')}`);
const results: RunResult[] = [];
for (let round = 0; round < o.runs; round++) {
  // Alternate the order each round so no case always runs first (warm caches, page cache).
  const order = round % 2 === 0 ? cases : [...cases].reverse();
  for (const c of order) {
    const r = await runOnce(c, round);
    results.push(r);
    console.log(`round ${round + 1} ${c}: boot ${r.bootS.toFixed(1)} s, ping avg ${r.pingAvgMs} ms max ${r.pingMaxMs} ms lost ${r.pingLoss}, TCP g→h ${r.g2hMbps.toFixed(1)} Mb/s h→g ${r.h2gMbps.toFixed(1)} Mb/s${r.intact ? '' : ' — STREAMS NOT INTACT'}`);
  }
}
console.log('\ncase    | ping avg ms (min/med/max) | ping max ms (min/med/max) | TCP g→h Mb/s (min/med/max) | TCP h→g Mb/s (min/med/max) | ÷ own (median ping avg, g→h, h→g)');
const own = results.filter((r) => r.case === 'own');
for (const c of cases) {
  const rs = results.filter((r) => r.case === c);
  const ratio = own.length === 0 ? 'n/a' : [median(rs.map((r) => r.pingAvgMs)) / median(own.map((r) => r.pingAvgMs)), median(rs.map((r) => r.g2hMbps)) / median(own.map((r) => r.g2hMbps)), median(rs.map((r) => r.h2gMbps)) / median(own.map((r) => r.h2gMbps))].map((x) => x.toFixed(2)).join(', ');
  console.log(`${c.padEnd(7)} | ${stats(rs.map((r) => r.pingAvgMs))} | ${stats(rs.map((r) => r.pingMaxMs))} | ${stats(rs.map((r) => r.g2hMbps))} | ${stats(rs.map((r) => r.h2gMbps))} | ${ratio}`);
}
const bad = results.filter((r) => !r.intact || r.pingLoss !== 0).length;
if (bad > 0) console.log(`\n${bad} run(s) lost pings or had a TCP stream not intact`);
if (o.json !== undefined) writeFileSync(o.json, JSON.stringify({ command: process.argv.slice(2), results }, null, 2));
process.exit(bad > 0 ? 1 : 0);
