// virtq's vhost-user service under real use (issue 15). Reconnects: a frontend that reconnects
// many times must not leak the guest memory each connection mapped (issue 15: ten kill -9 cycles of testpmd left eleven memfd mappings and
// ~520 MB of Shmem per connection behind). virtq's own frontend (VhostUserFrontend, memfd guest
// memory) connects to `virtq vhost-user --backend reflect` in this process 50 times, moves
// frames through both rings each time and closes; afterwards the process maps exactly as many
// memfd regions as before and its shared RSS is back where it started (plain RSS within noise).
// Backpressure: a sender that never gives the device receive buffers (virtq's frontend, and
// DPDK testpmd in --forward-mode=txonly) keeps sending through the reflect port, which drops and
// counts what it cannot hold, instead of stalling the transmit ring; a TAP nobody reads (a guest
// without rx buffers) keeps frames in the kernel's queue and its overflow is counted
// (TapPort kernelTxDropped). Client mode against testpmd server=1, and kill -9 cycles of testpmd
// that must leave no mapping behind.
// Skips with a message when the addon (or, for testpmd and the TAP, root, dpdk-testpmd, /dev/net/tun) is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVhostUser } from '../src/vhost-user/index.js';
import { VhostUserFrontend } from '../src/vhost-user/frontend.js';
import { VHOST_USER_F_PROTOCOL_FEATURES } from '../src/vhost-user/messages.js';
import { DriverQueue, SplitLayout } from '../src/virtqueue/index.js';
import { VirtioF } from '../src/net/features.js';
import { loadIo } from '../src/backend/native.js';
import { TapDevice } from '../src/backend/tap.js';
import { TapPort } from '../src/backend/tap-port.js';
import { firstMissing, needAddon, needRoot, needTool } from './support/real-peers.js';

const MEMFD_NAME = 'virtq-guest'; // VhostUserFrontend's memfd (both its mapping and the server's show it)
const MEM_BYTES = 4 << 20;
const Q = 256;
const FRAME_BYTES = 1514;
const HDR_BYTES = 12; // virtio_net_hdr v1 (VERSION_1, no mergeable buffers)

/** Mappings of our frontends' memfds in this process (/proc/self/maps names them "/memfd:NAME (deleted)"). */
function memfdMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes(`/memfd:${MEMFD_NAME}`)).length;
}

/** A field of /proc/self/status in KiB (VmRSS, RssShmem). */
function statusKiB(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 5));
  }
  return true;
}

/** One connection: handshake, both rings, `Q` frames reflected back, close. Returns frames received. */
async function oneConnection(path: string): Promise<number> {
  const fe = await VhostUserFrontend.connect(path, MEM_BYTES, 20_000);
  try {
    fe.setup(VirtioF.VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES);
    const ringBytes = SplitLayout.packedBytes(Q);
    const rxL = SplitLayout.packedAt(Q, 0, 0);
    const txL = SplitLayout.packedAt(Q, ringBytes, 1);
    const rxq = new DriverQueue<number>(fe.memory, rxL, { index: 0 });
    const txq = new DriverQueue<number>(fe.memory, txL, { index: 1 });
    const rxBase = 2 * ringBytes;
    const txBase = rxBase + Q * 2048;
    // The guest touches all of its memory, as a booted guest does: a leaked mapping would hold it.
    fe.memory.fill(txBase, MEM_BYTES - txBase, 0x5a);
    fe.startRing(0, rxL);
    fe.startRing(1, txL);
    for (let i = 0; i < Q; i++) rxq.add([], [{ addr: rxBase + i * 2048, len: 2048 }], i);
    rxq.publish();
    fe.kick(0);
    for (let i = 0; i < Q; i++) {
      const at = txBase + i * 2048;
      fe.memory.fill(at, HDR_BYTES, 0); // a plain frame: no offloads
      txq.add([{ addr: at, len: HDR_BYTES + FRAME_BYTES }], [], i);
    }
    txq.publish();
    fe.kick(1);
    let got = 0;
    const ok = await waitFor(() => {
      while (rxq.reap() !== null) got++;
      while (txq.reap() !== null);
      return got === Q;
    }, 20_000);
    assert.ok(ok, `only ${got} of ${Q} frames came back`);
    return got;
  } finally {
    fe.close();
  }
}

