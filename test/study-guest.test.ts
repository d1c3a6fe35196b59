// `virtq study --guest qemu`, its pure parts and ONE real cell set:
// - which rows are the device's and which the Linux driver's; the QEMU device settings each row
//   needs (queue sizes clamped into QEMU's 256..1024, features switched off) and the boots they
//   group into; the iperf3 -J and iputils ping -q parsers, on real output and on hostile text;
//   the mechanism figures from two counter snapshots.
// - VhostUserHandle.setPreset refuses a bad spec (PolicyError) and switches with no frontend.
// - One row (150 µs tx timer, a device row) against the real guest: QEMU boots the QEMU tests'
//   Linux guest (TCG unless KVM works) on virtq's vhost-user device with a TAP; iperf3 runs 2 s
//   each way and ping -f 300 times from the guest; the row's preset is switched in while the
//   guest runs. Every echo is answered, both streams moved bytes, the device's counters moved.
//   A driver row (GSO) in the same call is recorded as fixed by the Linux driver without a boot.
//   Skips with a message when not root or QEMU, the addon or a tool is missing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { bootGroups, guestDeviceSettings, guestHome, guestMechanism, parseIperfJson, parsePingSummary, qemuNetDevice, settingsKey } from '../src/study/guest-plan.js';
import { findPreset, studyPresets } from '../src/study/presets-source.js';
import { guestPolicySpec, guestStudyMissing, runGuestStudy } from '../src/study/guest-qemu.js';
import { startVhostUser } from '../src/vhost-user/index.js';
import { PolicyError, resolvePolicy } from '../src/policy/index.js';
import { firstMissing, needAddon } from './support/real-peers.js';

test('guest rows: the driver\'s rows (recv NO_NOTIFY, GSO) are marked fixed by the Linux driver; every other RFC and modern row is the device\'s, in both modes', () => {
  for (const mode of ['cumulative', 'isolated'] as const) {
    const rows = studyPresets(mode);
    const driver = rows.filter((r) => guestHome(r).home === 'driver').map((r) => r.name);
    assert.deepEqual(driver, ['recv NO_NOTIFY', 'GSO'], mode);
    for (const r of rows) if (guestHome(r).home === 'driver') assert.match(guestHome(r).note, /fixed by the Linux driver/);
  }
});

test('guest device settings: a 128 ring runs at QEMU\'s minimum 256 and says so; no GSO turns every offload off; event idx and mergeable follow the row; rows group into one boot per setting', () => {
  const base = guestDeviceSettings(findPreset('baseline'));
  assert.deepEqual(base, { queueSize: 256, clampedFrom: 128, gso: false, mergeable: false, eventIdx: false });
  const dev = qemuNetDevice(base);
  for (const f of ['csum=off', 'guest_csum=off', 'host_tso4=off', 'guest_tso4=off', 'mrg_rxbuf=off', 'event_idx=off', 'rx_queue_size=256', 'tx_queue_size=256', 'vectors=0']) assert.ok(dev.split(',').includes(f), `${f} in ${dev}`);
  const vhost = guestDeviceSettings(findPreset('vhost'));
  assert.equal(vhost.clampedFrom, undefined);
  assert.ok(!qemuNetDevice(vhost).includes('=off'), qemuNetDevice(vhost));
  const r512 = guestDeviceSettings(findPreset('ring size == 512'));
  assert.equal(r512.queueSize, 512);
  const groups = bootGroups(studyPresets('cumulative'));
  // Every row lands in exactly one group, and rows in a group share the settings.
  assert.equal(groups.reduce((a, g) => a + g.rows.length, 0), studyPresets('cumulative').length);
  for (const g of groups) for (const r of g.rows) assert.equal(settingsKey(guestDeviceSettings(r)), g.key);
  assert.ok(groups.length >= 3 && groups.length <= 6, groups.map((g) => g.key).join(' '));
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 32768 }), (ring) => {
      const s = guestDeviceSettings({ ringSize: ring, gso: true, mergeable: true, eventIdx: true });
      return s.queueSize >= 256 && s.queueSize <= 1024 && (s.queueSize === ring) === (s.clampedFrom === undefined);
    }),
  );
});

