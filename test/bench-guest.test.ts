// `virtq bench guest` without booting anything: its option checks (CLI usage errors naming the
// option, and the runner's own refusal for a library caller), the parser of the guest's
// per-reply ping output (hostile and truncated consoles included), the alternating order, the
// summary over runs (min/median/max, the ratio virtq / QEMU of the medians and per run, a failed
// cell left out rather than counted as 0) and the text report; and a guest that cannot boot (a
// kernel file that is not a kernel: QEMU exits at once) against the real QEMU, which must end in
// one message with QEMU's console tail and leave no namespace behind. The benchmark itself boots QEMU
// twice per run (~40 s under TCG at the smallest setting), so CI does not run it; the study's
// guest test (study-guest.test.ts) boots the same guest through the same guest-boot.ts.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { checkGuestBenchOptions, GuestBenchOptionError, runGuestBench, runOrder } from '../src/study/guest-bench.js';
import { parseIperfUdpJson } from '../src/study/guest-plan.js';
import {
  featureDiff,
  formatGuestBench,
  GUEST_BENCH_SCHEMA,
  GUEST_MEASURES,
  guestBenchHasProblems,
  guestPingCommand,
  parseGuestPing,
  RTT_MARKER,
  summariseGuestBench,
  type GuestBackend,
  type GuestBackendRun,
  type GuestBenchReport,
  type GuestBenchRun,
} from '../src/study/guest-bench-report.js';
import { guestStudyMissing } from '../src/study/guest-boot.js';
import { firstMissing, needAddon } from './support/real-peers.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('virtq bench guest: a bad option value is a usage error (exit 2) naming the option, no stack, nothing booted', { timeout: 60_000 }, () => {
  for (const [args, re] of [
    [['--runs', '0'], /--runs <n>.*'0' is invalid\. Expected a positive integer\./],
    [['--runs', '1001'], /--runs <n>.*Expected a positive integer ≤ 1000\./],
    [['--seconds', '2.5'], /--seconds <s>.*Expected a positive integer\./],
    [['--count', 'x'], /--count <n>.*Expected a positive integer\./],
    [['--accel', 'hvf'], /--accel <a>.*Expected one of: auto, kvm, tcg\./],
    [['--udp-rate', 'fast'], /--udp-rate <r>.*Expected digits with an optional K, M or G/],
    [['--udp-rate', '0M'], /--udp-rate <r>.*Expected digits/],
    [['--preset', 'nope'], /--preset <p>.*Unknown preset/],
    [['--json', '/nonexistent-dir/r.json'], /--json \[file\].*ENOENT/],
    [['--bogus'], /unknown option '--bogus'/],
  ] as const) {
    const r = spawnSync(process.execPath, [CLI, 'bench', 'guest', ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack');
    assert.doesNotMatch(r.stderr, /booting/, 'nothing booted');
  }
});

test('runGuestBench refuses bad numbers itself (a library caller gets a typed error before anything starts)', async () => {
  for (const bad of [{ runs: 0 }, { runs: 1.5 }, { seconds: -1 }, { count: NaN }, { count: 2_000_000 }, { seconds: 3601 }]) {
    const o = { runs: 1, seconds: 1, count: 1, ...bad };
    assert.throws(() => checkGuestBenchOptions(o), GuestBenchOptionError, JSON.stringify(bad));
    await assert.rejects(runGuestBench(o), (e: unknown) => e instanceof GuestBenchOptionError && /must be an integer/.test(e.message), JSON.stringify(bad));
  }
  checkGuestBenchOptions({ runs: 1, seconds: 1, count: 1 });
  checkGuestBenchOptions({ runs: 1, seconds: 1, count: 1, udpRate: '1G' });
  for (const udpRate of ['', '1T', '-5M', '10 M', '1e9']) assert.throws(() => checkGuestBenchOptions({ runs: 1, seconds: 1, count: 1, udpRate }), GuestBenchOptionError, udpRate);
});

