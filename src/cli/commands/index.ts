// Every `virtq` subcommand registers itself here: one module per command family, one line each.
// (Keeping one line per command makes parallel work on different commands merge cleanly.)

import type { Command } from 'commander';
import { registerDemo } from './demo.js';
import { registerBench } from './bench.js';
import { registerPresets } from './presets.js';
import { registerStudy } from './study.js';
import { registerTrace } from './trace.js';
import { registerTap } from './tap.js';
import { registerVhostUser } from './vhost-user.js';

export type CommandRegistrar = (program: Command) => void;

export const COMMANDS: CommandRegistrar[] = [
  registerDemo,
  registerBench,
  registerPresets,
  registerStudy,
  registerTrace,
  registerTap,
  registerVhostUser,
];