test('a row runs against the real guest without the model\'s 2008 costs (the real guest and host pay their own), every other setting kept', () => {
  for (const r of studyPresets('cumulative')) {
    const p = resolvePolicy(guestPolicySpec(r.policy));
    const orig = resolvePolicy(r.policy);
    assert.deepEqual(p.costs, { exitUs: 0, irqInjectUs: 0, syscallUs: 0, guestPacketUs: 0, guestRxPacketUs: 0 }, r.name);
    assert.deepEqual({ ...p, name: '', costs: null }, { ...orig, name: '', costs: null }, r.name);
  }
});

const IPERF = JSON.stringify({ start: {}, intervals: [], end: { sum_sent: { bytes: 123456789, seconds: 2.0, retransmits: 3, bits_per_second: 5e8 }, sum_received: { bytes: 123000000, seconds: 2.01, bits_per_second: 4.9e8 } } }, null, 1);

test('parseIperfJson reads the receiver\'s rate from iperf3 -J (with console noise around it) and names what is wrong in hostile output', () => {
  const r = parseIperfJson(`[  3.1] random: crng init done\n${IPERF}\n`);
  assert.deepEqual(r, { gbps: 0.49, bytesReceived: 123000000, bytesSent: 123456789, seconds: 2.01, retransmits: 3 });
  assert.throws(() => parseIperfJson('iperf3: error - unable to connect to server'), /printed no JSON/);
  assert.throws(() => parseIperfJson('{"error": "unable to connect to server: Connection refused"}'), /iperf3: unable to connect/);
  assert.throws(() => parseIperfJson('{ "end": {'), /does not parse|no JSON/);
  assert.throws(() => parseIperfJson('{"end": {}}'), /sum_received/);
});

test('parsePingSummary reads iputils ping -q\'s summary and refuses output without one', () => {
  const text = 'PING 10.78.0.2 (10.78.0.2) 56(84) bytes of data.\n\n--- 10.78.0.2 ping statistics ---\n300 packets transmitted, 300 received, 0% packet loss, time 95ms\nrtt min/avg/max/mdev = 0.210/0.253/1.336/0.084 ms, ipg/ewma 0.286/0.252 ms\n';
  assert.deepEqual(parsePingSummary(text), { transmitted: 300, received: 300, timeMs: 95, minMs: 0.21, avgMs: 0.253, maxMs: 1.336, mdevMs: 0.084, ipgMs: 0.286, ewmaMs: 0.252 });
  assert.throws(() => parsePingSummary('ping: connect: Network is unreachable'), /no summary/);
  assert.throws(() => parsePingSummary('5 packets transmitted, 0 received, 100% packet loss, time 4000ms\n'), /no rtt line/);
});

test('guestMechanism: per-packet figures from two counter snapshots; NaN, never a division by zero, when nothing moved', () => {
  const a = { 'dev.txFrames': 10, 'dev.rxFrames': 0, kicksSeen: 2, interrupts: 1, devFlushes: 1, devFlushPackets: 10, timerFires: 0, ringFullFlushes: 0 };
  const b = { 'dev.txFrames': 110, 'dev.rxFrames': 100, kicksSeen: 12, interrupts: 51, devFlushes: 5, devFlushPackets: 210, timerFires: 4, ringFullFlushes: 1 };
  const m = guestMechanism(a, b);
  assert.equal(m.packets, 200);
  assert.equal(m.kicksPerPacket, 0.05);
  assert.equal(m.interruptsPerPacket, 0.25);
  assert.equal(m.avgBatch, 50);
  assert.equal(m.timerFiresPerPacket, 0.02);
  assert.equal(m.ringFullFlushes, 1);
  const z = guestMechanism(b, b);
  assert.ok(Number.isNaN(z.kicksPerPacket) && Number.isNaN(z.avgBatch));
});

