// The study's runner end to end across real worker threads, with the fake net-stream and
// net-ping workloads (test/workers/fake-net*.ts) standing in for the real ones: the params each
// cell hands the workloads, throughput from the receiver's window, ping cells that stop at the
// count, a failing cell that does not stop the study, progress with an ETA, and the CLI.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findPreset, type ProgressEvent, type StudyPreset } from '../src/study/index.js';
import { resumeMismatch, runPingCell, runStreamCell, runStudy } from '../src/study/runner.js';

const STREAM = fileURLToPath(new URL('./workers/fake-net-stream.js', import.meta.url));
const PING = fileURLToPath(new URL('./workers/fake-net-ping.js', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fakes = { streamWorkload: STREAM, pingWorkload: PING };
const run = promisify(execFile);

for (const direction of ['g2h', 'h2g'] as const) {
  test(`a stream cell ${direction} runs every run, measures the receiver's window and passes the preset's data path`, async () => {
    const preset = findPreset('ring-size-256');
    const cell = await runStreamCell(preset, direction, { runs: 2, seconds: 0.15, warmupMs: 50 }, { ...fakes, msgBytes: 4096 });
    assert.equal(cell.error, undefined);
    assert.equal(cell.runs.length, 2);
    assert.equal(cell.errors, 0);
    for (const r of cell.runs) {
      assert.ok(r.gbps > 0, `gbps ${r.gbps}`);
      // The stop comes 50 + 150 ms after the start barrier; the window opens after the warm-up.
      // A loaded machine may wake a side late after the barrier, shortening the window by any
      // amount, or stop it late: only a measured, bounded window is promised.
      assert.ok(r.windowMs > 0 && r.windowMs < 5000, `window ${r.windowMs} ms`);
      assert.ok(Math.abs(r.gbps - (r.windowBytes * 8) / (r.windowMs * 1e6)) < 1e-9);
      for (const side of ['guest', 'host']) {
        assert.equal(r.extra[`${side}.msgBytes`], 4096);
        assert.equal(r.extra[`${side}.gso`], 1);
        assert.equal(r.extra[`${side}.ringSize`], 256);
        assert.equal(r.extra[`${side}.warmupMs`], 50);
        assert.equal(r.extra[`${side}.hasPreset`], 1);
        assert.equal(r.extra[`${side}.isolated`], 0);
      }
      assert.ok(r.mechanism.avgBatch >= 1, 'the fake reports flushes');
      assert.ok(Number.isNaN(r.mechanism.timerFiresPerPacket), 'no timer counters: NaN, not 0');
    }
    assert.equal(cell.gbps.n, 2);
    assert.ok(cell.gbps.min <= cell.gbps.avg && cell.gbps.avg <= cell.gbps.max);
  });

  test(`a ping cell ${direction} ends at the count with iputils figures from the pinging side`, async () => {
    const cell = await runPingCell(findPreset('baseline'), direction, { count: 300, pingCapMs: 10_000 }, fakes);
    assert.equal(cell.error, undefined);
    const r = cell.result!;
    assert.equal(r.sent, 300);
    assert.equal(r.received, 300);
    assert.equal(r.rtt.count, 300);
    assert.ok(r.rtt.minUs <= r.rtt.avgUs && r.rtt.avgUs <= r.rtt.maxUs);
    assert.ok(r.p50Us <= r.p99Us);
    assert.match(r.rtt.line, /^rtt min\/avg\/max\/mdev = \d+\.\d{3}\/\d+\.\d{3}\/\d+\.\d{3}\/\d+\.\d{3} ms$/);
    const pinger = direction === 'g2h' ? 'guest' : 'host';
    assert.equal(r.extra[`${pinger}.payloadBytes`], 56);
    assert.equal(r.extra[`${pinger}.timeoutMs`], 10);
    assert.equal(r.extra[`${pinger}.count`], 300);
  });
}

test('isolated mode tells the workloads, and its rows carry only their own change', async () => {
  const preset = findPreset('ring size == 256', 'isolated');
  const cell = await runStreamCell(preset, 'g2h', { runs: 1, seconds: 0.1, warmupMs: 20 }, { ...fakes, mode: 'isolated' });
  assert.equal(cell.runs[0]!.extra['host.isolated'], 1);
  assert.equal(cell.runs[0]!.extra['host.gso'], 0);
  assert.equal(cell.runs[0]!.extra['host.ringSize'], 256);
});

test('a cell whose workload fails is recorded with its error and the study goes on', async () => {
  const explode: StudyPreset = { ...findPreset('baseline'), name: 'explode', policy: 'explode', slug: 'explode', kind: 'modern', rfcIndex: null };
  const events: ProgressEvent[] = [];
  const report = await runStudy({
    rows: [findPreset('baseline'), explode],
    plan: { runs: 2, seconds: 0.1, warmupMs: 20, count: 100, pingCapMs: 2000, quick: true },
    ...fakes,
    command: 'test',
    onProgress: (e) => events.push(e),
  });
  assert.equal(report.schema, 'virtq-study/1');
  assert.equal(report.rows.length, 2);
  const [ok, bad] = report.rows;
  assert.equal(ok!.stream.g2h!.runs.length, 2);
  assert.equal(ok!.ping.h2g!.result!.received, 100);
  assert.deepEqual(ok!.rfc!.throughputGbps.g2h, [1.52, 1.573, 1.61, 0.034]);
  assert.equal(bad!.rfc, null);
  assert.match(bad!.stream.g2h!.error!, /run 1: .*preset "explode" fails on purpose/);
  assert.equal(bad!.stream.g2h!.runs.length, 0);
  assert.match(bad!.ping.g2h!.error!, /fails on purpose/);
  // Progress: row, cell and run for every step, elapsed growing, a finite ETA.
  assert.deepEqual(events.slice(0, 6).map((e) => `${e.rowIndex} ${e.cell} ${e.run}/${e.runs}`), [
    '0 stream g2h 1/2',
    '0 stream g2h 2/2',
    '0 stream h2g 1/2',
    '0 stream h2g 2/2',
    '0 ping g2h 1/1',
    '0 ping h2g 1/1',
  ]);
  // The failing row's stream cells stop after their first run: 6 events for row 0, 4 for row 1.
  assert.equal(events.length, 10);
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.elapsedMs >= events[i - 1]!.elapsedMs);
  assert.ok(events.every((e) => Number.isFinite(e.etaMs) && e.etaMs >= 0));
  assert.equal(events.at(-1)!.rowCount, 2);
});

test('virtq study writes the JSON, Markdown and SVG and prints both RFC tables and the mechanisms', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-study-'));
  const { stdout, stderr } = await run(process.execPath, [
    CLI, 'study', '--quick', '--wait', 'block', '--rows', 'baseline,gso', '--runs', '1', '--seconds', '0.1', '--warmup-ms', '20', '--count', '50',
    '--stream-workload', STREAM, '--ping-workload', PING,
    '--json', join(dir, 'r.json'), '--md', join(dir, 'r.md'), '--svg', join(dir, 'c.svg'),
  ], { timeout: 60_000 });
  assert.equal(stderr, '', 'no progress output when stderr is not a terminal');
  assert.match(stdout, /^netperf, 1x0\.1s runs \(Gb\/s\)\s+\| guest->host/m);
  assert.match(stdout, /^ping -f -c 50 \(≤3\.0s\) \(ms\)\s+\| guest->host/m);
  assert.match(stdout, /^baseline\s+g->h\s/m);
  assert.match(stdout, /^GSO\s+h->g\s/m);
  const j = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { rows: { name: string }[]; plan: { runs: number; quick: boolean; pingCapMs: number; waitStrategy: string } };
  assert.equal(j.plan.quick, true);
  assert.equal(j.plan.pingCapMs, 3000, 'the quick plan for two rows caps ping cells at 3 s');
  assert.equal(j.plan.waitStrategy, 'block');
  assert.deepEqual(j.rows.map((r) => r.name), ['baseline', 'GSO']);
  assert.equal(j.plan.runs, 1);
  assert.equal((j.plan as unknown as { warmupMs: number }).warmupMs, 20);
  assert.match(readFileSync(join(dir, 'r.md'), 'utf8'), /!\[throughput and latency per row\]\(c\.svg\)/);
  assert.ok(existsSync(join(dir, 'c.svg')));
});

