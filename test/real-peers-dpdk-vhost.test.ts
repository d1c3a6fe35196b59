// virtq's *driver* against a real device: DPDK's own vhost-user backend (net_vhost in
// dpdk-testpmd, io forwarding, so every frame comes back unchanged) with virtq as the vhost-user
// frontend. The traffic runs through virtq's one driver stack, as for every other peer:
// NetDriverService (NetDriver + the guest's NetEndpoint + the policy layer's DriverLoop) on the
// frontend's memfd-backed guest memory, sleeping in poll(2) on the call eventfds DPDK writes and
// ringing the kick eventfds DPDK reads (an FdDoorbell). The endpoint is addressed to itself, so
// the frames DPDK reflects are its own: its stream source sends numbered TCP-like segments and
// its stream sink checks that every one comes back once, in order (sequence numbers) and intact
// (payload pattern and TCP checksum); the sink's ACKs, reflected the same way, open the source's
// window. Run under two presets (vhost and rfc-baseline); DPDK's counters and GET_VRING_BASE
// must agree with the driver's. Skips when the addon, root or dpdk-testpmd is missing.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Arena } from '../src/memory/index.js';
import { PackedDriverQueue, compactRingBytes, compactRingLayout, openDriverQueue, type RingKind } from '../src/virtqueue/index.js';
import { NetF, VirtioF, describeFeatures, negotiate } from '../src/net/features.js';
import { NetDriverService, txLayoutOf } from '../src/net/driver-service.js';
import { BIG_LOCK_WORDS, BigLock, performanceClock, resolvePolicy, type PolicyConfig } from '../src/policy/index.js';
import { FdDoorbell } from '../src/backend/fd-doorbell.js';
import { loadIo } from '../src/backend/native.js';
import { VHOST_USER_F_PROTOCOL_FEATURES } from '../src/vhost-user/index.js';
import { VhostUserFrontend } from '../src/vhost-user/frontend.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const missing = firstMissing(needAddon(), needRoot(), needTool('dpdk-testpmd', 'dpdk-dev'), needTool('stdbuf', 'coreutils'));
/** Stream frames per preset, sized so both runs together stay a few seconds (VIRTQ_DPDK_FRAMES overrides both). */
const FRAMES: Record<'vhost' | 'rfc-baseline', number> = { vhost: 100_000, 'rfc-baseline': 20_000 };
const FRAMES_OVERRIDE = process.env['VIRTQ_DPDK_FRAMES'];
/** The stream's MSS: small, so the run counts frames (64-byte payloads, 118-byte frames) rather than bytes. */
const MSS = 64;
const RX = 0;
const TX = 1;
const MAC = new Uint8Array([0x02, 0, 0, 0x77, 0x03, 0x01]);
const IP = (10 << 24) | (77 << 16) | (3 << 8) | 1;
const SINK_PORT = 5001;
const PAGE = 4096;

/**
 * What this driver accepts under a policy, as the engine's guests do (net-common netFeatures):
 * event idx with the eventIdx interrupt mode, mergeable rx buffers and the guest-side TSO bits as
 * the preset says, checksum offload both ways. No MTU/MAC (they live in config space, which this
 * frontend does not read), no INDIRECT (no indirect area planned here); the packed ring and IN_ORDER are added per run.
 */
function acceptedFeatures(p: PolicyConfig): bigint {
  let f = VirtioF.VERSION_1 | NetF.CSUM | NetF.GUEST_CSUM | VHOST_USER_F_PROTOCOL_FEATURES;
  if (p.interrupts.mode === 'eventIdx') f |= VirtioF.EVENT_IDX;
  if (p.dataPath.mergeableRxBuffers) f |= NetF.MRG_RXBUF;
  if (p.dataPath.gso) f |= NetF.GUEST_TSO4 | NetF.GUEST_TSO6 | NetF.HOST_TSO4 | NetF.HOST_TSO6;
  return f;
}

const featureNames = (f: bigint): string =>
  describeFeatures(f)
    .map((n) => (n === 'bit 30' ? 'PROTOCOL_FEATURES' : n))
    .join(' ');

interface Testpmd {
  sock: string;
  output(): string;
  /** SIGINT (testpmd prints its accumulated statistics), then cleans up; returns the output. */
  stop(): Promise<string>;
}

