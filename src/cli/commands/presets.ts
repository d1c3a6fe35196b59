// `virtq presets`: lists every notification-policy preset with a one-line description and the
// RFC row it reproduces; `--show <name|json>` prints one resolved config (validated) as JSON.

import type { Command } from 'commander';
import { listPresets, resolvePolicy } from '../../policy/index.js';
import { policySpec } from '../args.js';

export function registerPresets(program: Command): void {
  program
    .command('presets')
    .description('list the notification-policy presets (RFC rows and modern ones)')
    .option('--show <policy>', 'print one resolved policy (a preset name, <rfc preset>-alone, or a JSON object) as JSON', policySpec)
    .action((o: { show?: string }) => {
      if (o.show !== undefined) {
        // JSON cannot say Infinity: print it as the string the parser accepts back.
        const json = JSON.stringify(resolvePolicy(o.show), (_k, v: unknown) => (v === Infinity ? 'Infinity' : v), 2);
        process.stdout.write(json + '\n');
        return;
      }
      const rows = listPresets();
      const width = Math.max(...rows.map((r) => r.name.length));
      for (const r of rows) {
        const rfc = r.rfcRow !== null ? ` [RFC row: ${r.rfcRow}]` : '';
        process.stdout.write(`${r.name.padEnd(width)}  ${r.description}${rfc}\n`);
      }
      process.stdout.write(`\nAlso: <rfc preset>-alone applies one RFC row alone on top of the baseline; a JSON object {"base": "<preset>", ...overrides} builds your own (see docs/policy.md).\n`);
    });
}