test('virtq study --queues 2 runs every stream cell on two queue pairs (each on its own worker pair) and records it in the plan and the cells', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-study-mq-'));
  await run(process.execPath, [
    CLI, 'study', '--quick', '--wait', 'block', '--rows', 'vhost', '--runs', '1', '--seconds', '0.1', '--warmup-ms', '20', '--count', '20', '--queues', '2',
    '--json', join(dir, 'r.json'), '--md', join(dir, 'r.md'), '--svg', join(dir, 'c.svg'),
  ], { timeout: 120_000 });
  const j = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')) as { plan: { queuePairs?: number }; rows: { stream: Record<'g2h' | 'h2g', { queuePairs?: number; errors: number; runs: { extra: Record<string, number> }[] } | null> }[] };
  assert.equal(j.plan.queuePairs, 2);
  for (const d of ['g2h', 'h2g'] as const) {
    const cell = j.rows[0]!.stream[d]!;
    assert.equal(cell.queuePairs, 2, `${d}: two pairs`);
    assert.equal(cell.errors, 0, `${d}: every frame verified`);
    // Both pairs moved data (aggregatePairs keeps each pair's figure).
    for (const p of [0, 1]) assert.ok((cell.runs[0]!.extra[`pair${p}.gbps`] ?? 0) > 0, `${d}: pair ${p} carried traffic`);
  }
  await assert.rejects(run(process.execPath, [CLI, 'study', '--queues', '2', '--trace', join(dir, 't.ndjson')]), (e: { stderr: string; code: number }) => e.code !== 0 && /--queues' above 1 cannot be traced/.test(e.stderr));
});

