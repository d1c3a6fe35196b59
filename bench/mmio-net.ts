// The virtio-net device (NetDevice under the DeviceLoop, preset `--preset`, default 'vhost', with
// the host stack behind it) behind virtio-mmio, driven only by MMIO
// register accesses from the tiny emulator's guest: (1) ping round-trip time (one echo request
// of 56 bytes at a time, like `ping`) and (2) a guest TCP stream into the host stack's sink, sent
// as TSO frames of 60 000 bytes, with the device (a) inline on the emulator's thread and (b) on
// its own worker (the guest halts on the irq doorbell). Modes are interleaved round by round in
// one run; reports min / median / max per cell (RTT per ping as the median of the run's pings,
// stream Gb/s) and the worker/inline ratio of medians.
//
//   node dist/bench/mmio-net.js [--quick] [--json] [--rounds N] [--pings N] [--stream-mb N] [--preset P]

import { Command } from 'commander';
import { ipv4FromString, macFromString } from '../src/net/frames/index.js';
import { InlineRunner, type DeviceRunner, type MmioNetGuest } from '../src/transport/index.js';
import { startNodeDeviceWorker } from '../src/transport/node-worker.js';
import { VIRTIO_NET_FEATURES, VirtioNetBackend, VirtioNetFrontend, type VirtioNetOptions, type VirtioNetState } from '../src/transport/virtio-net.js';
import { TinyEmulator } from '../examples/emulator-core.js';

const MODES = ['inline', 'worker'] as const;
type Mode = (typeof MODES)[number];
const SINK_PORT = 5001;

interface Rig {
  g: MmioNetGuest;
  halt: (ms: number) => void;
  runner: DeviceRunner;
  emu: TinyEmulator;
}

let PRESET = 'vhost';

async function rig(mode: Mode): Promise<Rig> {
  const device: VirtioNetOptions = { backend: { type: 'host-stack', sinkPort: SINK_PORT }, preset: PRESET };
  const emu = new TinyEmulator(16 << 20);
  const runner: DeviceRunner =
    mode === 'inline'
      ? new InlineRunner(new VirtioNetBackend(device), emu.ram, { timers: 'manual' })
      : await startNodeDeviceWorker({ mem: emu.ram, kind: 'virtio-net', options: device, watchInterrupts: false });
  emu.attach(runner, undefined, new VirtioNetFrontend(device));
  const g = emu.newGuestDriver({
    wantFeatures: VIRTIO_NET_FEATURES,
    endpoint: { ip: ipv4FromString('10.0.2.15'), peerIp: ipv4FromString('10.0.2.2'), peerMac: macFromString('52:54:00:ab:cd:ef') },
  });
  g.init();
  g.refillRx();
  return { g, runner, emu, halt: (ms) => emu.halt(ms) };
}

function until(r: Rig, done: () => boolean): void {
  const end = performance.now() + 30_000;
  while (!done()) {
    if (performance.now() > end) throw new Error('bench: no progress for 30 s');
    if (r.g.step() === 0) r.halt(10);
  }
}

async function pingOnce(mode: Mode, pings: number): Promise<number> {
  const r = await rig(mode);
  const ep = r.g.endpoint!;
  let replied = -1;
  ep.onEchoReply = (_id, seq) => (replied = seq);
  const rtts: number[] = [];
  for (let seq = 0; seq < pings + 50; seq++) {
    const t0 = performance.now();
    ep.sendEchoRequest(1, seq, 56);
    until(r, () => replied === seq);
    if (seq >= 50) rtts.push((performance.now() - t0) * 1000); // the first 50 warm up
  }
  await r.runner.close();
  rtts.sort((a, b) => a - b);
  return rtts[Math.floor(rtts.length / 2)]!;
}

async function streamOnce(mode: Mode, bytes: number): Promise<number> {
  const r = await rig(mode);
  const ep = r.g.endpoint!;
  ep.gso = true;
  ep.partialCsum = true;
  ep.startSource({ srcPort: 40000, dstPort: SINK_PORT, msgBytes: 60_000, totalBytes: bytes });
  const t0 = performance.now();
  until(r, () => ep.sourceDone);
  const ms = performance.now() - t0;
  const t = r.emu.transport!;
  const snap = await t.save();
  const got = (snap.backend!.device as VirtioNetState).hostStack?.sink?.payloadBytes ?? 0;
  await r.runner.close();
  if (got !== bytes) throw new Error(`bench: sink got ${got} of ${bytes} bytes`);
  return (bytes * 8) / ms / 1e6;
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

const program = new Command()
  .option('--quick', 'few rounds, little traffic (sanity check)')
  .option('--json', 'print JSON instead of a table')
  .option('--rounds <n>', 'rounds (each runs every cell once)', '5')
  .option('--pings <n>', 'measured pings per cell and round', '2000')
  .option('--stream-mb <n>', 'stream megabytes per cell and round', '200')
  .option('--preset <name>', 'the device loop\'s notification policy', 'vhost')
  .parse();
const o = program.opts<{ quick?: boolean; json?: boolean; rounds: string; pings: string; streamMb: string; preset: string }>();
PRESET = o.preset;
const rounds = o.quick ? 2 : Number(o.rounds);
const pings = o.quick ? 200 : Number(o.pings);
const streamBytes = (o.quick ? 10 : Number(o.streamMb)) * 1_000_000;

const rtt = new Map<Mode, number[]>();
const gbps = new Map<Mode, number[]>();
for (let round = 0; round < rounds; round++) {
  for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
    rtt.set(mode, [...(rtt.get(mode) ?? []), await pingOnce(mode, pings)]);
    gbps.set(mode, [...(gbps.get(mode) ?? []), await streamOnce(mode, streamBytes)]);
  }
}
const rows = MODES.map((mode) => ({ mode, rttUs: stats(rtt.get(mode)!), streamGbps: stats(gbps.get(mode)!) }));
const ratios = {
  rttWorkerOverInline: rows[1]!.rttUs.median / rows[0]!.rttUs.median,
  streamWorkerOverInline: rows[1]!.streamGbps.median / rows[0]!.streamGbps.median,
};

if (o.json) {
  console.log(JSON.stringify({ command: `node dist/bench/mmio-net.js${o.quick ? ' --quick' : ''} --preset ${o.preset}`, preset: o.preset, rounds, pings, streamBytes, rows, ratios }, null, 2));
} else {
  const f = (x: { min: number; median: number; max: number }, d: number): string => `${x.min.toFixed(d)} / ${x.median.toFixed(d)} / ${x.max.toFixed(d)}`;
  console.log(`virtio-mmio virtio-net (NetDevice + DeviceLoop + host stack, preset ${o.preset}), ${rounds} rounds; ${pings} pings of 56 B, ${streamBytes / 1e6} MB TSO stream per cell (min / median / max)`);
  for (const r of rows) console.log(`${r.mode.padEnd(7)} ping RTT median ${f(r.rttUs, 1)} µs   stream ${f(r.streamGbps, 2)} Gb/s`);
  console.log(`worker / inline: RTT ${ratios.rttWorkerOverInline.toFixed(2)}×, stream ${ratios.streamWorkerOverInline.toFixed(2)}×`);
}
