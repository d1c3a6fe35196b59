// The package as a user gets it: `npm pack`, install the tarball into a fresh project, import
// every entry point of the `exports` map from plain ESM, type-check a TypeScript file against
// them (moduleResolution node16 and bundler), run the README's engine example verbatim, and run
// `npx virtq --version`. Also pins that the tarball holds what runs and nothing else (no compiled
// tests, no CI files).
//
// The tarball is packed with --ignore-scripts: `npm test` has just built dist, and the prepack
// build (pinned below) would rebuild the same files. The install is offline: npm's cache usually
// holds the dependencies after `npm ci`; when it does not (ENOTCACHED), the tarball is unpacked
// into node_modules/virtq by hand and its dependencies linked from this repository's
// node_modules — the files checked are the tarball's either way.

import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  exports: Record<string, string | { types: string; default: string }>;
  bin: Record<string, string>;
};
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const SUBPATHS = Object.keys(PKG.exports).filter((k) => k !== './package.json');
/** The ```ts block under "## Starting an engine" in the README, as written there. */
const README_ENGINE_EXAMPLE = ((): string => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const m = /## Starting an engine\n+```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(m !== null, 'the README has a ts block under "## Starting an engine"');
  return m[1]!;
})();
const SPECIFIERS = SUBPATHS.map((k) => (k === '.' ? 'virtq' : `virtq/${k.slice(2)}`));

