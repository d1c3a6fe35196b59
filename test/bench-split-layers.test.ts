// `bench/split-pingpong-layers.ts`: every pairing of queue and bare ring carries its round trips
// across two real worker threads (the device checks each payload's sequence number and the
// driver each used element; either throws and the worker exits non-zero) and reports them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const script = fileURLToPath(new URL('../bench/split-pingpong-layers.js', import.meta.url));

test('split-pingpong-layers runs all four pairings with a checked payload', { timeout: 60_000 }, async () => {
  const { stdout } = await promisify(execFile)(process.execPath, [script, '--runs', '1', '--round-trips', '3000', '--payload', '64']);
  for (const pairing of ['driver bare / device bare', 'driver queue / device bare', 'driver bare / device queue', 'driver queue / device queue']) {
    const line = stdout.split('\n').find((l) => l.startsWith(pairing));
    assert.ok(line !== undefined, `${pairing} missing from:\n${stdout}`);
    const p50 = Number(line.slice(pairing.length).trim().split(' ')[0]);
    assert.ok(p50 > 0 && Number.isFinite(p50), line);
  }
});

test('split-pingpong-layers refuses a payload it cannot carry, naming the option', async () => {
  await assert.rejects(promisify(execFile)(process.execPath, [script, '--payload', '100']), (e: { stderr?: string; code?: number }) => {
    assert.match(e.stderr ?? '', /payload/);
    assert.notEqual(e.code, 0);
    return true;
  });
});
