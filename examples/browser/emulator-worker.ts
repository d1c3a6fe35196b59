// The emulator, on a module Web Worker: checks that the core layers load and work here
// unchanged (memory, virtqueue, notify, sync, net), then runs the same tiny emulator as the Node
// example with the virtio-net device (NetDevice under the DeviceLoop, a loopback port behind it)
// on a second Web Worker: probe, verified traffic with throughput, a snapshot mid-stream restored
// onto a new device worker, reset; then the same device with the host stack behind it under a
// second preset ('rfc-baseline') answers ARP and pings. Reports to the page.

import { GuestMemory } from '../../src/memory/index.js';
import { DoorbellBlock } from '../../src/notify/index.js';
import { Mutex } from '../../src/sync/index.js';
import { parsePacket } from '../../src/net/frames/index.js';
import { internetChecksum } from '../../src/net/checksum.js';
import { startWebDeviceWorker, describeStatus, type WorkerRunner } from '../../src/transport/index.js';
import { TinyEmulator, runTraffic, sendWithoutReceiving } from '../emulator-core.js';
import { ipv4FromString, macFromString } from '../../src/net/frames/index.js';
import { VIRTIO_NET_FEATURES, VirtioNetFrontend, type VirtioNetOptions } from '../../src/transport/virtio-net.js';

interface Scope {
  onmessage: ((e: { data: { frames: number; bytes: number } }) => void) | null;
  postMessage(v: unknown): void;
}
const scope = globalThis as unknown as Scope;
const say = (line: string): void => scope.postMessage({ log: line });

async function main(frames: number, bytes: number): Promise<void> {
  // Core layers in this worker: sync (a shared mutex), notify (a doorbell), net (checksum, parser).
  const m = Mutex.init();
  Mutex.lock(m, 1);
  Mutex.unlock(m, 1);
  const block = DoorbellBlock.allocate(1);
  block.doorbell(0).ring();
  const probeMem = GuestMemory.allocate(4096);
  const sum = internetChecksum(probeMem.bytes(0, 20), 0, 20);
  say(`core layers loaded in a Web Worker: sync, notify, net (checksum of zeros = 0x${sum.toString(16)})`);

  const emu = new TinyEmulator();
  const loopback: VirtioNetOptions = { backend: { type: 'loopback' }, preset: 'vhost' };
  const start = (): Promise<WorkerRunner> =>
    startWebDeviceWorker({ mem: emu.ram, kind: 'virtio-net', options: loopback, watchInterrupts: false, workerUrl: new URL('../../src/transport/web-device-worker.js', import.meta.url) }, (msg) => say(`device worker error: ${msg}`));
  let runner = await start();
  let t = emu.attach(runner, undefined, new VirtioNetFrontend(loopback));
  const g = emu.newGuestDriver();
  const features = g.init();
  say(`probe: status ${describeStatus(t.status)}, features 0x${features.toString(16)}`);
  g.refillRx();
  const halt = (ms: number): void => emu.halt(ms);
  const half = Math.floor(frames / 2);
  const r1 = runTraffic(g, halt, 0, half, 0, bytes);
  const gbps = (r1.bytes * 8) / r1.ms / 1e6;
  say(`traffic: ${r1.frames} frames of ${bytes} B verified in ${r1.ms.toFixed(0)} ms = ${gbps.toFixed(2)} Gb/s (${(r1.frames / r1.ms).toFixed(0)} kfps)`);
  let parsedOk = true;
  // One frame through the net parser, to show it runs here (EtherType 0x88b5 parses as 'other').
  const probeFrame = new Uint8Array(60);
  probeFrame.set(g.mac, 0);
  g.send(probeFrame);
  g.flushTx();
  // Wait for that frame to come back (an interrupt may already be pending from the traffic, so
  // one wait is not enough); it must not be left for the verified traffic below to trip over.
  let looped = false;
  g.net.onReceive = (f, off, len) => {
    parsedOk = !(parsePacket(f.subarray(off, off + len), 0) instanceof Error);
    looped = true;
  };
  const until = performance.now() + 2000;
  while (!looped && performance.now() < until) {
    halt(50);
    g.acknowledgeInterrupt();
    g.receive();
  }
  if (!looped) parsedOk = false;
  const sent = sendWithoutReceiving(g, halt, half, 300, bytes);
  const snapshot = JSON.parse(JSON.stringify(await t.save()));
  await runner.close();
  runner = await start();
  t = emu.attach(runner, snapshot, new VirtioNetFrontend(loopback));
  const r2 = runTraffic(g, halt, sent, frames, r1.next, bytes);
  say(`restored mid-stream onto a new device worker: ${r2.frames} more frames, all verified`);
  g.reset();
  const loopOk = r2.next === frames && t.status === 0 && parsedOk;
  say(`reset: status ${t.status}; ${loopOk ? 'PASS' : 'FAIL'}`);
  await runner.close();
  const ping = await pingThroughVirtioNet(PINGS);
  const ok = loopOk && ping.replies === PINGS && ping.bad === 0;
  scope.postMessage({ result: { ok, frames: r2.next, bytes, gbps, kfps: r1.frames / r1.ms, ms: r1.ms, kicks: r1.kicks, interrupts: r1.interrupts, issues: t.issueCount, pingReplies: ping.replies, pingAvgMs: ping.avgMs } });
}

