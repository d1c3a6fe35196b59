// Subcommands of `virtq bench`: one module per benchmark family, one line each.

import type { Command } from 'commander';
import { registerBenchPeers } from './bench-peers.js';
import { registerBenchNet } from './bench-net.js';
import { registerBenchGuest } from './bench-guest.js';

export type BenchRegistrar = (bench: Command) => void;

export const BENCH_COMMANDS: BenchRegistrar[] = [
  registerBenchPeers,
  registerBenchNet,
  registerBenchGuest,
];
