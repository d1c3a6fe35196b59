// What a user sees when the `virtq` command is given bad input or cannot do its job, one row per
// case found by trying it as a new user would (issue 19): bad input is one line naming the option
// and exit code 2, an operational failure one line with the errno's name and exit code 1, a
// closed stdout ends quietly — never a stack, never exit 0 for a failure. Each row runs the built
// CLI as a child process and must fail at once (no run starts: a row that started one would hit
// the timeout).

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listPresets } from '../src/policy/index.js';
import { splitList } from '../src/cli/args.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const VERSION = (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
const dir = mkdtempSync(join(tmpdir(), 'virtq-cli-errors-'));
const afile = join(dir, 'afile');
writeFileSync(afile, 'a regular file, not a directory\n');
// <dir>/taken/study.json is a directory: the study's default JSON path cannot be written.
mkdirSync(join(dir, 'taken', 'study.json'), { recursive: true });
// A study report of another plan (3 runs per cell; the faithful plan has 10).
writeFileSync(join(dir, 'other-plan.json'), JSON.stringify({ schema: 'virtq-study/1', plan: { runs: 3 }, rows: [] }));
test.after(() => rmSync(dir, { recursive: true, force: true }));

const PRESET_CHOICES = `${listPresets().map((p) => p.name).join(', ')}; or <rfc preset>-alone, or a JSON object such as '{"base":"vhost"}'`;
const invalid = (flags: string, value: string, why: string): string => `error: option '${flags}' argument '${value}' is invalid. ${why}`;

interface Row {
  args: string[];
  env?: Record<string, string>;
  code: number;
  /** The whole of stderr for a failure (one line), or a pattern stdout must match for a success. */
  stderr?: string | RegExp;
  stdout?: RegExp;
}