function sh(cmd: string, args: string[], cwd: string, timeoutMs = 60_000): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, npm_config_update_notifier: 'false' } });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} failed (status ${r.status}, ${r.error?.message ?? ''}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Unpacks the tarball into <proj>/node_modules/virtq and links its dependencies from this repo. */
function installByHand(tgz: string, proj: string): void {
  const nm = join(proj, 'node_modules');
  mkdirSync(nm, { recursive: true });
  ok(sh('tar', ['-xzf', tgz, '-C', nm], proj), 'tar -x');
  renameSync(join(nm, 'package'), join(nm, 'virtq'));
  for (const dep of Object.keys(PKG.dependencies)) symlinkSync(join(ROOT, 'node_modules', dep), join(nm, dep), 'dir');
  mkdirSync(join(nm, '.bin'));
  for (const [name, rel] of Object.entries(PKG.bin)) {
    chmodSync(join(nm, 'virtq', rel), 0o755);
    symlinkSync(join('..', 'virtq', rel), join(nm, '.bin', name));
  }
}

test('the packed tarball installs into a fresh project, every entry point imports and type-checks, and npx virtq --version runs', { timeout: 180_000 }, (t) => {
  assert.match(PKG.scripts['prepack'] ?? '', /build/, 'prepack builds, so a tarball or a git install carries dist');
  const dir = mkdtempSync(join(tmpdir(), 'virtq-package-'));
  try {
    const packed = JSON.parse(ok(sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT), 'npm pack')) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    const tgz = join(dir, packed[0]!.filename);

    // What runs is there; what does not run is not.
    for (const must of ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'dist/workers/processor.js', 'dist/workers/processor-entry.cjs', 'native/binding.gyp', 'dist/bench/ring-micro.js', 'dist/bench/runner-compare.js', 'dist/bench/timer-lateness.js']) {
      assert.ok(files.includes(must), `the tarball holds ${must}`);
    }
    for (const sub of SUBPATHS) {
      const e = PKG.exports[sub]!;
      assert.ok(typeof e === 'object' && files.includes(e.types.slice(2)) && files.includes(e.default.slice(2)), `the tarball holds both files of export ${sub}`);
    }
    const stray = files.filter((f) => /^(dist\/(test|examples)\/|test\/|\.ci\/|src\/|native\/build\/)|\.map$/.test(f) || (f.startsWith('dist/bench/') && !/^dist\/bench\/(ring-micro|runner-compare|timer-lateness)\.js$/.test(f)));
    assert.deepEqual(stray, [], 'no tests, CI files, TypeScript sources, source maps or unused bench scripts');

    const proj = join(dir, 'proj');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'virtq-consumer', version: '1.0.0', private: true, type: 'module' }));
    const npmInstall = sh('npm', ['install', tgz, '--offline', '--no-audit', '--no-fund'], proj, 120_000);
    if (npmInstall.status !== 0) {
      t.diagnostic(`npm install --offline failed (${/code (\w+)/.exec(npmInstall.stderr)?.[1] ?? `status ${npmInstall.status}`}): dependencies not in npm's cache; unpacked the tarball and linked the dependencies from ${ROOT}node_modules instead`);
      rmSync(join(proj, 'node_modules'), { recursive: true, force: true });
      installByHand(tgz, proj);
    }

    // Plain ESM: every entry point imports, and the main one carries the API the README shows.
    writeFileSync(
      join(proj, 'check.mjs'),
      SPECIFIERS.map((s, i) => `import * as m${i} from '${s}';`).join('\n') +
        `\nconst mods = { ${SPECIFIERS.map((s, i) => `'${s}': m${i}`).join(', ')} };\n` +
        `for (const [name, m] of Object.entries(mods)) if (Object.keys(m).length === 0) throw new Error(name + ' exports nothing');\n` +
        `for (const name of ['Engine', 'DeviceQueue', 'DriverQueue', 'GuestMemory', 'NetDevice', 'NetDeviceService', 'NetDriverService', 'NetEndpoint', 'resolvePolicy', 'listPresets', 'MmioTransport', 'Tracer', 'TraceSession', 'startNodeDeviceWorker']) if (typeof m0[name] !== 'function') throw new Error('virtq has no ' + name);\n` +
        `if (typeof mods['virtq/vhost-user'].startVhostUser !== 'function') throw new Error('virtq/vhost-user has no startVhostUser');\n` +
        // The workers ship too: a short verified run through the engine's processor workers.
        `const r = await m0.Engine.run({ workload: 'stream', queues: [{ size: 64 }], durationMs: 200, params: { payloadBytes: 64, verify: 'full', warmupMs: 0 } });\n` +
        `if (!(r.host.packets > 0) || r.host.errors + r.guest.errors !== 0) throw new Error('engine run: ' + JSON.stringify(r.host));\n` +
        `console.log(Object.keys(mods).length + ' entry points');\n`,
    );
    assert.match(ok(sh(process.execPath, ['check.mjs'], proj), 'importing every entry point'), new RegExp(`^${SPECIFIERS.length} entry points`));

    // The README's library example, verbatim, runs against the installed package (and type-checks below).
    writeFileSync(join(proj, 'readme-engine.mjs'), README_ENGINE_EXAMPLE);
    writeFileSync(join(proj, 'readme-engine.ts'), README_ENGINE_EXAMPLE);
    assert.match(ok(sh(process.execPath, ['readme-engine.mjs'], proj), "the README's engine example"), /^\d+(\.\d+)?(e\+\d+)? packets\/s$/m);

    // TypeScript against the shipped declarations, with both resolutions people use.
    writeFileSync(
      join(proj, 'check.ts'),
      `import { Engine, GuestMemory, resolvePolicy, type EngineOptions, type NetPort } from 'virtq';\n` +
        `import { DeviceQueue, SplitLayout } from 'virtq/virtqueue';\n` +
        `import { GuestMemoryError } from 'virtq/memory';\n` +
        `import { NetDeviceService, NetDriverService, type NetPort as NetPort2 } from 'virtq/net';\n` +
        `import { listPresets, type PolicyConfig } from 'virtq/policy';\n` +
        `import { MmioTransport } from 'virtq/transport';\n` +
        `import { TraceSession } from 'virtq/trace';\n` +
        `import { startVhostUser, type VhostUserOptions } from 'virtq/vhost-user';\n` +
        `import { runTraced } from 'virtq/engine';\n` +
        `const opts: EngineOptions = { workload: 'stream', queues: [{ size: 256 }], durationMs: 10 };\n` +
        `const policy: PolicyConfig = resolvePolicy('vhost');\n` +
        `const names: string[] = listPresets().map((p) => p.name);\n` +
        `const port: NetPort | NetPort2 | undefined = undefined;\n` +
        `const vo: Partial<VhostUserOptions> = { socketPath: '/tmp/x' };\n` +
        `export const used = [Engine, GuestMemory, DeviceQueue, SplitLayout, GuestMemoryError, NetDeviceService, NetDriverService, MmioTransport, TraceSession, startVhostUser, runTraced, opts, policy, names, port, vo];\n`,
    );
    const typeRoots = join(ROOT, 'node_modules', '@types');
    for (const [mod, res] of [['node16', 'node16'], ['esnext', 'bundler']] as const) {
      const r = sh(process.execPath, [TSC, '--noEmit', '--strict', '--skipLibCheck', 'false', '--target', 'es2022', '--lib', 'es2023', '--module', mod, '--moduleResolution', res, '--typeRoots', typeRoots, '--types', 'node', 'check.ts', 'readme-engine.ts'], proj, 120_000);
      ok(r, `tsc --moduleResolution ${res}`);
    }

    // The command, through npx as a user runs it.
    assert.equal(ok(sh('npx', ['--offline', '--no-install', 'virtq', '--version'], proj), 'npx virtq --version').trim(), PKG.version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every export of the map names a file the build produces', () => {
  for (const sub of SUBPATHS) {
    const e = PKG.exports[sub]!;
    assert.ok(typeof e === 'object', `${sub} has types and default`);
    for (const f of [e.types, e.default]) assert.ok(readdirSync(join(ROOT, f, '..')).includes(f.split('/').pop()!), `${sub}: ${f} exists`);
  }
});