test('50 reconnects of a frontend that moved frames leave no memfd mapping behind and shared RSS where it started', { skip: needAddon() ?? false, timeout: 300_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-re-'));
  const path = join(dir, 'vhu.sock');
  let disconnects = 0;
  const errors: string[] = [];
  const h = await startVhostUser({ socketPath: path, backend: 'reflect', onDisconnect: (e, _f, _feat, reason) => (disconnects++, e !== null && errors.push(reason)) });
  const mapsBefore = memfdMappings();
  let shmemWarm = 0;
  let rssWarm = 0;
  let r;
  try {
    for (let i = 0; i < 50; i++) {
      assert.equal(await oneConnection(path), Q);
      // The server reports the end of a connection, then resets the backend (releasing its
      // mappings): wait for the count, not for a fixed time.
      assert.ok(await waitFor(() => disconnects === i + 1, 20_000), `connection ${i} not reported closed`);
      const released = await waitFor(() => memfdMappings() === mapsBefore, 10_000);
      assert.ok(released, `after connection ${i} the process still maps ${memfdMappings() - mapsBefore} more memfd regions than before`);
      if (i === 4) {
        // After a warm-up (JIT, worker heap, ring buffers) the steady state is measured.
        shmemWarm = statusKiB('RssShmem');
        rssWarm = statusKiB('VmRSS');
      }
    }
  } finally {
    r = await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const shmemAfter = statusKiB('RssShmem');
  const rssAfter = statusKiB('VmRSS');
  t.diagnostic(`memfd mappings before ${mapsBefore}, after ${memfdMappings()}; RssShmem after 5 cycles ${shmemWarm} KiB, after 50 ${shmemAfter} KiB; VmRSS ${rssWarm} → ${rssAfter} KiB; server mapped ${r.backend.regionsMapped} regions, released ${r.backend.regionsUnmapped}`);
  assert.deepEqual(errors, [], 'every connection ended with the frontend closing it');
  assert.equal(r.server.connections, 50);
  assert.equal(memfdMappings(), mapsBefore, 'memfd mappings back to the starting count');
  assert.equal(r.backend.regionsUnmapped, r.backend.regionsMapped, 'the server released every region it mapped');
  assert.equal(r.backend.regionsMapped, 50);
  // Each connection's guest touched 4 MiB of shared memory: 45 leaked would be 180 MiB.
  assert.ok(shmemAfter - shmemWarm < 8 * 1024, `RssShmem grew ${shmemAfter - shmemWarm} KiB over 45 reconnects`);
  assert.ok(rssAfter - rssWarm < 96 * 1024, `VmRSS grew ${rssAfter - rssWarm} KiB over 45 reconnects`);
  assert.ok(r.frames.rxFrames >= 50 * Q && r.frames.txFrames >= 50 * Q);
});

test('a sender that never posts receive buffers keeps sending through the reflect port; what the port cannot hold is dropped and counted', { skip: needAddon() ?? false, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-bp-'));
  const path = join(dir, 'vhu.sock');
  const h = await startVhostUser({ socketPath: path, backend: 'reflect' });
  const rounds = 20;
  let r;
  const fe = await VhostUserFrontend.connect(path, MEM_BYTES, 20_000);
  try {
    fe.setup(VirtioF.VERSION_1 | VHOST_USER_F_PROTOCOL_FEATURES);
    const ringBytes = SplitLayout.packedBytes(Q);
    const rxL = SplitLayout.packedAt(Q, 0, 0);
    const txL = SplitLayout.packedAt(Q, ringBytes, 1);
    const txq = new DriverQueue<number>(fe.memory, txL, { index: 1 });
    const txBase = 2 * ringBytes;
    fe.startRing(0, rxL); // started, never given a buffer
    fe.startRing(1, txL);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < Q; i++) {
        const at = txBase + i * 2048;
        fe.memory.fill(at, HDR_BYTES + FRAME_BYTES, round);
        fe.memory.fill(at, HDR_BYTES, 0);
        txq.add([{ addr: at, len: HDR_BYTES + FRAME_BYTES }], [], i);
      }
      txq.publish();
      fe.kick(1);
      let used = 0;
      const ok = await waitFor(() => {
        while (txq.reap() !== null) used++;
        return used === Q;
      }, 20_000);
      assert.ok(ok, `round ${round}: the device consumed only ${used} of ${Q} chains (stalled)`);
    }
  } finally {
    fe.close();
    await waitFor(() => false, 200);
    r = await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(r.frames.txFrames, rounds * Q);
  assert.ok(r.reflect !== null);
  assert.equal(r.reflect.reflected + r.reflect.dropsFull, rounds * Q, 'each frame waits in the port or is counted as dropped');
  assert.equal(r.reflect.dropsFull, rounds * Q - 1024, 'the port holds 1024 frames, the rest are counted drops');
});