test('parseIperfUdpJson: the receiver\'s lost and sent datagrams from iperf3 -u -J; an error or a truncated report is an error, never a zero', () => {
  const ok = JSON.stringify({ end: { sum: { packets: 1000, lost_packets: 25, lost_percent: 2.5, bits_per_second: 2e8 } } });
  assert.deepEqual(parseIperfUdpJson(`noise\n${ok}\n`), { packets: 1000, lostPackets: 25, lostPercent: 2.5, gbps: 0.2 });
  // lost_percent absent: computed from the counts.
  assert.equal(parseIperfUdpJson(JSON.stringify({ end: { sum: { packets: 200, lost_packets: 50, bits_per_second: 1 } } })).lostPercent, 25);
  assert.throws(() => parseIperfUdpJson(JSON.stringify({ error: 'unable to connect to server' })), /iperf3: unable to connect/);
  assert.throws(() => parseIperfUdpJson(JSON.stringify({ end: { sum: { packets: 10 } } })), SyntaxError);
  assert.throws(() => parseIperfUdpJson('{"end": {"sum"'), SyntaxError);
  assert.throws(() => parseIperfUdpJson('nothing'), SyntaxError);
});

test('the order alternates: virtq first on odd runs, QEMU first on even ones, each backend once per run', () => {
  assert.deepEqual(runOrder(1), ['virtq', 'qemu']);
  assert.deepEqual(runOrder(2), ['qemu', 'virtq']);
  fc.assert(fc.property(fc.integer({ min: 1, max: 10_000 }), (n) => {
    const o = runOrder(n);
    assert.deepEqual([...o].sort(), ['qemu', 'virtq']);
    assert.notDeepEqual(runOrder(n + 1), o);
  }));
});

const PING_SUMMARY = '\n--- 10.78.0.2 ping statistics ---\n5 packets transmitted, 5 received, 0% packet loss, time 3ms\nrtt min/avg/max/mdev = 0.045/0.063/0.558/0.057 ms, ipg/ewma 0.109/0.059 ms\n';

test('parseGuestPing: iputils\' summary plus the p50/p99 of every reply time; the guest command prints exactly what it parses', () => {
  const p = parseGuestPing(`${PING_SUMMARY}${RTT_MARKER}\n0.045 0.050 0.048 0.558 0.061 \n`);
  assert.equal(p.transmitted, 5);
  assert.equal(p.received, 5);
  assert.equal(p.avgMs, 0.063);
  assert.equal(p.maxMs, 0.558);
  assert.equal(p.rtts, 5);
  assert.equal(p.p50Ms, 0.05);
  assert.equal(p.p99Ms, 0.558, 'nearest rank: the top of 5');
  const cmd = guestPingCommand('10.78.0.2', 1000);
  assert.match(cmd, /ping -i 0 -c 1000 -w 50 10\.78\.0\.2/);
  assert.ok(cmd.includes(`echo ${RTT_MARKER}`));
  // The sed in the command takes the time of a reply line as iputils prints it (integer ms too).
  const sed = spawnSync('sh', ['-c', `printf '64 bytes from 10.78.0.2: icmp_seq=1 ttl=64 time=0.123 ms\\n64 bytes from 10.78.0.2: icmp_seq=2 ttl=64 time=103 ms\\nPING x\\n' | sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p' | tr '\\n' ' '`], { encoding: 'utf8' });
  if (sed.status === 0) assert.equal(sed.stdout, '0.123 103 ');
  assert.ok(cmd.includes("sed -n 's/.*time=\\([0-9.]*\\) ms.*/\\1/p'"), cmd);
});

