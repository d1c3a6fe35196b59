// `virtq bench …`: the command group; each benchmark registers itself in ./bench-index.ts.

import type { Command } from 'commander';
import { BENCH_COMMANDS } from './bench-index.js';

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks (run one at a time on a quiet machine)');
  for (const register of BENCH_COMMANDS) register(bench);
}
