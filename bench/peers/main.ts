// Command-line entry of the peer baselines:
//   node dist/bench/peers/main.js [--quick] [--json] [--runs N] [--ms N]
//     [--payloads 64,1500,65536] [--strategies wait,spin2000+wait,spin] [--cases a,b]
//     [--module path.js ...]   (extra case modules; they call registerPeerCase on import)
// Progress goes to stderr, the table (or with --json the report) to stdout. --quick defaults to
// 1 run of 200 ms per case (~10 s in all); explicit --runs / --ms win over it.

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { formatPeersTable } from './format.js';
import { peerCases, runPeersBench } from './registry.js';
import { DEFAULT_STRATEGIES, type PeerCaseResult, type PingPongResult } from './types.js';

const DEFAULT_PAYLOADS = [64, 1500, 65536];

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`"${text}" is not a positive integer`);
  return n;
}

function list(text: string): string[] {
  return text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function intList(text: string): number[] {
  return list(text).map(positiveInt);
}

interface CliOptions {
  quick?: boolean;
  json?: boolean;
  runs?: number;
  ms?: number;
  payloads?: number[];
  strategies?: string[];
  cases?: string[];
  module?: string[];
}

function progressLine(r: PeerCaseResult | PingPongResult, index: number, total: number): string {
  const head = `[${index}/${total}]`;
  if ('pps' in r) {
    const status = r.error !== undefined ? `error: ${r.error}` : `${(r.pps / 1e6).toFixed(3)} Mpps${r.verified ? '' : ' UNVERIFIED'}`;
    return `${head} ${r.name} ${r.payloadBytes} B: ${status}`;
  }
  const status = r.error !== undefined ? `error: ${r.error}` : `p50 ${r.p50Us.toFixed(2)} µs over ${r.rtts} RTTs`;
  return `${head} ${r.name}/${r.strategy}: ${status}`;
}

/** Adds the peers options and action to `command` (used by this script and by `virtq bench peers`). */
export function configurePeersCommand(command: Command): Command {
  return command
    .description('peer baselines beside the virtq ring: bare SAB ring, postMessage, ringbuf.js, Atomics ping-pong')
    .option('--quick', 'short run: 1 run × 200 ms per case, under a minute in all')
    .option('--json', 'print the report as JSON instead of a table')
    .option('--runs <n>', 'runs per case (default 5, --quick 1)', positiveInt)
    .option('--ms <n>', 'measured window per run in ms (default 500, --quick 200)', positiveInt)
    .option('--payloads <list>', 'payload sizes in bytes', intList)
    .option('--strategies <list>', 'kick strategies: wait, spin<N>+wait, spin', list)
    .option('--cases <list>', `cases to run (built in: ${[...peerCases.keys()].join(', ')})`, list)
    .option('--module <paths...>', 'import these case modules first (each registers its cases)')
    .action(async (o: CliOptions) => {
      for (const path of o.module ?? []) await import(pathToFileURL(resolve(path)).href);
      const quick = o.quick === true;
      const report = await runPeersBench({
        payloads: o.payloads ?? DEFAULT_PAYLOADS,
        durationMs: o.ms ?? (quick ? 200 : 500),
        runs: o.runs ?? (quick ? 1 : 5),
        strategies: o.strategies ?? [...DEFAULT_STRATEGIES],
        quick,
        ...(o.cases !== undefined ? { cases: o.cases } : {}),
        onResult: (r, i, n) => process.stderr.write(`${progressLine(r, i, n)}\n`),
      });
      process.stdout.write(o.json === true ? `${JSON.stringify(report, null, 2)}\n` : `${formatPeersTable(report)}\n`);
      const failed = report.throughput.some((s) => !s.allVerified) || report.latency.some((s) => s.results.some((r) => r.error !== undefined));
      if (failed) process.exitCode = 1;
    });
}

// Run as a script (node dist/bench/peers/main.js …), not when imported by the CLI.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  configurePeersCommand(new Command().name('virtq bench peers'))
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      process.stderr.write(`virtq bench peers: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 2;
    });
}
