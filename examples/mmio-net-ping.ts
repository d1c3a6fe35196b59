// Embedding example (Node): the virtio-net device (NetDevice: offloads, mergeable rx, GSO; under
// the DeviceLoop with a preset's notification policy) behind virtio-mmio, its data path on its
// own worker thread with the in-memory host stack behind it. The guest programs the device only
// through register loads and stores in Linux order (probe, negotiate, queues, DRIVER_OK), runs
// NetDriver with a NetEndpoint on top, resolves the host by ARP, then pings it like `ping -c N`
// and prints the round-trip times as ping does (min/avg/max/mdev).
//
//   node dist/examples/mmio-net-ping.js [--count 200] [--bytes 56] [--inline] [--preset vhost]

import { describeFeatures } from '../src/net/features.js';
import { ipv4FromString, macFromString } from '../src/net/frames/index.js';
import { InlineRunner, describeStatus, type DeviceRunner } from '../src/transport/index.js';
import { startNodeDeviceWorker } from '../src/transport/node-worker.js';
import { VIRTIO_NET_FEATURES, VirtioNetBackend, VirtioNetFrontend, type VirtioNetOptions, type VirtioNetState } from '../src/transport/virtio-net.js';
import { TinyEmulator } from './emulator-core.js';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const COUNT = arg('--count', 200);
const BYTES = arg('--bytes', 56);
const INLINE = process.argv.includes('--inline');
const pi = process.argv.indexOf('--preset');
const PRESET = pi > 0 ? process.argv[pi + 1]! : 'vhost';
const GUEST_IP = '10.0.2.15';
const HOST_IP = '10.0.2.2';

const device: VirtioNetOptions = {
  mac: '52:54:00:12:34:56',
  mtu: 1500,
  backend: { type: 'host-stack', hostMac: '52:54:00:ab:cd:ef', hostIp: HOST_IP, guestIp: GUEST_IP },
  preset: PRESET,
};

const emu = new TinyEmulator();
// watchInterrupts off: this guest halts on the irq doorbell itself (see halt below).
// 'manual' timers (inline): the guest polls the device at its deadlines when it halts.
const runner: DeviceRunner = INLINE
  ? new InlineRunner(new VirtioNetBackend(device), emu.ram, { timers: 'manual' })
  : await startNodeDeviceWorker({ mem: emu.ram, kind: 'virtio-net', options: device, watchInterrupts: false });
/** The guest's HLT: sleep until the device interrupts (or, inline, poll it at its deadline). */
const halt = (ms: number): void => emu.halt(ms);
const t = emu.attach(runner, undefined, new VirtioNetFrontend(device));

const g = emu.newGuestDriver({
  wantFeatures: VIRTIO_NET_FEATURES,
  endpoint: { ip: ipv4FromString(GUEST_IP), peerIp: ipv4FromString(HOST_IP), peerMac: macFromString('ff:ff:ff:ff:ff:ff') },
});
const id = g.probe();
const features = g.init();
console.log(`probe: device id ${id}, status ${describeStatus(t.status)}, mac ${[...g.mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}, mtu ${g.mtu}, preset ${PRESET}`);
console.log(`features: ${describeFeatures(features).join(' ')}`);
g.refillRx();

const ep = g.endpoint!;
function waitFor(done: () => boolean, what: string): void {
  const end = performance.now() + 5000;
  while (!done()) {
    if (performance.now() > end) throw new Error(`no ${what} within 5 s`);
    if (g.step() === 0) halt(10);
  }
}

ep.sendArpRequest();
waitFor(() => ep.stats.arpRepliesIn > 0, 'ARP reply');
console.log(`arp: ${HOST_IP} is at ${[...ep.peerMac].map((b) => b.toString(16).padStart(2, '0')).join(':')}`);

console.log(`PING ${HOST_IP} ${BYTES}(${BYTES + 28}) bytes of data, device ${INLINE ? 'inline' : 'on a worker'}`);
const rtts: number[] = [];
let replied = -1;
let bad = 0;
ep.onEchoReply = (_id, seq, ok) => {
  replied = seq;
  if (!ok) bad++;
};
for (let seq = 0; seq < COUNT; seq++) {
  const t0 = performance.now();
  ep.sendEchoRequest(0x1234, seq, BYTES);
  waitFor(() => replied === seq, `echo reply ${seq}`);
  const ms = performance.now() - t0;
  rtts.push(ms);
  if (seq < 3) console.log(`${BYTES + 8} bytes from ${HOST_IP}: icmp_seq=${seq + 1} time=${ms.toFixed(3)} ms`);
}
const min = Math.min(...rtts);
const max = Math.max(...rtts);
const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
const mdev = Math.sqrt(rtts.reduce((a, b) => a + (b - avg) ** 2, 0) / rtts.length);
console.log(`--- ${HOST_IP} ping statistics ---`);
console.log(`${COUNT} packets transmitted, ${rtts.length} received, ${bad} with wrong data, 0% packet loss`);
console.log(`rtt min/avg/max/mdev = ${min.toFixed(3)}/${avg.toFixed(3)}/${max.toFixed(3)}/${mdev.toFixed(3)} ms`);

const snap = await t.save();
t.resume();
const st = (snap.backend!.device as VirtioNetState).stats;
console.log(`device: ${st.txFrames} frames from the guest, ${st.rxFrames} to it, ${st.txDropped + st.rxDropped} dropped; ${g.stats.kicks} kicks, ${g.stats.interrupts} interrupts`);

g.reset();
console.log(`reset: status ${t.status}, ignored accesses ${t.issueCount}`);
if (t.status !== 0 || bad !== 0 || rtts.length !== COUNT) process.exitCode = 1;
await runner.close();
