// Embedding example (Node): a tiny emulator maps the virtio-net device (NetDevice under the
// DeviceLoop, a loopback port behind it) at a guest-physical MMIO window; the device's data path
// runs on its own worker thread (or inline); the guest programs it only through register loads
// and stores, in Linux order, then moves frames with NetDriver. The run shows probe +
// negotiation, verified traffic with throughput, a snapshot taken mid-stream and restored onto a
// new device worker, and a reset. `--preset` picks the device's notification policy.
//
//   node dist/examples/mmio-emulator.js [--frames 200000] [--bytes 1514] [--inline] [--preset vhost]

import { InlineRunner, VirtioNetBackend, VirtioNetFrontend, describeStatus, type VirtioNetOptions, type VirtioNetState } from '../src/transport/index.js';
import { startNodeDeviceWorker } from '../src/transport/node-worker.js';
import type { DeviceRunner } from '../src/transport/index.js';
import { TinyEmulator, runTraffic, sendWithoutReceiving } from './emulator-core.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const FRAMES = arg('--frames', 200_000);
const BYTES = arg('--bytes', 1514);
const INLINE = process.argv.includes('--inline');
const pi = process.argv.indexOf('--preset');
const device: VirtioNetOptions = { backend: { type: 'loopback' }, preset: pi > 0 ? process.argv[pi + 1]! : 'vhost' };

async function newRunner(emu: TinyEmulator): Promise<DeviceRunner> {
  // 'manual' timers: this guest polls the device at its deadlines when it halts (emu.halt).
  if (INLINE) return new InlineRunner(new VirtioNetBackend(device), emu.ram, { timers: 'manual' });
  // watchInterrupts off: this guest halts on the irq doorbell itself (emu.halt).
  return startNodeDeviceWorker({ mem: emu.ram, kind: 'virtio-net', options: device, watchInterrupts: false });
}

const emu = new TinyEmulator();
const halt = (ms: number): void => emu.halt(ms);
let runner = await newRunner(emu);
let t = emu.attach(runner, undefined, new VirtioNetFrontend(device));
const g = emu.newGuestDriver();

const id = g.probe();
const features = g.init();
console.log(`probe: device id ${id}, status ${describeStatus(t.status)}, features 0x${features.toString(16)}, mac ${[...g.mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}, mtu ${g.mtu}`);
g.refillRx();

const half = Math.floor(FRAMES / 2);
const r1 = runTraffic(g, halt, 0, half, 0, BYTES);
console.log(`traffic (${INLINE ? 'inline' : 'device worker'}, preset ${String(device.preset)}): ${r1.frames} frames of ${BYTES} B in ${r1.ms.toFixed(0)} ms = ${((r1.bytes * 8) / r1.ms / 1e6).toFixed(2)} Gb/s, ${(r1.frames / r1.ms).toFixed(0)} kfps, ${r1.kicks} kicks, ${r1.interrupts} interrupts`);

// Snapshot mid-stream: frames sit in the rx ring and wait for rx buffers in the device.
let sent = sendWithoutReceiving(g, halt, half, 300, BYTES);
const snapshot = await t.save();
const json = JSON.stringify(snapshot);
console.log(`snapshot: ${json.length} bytes of JSON, ${(snapshot.backend?.device as VirtioNetState).replay.length} frames waiting for rx buffers in the device`);
await runner.close();

runner = await newRunner(emu);
t = emu.attach(runner, JSON.parse(json), new VirtioNetFrontend(device));
const r2 = runTraffic(g, halt, sent, FRAMES, r1.next, BYTES);
console.log(`restored: ${r2.frames} more frames, every one once and in order (next ${r2.next} of ${FRAMES})`);
sent = FRAMES;

g.reset();
console.log(`reset: status ${t.status}, ignored accesses ${t.issueCount}, interrupt edges ${emu.irqEdges}`);
if (t.status !== 0 || r2.next !== FRAMES) process.exitCode = 1;
await runner.close();