const PINGS = 200;
const GUEST_IP = '10.0.2.15';
const HOST_IP = '10.0.2.2';

/**
 * The same virtio-net device (device kind 'virtio-net') on its own Web Worker with the in-memory
 * host stack behind it, under the RFC's baseline policy this time (tx timer, per-buffer
 * interrupts): the guest negotiates through MMIO in Linux order, resolves the host by ARP and
 * pings it.
 */
async function pingThroughVirtioNet(count: number): Promise<{ replies: number; bad: number; avgMs: number }> {
  const device: VirtioNetOptions = { mac: '52:54:00:12:34:56', mtu: 1500, backend: { type: 'host-stack', hostMac: '52:54:00:ab:cd:ef', hostIp: HOST_IP, guestIp: GUEST_IP }, preset: 'rfc-baseline' };
  const emu = new TinyEmulator();
  const runner = await startWebDeviceWorker(
    { mem: emu.ram, kind: 'virtio-net', options: device, watchInterrupts: false, workerUrl: new URL('../../src/transport/web-device-worker.js', import.meta.url) },
    (msg) => say(`virtio-net device worker error: ${msg}`),
  );
  const t = emu.attach(runner, undefined, new VirtioNetFrontend(device));
  const g = emu.newGuestDriver({
    wantFeatures: VIRTIO_NET_FEATURES,
    endpoint: { ip: ipv4FromString(GUEST_IP), peerIp: ipv4FromString(HOST_IP), peerMac: macFromString('ff:ff:ff:ff:ff:ff') },
  });
  g.probe();
  const features = g.init();
  say(`virtio-net (NetDevice on a Web Worker, preset rfc-baseline): status ${describeStatus(t.status)}, features 0x${features.toString(16)}`);
  g.refillRx();
  const ep = g.endpoint!;
  const waitFor = (done: () => boolean, what: string): void => {
    const end = performance.now() + 5000;
    while (!done()) {
      if (performance.now() > end) throw new Error(`no ${what} within 5 s`);
      if (g.step() === 0) runner.waitForInterrupt(10);
    }
  };
  ep.sendArpRequest();
  waitFor(() => ep.stats.arpRepliesIn > 0, 'ARP reply');
  let replied = -1;
  let bad = 0;
  ep.onEchoReply = (_id, seq, good) => {
    replied = seq;
    if (!good) bad++;
  };
  let replies = 0;
  const t0 = performance.now();
  for (let seq = 0; seq < count; seq++) {
    ep.sendEchoRequest(0x1234, seq, 56);
    waitFor(() => replied === seq, `echo reply ${seq}`);
    replies++;
  }
  const avgMs = (performance.now() - t0) / count;
  say(`virtio-net: ARP resolved, ${replies}/${count} echo replies from the host stack (${bad} with wrong data), avg ${(avgMs * 1000).toFixed(0)} µs per round trip`);
  g.reset();
  await runner.close();
  return { replies, bad, avgMs };
}

scope.onmessage = (e) => {
  main(e.data.frames, e.data.bytes).catch((err: unknown) => {
    say(`error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    scope.postMessage({ result: { ok: false, error: String(err) } });
  });
};
