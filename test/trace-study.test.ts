// `--trace FILE --trace-sample N` on the study runner and the net bench commands: each engine run
// gets its own TraceSession and file (FILE for a command's only run, FILE-<row>-<cell>-<run>
// otherwise), a bad option fails the command before any run, and `virtq bench stream --trace`
// writes a file that `virtq trace analyze --json` reads back with packets.

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { findPreset } from '../src/study/index.js';
import { runEngineTimed, runPingCell, runStreamCell, traceFileFor, type RunEngine } from '../src/study/runner.js';
import { TraceSession } from '../src/trace/index.js';
import type { TraceFileSummary } from '../src/trace/node.js';

const STREAM = fileURLToPath(new URL('./workers/fake-net-stream.js', import.meta.url));
const PING = fileURLToPath(new URL('./workers/fake-net-ping.js', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fakes = { streamWorkload: STREAM, pingWorkload: PING };
const run = promisify(execFile);

const dir = mkdtempSync(join(tmpdir(), 'virtq-trace-study-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function firstLine(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as Record<string, unknown>;
}

test('a trace file name gets its -<row>-<cell>-<run> suffix before the extension', () => {
  assert.equal(traceFileFor('out/runs.ndjson', 'gso', 'stream-g2h', 3), 'out/runs-gso-stream-g2h-3.ndjson');
  assert.equal(traceFileFor('out.d/runs', 'gso', 'ping-h2g', 1), 'out.d/runs-gso-ping-h2g-1');
  assert.equal(traceFileFor('.trace', 'a', 'b', 2), '.trace-a-b-2');
});

test('a traced stream cell hands each run its own session and writes one file per run', async () => {
  const preset = findPreset('baseline');
  const sessions: unknown[] = [];
  const spy: RunEngine = (options, stopAfterReadyMs) => {
    sessions.push(options.trace);
    return runEngineTimed(options, stopAfterReadyMs);
  };
  const written: TraceFileSummary[] = [];
  const file = join(dir, 'cell.ndjson');
  const cell = await runStreamCell(preset, 'g2h', { runs: 2, seconds: 0.1, warmupMs: 20 }, { ...fakes, runEngine: spy, trace: { file, sample: 10, onWritten: (s) => written.push(s) } });
  assert.equal(cell.error, undefined);
  assert.equal(sessions.length, 2);
  assert.ok(sessions.every((s) => s instanceof TraceSession));
  assert.notEqual(sessions[0], sessions[1], 'a session per run');
  assert.deepEqual(
    written.map((s) => s.path),
    [1, 2].map((r) => join(dir, `cell-${preset.slug}-stream-g2h-${r}.ndjson`)),
  );
  assert.ok(!existsSync(file), 'several runs never write FILE itself');
  for (const [i, s] of written.entries()) {
    const head = firstLine(s.path);
    assert.equal(head.msg, 'trace-run');
    assert.equal(head.cell, 'stream-g2h');
    assert.equal(head.run, i + 1);
    assert.equal(head.preset, preset.name);
    assert.equal(head.sample, 10);
  }
});

test('an untraced cell passes no session to the engine', async () => {
  const seen: unknown[] = [];
  const spy: RunEngine = (options, stop) => {
    seen.push(options.trace);
    return runEngineTimed(options, stop);
  };
  await runPingCell(findPreset('baseline'), 'g2h', { count: 20, pingCapMs: 5000 }, { ...fakes, runEngine: spy });
  assert.deepEqual(seen, [undefined]);
});

test('a single traced run writes FILE itself', async () => {
  const file = join(dir, 'ping.ndjson');
  const cell = await runPingCell(findPreset('baseline'), 'h2g', { count: 20, pingCapMs: 5000 }, { ...fakes, trace: { file, single: true } });
  assert.equal(cell.error, undefined);
  assert.equal(firstLine(file).cell, 'ping-h2g');
});

test('virtq bench stream --trace F --trace-sample 10 writes a trace that virtq trace analyze reads with packets', async () => {
  const file = join(dir, 'bench.ndjson');
  const b = await run(process.execPath, [CLI, 'bench', 'stream', '--runs', '1', '--seconds', '0.3', '--warmup-ms', '0', '--preset', 'baseline', '--trace', file, '--trace-sample', '10', '--json'], { timeout: 60_000 });
  assert.match(b.stderr, /trace: wrote .*bench\.ndjson \(\d+ packets/);
  const an = await run(process.execPath, [CLI, 'trace', 'analyze', file, '--json'], { timeout: 60_000 });
  const rep = JSON.parse(an.stdout) as { packets: number; outOfOrder: number; sumMismatches: number; slowest: { seq: number }[]; run: { sample: number; workload: string; mismatched: number; stamping: string } };
  assert.ok(rep.packets > 0, `packets ${rep.packets}`);
  assert.equal(rep.outOfOrder, 0);
  assert.equal(rep.sumMismatches, 0);
  assert.equal(rep.run.sample, 10);
  assert.equal(rep.run.workload, 'net-stream');
  assert.equal(rep.run.stamping, 'exact', 'sampled, the net path stamps its points one by one (the header says what happened, not the option)');
  assert.equal(rep.run.mismatched, 0);
  assert.ok(rep.slowest.every((p) => Math.floor(p.seq / 32) % 10 === 0), 'blocks of 32 (the default), 1 in 10');
});

test('virtq bench ping --trace writes one trace of the echo requests', async () => {
  const file = join(dir, 'ping-cli.ndjson');
  await run(process.execPath, [CLI, 'bench', 'ping', '--count', '200', '--preset', 'baseline', '--trace', file, '--json'], { timeout: 60_000 });
  const head = firstLine(file);
  assert.equal(head.workload, 'net-ping');
  // Every echo request but possibly the last (its tx buffer may not be reaped before the stop).
  assert.ok(Number(head.packets) >= 199, `packets ${String(head.packets)}`);
});

test('a bad --trace-sample fails the command before any run', async () => {
  await assert.rejects(run(process.execPath, [CLI, 'bench', 'stream', '--runs', '1', '--seconds', '5', '--trace', join(dir, 'x.ndjson'), '--trace-sample', '0'], { timeout: 30_000 }), (e: { stderr: string; code: number }) => {
    assert.equal(e.stderr, "error: option '--trace-sample <n>' argument '0' is invalid. Expected a positive integer.\n");
    assert.equal(e.code, 2, 'a usage error');
    return true;
  });
  assert.ok(!existsSync(join(dir, 'x.ndjson')));
});