test('virtq bench stream --json and bench ping print their cell', async () => {
  const s = await run(process.execPath, [CLI, 'bench', 'stream', '--direction', 'h2g', '--runs', '2', '--seconds', '0.1', '--warmup-ms', '20', '--preset', 'gso', '--msg-size', '8192', '--queue-size', '64', '--workload', STREAM, '--json'], { timeout: 60_000 });
  const cell = JSON.parse(s.stdout) as { schema: string; runs: { extra: Record<string, number> }[]; gbps: { n: number }; queueSize: number; preset: string };
  assert.equal(cell.schema, 'virtq-bench-stream/1');
  assert.equal(cell.gbps.n, 2);
  assert.equal(cell.preset, 'GSO');
  assert.equal(cell.queueSize, 64);
  assert.equal(cell.runs[0]!.extra['guest.ringSize'], 64);
  assert.equal(cell.runs[0]!.extra['guest.msgBytes'], 8192);
  const p = await run(process.execPath, [CLI, 'bench', 'ping', '--direction', 'g2h', '--count', '200', '--workload', PING], { timeout: 60_000 });
  assert.match(p.stdout, /^200 packets transmitted, 200 received, 0% packet loss$/m);
  assert.match(p.stdout, /^rtt min\/avg\/max\/mdev = [\d.]+\/[\d.]+\/[\d.]+\/[\d.]+ ms, ipg\/ewma [\d.]+\/[\d.]+ ms$/m);
  assert.match(p.stdout, /^p50 \d+ µs, p99 \d+ µs \(HDR histogram\)$/m);
});

test('bad arguments are clear errors', async () => {
  await assert.rejects(run(process.execPath, [CLI, 'bench', 'stream', '--direction', 'up']), (e: { stderr: string; code: number }) => e.code === 2 && /option '--direction <d>' argument 'up' is invalid\. Expected one of: g2h, h2g\./.test(e.stderr));
  await assert.rejects(run(process.execPath, [CLI, 'study', '--rows', 'nope']), (e: { stderr: string; code: number }) => e.code === 2 && /option '--rows <list>' argument 'nope' is invalid\. Unknown preset\. Choose from: rfc-baseline, /.test(e.stderr));
});

test('an aborted study stops before the next cell and returns the cells it finished, each also handed to onCell; resumed, it keeps them and runs the rest', async () => {
  const stop = new AbortController();
  const seen: number[] = [];
  const report = await runStudy({
    rows: [findPreset('baseline'), findPreset('gso')],
    plan: { runs: 1, seconds: 0.05, warmupMs: 0, count: 20, pingCapMs: 2000, quick: true },
    ...fakes,
    signal: stop.signal,
    onCell: (soFar) => {
      seen.push(soFar.rows.length);
      stop.abort(); // as SIGINT would, during the first cell
    },
  });
  assert.equal(report.interrupted, true);
  assert.equal(report.rows.length, 1);
  assert.ok(report.rows[0]!.stream.g2h !== null, 'the finished cell is kept');
  assert.equal(report.rows[0]!.stream.h2g, null, 'nothing ran after the abort');
  assert.deepEqual(seen, [1]);

  // Resumed with the same plan: the finished cell is kept as it was, every other one runs.
  const resumed = await runStudy({
    rows: [findPreset('baseline'), findPreset('gso')],
    plan: { runs: 1, seconds: 0.05, warmupMs: 0, count: 20, pingCapMs: 2000, quick: true },
    ...fakes,
    resumeFrom: JSON.parse(JSON.stringify(report)) as typeof report,
  });
  assert.equal(resumed.interrupted, undefined);
  assert.deepEqual(resumed.rows[0]!.stream.g2h, JSON.parse(JSON.stringify(report.rows[0]!.stream.g2h)));
  for (const r of resumed.rows) for (const d of ['g2h', 'h2g'] as const) assert.ok(r.stream[d] !== null && r.ping[d] !== null, `${r.name} ${d} ran`);
  assert.equal(resumeMismatch(report, { ...report.plan, runs: 2 }), 'plan.runs was 1, now 2');
  assert.equal(resumeMismatch(report, report.plan), null);
});

test('virtq study on SIGINT finishes the cell in flight, writes and prints what it has, and exits 130', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-study-int-'));
  const json = join(dir, 'r.json');
  const child = spawn(process.execPath, [
    CLI, 'study', '--runs', '1', '--seconds', '0.1', '--warmup-ms', '0', '--count', '20',
    '--stream-workload', STREAM, '--ping-workload', PING, '--out', dir, '--json', json,
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const closed = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  // The JSON appears after the first finished cell; the whole study (every row) would take minutes.
  const deadline = Date.now() + 60_000;
  while (!existsSync(json) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(existsSync(json), 'the JSON is written as cells finish');
  child.kill('SIGINT');
  const code = await closed;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /stopping after the cell in flight/);
  const j = JSON.parse(readFileSync(json, 'utf8')) as { interrupted?: boolean; rows: { stream: { g2h: unknown } }[] };
  assert.equal(j.interrupted, true);
  assert.ok(j.rows.length >= 1 && j.rows[0]!.stream.g2h !== null);
  assert.match(stdout, /^baseline\s+g->h\s/m, 'the tables are printed for what finished');
  assert.ok(existsSync(join(dir, 'study.md')) && existsSync(join(dir, 'study.svg')));
});
