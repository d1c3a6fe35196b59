// Issue 21, route 1: a real emulator, v86 (npm package, x86 compiled to WebAssembly), boots
// Debian's 32-bit kernel and a busybox initramfs headless in Node (support/build-v86-guest.sh:
// apt-get download, nothing installed; cached under ~/.cache/virtq/v86-guest) and its network
// path is virtq: every frame its NIC sends (`net0-send`) goes into virtq's driver queue over a
// SharedArrayBuffer, the one NetDevice serves it, and frames for the guest come back through
// `net0-receive` (src/v86/adapter.ts).
// 1. The device on its worker thread with the in-memory host stack behind it: the guest's
//    arping is answered, the kernel's ARP table holds the host stack's MAC, and busybox
//    `ping -A` (the next echo as soon as the reply is in) gets every one of VIRTQ_V86_PINGS
//    (default 1000) echoes back; each frame crossed the device once (v86 side = device side).
// 2. The device inline with a real TAP behind it, the TAP's host end in a network namespace:
//    the guest pings the host kernel and moves TCP both ways with busybox nc (VIRTQ_V86_TCP_BYTES
//    random bytes each way, default 1 MiB), the SHA-256 of each stream checked on the far end.
// 3. Route 2: v86's own NIC off, virtq's device registered on v86's PCI bus behind the virtio-pci
//    modern transport (src/v86/pci.ts, src/transport/pci.ts), inline over v86's memory: the
//    guest's virtio_net negotiates checksum offloads, TSO and mergeable rx buffers (its
//    /sys/class/net/eth0/device/features), the pings all come back, and — with a TAP — TCP moves
//    both ways with every byte checked (without root/addon/tun: the host stack answers the pings).
// Skips with a message when the v86 package, apt (for the guest's packages), root, the native
// addon or /dev/net/tun are missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { V86NetAdapter, V86AdapterError, V86VirtioPci, type V86Like } from '../src/v86/index.js';
import { TapDevice } from '../src/backend/tap.js';
import { TapPort } from '../src/backend/tap-port.js';
import { loadIo } from '../src/backend/native.js';
import { NetF } from '../src/net/features.js';
import { VirtioNetBackend, VirtioNetError } from '../src/transport/index.js';
import { LoopbackPort } from '../src/backend/loopback-port.js';
import { TraceSession } from '../src/trace/session.js';
import { NetnsTcpEnd } from '../bench/support/netns-tcp-end.js';
import { firstMissing, needAddon, needRoot, needTool, needTun } from './support/real-peers.js';

const BUILD = fileURLToPath(new URL('../../test/support/build-v86-guest.sh', import.meta.url));
const PINGS = Number(process.env['VIRTQ_V86_PINGS'] ?? 1000);
const TCP_BYTES = Number(process.env['VIRTQ_V86_TCP_BYTES'] ?? 1 << 20);
const BOOT_TIMEOUT_MS = 240_000;

type V86Ctor = typeof import('v86').V86;
let V86: V86Ctor | null = null;
let v86Dir = '';
try {
  V86 = (await import('v86')).V86;
  v86Dir = fileURLToPath(new URL('.', import.meta.resolve('v86')));
} catch {
  V86 = null;
}
const missingV86 = V86 === null ? 'the v86 package is not installed (npm install -D v86)' : null;
const missing = firstMissing(missingV86, needRoot(), needTool('apt-get', 'apt'), needTool('dpkg-deb', 'dpkg'));
const tapMissing = firstMissing(missing, needAddon(), needTun(), needTool('ip', 'iproute2'));

let cacheDir: string | null = null;
let buildError: string | null = null;
/** Builds (or finds) the guest once; a failed build is a skip with apt's message (packages missing). */
function guestCache(): string | null {
  if (cacheDir !== null || buildError !== null) return cacheDir;
  const dir = join(process.env['VIRTQ_CACHE_DIR'] ?? join(homedir(), '.cache', 'virtq'), 'v86-guest');
  const built = spawnSync('bash', [BUILD, dir], { encoding: 'utf8' });
  if (built.status === 0) cacheDir = dir;
  else buildError = `the v86 guest could not be built (Debian packages linux-image-*-686-unsigned:i386, busybox-static:i386, seabios): ${built.stderr.trim().slice(-500)}`;
  return cacheDir;
}

