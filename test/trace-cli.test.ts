// The `virtq trace` commands end to end in a child process: `record` writes a trace of the
// stream workload, `analyze --json --html` reads it back, and the run's operational logs come
// out on stderr as pino NDJSON with one child logger per side (engine, guest, host).

import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

test('trace record writes a trace that trace analyze reports, and each side logs through its own pino child', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-trace-cli-'));
  try {
    const file = join(dir, 'r.ndjson');
    const html = join(dir, 'r.html');
    const rec = await run(process.execPath, [CLI, 'trace', 'record', '--out', file, '--trace-sample', '10', '--count', '5000', '--queue-size', '64'], {
      env: { ...process.env, VIRTQ_LOG_LEVEL: 'debug' },
      timeout: 60_000,
    });
    assert.match(rec.stdout, /wrote \d+ packet timelines/);
    const logs = rec.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { side: string; msg: string; level: number });
    const has = (side: string, msg: string) => logs.some((l) => l.side === side && l.msg === msg);
    assert.ok(has('engine', 'run starting') && has('engine', 'run stopped'), 'engine start and stop logged');
    for (const side of ['guest', 'host']) assert.ok(has(side, 'side starting') && has(side, 'side stopped'), `${side} start and stop logged`);

    const an = await run(process.execPath, [CLI, 'trace', 'analyze', file, '--json', '--html', html, '--slowest', '3'], { timeout: 60_000 });
    const report = JSON.parse(an.stdout) as { packets: number; outOfOrder: number; sumMismatches: number; slowest: { seq: number }[]; run: { sample: number; sampleBlock: number; stamping: string } };
    // 1 in 10 in blocks of 32 (the default): blocks 0, 10, …, 150 of 0..4999, 32 packets each.
    assert.equal(report.packets, 16 * 32, 'packets 0..31, 320..351, …, 4800..4831');
    assert.equal(report.outOfOrder, 0);
    assert.equal(report.sumMismatches, 0);
    assert.equal(report.run.sample, 10);
    assert.equal(report.run.sampleBlock, 32);
    assert.equal(report.run.stamping, 'interpolated', 'the stream interpolates its kept points');
    assert.ok(report.slowest.every((p) => Math.floor(p.seq / 32) % 10 === 0));
    assert.ok(existsSync(html) && readFileSync(html, 'utf8').includes('class="stage-row"'));

    // --json FILE: the same JSON into the file, the text on stdout (as on every command with --json).
    const jsonFile = join(dir, 'r.json');
    const an2 = await run(process.execPath, [CLI, 'trace', 'analyze', file, '--json', jsonFile, '--slowest', '3'], { timeout: 60_000 });
    assert.deepEqual(JSON.parse(readFileSync(jsonFile, 'utf8')), report);
    assert.doesNotMatch(an2.stdout, /^\{/, 'text, not JSON, on stdout');
    assert.match(an2.stderr, new RegExp(`wrote ${jsonFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('trace analyze names the line of a file that is not NDJSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'virtq-trace-cli-'));
  try {
    const file = join(dir, 'bad.ndjson');
    await import('node:fs').then((fs) => fs.writeFileSync(file, '{"msg":"trace-run","sample":1}\nnot json\n'));
    await assert.rejects(run(process.execPath, [CLI, 'trace', 'analyze', file], { timeout: 30_000 }), (e: { stderr: string; code: number }) => {
      assert.match(e.stderr, /bad\.ndjson:2: not a JSON line/);
      assert.equal(e.code, 1);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
