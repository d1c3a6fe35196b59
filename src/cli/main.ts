#!/usr/bin/env node
// The `virtq` command. Each subcommand lives in its own module under ./commands/.

import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { COMMANDS } from './commands/index.js';

/** The version in package.json: this file is <package>/dist/src/cli/main.js. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

const program = new Command();
program
  .name('virtq')
  .description('virtio split virtqueues between worker threads: demo, benchmarks, study, tracing')
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .showHelpAfterError();
for (const register of COMMANDS) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`virtq: ${msg}\n`);
  process.exitCode = 1;
});
