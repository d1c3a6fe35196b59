#!/usr/bin/env node
// The `virtq` command. Each subcommand lives in its own module under ./commands/.

import { Command } from 'commander';
import { COMMANDS } from './commands/index.js';

const program = new Command();
program
  .name('virtq')
  .description('virtio split virtqueues between worker threads: demo, benchmarks, study, tracing')
  .showHelpAfterError();
for (const register of COMMANDS) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`virtq: ${msg}\n`);
  process.exitCode = 1;
});