function file(dir: string, name: string): { buffer: ArrayBuffer } {
  const b = readFileSync(join(dir, name));
  return { buffer: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer };
}

// v86 loads its images asynchronously; run() before `emulator-loaded` starts a CPU that is not
// initialised and the guest never boots. Each emulator's load, listened for from construction on.
const loadedOf = new WeakMap<object, Promise<void>>();

/** A v86 PC with the guest, not started; its NIC is v86's virtio-net (route 1) or none (route 2). */
function newV86(dir: string, append: string, nic: 'virtio' | 'none' = 'virtio'): InstanceType<V86Ctor> {
  const emu = new V86!({
    // v86.d.ts types the images as { url } | { buffer } (a File in browsers).
    wasm_path: join(v86Dir, 'v86.wasm'),
    bios: file(dir, 'bios.bin'),
    vga_bios: file(dir, 'vgabios.bin'),
    bzimage: file(dir, 'vmlinuz'),
    initrd: file(dir, 'initramfs.gz'),
    cmdline: `console=ttyS0 quiet tsc=reliable mitigations=off random.trust_cpu=on ${append}`,
    memory_size: 128 << 20,
    autostart: false,
    disable_keyboard: true,
    disable_mouse: true,
    disable_speaker: true,
    net_device: { type: nic as 'virtio' },
  });
  loadedOf.set(emu, new Promise<void>((resolve) => emu.add_listener('emulator-loaded', () => resolve())));
  return emu;
}