const dpdkMissing = firstMissing(needAddon(), needRoot(), needTool('dpdk-testpmd', 'dpdk-dev'));

test('DPDK testpmd --forward-mode=txonly against the reflect port keeps sending; the frames its receive ring cannot take are dropped and counted', { skip: dpdkMissing ?? false, timeout: 90_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-txonly-'));
  const path = join(dir, 'vhu.sock');
  const prefix = `virtq-txonly-${process.pid}`;
  const h = await startVhostUser({ socketPath: path, backend: 'reflect' });
  let output = '';
  const runMs = 3000;
  try {
    const pmd = spawn(
      'dpdk-testpmd',
      ['-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_virtio_user0,path=${path},queues=1,queue_size=256`, '--', '--forward-mode=txonly', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '60'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    pmd.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
    pmd.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
    const exited = new Promise<number | null>((res) => pmd.on('exit', (code) => res(code)));
    const timer = setTimeout(() => pmd.kill('SIGINT'), runMs);
    const hard = setTimeout(() => pmd.kill('SIGKILL'), runMs + 30_000);
    const code = await exited;
    clearTimeout(timer);
    clearTimeout(hard);
    assert.equal(code, 0, `testpmd exited with ${code}:\n${output.slice(-2000)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  }
  const r = await h.stop();
  const i = output.indexOf('Accumulated forward statistics for all ports');
  assert.ok(i >= 0, `no totals in testpmd output:\n${output.slice(-2000)}`);
  const tx = Number(/TX-packets:\s+(\d+)/.exec(output.slice(i))?.[1] ?? NaN);
  t.diagnostic(`testpmd txonly sent ${tx}; virtq took ${r.frames.txFrames} (+${r.backend.txLeftInRingAtStop} in the ring at stop), delivered ${r.frames.rxFrames}, reflect port dropped ${r.reflect?.dropsFull} (full)`);
  // Stalled, testpmd would stop at one tx ring plus the port's 1024 slots; on a quiet machine it sends millions.
  assert.ok(tx > 20_000, `testpmd sent only ${tx}`);
  assert.equal(r.frames.txFrames + r.backend.txLeftInRingAtStop, tx, 'every frame testpmd sent reached virtq or was in the ring at stop');
  assert.ok(r.reflect !== null && r.reflect.dropsFull > 0, 'drops are counted');
  assert.equal(r.reflect.reflected + r.reflect.dropsFull, r.frames.txFrames);
});

/** Runs testpmd (macswap) as a vhost-user *server* (virtio_user server=1) on `path` for `runMs`; returns its output. */
async function testpmdServer(path: string, prefix: string, runMs: number): Promise<string> {
  let output = '';
  const pmd = spawn(
    'dpdk-testpmd',
    ['-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_virtio_user0,path=${path},server=1,queues=1,queue_size=256`, '--', '--forward-mode=macswap', '--tx-first', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '60'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  pmd.stdout.on('data', (d: Buffer) => (output += d.toString('latin1')));
  pmd.stderr.on('data', (d: Buffer) => (output += d.toString('latin1')));
  const exited = new Promise<number | null>((res) => pmd.on('exit', (code) => res(code)));
  // testpmd's stdout is a pipe (block-buffered): nothing to wait on. virtq connects within its
  // back-off once the socket appears; the run is long enough for that and for traffic.
  const timer = setTimeout(() => pmd.kill('SIGINT'), runMs);
  const hard = setTimeout(() => pmd.kill('SIGKILL'), runMs + 30_000);
  const code = await exited;
  clearTimeout(timer);
  clearTimeout(hard);
  rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
  assert.equal(code, 0, `testpmd exited with ${code}:\n${output.slice(-2000)}`);
  return output;
}

function forwardTotals(output: string): { rx: number; tx: number; dropped: number } {
  const i = output.indexOf('Accumulated forward statistics for all ports');
  assert.ok(i >= 0, `no totals in testpmd output:\n${output.slice(-2000)}`);
  const s = output.slice(i);
  const n = (re: RegExp): number => Number(re.exec(s)?.[1] ?? NaN);
  return { rx: n(/RX-packets:\s+(\d+)/), tx: n(/TX-packets:\s+(\d+)/), dropped: n(/RX-dropped:\s+(\d+)/) + n(/TX-dropped:\s+(\d+)/) };
}

test('client mode: virtq connects to testpmd listening as the vhost-user server (server=1), forwards its traffic, and rejoins a restarted testpmd', { skip: dpdkMissing ?? false, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-client-'));
  const path = join(dir, 'pmd.sock');
  const reasons: string[] = [];
  const frames: number[] = [];
  // virtq starts first: it retries (with back-off) until testpmd's socket appears.
  const h = await startVhostUser({ socketPath: path, client: true, backend: 'reflect', onDisconnect: (_e, f, _feat, reason) => (reasons.push(reason), frames.push(f.txFrames)) });
  const outs: string[] = [];
  let r;
  try {
    for (let run = 0; run < 2; run++) {
      outs.push(await testpmdServer(path, `virtq-client-${process.pid}-${run}`, 6000));
      assert.ok(await waitFor(() => reasons.length === run + 1, 20_000), `virtq did not see testpmd run ${run} end`);
    }
  } finally {
    r = await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const totals = outs.map(forwardTotals);
  t.diagnostic(`testpmd runs: ${totals.map((x) => `TX ${x.tx} RX ${x.rx} dropped ${x.dropped}`).join('; ')}; virtq connections ${r.server.connections}, refused connects ${r.server.connectFailures}; reasons: ${reasons.join(' | ')}`);
  assert.equal(r.server.connections, 2, 'one connection per testpmd run');
  for (const [i, x] of totals.entries()) {
    assert.ok(x.tx >= 20_000, `run ${i}: too few packets moved: ${x.tx}`);
    assert.equal(x.dropped, 0, `run ${i}: testpmd dropped`);
  }
  assert.ok(frames[1]! > frames[0]!, 'the second connection moved frames too');
  assert.match(reasons[0]!, /reconnecting to .* in 100 ms/);
  assert.equal(r.backend.regionsUnmapped, r.backend.regionsMapped, 'each connection released its mappings');
});

/** Every memfd mapping in this process (DPDK's guest memory as virtq maps it, ours). */
function allMemfdMappings(): number {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.includes('/memfd:')).length;
}

test('testpmd killed with kill -9 three times: each time virtq releases the memory it mapped and serves the next one', { skip: dpdkMissing ?? false, timeout: 180_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-vhu-kill-'));
  const path = join(dir, 'vhu.sock');
  let disconnects = 0;
  const h = await startVhostUser({ socketPath: path, backend: 'reflect', onDisconnect: () => disconnects++ });
  const before = allMemfdMappings();
  const moved: number[] = [];
  let r;
  try {
    for (let i = 0; i < 3; i++) {
      const prefix = `virtq-kill-${process.pid}-${i}`;
      const pmd = spawn('dpdk-testpmd', ['-l', '0-1', '--no-pci', '--no-huge', '-m', '512', '--file-prefix', prefix, `--vdev=net_virtio_user0,path=${path},queues=1,queue_size=256`, '--', '--forward-mode=macswap', '--tx-first', '--nb-cores=1', '--total-num-mbufs=16384', '--stats-period', '60'], { stdio: 'ignore' });
      const exited = new Promise<void>((res) => pmd.on('exit', () => res()));
      // Killed once virtq mapped its memory (a frontend that crashes mid-run).
      const mapped = await waitFor(() => allMemfdMappings() > before, 30_000);
      await new Promise((res) => setTimeout(res, 1000));
      pmd.kill('SIGKILL');
      await exited;
      rmSync(`/var/run/dpdk/${prefix}`, { recursive: true, force: true });
      assert.ok(mapped, `testpmd run ${i} never connected`);
      assert.ok(await waitFor(() => disconnects === i + 1, 20_000), `virtq did not see testpmd run ${i} die`);
      assert.ok(await waitFor(() => allMemfdMappings() === before, 10_000), `after kill -9 number ${i + 1} the process still maps ${allMemfdMappings() - before} memfd regions more than before`);
      moved.push(i);
    }
  } finally {
    r = await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  t.diagnostic(`memfd mappings before ${before}, after ${allMemfdMappings()}; regions mapped ${r.backend.regionsMapped}, released ${r.backend.regionsUnmapped}; frames ${r.frames.txFrames}`);
  assert.equal(r.server.connections, 3);
  assert.equal(r.backend.regionsUnmapped, r.backend.regionsMapped);
  assert.ok(r.backend.regionsMapped >= 3);
});

const tapMissing = firstMissing(needAddon(), needRoot(), existsSync('/dev/net/tun') ? null : '/dev/net/tun missing');

test('frames for a guest with no receive buffers wait in the kernel TAP queue, and what overflows it is counted as the TAP port\'s kernelTxDropped', { skip: tapMissing ?? false, timeout: 60_000 }, async () => {
  const name = `vqdrop${process.pid % 10000}`;
  const tap = TapDevice.open(name, 0n);
  const sock = createSocket('udp4');
  try {
    execFileSync('ip', ['addr', 'add', '10.83.0.1/24', 'dev', name]);
    execFileSync('ip', ['link', 'set', name, 'txqueuelen', '8', 'up']);
    const port = new TapPort(loadIo(), tap.fd, name);
    port.negotiated(VirtioF.VERSION_1);
    // Nobody reads the TAP (a guest without rx buffers): 100 datagrams to a neighbour on the
    // TAP's subnet (a static ARP entry, so each is one frame out of the TAP).
    execFileSync('ip', ['neigh', 'replace', '10.83.0.2', 'lladdr', '52:54:00:00:83:02', 'dev', name]);
    await new Promise<void>((res) => sock.bind(0, '10.83.0.1', () => res()));
    for (let i = 0; i < 100; i++) await new Promise<void>((res, rej) => sock.send(Buffer.alloc(64, i), 9, '10.83.0.2', (e) => (e ? rej(e) : res())));
    await new Promise((res) => setTimeout(res, 200));
    const dropped = port.refreshKernelDrops();
    let read = 0;
    while (port.peekRx() !== null) {
      port.consumeRx();
      read++;
    }
    assert.ok(dropped > 0, `the kernel dropped ${dropped}`);
    assert.ok(read >= 1 && read <= 8 + 2, `${read} frames waited in the queue (txqueuelen 8)`);
    assert.ok(read + dropped >= 100, `read ${read} + dropped ${dropped}: every datagram is accounted for`);
    assert.equal(port.stats.kernelTxDropped, dropped);
  } finally {
    sock.close();
    tap.close();
  }
});