test('parseGuestPing: a console without the summary, without the marker, with no reply times or with garbage among them is a SyntaxError naming it', () => {
  assert.throws(() => parseGuestPing(`connect: Network is unreachable\n${RTT_MARKER}\n\n`), /ping printed no summary/);
  assert.throws(() => parseGuestPing(PING_SUMMARY), new RegExp(`without ${RTT_MARKER}`));
  assert.throws(() => parseGuestPing(`${PING_SUMMARY}${RTT_MARKER}\n \n`), /no reply times/);
  assert.throws(() => parseGuestPing(`${PING_SUMMARY}${RTT_MARKER}\n0.1 0.2 \u0000ab 0.3\n`), /non-time/);
  assert.throws(() => parseGuestPing(`${PING_SUMMARY}${RTT_MARKER}\n0.1 -5\n`), /non-time/);
  // Whatever the console holds: a parse with finite figures or a SyntaxError, never another throw.
  const tail = fc.array(fc.oneof(fc.double({ noNaN: false }).map(String), fc.string({ maxLength: 8 })), { maxLength: 30 }).map((ws) => ws.join(' '));
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 400 }), tail.map((t) => `${PING_SUMMARY}${RTT_MARKER}\n${t}\n`)), (s) => {
    try {
      const p = parseGuestPing(s);
      assert.ok(p.rtts > 0 && Number.isFinite(p.p99Ms) && p.p99Ms >= 0 && p.p50Ms <= p.p99Ms);
    } catch (e) {
      assert.ok(e instanceof SyntaxError, String(e));
    }
  }));
});

function backendRun(backend: GuestBackend, g2h: number | null, h2g: number | null, avg: number | null, errors: string[] = []): GuestBackendRun {
  return {
    backend,
    bootSeconds: 5,
    features: backend === 'virtq' ? '1100' : '1110',
    g2hGbps: g2h,
    h2gGbps: h2g,
    retransmits: { g2h: 0, h2g: 0 },
    ping: avg === null ? null : { transmitted: 10, received: 10, timeMs: 1, minMs: avg / 2, avgMs: avg, maxMs: avg * 4, mdevMs: 0, ipgMs: null, ewmaMs: null, rtts: 10, p50Ms: avg, p99Ms: avg * 3 },
    errors,
  };
}

test('summariseGuestBench: min/median/max per backend, ratio of medians and per-run ratios; a failed cell is left out, not taken as 0', () => {
  const runs: GuestBenchRun[] = [
    { run: 1, order: runOrder(1), virtq: backendRun('virtq', 1, 2, 0.2), qemu: backendRun('qemu', 2, 2, 0.1) },
    { run: 2, order: runOrder(2), virtq: backendRun('virtq', 3, null, 0.4, ['iperf3 h2g: boom']), qemu: backendRun('qemu', 2, 4, 0.1) },
    { run: 3, order: runOrder(3), virtq: backendRun('virtq', 2, 4, 0.3), qemu: backendRun('qemu', 4, 4, 0.2) },
  ];
  const s = summariseGuestBench(runs);
  assert.deepEqual(s.map((x) => x.measure), GUEST_MEASURES.map((m) => m.key));
  const g2h = s.find((x) => x.measure === 'g2hGbps')!;
  assert.deepEqual(g2h.virtq, { n: 3, min: 1, median: 2, max: 3 });
  assert.deepEqual(g2h.qemu, { n: 3, min: 2, median: 2, max: 4 });
  assert.equal(g2h.ratioOfMedians, 1);
  assert.deepEqual(g2h.ratioPerRun, { n: 3, min: 0.5, median: 0.5, max: 1.5 });
  const h2g = s.find((x) => x.measure === 'h2gGbps')!;
  assert.deepEqual(h2g.virtq, { n: 2, min: 2, median: 3, max: 4 }, 'the failed cell is not a zero');
  assert.equal(h2g.ratioPerRun.n, 2);
  const p99 = s.find((x) => x.measure === 'pingP99Ms')!;
  assert.ok(Math.abs(p99.ratioOfMedians - 3) < 1e-9, String(p99.ratioOfMedians));
  assert.deepEqual(summariseGuestBench([]).map((x) => x.virtq.n), GUEST_MEASURES.map(() => 0));
  assert.ok(Number.isNaN(summariseGuestBench([])[0]!.ratioOfMedians));
});

test('featureDiff: the bits one driver negotiated and the other did not; null for an unreadable string', () => {
  assert.deepEqual(featureDiff('1100', '1110'), { onlyVirtq: [], onlyQemu: [2] });
  assert.deepEqual(featureDiff('0001', '1000'), { onlyVirtq: [3], onlyQemu: [0] });
  assert.equal(featureDiff(null, '1'), null);
  assert.equal(featureDiff('12', '1'), null);
});

