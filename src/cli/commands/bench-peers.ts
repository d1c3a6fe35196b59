// `virtq bench peers` (the ring beside its peers: bare SAB ring, postMessage, ringbuf.js, Atomics
// ping-pong), `virtq bench ring` (single-thread ns per chain), `virtq bench runners` (piscina vs
// worker_threads) and `virtq bench timers` (timer lateness). All but the first run their scripts
// in a child process so each owns the whole process.

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { configurePeersCommand } from '../../../bench/peers/main.js';

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
  forward(bench, 'ring', 'ring-micro.js', 'single-thread split ring: ns per chain (device pop + used, driver add + reap)');
  forward(bench, 'runners', 'runner-compare.js', 'piscina vs plain worker_threads as processor hosts: start-up and steady state');
  forward(bench, 'timers', 'timer-lateness.js', 'lateness of 50/150/250 µs timers: Atomics.wait timeout vs precise deadlines');
}