const ROWS: Row[] = [
  { args: ['demo', '--ms', 'abc'], code: 2, stderr: invalid('--ms <n>', 'abc', 'Expected a positive integer.') },
  { args: ['demo', '--payload', '1501'], code: 2, stderr: invalid('--payload <bytes>', '1501', 'Expected a multiple of 4, at least 8.') },
  { args: ['demo', '--strategy', 'fast'], code: 2, stderr: invalid('--strategy <s>', 'fast', 'Expected one of: block, hybrid, spin.') },
  { args: ['trace', 'record', '--out', join(dir, 'r.ndjson'), '--count', 'abc'], code: 2, stderr: invalid('--count <n>', 'abc', 'Expected a positive integer.') },
  { args: ['trace', 'record', '--out', join(dir, 'r.ndjson'), '--queue-size', '100'], code: 2, stderr: invalid('--queue-size <n>', '100', 'Expected a power of two in 1..32768.') },
  { args: ['trace', 'analyze', join(dir, 'missing.ndjson'), '--slowest', '-1'], code: 2, stderr: invalid('--slowest <n>', '-1', 'Expected an integer ≥ 0.') },
  { args: ['vhost-user', '--socket', join(dir, 'vu.sock'), '--ms', 'abc'], code: 2, stderr: invalid('--ms <n>', 'abc', 'Expected a positive integer.') },
  { args: ['vhost-user', '--socket', '/nonexistent/dir/vu.sock'], code: 2, stderr: invalid('--socket <path>', '/nonexistent/dir/vu.sock', 'Directory /nonexistent/dir does not exist (ENOENT).') },
  { args: ['vhost-user', '--socket', join(dir, 'vu.sock'), '--backend', 'tap'], code: 2, stderr: invalid('--backend <b>', 'tap', 'Expected hoststack, responder, reflect or tap:NAME (an interface name of 1..15 characters).') },
  { args: ['vhost-user', '--socket', join(dir, 'vu.sock'), '--peer-mac', 'nope'], code: 2, stderr: invalid('--peer-mac <mac>', 'nope', 'Expected a MAC address such as 52:54:00:12:34:56.') },
  { args: ['vhost-user', '--socket', join(dir, 'vu.sock'), '--queues', '65'], code: 2, stderr: invalid('--queues <n>', '65', 'Expected 1..64 queue pairs.') },
  { args: ['vhost-user', '--socket', join(dir, 'vu.sock'), '--queues', '0'], code: 2, stderr: invalid('--queues <n>', '0', 'Expected a positive integer.') },
  { args: ['bench', 'stream', '--queues', '17'], code: 2, stderr: invalid('--queues <n>', '17', 'Expected 1..16 queue pairs.') },
  { args: ['bench', 'ring', '--runs', 'abc'], code: 2, stderr: invalid('--runs <n>', 'abc', 'Expected a positive integer.') },
  { args: ['bench', 'runners', '--strategy', 'fast'], code: 2, stderr: invalid('--strategy <s>', 'fast', 'Expected one of: block, hybrid, spin.') },
  { args: ['bench', 'timers', '--samples', '0'], code: 2, stderr: invalid('--samples <n>', '0', 'Expected a positive integer.') },
  { args: ['bench', 'peers', '--payloads', '64,x'], code: 2, stderr: invalid('--payloads <list>', '64,x', 'Expected a positive integer.') },
  { args: ['tap', '--name', 'vq9', '--guest-address', 'nope'], code: 2, stderr: invalid('--guest-address <ipv4>', 'nope', 'Expected an IPv4 address such as 10.77.0.2.') },
  { args: ['tap', '--name', 'vq9', '--guest-address', '10.77.0.2', '--address', 'bogus'], code: 2, stderr: invalid('--address <cidr>', 'bogus', 'Expected an IPv4 address with a prefix length such as 10.77.0.1/24.') },
  { args: ['bench', 'stream', '--runs', '1.5'], code: 2, stderr: invalid('--runs <n>', '1.5', 'Expected a positive integer.') },
  { args: ['bench', 'stream', '--seconds', 'abc'], code: 2, stderr: invalid('--seconds <s>', 'abc', 'Expected a number > 0.') },
  { args: ['bench', 'ping', '--count', 'abc'], code: 2, stderr: invalid('--count <n>', 'abc', 'Expected a positive integer.') },
  { args: ['bench', 'ping', '--direction', 'up'], code: 2, stderr: invalid('--direction <d>', 'up', 'Expected one of: g2h, h2g.') },
  { args: ['bench', 'ping', '--mode', 'alone'], code: 2, stderr: invalid('--mode <m>', 'alone', 'Expected one of: cumulative, isolated.') },
  { args: ['bench', 'stream', '--trace-sample', '0'], code: 2, stderr: invalid('--trace-sample <n>', '0', 'Expected a positive integer.') },
  { args: ['bench', 'stream', '--trace-sample-block', '3'], code: 2, stderr: invalid('--trace-sample-block <n>', '3', 'Expected a power of two in 1..4096.') },
  { args: ['bench', 'stream', '--trace-level', 'loud'], code: 2, stderr: invalid('--trace-level <level>', 'loud', 'Expected one of: trace, debug, info, warn, error.') },
  { args: ['bench', 'stream', '--preset', 'nope'], code: 2, stderr: invalid('--preset <name>', 'nope', `Unknown preset. Choose from: ${PRESET_CHOICES}.`) },
  { args: ['tap', '--name', 'vq9', '--guest-address', '10.77.0.2', '--preset', 'baseline-alone'], code: 2, stderr: invalid('--preset <name>', 'baseline-alone', `Unknown preset. Choose from: ${PRESET_CHOICES}.`) },
  { args: ['tap', '--name', 'vq9', '--guest-address', '10.77.0.2', '--queues', '17'], code: 2, stderr: invalid('--queues <n>', '17', 'Expected an integer from 1 to 16.') },
  { args: ['tap', '--name', 'vq9', '--guest-address', '10.77.0.2', '--queues', '2', '--pcap', join(dir, 'q.pcap')], code: 2, stderr: "error: option '--queues' above 1 cannot be combined with --pcap or --trace (they record one queue pair)" },
  { args: ['study', '--queues', '0'], code: 2, stderr: invalid('--queues <n>', '0', 'Expected an integer from 1 to 16.') },
  // A JSON item with several fields is one item (its commas do not split the list): the error is the policy's, about its field.
  { args: ['study', '--rows', 'rfc-gso,{"base":"rfc-timer-50us","costs":{"exitUs":-1,"irqInjectUs":0.5}}'], code: 2, stderr: /--rows <list>.*costs\.exitUs.*≥ 0/ },
  { args: ['study', '--rows', 'rfc-gso,nope'], code: 2, stderr: invalid('--rows <list>', 'rfc-gso,nope', `Unknown preset. Choose from: ${PRESET_CHOICES}.`) },
  { args: ['presets', '--show', '{"base":'], code: 2, stderr: /^error: option '--show <policy>' argument '\{"base":' is invalid\. policy JSON does not parse: .+\. Choose from: / },
  { args: ['presets', '--show', 'rfc-gso-alone'], code: 0, stdout: /"name": "rfc-gso-alone"/ },
  { args: ['presets', '--show', 'gso'], code: 0, stdout: /"name": "rfc-gso"/ },
  { args: ['presets', '--show', '{"base":"vhost"}'], code: 0, stdout: /"name": "vhost\+custom"/ },
  { args: ['study', '--json', join(afile, 'study.json')], code: 2, stderr: invalid('--json [file]', join(afile, 'study.json'), `${afile} is not a directory (ENOTDIR).`) },
  { args: ['study', '--out', join(afile, 'out')], code: 2, stderr: invalid('--out <dir>', join(afile, 'out'), `${afile} is not a directory (ENOTDIR).`) },
  { args: ['bench', 'stream', '--trace', join(afile, 't.ndjson')], code: 2, stderr: invalid('--trace <file>', join(afile, 't.ndjson'), `${afile} is not a directory (ENOTDIR).`) },
  { args: ['bench', 'stream', '--json', join(afile, 'cell.json')], code: 2, stderr: invalid('--json [file]', join(afile, 'cell.json'), `${afile} is not a directory (ENOTDIR).`) },
  { args: ['trace', 'analyze', join(dir, 'missing.ndjson'), '--json', join(afile, 'r.json')], code: 2, stderr: invalid('--json [file]', join(afile, 'r.json'), `${afile} is not a directory (ENOTDIR).`) },
  { args: ['study', '--out', join(dir, 'taken'), '--rows', 'rfc-baseline'], code: 2, stderr: `error: option '--out <dir>': cannot write ${join(dir, 'taken')}/study.json. ${join(dir, 'taken')}/study.json is a directory (EISDIR).` },
  { args: ['bench', 'stream', '--trace', dir], code: 2, stderr: invalid('--trace <file>', dir, `${dir} is a directory (EISDIR).`) },
  { args: ['study', '--resume', '--json', join(dir, 'none.json')], code: 2, stderr: `error: option '--resume': cannot read ${join(dir, 'none.json')} (ENOENT).` },
  { args: ['study', '--resume', '--json', join(dir, 'other-plan.json')], code: 2, stderr: `error: option '--resume': ${join(dir, 'other-plan.json')} is a study of another plan (plan.runs was 3, now 10).` },
  { args: ['study', '--resume', '--json', afile], code: 2, stderr: /^error: option '--resume': cannot read .*afile \(Unexpected token/ },
  { args: ['--log-level', 'loud', 'presets'], code: 2, stderr: invalid('--log-level <level>', 'loud', 'Expected one of: trace, debug, info, warn, error, fatal, silent.') },
  { args: ['presets'], env: { VIRTQ_LOG_LEVEL: 'loud' }, code: 2, stderr: "virtq: VIRTQ_LOG_LEVEL 'loud' is invalid. Expected one of: trace, debug, info, warn, error, fatal, silent." },
  { args: ['nosuch'], code: 2, stderr: "error: unknown command 'nosuch'" },
  { args: ['bench', 'stream', '--bogus'], code: 2, stderr: "error: unknown option '--bogus'" },
  { args: ['trace', 'analyze', join(dir, 'missing.ndjson')], code: 1, stderr: `virtq: ENOENT: no such file or directory, open '${join(dir, 'missing.ndjson')}'` },
  { args: ['--version'], code: 0, stdout: new RegExp(`^${VERSION.replace(/\./g, '\\.')}\\n$`) },
  { args: ['--log-level', 'silent', 'presets'], code: 0, stdout: /^rfc-baseline /m },
];

for (const row of ROWS) {
  const shown = `virtq ${row.args.map((a) => (/[\s{"']/.test(a) ? `'${a}'` : a)).join(' ')}`;
  test(`${row.env !== undefined ? `${Object.entries(row.env).map(([k, v]) => `${k}=${v} `).join('')}` : ''}${shown} → exit ${row.code}`, () => {
    const r = spawnSync(process.execPath, [CLI, ...row.args], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...(row.env ?? {}) } });
    assert.equal(r.error, undefined, 'ends at once (no run starts)');
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack');
    assert.equal(r.status, row.code, `exit code (stderr: ${r.stderr})`);
    if (row.code !== 0) {
      assert.equal(r.stdout, '', 'nothing on stdout');
      assert.equal(r.stderr.split('\n').filter((l) => l.length > 0).length, 1, `one line: ${r.stderr}`);
      if (typeof row.stderr === 'string') assert.equal(r.stderr.trimEnd(), row.stderr);
      else assert.match(r.stderr.trimEnd(), row.stderr!);
    } else {
      assert.match(r.stdout, row.stdout!);
    }
  });
}

