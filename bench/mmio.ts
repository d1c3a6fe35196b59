// virtio-mmio embedding benchmark: the tiny emulator of examples/ pushes verified loopback
// traffic through the virtio-net device (NetDevice under the DeviceLoop, preset `--preset`,
// default 'vhost', a loopback port behind it) driven only by MMIO register accesses, with the device
// (a) inline on the emulator's thread (v86's model: the QueueNotify write runs the device) and
// (b) on its own worker (the notify write rings a doorbell; the guest halts on the irq
// doorbell). Modes and frame sizes are interleaved round by round in one run; reports
// min / median / max of Gb/s and kframes/s per cell, the worker/inline ratio of medians, and the
// process CPU time per GB moved (both threads).
//
//   node dist/bench/mmio.js [--quick] [--json] [--rounds N] [--frames N] [--preset P]

import { Command } from 'commander';
import { InlineRunner, VirtioNetBackend, VirtioNetFrontend, type DeviceRunner, type VirtioNetOptions } from '../src/transport/index.js';
import { startNodeDeviceWorker } from '../src/transport/node-worker.js';
import { TinyEmulator, runTraffic } from '../examples/emulator-core.js';

const MODES = ['inline', 'worker'] as const;
type Mode = (typeof MODES)[number];
const SIZES = [64, 1514] as const;

interface Sample {
  gbps: number;
  kfps: number;
  cpuNsPerGB: number;
}

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

async function runOnce(mode: Mode, frameBytes: number, frames: number, preset: string): Promise<Sample> {
  const emu = new TinyEmulator();
  const device: VirtioNetOptions = { backend: { type: 'loopback' }, preset };
  const runner: DeviceRunner =
    mode === 'inline'
      ? new InlineRunner(new VirtioNetBackend(device), emu.ram, { timers: 'manual' })
      : await startNodeDeviceWorker({ mem: emu.ram, kind: 'virtio-net', options: device, watchInterrupts: false });
  emu.attach(runner, undefined, new VirtioNetFrontend(device));
  const g = emu.newGuestDriver();
  g.init();
  g.refillRx();
  const halt = (ms: number): void => emu.halt(ms);
  runTraffic(g, halt, 0, Math.min(5000, frames), 0, frameBytes); // warm-up
  const c0 = cpuNs();
  const r = runTraffic(g, halt, 5000, 5000 + frames, Math.min(5000, frames), frameBytes);
  const cpu = cpuNs() - c0;
  await runner.close();
  return { gbps: (r.bytes * 8) / r.ms / 1e6, kfps: r.frames / r.ms, cpuNsPerGB: cpu / (r.bytes / 1e9) };
}

function stats(xs: number[]): { min: number; median: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0]!, median: s[Math.floor(s.length / 2)]!, max: s[s.length - 1]! };
}

const program = new Command()
  .option('--quick', 'few rounds, few frames (sanity check)')
  .option('--json', 'print JSON instead of a table')
  .option('--rounds <n>', 'rounds (each runs every cell once)', '5')
  .option('--frames <n>', 'measured frames per cell and round', '200000')
  .option('--preset <name>', 'the device loop\'s notification policy', 'vhost')
  .parse();
const o = program.opts<{ quick?: boolean; json?: boolean; rounds: string; frames: string; preset: string }>();
const rounds = o.quick ? 2 : Number(o.rounds);
const frames = o.quick ? 20000 : Number(o.frames);

const samples = new Map<string, Sample[]>();
for (let round = 0; round < rounds; round++) {
  for (const size of SIZES) {
    for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
      const key = `${mode}/${size}`;
      const list = samples.get(key) ?? [];
      list.push(await runOnce(mode, size, frames, o.preset));
      samples.set(key, list);
    }
  }
}

const rows = [...samples.entries()].map(([key, list]) => {
  const [mode, size] = key.split('/');
  return { mode, frameBytes: Number(size), gbps: stats(list.map((s) => s.gbps)), kfps: stats(list.map((s) => s.kfps)), cpuSecPerGB: stats(list.map((s) => s.cpuNsPerGB / 1e9)).median };
});
const ratios = SIZES.map((size) => {
  const w = rows.find((r) => r.mode === 'worker' && r.frameBytes === size)!;
  const i = rows.find((r) => r.mode === 'inline' && r.frameBytes === size)!;
  return { frameBytes: size, workerOverInline: w.gbps.median / i.gbps.median };
});

if (o.json) {
  console.log(JSON.stringify({ command: `node dist/bench/mmio.js${o.quick ? ' --quick' : ''} --preset ${o.preset}`, preset: o.preset, rounds, frames, rows, ratios }, null, 2));
} else {
  console.log(`virtio-mmio virtio-net + loopback port, preset ${o.preset}, ${rounds} rounds × ${frames} frames per cell (min / median / max)`);
  for (const r of rows) {
    const f = (x: { min: number; median: number; max: number }, d: number): string => `${x.min.toFixed(d)} / ${x.median.toFixed(d)} / ${x.max.toFixed(d)}`;
    console.log(`${r.mode.padEnd(7)} ${String(r.frameBytes).padStart(5)} B  ${f(r.gbps, 2)} Gb/s   ${f(r.kfps, 0)} kfps   CPU ${r.cpuSecPerGB.toFixed(2)} s/GB`);
  }
  for (const x of ratios) console.log(`worker / inline at ${x.frameBytes} B: ${x.workerOverInline.toFixed(2)}×`);
}
