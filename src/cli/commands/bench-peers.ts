// `virtq bench peers` (the ring beside its peers: bare SAB ring, postMessage, ringbuf.js, Atomics
// ping-pong), `virtq bench ring` (single-thread ns per chain), `virtq bench runners` (piscina vs
// worker_threads) and `virtq bench timers` (timer lateness). All but the first run their scripts
// in a child process so each owns the whole process. The peer baselines themselves live in
// src/baselines/; bench/peers/main.ts runs this same command as a script.

import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { DEFAULT_STRATEGIES, formatPeersTable, peerCases, runPeersBench, type PeerCaseResult, type PingPongResult } from '../../baselines/index.js';
import { writeFileSync } from 'node:fs';
import { emitReport, jsonHelp, listOf, outputFile, positiveInt, words, type JsonOption } from '../args.js';

const DEFAULT_PAYLOADS = [64, 1500, 65536];


interface CliOptions {
  quick?: boolean;
  json?: JsonOption;
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

/** Adds the peers options and action to `command` (`virtq bench peers`, and the script bench/peers/main.ts). */
export function configurePeersCommand(command: Command): Command {
  return command
    .description('peer baselines beside the virtq ring: bare SAB ring, postMessage, ringbuf.js, Atomics ping-pong')
    .option('--quick', 'short run: 1 run × 200 ms per case, under a minute in all')
    .option('--json [file]', jsonHelp('the report'), outputFile)
    .option('--runs <n>', 'runs per case (default 5, --quick 1)', positiveInt)
    .option('--ms <n>', 'measured window per run in ms (default 500, --quick 200)', positiveInt)
    .option('--payloads <list>', 'payload sizes in bytes', listOf(positiveInt))
    .option('--strategies <list>', 'kick strategies: wait, spin<N>+wait, spin', words)
    .option('--cases <list>', `cases to run (built in: ${[...peerCases.keys()].join(', ')})`, words)
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
      emitReport(o.json, () => `${JSON.stringify(report, null, 2)}\n`, () => `${formatPeersTable(report)}\n`, writeFileSync);
      const failed = report.throughput.some((s) => !s.allVerified) || report.latency.some((s) => s.results.some((r) => r.error !== undefined));
      if (failed) process.exitCode = 1;
    });
}

function forward(bench: Command, name: string, script: string, description: string): void {
  const path = fileURLToPath(new URL(`../../../bench/${script}`, import.meta.url));
  bench
    .command(name)
    .description(`${description} (options as: node ${path.replace(/^.*\/dist\//, 'dist/')} --help)`)
    .allowUnknownOption()
    .helpOption(false)
    .argument('[args...]')
    .action((args: string[]) => {
      const r = spawnSync(process.execPath, [path, ...args], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });
}

export function registerBenchPeers(bench: Command): void {
  configurePeersCommand(bench.command('peers'));
  forward(bench, 'ring', 'ring-micro.js', 'single-thread split and packed rings: ns per chain (device pop + used, driver add + reap; --ring, --in-order)');
  forward(bench, 'runners', 'runner-compare.js', 'piscina vs plain worker_threads as processor hosts: start-up and steady state');
  forward(bench, 'timers', 'timer-lateness.js', 'lateness of 50/150/250 µs timers: Atomics.wait timeout vs precise deadlines');
}
