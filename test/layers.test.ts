// The layering of src/ (README "What is here"): each layer imports only the layers listed
// before it, never one after it, so no import runs back up. Read from the sources' own import
// statements (`from '…'`, side-effect `import '…'` and dynamic `import('…')` with a literal path).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom to top, as the README's table lists them. */
const LAYERS = ['memory', 'notify', 'sync', 'virtqueue', 'policy', 'net', 'trace', 'backend', 'transport', 'vhost-user', 'engine', 'v86', 'study', 'baselines', 'cli'];
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sources(p));
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The layer a file of src/ belongs to (its first folder), or null for src/index.ts. */
function layerOf(file: string): string | null {
  const rel = relative(SRC, file).split(/[\\/]/);
  return rel.length > 1 ? rel[0]! : null;
}

test('every layer of src/ imports only the layers below it', () => {
  const wrong: string[] = [];
  let imports = 0;
  for (const file of sources(SRC)) {
    const from = layerOf(file);
    if (from === null) continue; // src/index.ts: the package's face, above every layer
    assert.ok(LAYERS.includes(from), `src/${from}/ is not in the layer list: add it where it belongs`);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(?\s*)'(\.[^']+)'/g)) {
      imports++;
      const target = resolve(dirname(file), m[1]!);
      const to = layerOf(target);
      if (to === null || to === from) continue;
      if (LAYERS.indexOf(to) > LAYERS.indexOf(from)) wrong.push(`${relative(SRC, file)} imports ${m[1]} (${from} → ${to})`);
    }
  }
  assert.ok(imports > 100, `read ${imports} imports: the pattern found the sources`);
  assert.deepEqual(wrong, [], 'imports that run back up');
});