test('formatGuestBench: the accelerator said, one line per measure with both backends and the ratio, the feature difference, every error; problems flagged', () => {
  const results: GuestBenchRun[] = [
    { run: 1, order: runOrder(1), virtq: backendRun('virtq', 1, 2, 0.2), qemu: backendRun('qemu', 2, 2, null, ['ping: ping printed no summary']) },
  ];
  const report: GuestBenchReport = {
    schema: GUEST_BENCH_SCHEMA,
    accel: 'tcg',
    kvmRefused: 'error: failed to set MSR 0x10a to 0x69',
    qemuVersion: '7.2.22',
    kernel: '/x/vmlinuz',
    initramfsVersion: 'v',
    preset: 'vhost',
    qemuDevice: 'virtio-net-pci,netdev=n0',
    netdev: { virtq: '-netdev vhost-user', qemu: '-netdev tap' },
    runs: 1,
    seconds: 2,
    count: 200,
    host: { cpus: 2, loadavg: [1, 2, 3] },
    results,
    summary: summariseGuestBench(results),
    featureDiff: featureDiff('1100', '1110'),
    totalSeconds: 12.3,
  };
  const text = formatGuestBench(report);
  assert.match(text, /TCG \(no KVM: error: failed to set MSR/);
  assert.match(text, /TCP guest→host \(Gb\/s, higher is better\)\s+1\.000 \/ 1\.000 \/ 1\.000\s+2\.000 \/ 2\.000 \/ 2\.000\s+0\.50×/);
  assert.match(text, /ping avg RTT \(ms, lower is better\)\s+0\.200 \/ 0\.200 \/ 0\.200\s+—\s+—/);
  assert.match(text, /only on QEMU \[2\]/);
  assert.match(text, /error: run 1 qemu: ping: ping printed no summary/);
  assert.equal(guestBenchHasProblems(report), true);
  const clean = { ...report, results: [{ ...results[0]!, qemu: backendRun('qemu', 2, 2, 0.1) }] };
  assert.equal(guestBenchHasProblems(clean), false);
  assert.match(formatGuestBench({ ...clean, accel: 'kvm' }), /QEMU 7\.2\.22, KVM;/);
  assert.match(formatGuestBench({ ...clean, error: 'the guest did not come up: no VQ-AGENT-READY\nconsole tail' }), /stopped: the guest did not come up: no VQ-AGENT-READY\nconsole tail/);
});

const bootMissing = firstMissing(needAddon(), guestStudyMissing());

test('virtq bench guest: a guest that does not boot ends in one message with QEMU\'s console tail (exit 1, no stack) and leaves no network namespace behind', { skip: bootMissing ?? false, timeout: 120_000 }, () => {
  // A guest cache the build script takes as current (its VERSION) whose kernel is not a kernel.
  const script = fileURLToPath(new URL('../../test/support/build-linux-guest.sh', import.meta.url));
  const version = /^GUEST_VERSION=(.*)$/m.exec(readFileSync(script, 'utf8'))?.[1];
  assert.ok(version !== undefined, 'GUEST_VERSION in the build script');
  const cache = mkdtempSync(join(tmpdir(), 'virtq-bench-guest-bad-'));
  try {
    mkdirSync(join(cache, 'linux-guest'));
    writeFileSync(join(cache, 'linux-guest', 'vmlinuz'), 'not a kernel\n');
    writeFileSync(join(cache, 'linux-guest', 'initramfs.gz'), gzipSync('not an initramfs\n'));
    writeFileSync(join(cache, 'linux-guest', 'VERSION'), `${version}\n`);
    const r = spawnSync(process.execPath, [CLI, 'bench', 'guest', '--runs', '1', '--seconds', '1', '--count', '10', '--accel', 'tcg'], {
      encoding: 'utf8',
      timeout: 100_000,
      env: { ...process.env, VIRTQ_CACHE_DIR: cache },
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /virtq bench guest: the guest did not come up: the guest exited while waiting for VQ-AGENT-READY:\n.*qemu/);
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack');
    assert.equal(r.stdout, '', 'no report');
    const tag = `vqb${r.pid % 100000}`;
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(tag));
    assert.deepEqual(left, [], 'namespaces removed');
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
});