/** testpmd with one net_vhost port; `tso` offers HOST_TSO4/6 (net_vhost's tso devarg, off by default). */
async function startTestpmd(tag: string, tso: boolean): Promise<Testpmd> {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-dpdkdev-'));
  const sock = join(dir, 'vhost.sock');
  const prefix = `virtq-dev-${process.pid}-${tag}`;
  const pmd = spawn('stdbuf', ['-oL', 'dpdk-testpmd', '-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_vhost0,iface=${sock},queues=1${tso ? ',tso=1' : ''}`, '--', '--forward-mode=io', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '3600'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  pmd.stdout.on('data', (d: Buffer) => (out += d.toString('latin1')));
  pmd.stderr.on('data', (d: Buffer) => (out += d.toString('latin1')));
  const exited = new Promise<number | null>((r) => pmd.on('exit', (c) => r(c)));
  for (let i = 0; i < 200 && !out.includes('Port 0:'); i++) await new Promise((r) => setTimeout(r, 50));
  return {
    sock,
    output: () => out,
    stop: async () => {
      pmd.kill('SIGINT');
      const kill = setTimeout(() => pmd.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(kill);
      rmSync(dir, { recursive: true, force: true });
      rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
      return out;
    },
  };
}

/**
 * runPreset, with one more try (a fresh testpmd) when nothing at all came back: testpmd's vhost
 * port enables its queues one after the other as it starts, and under load its io forwarding
 * took the first window from our tx ring while its rx side still dropped (DPDK's startup, not
 * virtq's data path; the stream never retransmits). Any other failure, or a second one, fails.
 */
async function runPresetOnce(t: TestContext, ...args: Parameters<typeof runPreset> extends [TestContext, ...infer R] ? R : never): Promise<void> {
  try {
    await runPreset(t, ...args);
  } catch (e) {
    if (!(e instanceof Error) || !/the stream finished before the deadline \(sink 0\//.test(e.message)) throw e;
    t.diagnostic(`nothing came back on the first try (DPDK dropped the start-up window); a fresh testpmd runs it again. First try: ${e.message.slice(0, 300)}`);
    await runPreset(t, ...args);
  }
}

/**
 * One run: `frames` MSS-sized segments' worth of stream under `presetName`. With `tso` DPDK also
 * offers HOST_TSO4/6, so the source sends GSO frames (up to 64 KiB); DPDK's io forwarding hands
 * each back as one frame (mergeable rx buffers), its checksum completed, and the sink checks the
 * same stream bytes.
 */
async function runPreset(t: TestContext, presetName: 'vhost' | 'rfc-baseline', frames: number, tso = false, ring: RingKind = 'split', inOrder = false): Promise<void> {
  const policy = resolvePolicy(presetName);
  const pmd = await startTestpmd(`${presetName}${tso ? '-tso' : ''}-${ring}${inOrder ? '-io' : ''}`, tso);
  const name = `${presetName}${tso ? ' + DPDK tso=1' : ''}${ring === 'packed' ? ' packed ring' : ''}${inOrder ? ' in-order' : ''}`;
  let fe: VhostUserFrontend | null = null;
  let summary: { txFrames: number; rxFrames: number } | null = null;
  try {
    const rxSize = policy.dataPath.rxRingSize;
    const txSize = policy.dataPath.txRingSize;
    const txRing = Math.ceil(compactRingBytes(ring, rxSize) / 64) * 64;
    const arenaBase = Math.ceil((txRing + compactRingBytes(ring, txSize)) / PAGE) * PAGE;
    const rxMemoryBytes = rxSize * PAGE; // a page per rx buffer covers mergeable and small buffers
    const txMemoryBytes = txSize * 2048; // a frame of at most 1518 bytes plus its header per tx buffer
    const arenaBytes = rxMemoryBytes + txMemoryBytes + 2 * PAGE;
    fe = await VhostUserFrontend.connect(pmd.sock, arenaBase + arenaBytes);
    const accepted = acceptedFeatures(policy) | (ring === 'packed' ? VirtioF.RING_PACKED : 0n) | (inOrder ? VirtioF.IN_ORDER : 0n);
    const features = fe.setup(accepted);
    const agreed = negotiate(fe.offeredFeatures, accepted);
    if (!agreed.ok) throw agreed.error;
    assert.ok(features & VirtioF.VERSION_1, 'DPDK accepts VERSION_1');
    t.diagnostic(`${name}: DPDK offered ${featureNames(fe.offeredFeatures)}`);
    t.diagnostic(`${name}: negotiated 0x${features.toString(16)}: ${featureNames(features)}`);

    const mem = fe.memory;
    const eventIdx = (features & VirtioF.EVENT_IDX) !== 0n;
    if (ring === 'packed') assert.ok(features & VirtioF.RING_PACKED, 'DPDK negotiated the packed ring');
    if (inOrder) assert.ok(features & VirtioF.IN_ORDER, 'DPDK negotiated IN_ORDER');
    const rxL = compactRingLayout(ring, rxSize, 0, RX);
    const txL = compactRingLayout(ring, txSize, txRing, TX);
    const rxq = openDriverQueue<number>(mem, rxL, { index: RX, eventIdx, inOrder });
    const txq = openDriverQueue<number>(mem, txL, { index: TX, eventIdx, inOrder });
    fe.startRing(RX, rxL);
    fe.startRing(TX, txL);
    // DPDK's vhost library takes the rings as ready ("virtio is now ready for processing") and
    // testpmd then enables the port's queues (queue state / link state change events); frames
    // sent before that can be dequeued from tx while rx is not yet served, and DPDK drops them —
    // a stream that never retransmits would wait forever (seen under load). So the stream starts
    // after the ready line and, when testpmd reports one, the state event that follows it (a
    // re-setup of a port already up reports none: then it waits 5 s at most).
    const ready = (): number => pmd.output().lastIndexOf('virtio is now ready for processing');
    for (let i = 0; i < 600 && ready() < 0; i++) await new Promise((r) => setTimeout(r, 50));
    assert.ok(ready() >= 0, `DPDK took the rings as ready within 30 s:\n${pmd.output().slice(-2000)}`);
    const stateAfterReady = (): boolean => /(link|queue) state( change)? event/.test(pmd.output().slice(ready()));
    for (let i = 0; i < 100 && !stateAfterReady(); i++) await new Promise((r) => setTimeout(r, 50));
    const frontend = fe;

    // Stops the loop once the whole stream came back and was acknowledged, or at the deadline
    // (the loop runs on this thread, so the test's own timeout cannot fire while it does).
    const deadlineMs = Date.now() + 60_000; // a run takes seconds; two tries fit the test timeout
    let service: NetDriverService | null = null;
    const finished = (): boolean => service !== null && service.endpoint.sourceDone && (service.endpoint.sink?.done ?? false);
    const stopped = (): boolean => finished() || Date.now() > deadlineMs;
    const doorbell = new FdDoorbell({ io: loadIo(), waitFds: () => frontend.callFds, ringFds: () => frontend.kickFds, stopped });
    // The QEMU-2008 global lock (rfc-baseline) guards the device model against the vcpu; DPDK
    // cannot take it, so it is the driver's alone: its exits still take and release it.
    const lock = policy.dataPath.lock === 'none' ? null : new BigLock(new Int32Array(new SharedArrayBuffer(BIG_LOCK_WORDS * 4)), 1, performanceClock);
    service = new NetDriverService({
      mem,
      arena: new Arena(mem, arenaBase, arenaBytes),
      rxq,
      txq,
      features,
      // Addressed to itself: the frames DPDK reflects unchanged are for this same endpoint.
      endpoint: { mac: MAC, ip: IP, peerMac: MAC, peerIp: IP, mtu: MSS + 40 },
      policy,
      kick: doorbell,
      irq: doorbell,
      lock,
      stopped,
      txLayout: txLayoutOf(policy),
      rxMemoryBytes,
      txMemoryBytes,
      rxIndex: RX,
      txIndex: TX,
    });
    const ep = service.endpoint;
    const totalBytes = frames * MSS;
    const sink = ep.startSink({ port: SINK_PORT, verify: true, ackEveryBytes: 32 * MSS, expectBytes: totalBytes });
    // At most half the smaller ring's worth of segments unacknowledged: with the ACKs in flight
    // they always fit the posted rx buffers, and DPDK drops what the receive ring cannot take.
    const source = ep.startSource({ srcPort: 40_000, dstPort: SINK_PORT, msgBytes: totalBytes, totalBytes, windowBytes: (Math.min(rxSize, txSize) / 2) * MSS });

    // Receive buffers are posted and published before the first frame goes out: DPDK's io
    // forwarding polls and hands a frame back at once, and a frame that finds no receive buffer
    // is dropped (the stream never retransmits).
    service.driver.fillRx();
    service.driver.flushRx();
    const t0 = performance.now();
    service.run();
    const seconds = (performance.now() - t0) / 1000;
    const txBase = fe.stopRing(TX);
    const rxBase = fe.stopRing(RX);
    const d = service.driver.stats;
    const loop = service.loop.counters;
    summary = { txFrames: d.txFrames, rxFrames: d.rxFrames };
    t.diagnostic(
      `${name}: ${sink.segments} stream frames (${source.gsoFrames} GSO) back in ${seconds.toFixed(1)} s, ${sink.payloadBytes} bytes = ${frames} × MSS ${MSS} (${sink.acksSent} ACKs); driver tx ${d.txFrames} rx ${d.rxFrames} ` +
        `(rx NEEDS_CSUM ${d.rxNeedsCsum}, DATA_VALID ${d.rxDataValid}); kicks ${loop.kicks} (suppressed ${loop.kicksSuppressed}), interrupts ${loop.interruptsTaken}; ` +
        `GET_VRING_BASE tx ${txBase} rx ${rxBase}`,
    );
    assert.ok(!stopped() || finished(), `the stream finished before the deadline (sink ${sink.payloadBytes}/${totalBytes} bytes, source acked ${source.ackedBytes}); testpmd said:\n${pmd.output().slice(-3000)}`);
    assert.equal(sink.errors, 0, `every frame came back once, in order and intact (first error: ${sink.firstError})`);
    assert.equal(sink.segments, source.frames, 'every stream frame came back');
    assert.equal(sink.payloadBytes, totalBytes);
    if (tso) assert.ok(source.gsoFrames > 0 && (features & NetF.HOST_TSO4) !== 0n, 'HOST_TSO4 negotiated and GSO frames sent');
    else assert.equal(source.frames, frames, 'one frame per MSS segment (no GSO frames sent)');
    assert.equal(source.badAcks, 0, 'every reflected ACK was one the source could take');
    assert.deepEqual(d.rxErrors, {}, 'no bad header or num_buffers from DPDK');
    assert.equal(ep.stats.parseErrors, 0);
    assert.equal(ep.stats.ignored, 0, 'nothing came back that the endpoint did not send');
    assert.equal(d.rxFrames, d.txFrames, 'each frame sent (stream and ACKs) came back exactly once');
    if (txq instanceof PackedDriverQueue && rxq instanceof PackedDriverQueue) {
      // Packed: the base is a ring position with its wrap counter in bit 15 (vhost-user "Ring states").
      assert.equal(txBase & 0xffff, txq.availPosition, 'DPDK consumed exactly the descriptors sent, wrap counter included');
      assert.equal(rxBase & 0xffff, rxq.usedPosition, 'DPDK stopped where the driver reaped its last rx buffer, wrap counter included');
    } else {
      assert.equal(txBase, d.txFrames & 0xffff, 'DPDK consumed exactly the chains sent (16-bit index, wrapped)');
      assert.equal(rxBase, d.rxBuffersReaped & 0xffff, 'DPDK used exactly the rx buffers the driver reaped');
    }
  } finally {
    fe?.close();
    await pmd.stop();
  }
  const out = pmd.output();
  const tail = out.slice(out.indexOf('Accumulated forward statistics'));
  const rx = Number(/RX-packets:\s+(\d+)/.exec(tail)?.[1]);
  const tx = Number(/TX-packets:\s+(\d+)/.exec(tail)?.[1]);
  t.diagnostic(`${name}: testpmd (net_vhost, io): RX ${rx} TX ${tx}`);
  assert.ok(summary !== null);
  assert.equal(rx, summary.txFrames, 'testpmd received every frame the driver sent');
  assert.equal(tx, summary.rxFrames, 'testpmd sent back every frame the driver received');
}

for (const presetName of ['vhost', 'rfc-baseline'] as const) {
  const frames = Number(FRAMES_OVERRIDE ?? FRAMES[presetName]);
  test(`virtq's one driver (NetDriver + DriverLoop, preset ${presetName}) streams ${frames} frames through DPDK's vhost-user device and gets every one back once, in order and intact`, { skip: missing ?? false, timeout: 150_000 }, async (t) => {
    await runPresetOnce(t, presetName, frames);
  });
}

test(`with DPDK offering TSO (net_vhost tso=1), virtq's driver sends GSO frames of up to 64 KiB and gets the whole stream back intact in mergeable rx buffers`, { skip: missing ?? false, timeout: 150_000 }, async (t) => {
  await runPresetOnce(t, 'vhost', Number(FRAMES_OVERRIDE ?? 200_000), true);
});

for (const inOrder of [false, true]) {
  test(`on the packed ring${inOrder ? ' with IN_ORDER' : ''}, virtq's one driver streams frames through DPDK's vhost-user device and gets every one back once, in order and intact`, { skip: missing ?? false, timeout: 150_000 }, async (t) => {
    await runPresetOnce(t, 'vhost', Number(FRAMES_OVERRIDE ?? 50_000), false, 'packed', inOrder);
  });
}