/** Runs the guest until it prints VQ-DONE (or the timeout); resolves with its console output. */
function runGuest(emu: InstanceType<V86Ctor>): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the v86 guest did not finish within ${BOOT_TIMEOUT_MS / 1000} s:\n${out.slice(-3000)}`)), BOOT_TIMEOUT_MS);
    emu.add_listener('serial0-output-byte', (b: number) => {
      out += String.fromCharCode(b);
      if (out.endsWith('VQ-DONE\n') || out.endsWith('VQ-DONE\r\n')) {
        clearTimeout(timer);
        resolve(out);
      }
    });
    void loadedOf.get(emu)!.then(() => emu.run());
  });
}

function line(out: string, tag: string): string {
  const m = new RegExp(`^${tag} (.*)$`, 'm').exec(out.replace(/\r/g, ''));
  assert.ok(m, `no ${tag} line in the guest output:\n${out.slice(-3000)}`);
  return m[1]!.trim();
}

function pingSummary(out: string): { transmitted: number; received: number; rtt: string } {
  const s = /VQ-PING-BEGIN([\s\S]*?)VQ-PING-END/.exec(out);
  assert.ok(s, `no ping section in the guest output:\n${out.slice(-3000)}`);
  const m = /(\d+) packets transmitted, (\d+) packets received/.exec(s[1]!);
  const rtt = /round-trip min\/avg\/max = ([\d./]+) ms/.exec(s[1]!);
  assert.ok(m && rtt, `no ping summary in the guest output:\n${s[1]}`);
  return { transmitted: Number(m[1]), received: Number(m[2]), rtt: rtt[1]! };
}

test('the adapter refuses what is not a v86 instance, and bad options, with a typed error', async () => {
  await assert.rejects(V86NetAdapter.attach({} as V86Like), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-emulator');
  const fake: V86Like = { add_listener() {}, remove_listener() {}, bus: { send() {} } };
  await assert.rejects(V86NetAdapter.attach(fake, { memoryBytes: 1000 }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options');
  await assert.rejects(V86NetAdapter.attach(fake, { pollMs: 0 }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options');
  await assert.rejects(V86NetAdapter.attach(fake, { runner: 'thread' as 'worker' }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options');
  // A TAP backend: a usable interface name, and not together with a port of one's own.
  await assert.rejects(V86NetAdapter.attach(fake, { device: { backend: { type: 'tap', name: '' } } }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options' && /interface name/.test(e.message));
  await assert.rejects(V86NetAdapter.attach(fake, { device: { backend: { type: 'tap', name: 'x'.repeat(16) } } }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options');
  await assert.rejects(V86NetAdapter.attach(fake, { runner: 'inline', port: () => new LoopbackPort(), device: { backend: { type: 'tap', name: 'vq0' } } }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options' && /not both/.test(e.message));
  // The browser-safe kind refuses a TAP with a message that names the kind that has one.
  assert.throws(() => new VirtioNetBackend({ backend: { type: 'tap', name: 'vq0' } }), (e: unknown) => e instanceof VirtioNetError && /virtio-net-tap/.test(e.message));
  assert.throws(() => new VirtioNetBackend({ backend: { type: 'tap', name: 'vq0', pollMs: 0 } }), (e: unknown) => e instanceof VirtioNetError && /pollMs/.test(e.message));
});

test('an inline adapter without v86 traffic: every net0-send frame is served once, a full ring backs up into the counted backlog, overflow is counted', async () => {
  // A fake v86 whose "guest" sends frames to a loopback device: each comes back via net0-receive.
  let listener: ((f: Uint8Array) => void) | null = null;
  const back: Uint8Array[] = [];
  const fake: V86Like = {
    add_listener: (_e, f) => (listener = f),
    remove_listener: () => (listener = null),
    bus: { send: (_e, v) => back.push(v as Uint8Array) },
  };
  const a = await V86NetAdapter.attach(fake, { runner: 'inline', device: { backend: { type: 'loopback', capacityFrames: 4096 } }, queueSize: 16, backlogFrames: 8 });
  try {
    assert.equal(a.features & NetF.GUEST_CSUM, 0n, 'no receive offloads for v86: its NICs take finished frames');
    assert.notEqual(a.features & NetF.MRG_RXBUF, 0n);
    const frame = (i: number): Uint8Array => {
      const f = new Uint8Array(60 + (i % 100));
      f.fill(0xff, 0, 6);
      f[12] = 0x88;
      f[13] = 0xb5;
      new DataView(f.buffer).setUint32(14, i);
      return f;
    };
    // The device paused (a save holds it between passes until resume): a burst larger than the
    // tx ring and the backlog together fills the ring, then the backlog, then is dropped.
    await a.runner.save();
    for (let i = 0; i < 40; i++) listener!(frame(i));
    const dropped = a.stats.txDropped;
    assert.equal(a.stats.framesFromGuest, 40);
    assert.equal(a.backlogFrames, 8, 'the frames past the ring wait in the backlog, up to its size');
    assert.equal(a.stats.txBacklogPeak, 8);
    assert.ok(dropped > 0, 'past the backlog, frames are dropped and counted');
    assert.equal(a.stats.txBacklogged + dropped + a.guest.net.txOutstanding, 40, 'each frame is in the ring, in the backlog, or counted as dropped');
    a.runner.resume();
    const end = Date.now() + 10_000;
    while (back.length < 40 - dropped && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(back.length, 40 - dropped, 'every frame not dropped came back once');
    assert.equal(a.backlogFrames, 0);
    // In order, each once: the sequence numbers that came back are strictly increasing.
    const seqs = back.map((f) => new DataView(f.buffer, f.byteOffset).getUint32(14));
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, `frame ${seqs[i]} after ${seqs[i - 1]}`);
    const st = await a.deviceState();
    assert.equal(st!.stats.txFrames, 40 - dropped);
  } finally {
    await a.close();
  }
});

test('one TraceSession records both sides of the adapter with the device on its worker: every frame a complete, matched packet timeline', async () => {
  let listener: ((f: Uint8Array) => void) | null = null;
  const back: Uint8Array[] = [];
  const fake: V86Like = {
    add_listener: (_e, f) => (listener = f),
    remove_listener: () => (listener = null),
    bus: { send: (_e, v) => back.push(v as Uint8Array) },
  };
  const session = new TraceSession({ level: 'trace', sample: 1 });
  await assert.rejects(V86NetAdapter.attach(fake, { trace: session, device: { trace: session.setupFor('host') } }), (e: unknown) => e instanceof V86AdapterError && e.code === 'bad-options');
  const a = await V86NetAdapter.attach(fake, { trace: session, pollMs: 1, device: { backend: { type: 'loopback' } } });
  const N = 100;
  try {
    for (let i = 0; i < N; i++) {
      const f = new Uint8Array(80);
      f.fill(0xff, 0, 6);
      f[12] = 0x88;
      f[13] = 0xb5;
      new DataView(f.buffer).setUint32(14, i);
      listener!(f);
      // A few at a time, so the backlog never overflows whatever the worker's pace.
      if (i % 8 === 7) {
        const end = Date.now() + 10_000;
        while (back.length < i + 1 && Date.now() < end) await new Promise((r) => setTimeout(r, 2));
      }
    }
    const end = Date.now() + 10_000;
    while (back.length < N && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    assert.equal(back.length, N, 'every frame came back');
  } finally {
    await a.close();
  }
  const t = session.finish();
  assert.equal(t.mismatched, 0);
  assert.equal(t.outOfOrder, 0, 'the two threads\' points are in time order');
  assert.ok(t.packets.length >= N - 2, `a complete timeline per frame (driver add → device pop → … → reap): ${t.packets.length} of ${N}, ${t.incomplete} incomplete`);
  // The device slept between the bursts: its wake-ups (recorded on the worker) are in the timelines.
  assert.ok(t.packets.some((p) => p.points['device-wake'] !== undefined), 'device-side wake points recorded on the worker');
  assert.ok(t.packets.every((p) => p.lenBytes === 80), 'each packet carries its frame length from both sides');
});

test(`v86 boots Linux in Node with virtq's device (worker, host stack) as its network: ARP, ${PINGS} pings with 0 % loss, every frame once`, { skip: missing ?? false, timeout: 300_000 }, async (t) => {
  const dir = guestCache();
  if (dir === null) return t.skip(buildError!);
  const emu = newV86(dir, `VQCOUNT=${PINGS}`);
  const errors: string[] = [];
  const a = await V86NetAdapter.attach(emu, {
    device: { preset: 'vhost', mac: '52:54:00:12:34:56', backend: { type: 'host-stack', hostMac: '52:54:00:ab:cd:ef', hostIp: '10.0.2.2', guestIp: '10.0.2.15' } },
    onError: (m) => errors.push(m),
  });
  try {
    const t0 = performance.now();
    const out = await runGuest(emu);
    const ping = pingSummary(out);
    t.diagnostic(`guest done in ${((performance.now() - t0) / 1000).toFixed(1)} s; ping rtt min/avg/max ${ping.rtt} ms; adapter ${JSON.stringify(a.stats)}`);
    assert.match(line(out, 'VQ-ARPING'), /Received 1 response/i, 'the host stack answered the guest kernel\'s ARP request');
    assert.match(line(out, 'VQ-ARP'), /52:54:00:ab:cd:ef/i, 'the guest kernel learned the host stack\'s MAC');
    assert.equal(ping.transmitted, PINGS);
    assert.equal(ping.received, PINGS, 'every echo answered (0 % loss)');
    // Counts that stay put: the emulator stopped, every frame it sent taken by the device.
    await emu.stop();
    assert.ok(await a.drain(), 'the device took every frame v86 sent');
    const st = await a.deviceState();
    assert.ok(st !== null);
    assert.equal(a.stats.txDropped, 0);
    assert.equal(a.stats.txTooLong, 0);
    // Every frame once: what v86 sent is what the device took, what the device gave is what v86 got.
    assert.equal(st.stats.txFrames, a.stats.framesFromGuest);
    assert.equal(st.stats.txBytes, a.stats.bytesFromGuest);
    assert.equal(st.stats.rxFrames, a.stats.framesToGuest);
    assert.equal(st.stats.txDropped + st.stats.rxDropped, 0);
    assert.ok(st.hostStack!.stats['echoRequestsIn']! >= PINGS);
    assert.deepEqual(errors, []);
  } finally {
    await a.close();
    await emu.destroy();
  }
});

