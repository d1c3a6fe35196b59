// Command-line entry of the peer baselines (src/baselines/, the same command as `virtq bench peers`):
//   node dist/bench/peers/main.js [--quick] [--json] [--runs N] [--ms N]
//     [--payloads 64,1500,65536] [--strategies wait,spin2000+wait,spin] [--cases a,b]
//     [--module path.js ...]   (extra case modules; they call registerPeerCase on import)
// Progress goes to stderr, the table (or with --json the report) to stdout. --quick defaults to
// 1 run of 200 ms per case (~10 s in all); explicit --runs / --ms win over it.

import { Command } from 'commander';
import { configurePeersCommand } from '../../src/cli/commands/bench-peers.js';

configurePeersCommand(new Command().name('virtq bench peers'))
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`virtq bench peers: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  });