test('the names --preset errors list are exactly the ones virtq presets prints', () => {
  const r = spawnSync(process.execPath, [CLI, 'presets'], { encoding: 'utf8', timeout: 30_000 });
  const printed = r.stdout.split('\n\n')[0]!.split('\n').map((l) => l.split(/\s+/)[0]);
  assert.deepEqual(printed, listPresets().map((p) => p.name));
});

test('virtq presets into a closed pipe (| head -1) ends quietly with exit 0', async () => {
  const child = spawn(process.execPath, [CLI, 'presets'], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Closed before the child writes anything: every write it makes meets EPIPE.
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(stderr, '');
  assert.equal(code, 0);
});

test('list options split only at commas outside JSON objects, arrays and strings', () => {
  assert.deepEqual(splitList('rfc-gso,vhost'), ['rfc-gso', 'vhost']);
  assert.deepEqual(splitList('rfc-gso,{"base":"vhost","costs":{"exitUs":1,"syscallUs":2}},adaptive'), ['rfc-gso', '{"base":"vhost","costs":{"exitUs":1,"syscallUs":2}}', 'adaptive']);
  assert.deepEqual(splitList('{"name":"a,b\\",c","x":[1,2]},d'), ['{"name":"a,b\\",c","x":[1,2]}', 'd']);
  assert.deepEqual(splitList(''), ['']);
});