/** Checks both streams of the guest's output against what the TAP's far end saw. */
async function checkTcp(end: NetnsTcpEnd, out: string): Promise<void> {
  const [txBytes, txSha] = line(out, 'VQ-TCP-SHA').split(/\s+/);
  assert.equal(Number(txBytes), TCP_BYTES);
  assert.equal(line(out, 'VQ-TCP-SENT'), '0', 'nc sent the stream');
  const r = await end.result();
  assert.ok(r.sink, `the host end saw no stream end:\n${end.out}`);
  assert.equal(r.sink.bytes, TCP_BYTES, 'every byte arrived');
  assert.equal(r.sink.sha256, txSha, 'the bytes arrived intact');
  assert.ok(r.source, `the host end sent nothing:\n${end.out}`);
  const [rxBytes, rxSha] = line(out, 'VQ-TCP-RX').split(/\s+/);
  assert.equal(Number(rxBytes), TCP_BYTES, 'every byte reached the guest');
  assert.equal(rxSha, r.source.sha256, 'the bytes reached the guest intact');
}

test(`v86's guest moves TCP both ways through virtq's device on its worker with a real TAP behind it, every byte checked (${TCP_BYTES} bytes each way); closing releases the TAP`, { skip: tapMissing ?? false, timeout: 300_000 }, async (t) => {
  const dir = guestCache();
  if (dir === null) return t.skip(buildError!);
  const tapName = `vq86t${process.pid % 10000}`;
  const emu = newV86(dir, `VQCOUNT=50 VQIP=10.86.0.1 VQPEER=10.86.0.2 VQTCP=${TCP_BYTES} VQPORT=7070`);
  const far = await NetnsTcpEnd.create(`vq86-${process.pid}`, { bytes: TCP_BYTES });
  const errors: string[] = [];
  // The device worker opens the TAP at DRIVER_OK (the 'virtio-net-tap' kind, imported by the worker).
  const a = await V86NetAdapter.attach(emu, {
    pollMs: 1,
    device: { preset: 'vhost', mac: '52:54:00:12:34:56', backend: { type: 'tap', name: tapName } },
    onError: (m) => errors.push(m),
  });
  let closed = false;
  try {
    const end = Date.now() + 20_000;
    while (!existsSync(`/sys/class/net/${tapName}`) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(`/sys/class/net/${tapName}`), 'the device worker opened the TAP at DRIVER_OK');
    await far.start(tapName);
    const t0 = performance.now();
    const out = await runGuest(emu);
    t.diagnostic(`guest done in ${((performance.now() - t0) / 1000).toFixed(1)} s; adapter ${JSON.stringify(a.stats)}`);
    const ping = pingSummary(out);
    assert.equal(ping.received, ping.transmitted, 'the host kernel answered every ping');
    await checkTcp(far, out);
    assert.equal(a.stats.txDropped, 0);
    const st = await a.deviceState();
    assert.equal(st!.stats.txDropped + st!.stats.rxDropped, 0);
    assert.deepEqual(errors, []);
    await a.close();
    closed = true;
    // The worker closed its fd before it ended: the (non-persistent) TAP is gone from its namespace.
    const gone = spawnSync('ip', ['-n', far.ns, 'link', 'show', tapName], { encoding: 'utf8' });
    assert.notEqual(gone.status, 0, `the TAP outlived the adapter: ${gone.stdout}`);
  } finally {
    if (!closed) await a.close();
    await emu.destroy();
    await far.close();
  }
});

