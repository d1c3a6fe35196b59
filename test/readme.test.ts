// The README read as a user reads it: its Quick start is exactly the two commands, and the npm
// scripts they name do what the README says; every ```ts library example runs as written,
// copied verbatim into a temporary project whose node_modules/virtq links to this repository
// (so `import … from 'virtq'` goes through the exports map to the built dist). An example that is
// a fragment (no imports, code that lives inside someone's emulator) is preceded in the README by
// `<!-- not-run: reason -->`; it is skipped, and the test lists it with its reason.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const SCRIPTS = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;

interface Example {
  line: number;
  code: string;
  notRun: string | null;
}

/** Every ```ts block, with the reason of a `<!-- not-run: … -->` marker on the line before it. */
function tsExamples(): Example[] {
  const out: Example[] = [];
  const re = /(?:<!--\s*not-run:\s*([^>]*?)\s*-->\n)?```ts\n([\s\S]*?)```/g;
  for (let m = re.exec(README); m !== null; m = re.exec(README)) {
    out.push({ line: README.slice(0, m.index).split('\n').length, code: m[2]!, notRun: m[1] ?? null });
  }
  return out;
}

test("README's Quick start is exactly the two npm commands, and the scripts they name build and then run the quick study and every test", () => {
  const m = /## Quick start\n+```sh\n([\s\S]*?)```/.exec(README);
  assert.ok(m !== null, 'a ```sh block right under "## Quick start"');
  const lines = m[1]!.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines:\n${m[1]}`);
  assert.match(lines[0]!, /^npm ci && npm start\s+# build, then run the RFC study on built-in defaults \(quick mode/);
  assert.match(lines[1]!, /^npm ci && npm test\s+# build, then run every test$/);
  assert.match(SCRIPTS.start ?? '', /^npm run -s build && node dist\/src\/cli\/main\.js study --quick$/, 'npm start builds, then runs `virtq study --quick`');
  assert.match(SCRIPTS.test ?? '', /^npm run -s build && node --test .*dist\/test\/\*\.test\.js$/, 'npm test builds, then runs every compiled test');
  assert.equal(SCRIPTS.build, 'tsc -p tsconfig.json');
});

test('every self-contained ```ts example in the README runs verbatim against the package; fragments are marked not-run and listed', { timeout: 120_000 }, (t) => {
  const examples = tsExamples();
  const run = examples.filter((e) => e.notRun === null);
  const skipped = examples.filter((e) => e.notRun !== null);
  assert.ok(run.length >= 1, 'at least one example runs');
  for (const e of skipped) {
    assert.ok(e.notRun!.length > 0, `README line ${e.line}: a not-run marker gives its reason`);
    t.diagnostic(`not run: README line ${e.line} (${e.notRun})`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'virtq-readme-'));
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'virtq'), 'dir');
    writeFileSync(join(dir, 'package.json'), '{ "type": "module", "private": true }\n');
    for (const e of run) {
      // The repository's TypeScript strips the types; the code itself is the README's.
      const js = ts.transpileModule(e.code, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
      const file = join(dir, `readme-line-${e.line}.mjs`);
      writeFileSync(file, js);
      const r = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 90_000 });
      assert.equal(r.status, 0, `README line ${e.line}: the example exits 0 (status ${r.status}, ${r.error?.message ?? ''}):\n${r.stdout}\n${r.stderr}`);
      t.diagnostic(`ran README line ${e.line}: ${r.stdout.trim().split('\n').pop() ?? ''}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