test('VhostUserHandle.setPreset: a bad spec is refused with a PolicyError and the policy stays; a good one switches (no frontend connected)', { skip: needAddon() ?? false, timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-setpreset-'));
  const h = await startVhostUser({ socketPath: join(dir, 's.sock'), backend: 'reflect', preset: 'vhost' });
  try {
    await assert.rejects(h.setPreset('no-such-preset'), PolicyError);
    await assert.rejects(h.setPreset('{"tx": {"kind": "warp"}}'), PolicyError);
    const c = await h.setPreset('rfc-baseline');
    assert.equal(typeof c, 'object');
    assert.equal(typeof (await h.counters()), 'object');
  } finally {
    await h.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

const missing = firstMissing(needAddon(), guestStudyMissing());

test('virtq study --guest qemu, one cell set: a device row against the real Linux guest (iperf3 2 s each way, 300 flood pings, preset switched in while the guest runs); a driver row is marked, not booted', { skip: missing ?? false, timeout: 600_000 }, async (t) => {
  const rows = [findPreset('150us tx timer + rearm'), findPreset('GSO')];
  const r = await runGuestStudy({ rows, seconds: 2, count: 300, onProgress: (l) => t.diagnostic(l) });
  t.diagnostic(JSON.stringify({ accel: r.info.accel, kvmRefused: r.info.kvmRefused, boots: r.info.boots.map((b) => [b.key, b.bootSeconds.toFixed(1)]), total: r.info.totalSeconds.toFixed(1) }));
  assert.equal(r.info.boots.length, 1, 'the driver row needs no boot');
  assert.equal(r.info.boots[0]!.key, 'q256');
  assert.match(r.info.initramfsVersion, /agent/);
  const gso = r.rows.get('gso')!;
  assert.equal(gso.home, 'driver');
  assert.equal(gso.stream, null);
  assert.equal(gso.ping, null);
  const row = r.rows.get('150us-tx-timer-rearm')!;
  assert.equal(row.home, 'device');
  for (const d of ['g2h', 'h2g'] as const) {
    const c = row.stream![d]!;
    assert.equal(c.error, undefined, `${d}: ${c.error}`);
    t.diagnostic(`${d}: ${c.iperf!.gbps.toFixed(3)} Gb/s, mechanism ${JSON.stringify(c.mechanism)}`);
    assert.ok(c.iperf!.bytesReceived > 0 && c.iperf!.gbps > 0, `${d} moved bytes`);
    assert.ok(c.mechanism!.packets > 0 && c.mechanism!.kicks > 0, `${d}: the device's counters moved`);
  }
  const p = row.ping!;
  assert.equal(p.error, undefined, p.error);
  t.diagnostic(`ping: ${JSON.stringify(p.ping)}`);
  assert.equal(p.ping!.transmitted, 300);
  assert.equal(p.ping!.received, 300, 'every echo answered');
  // Each echo: a request from the driver and a reply to it, through the device.
  assert.ok(p.mechanism!.packets >= 600, `ping frames ${p.mechanism!.packets}`);
});

test('virtq study: a bad --guest or --guest-accel, and the guest options without --guest, are usage errors naming the option (nothing runs)', { timeout: 60_000 }, () => {
  const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const out = mkdtempSync(join(tmpdir(), 'virtq-guest-cli-'));
  try {
    for (const [args, re] of [
      [['--guest', 'vbox'], /--guest.*the only guest VMM is qemu/],
      [['--guest', 'qemu', '--guest-accel', 'hvf'], /--guest-accel.*auto, kvm or tcg/],
      [['--guest-only'], /need --guest qemu/],
      [['--guest-seconds', '3'], /need --guest qemu/],
    ] as const) {
      const r = spawnSync(process.execPath, [cli, 'study', '--quick', '--rows', 'baseline', '--out', out, ...args], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
      assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack');
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