/** Bits of /sys/class/net/eth0/device/features (bit 0 first) that are set. */
function featureBits(s: string): Set<number> {
  const out = new Set<number>();
  for (let i = 0; i < s.length; i++) if (s[i] === '1') out.add(i);
  return out;
}

test(`route 2: the guest's own virtio_net drives virtq's device as a v86 PCI function (virtio-pci modern, inline, over v86's memory): offloads and mergeable rx negotiated, ARP, ${PINGS} pings, ${tapMissing === null ? 'TCP both ways through a TAP' : 'the host stack'}`, { skip: missing ?? false, timeout: 300_000 }, async (t) => {
  const dir = guestCache();
  if (dir === null) return t.skip(buildError!);
  const viaTap = tapMissing === null;
  const tapName = `vq86p${process.pid % 10000}`;
  const emu = newV86(dir, viaTap ? `VQCOUNT=${PINGS} VQIP=10.86.0.1 VQPEER=10.86.0.2 VQTCP=${TCP_BYTES} VQPORT=7070` : `VQCOUNT=${PINGS}`, 'none');
  await loadedOf.get(emu);
  let tap = null as TapDevice | null;
  const far = viaTap ? await NetnsTcpEnd.create(`vq86p-${process.pid}`, { bytes: TCP_BYTES }) : null;
  const dev = V86VirtioPci.attach(emu, {
    device: { preset: 'vhost', mac: '52:54:00:12:34:56', backend: { type: 'host-stack', hostMac: '52:54:00:ab:cd:ef', hostIp: '10.0.2.2', guestIp: '10.0.2.15' } },
    ...(viaTap
      ? {
          port: (features: bigint) => {
            tap?.close();
            tap = TapDevice.open(tapName, features);
            if (far !== null) void far.start(tapName).catch((e: unknown) => t.diagnostic(`TCP end: ${String(e)}`));
            return new TapPort(loadIo(), tap.fd, tap.name);
          },
        }
      : {}),
  });
  try {
    const t0 = performance.now();
    const out = await runGuest(emu);
    const ping = pingSummary(out);
    t.diagnostic(`guest done in ${((performance.now() - t0) / 1000).toFixed(1)} s; ping rtt min/avg/max ${ping.rtt} ms; ${dev.accesses} BAR accesses, ${dev.interrupts} interrupts; features 0x${dev.driverFeatures.toString(16)}`);
    // What the guest's virtio_net negotiated, as the guest reports it (§5.1.3 bits).
    const bits = featureBits(line(out, 'VQ-FEATURES'));
    for (const [name, bit] of [['CSUM', 0], ['GUEST_CSUM', 1], ['MAC', 5], ['GUEST_TSO4', 7], ['HOST_TSO4', 11], ['MRG_RXBUF', 15], ['STATUS', 16], ['EVENT_IDX', 29], ['VERSION_1', 32]] as const) {
      assert.ok(bits.has(bit), `the guest negotiated ${name} (bit ${bit}): ${line(out, 'VQ-FEATURES')}`);
    }
    assert.equal(dev.driverFeatures & NetF.MRG_RXBUF, NetF.MRG_RXBUF, 'virtq saw the same');
    assert.match(line(out, 'VQ-ARPING'), /Received 1 response/i);
    assert.equal(ping.transmitted, PINGS);
    assert.equal(ping.received, PINGS, 'every echo answered (0 % loss)');
    const st = await dev.deviceState();
    assert.ok(st !== null);
    assert.equal(st.stats.queueErrors, 0);
    assert.equal(st.stats.txDropped + st.stats.rxDropped, 0);
    assert.deepEqual(dev.pci.issues, {}, 'the guest driver made no access the transport had to ignore');
    if (far !== null) await checkTcp(far, out);
    else assert.ok(st.hostStack!.stats['echoRequestsIn']! >= PINGS);
  } finally {
    await dev.close();
    await emu.destroy();
    tap?.close();
    await far?.close();
  }
});
