#!/usr/bin/env node
// The `virtq` command. Each subcommand lives in its own module under ./commands/; their options
// are checked by the shared parsers in ./args.ts. What the user sees when something goes wrong:
// bad input — one line naming the option, exit code 2; an operational failure — one line
// (with the errno's name where there is one), exit code 1; a closed stdout (`virtq presets |
// head -1`) — nothing, exit 0. Never a stack.

import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import { LOG_LEVELS } from '../trace/log.js';
import { oneOf } from './args.js';
import { COMMANDS } from './commands/index.js';

/** Exit code for bad usage (a bad option value, an unknown option or command). */
export const EXIT_USAGE = 2;

/** The version in package.json: this file is <package>/dist/src/cli/main.js. */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/**
 * One line for an operational error: its message (and its causes'), lines joined, with the
 * errno's name added where only a number or nothing says it ("errno 2" → "errno 2 (ENOENT)").
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let code: string | undefined;
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const msg = e instanceof Error ? e.message : String(e);
    if (!parts.some((p) => p.includes(msg))) parts.push(msg);
    const c = (e as { code?: unknown }).code;
    if (code === undefined && typeof c === 'string' && /^E[A-Z0-9]+$/.test(c)) code = c;
  }
  let line = parts
    .join(': ')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .join('; ')
    .replace(/errno (\d+)(?! \()/g, (m, n: string) => (ERRNO_NAMES.has(Number(n)) ? `${m} (${ERRNO_NAMES.get(Number(n))})` : m));
  if (code !== undefined && !line.includes(code)) line += ` (${code})`;
  return line;
}

// A closed stdout (a pager or `head` quit) ends the command quietly; the output was wanted no further.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  process.stderr.write(`virtq: stdout: ${describeError(e)}\n`);
  process.exit(1);
});

const logLevel = oneOf(LOG_LEVELS);
const envLevel = process.env['VIRTQ_LOG_LEVEL'];
if (envLevel !== undefined && envLevel !== '' && !(LOG_LEVELS as readonly string[]).includes(envLevel)) {
  process.stderr.write(`virtq: VIRTQ_LOG_LEVEL '${envLevel}' is invalid. Expected one of: ${LOG_LEVELS.join(', ')}.\n`);
  process.exit(EXIT_USAGE);
}

const program = new Command();
program
  .name('virtq')
  .description('virtio split virtqueues between worker threads: demo, benchmarks, study, tracing')
  .version(packageVersion(), '-V, --version', 'print the version and exit')
  .addOption(new Option('--log-level <level>', `operational log level on stderr (pino NDJSON): ${LOG_LEVELS.join(' | ')}; default $VIRTQ_LOG_LEVEL, else warn`).argParser(logLevel))
  // Usage errors exit 2 (commander's own is 1); help and --version exit 0. Set before the
  // subcommands are added so each inherits it.
  .exitOverride((err: CommanderError) => process.exit(err.exitCode === 0 ? 0 : EXIT_USAGE))
  .hook('preAction', (cmd) => {
    const level = cmd.opts<{ logLevel?: string }>().logLevel;
    // Workers copy process.env when they start, so every side's logger sees it.
    if (level !== undefined) process.env['VIRTQ_LOG_LEVEL'] = level;
  });
for (const register of COMMANDS) register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`virtq: ${describeError(err)}\n`);
  process.exitCode = 1;
});
