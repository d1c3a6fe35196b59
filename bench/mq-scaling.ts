// Multiqueue scaling: the net stream on 1, 2 and 4 queue pairs (each pair its own guest and host
// worker, runEnginePairs), for 64-byte sends and 1448-byte (one MSS, a 1500-byte frame) sends
// without GSO and 64 KiB sends with GSO; aggregate and per-pair Gb/s, packets per second, CPU
// seconds per GB both sides, and the machine's core count. Pairs share no data path, so the
// aggregate should grow with pairs until the pairs' threads (2 per pair) outnumber the cores;
// past that it stays flat or drops (threads time-share, and sleeping/waking costs more).
// Every configuration is run `--runs` times, interleaved round by round; min/median/max reported.
//
//   node dist/bench/mq-scaling.js [--quick] [--json] [--runs N] [--seconds S] [--pairs 1,2,4] [--preset P]

import { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { runStreamOnce } from '../src/study/runner.js';
import { studyPresetOf } from '../src/cli/commands/bench-net.js';
import type { StreamRun } from '../src/study/measure.js';

interface Case {
  name: string;
  msgBytes: number;
  gso: boolean;
}

const CASES: Case[] = [
  { name: '64 B', msgBytes: 64, gso: false },
  { name: '1500 B', msgBytes: 1448, gso: false },
  { name: 'GSO 64 KiB', msgBytes: 65536, gso: true },
];

interface Cell {
  case: string;
  pairs: number;
  gbps: number[];
  mpps: number[];
  perPairGbps: number[][];
  guestCpuSPerGB: number[];
  hostCpuSPerGB: number[];
  errors: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--quick', 'tiny run to check the script works (no figures)')
    .option('--json', 'JSON output')
    .option('--runs <n>', 'runs per configuration', (v) => Number(v), 5)
    .option('--seconds <s>', 'measured seconds per run', (v) => Number(v), 5)
    .option('--pairs <list>', 'queue pair counts', '1,2,4')
    .option('--preset <p>', 'policy preset', 'vhost')
    .parse()
    .opts<{ quick?: boolean; json?: boolean; runs: number; seconds: number; pairs: string; preset: string }>();
  const runs = o.quick ? 1 : o.runs;
  const seconds = o.quick ? 0.2 : o.seconds;
  const warmupMs = o.quick ? 50 : 500;
  const pairList = o.pairs.split(',').map(Number);
  const base = studyPresetOf(o.preset, 'cumulative');
  const cells: Cell[] = [];
  for (const c of CASES) for (const pairs of pairList) cells.push({ case: c.name, pairs, gbps: [], mpps: [], perPairGbps: [], guestCpuSPerGB: [], hostCpuSPerGB: [], errors: 0 });
  // Round by round, every configuration once per round: drift hits all alike.
  for (let round = 0; round < runs; round++) {
    for (const cell of cells) {
      const c = CASES.find((x) => x.name === cell.case)!;
      const preset = { ...base, gso: c.gso };
      process.stderr.write(`round ${round + 1}/${runs}: ${c.name}, ${cell.pairs} pair(s)…\n`);
      const r: StreamRun = await runStreamOnce(preset, 'g2h', { seconds, warmupMs }, { msgBytes: c.msgBytes, queuePairs: cell.pairs });
      cell.gbps.push(r.gbps);
      cell.mpps.push(r.windowMs > 0 ? r.windowBytes / c.msgBytes / (r.windowMs * 1000) : NaN);
      cell.perPairGbps.push(cell.pairs > 1 ? Array.from({ length: cell.pairs }, (_, i) => r.extra[`pair${i}.gbps`] ?? NaN) : [r.gbps]);
      cell.guestCpuSPerGB.push(r.guestCpuSPerGB);
      cell.hostCpuSPerGB.push(r.hostCpuSPerGB);
      cell.errors += r.errors;
    }
  }
  const cores = availableParallelism();
  if (o.json) {
    process.stdout.write(JSON.stringify({ schema: 'virtq-bench-mq-scaling/1', cores, preset: base.name, runs, seconds, cells }, null, 2) + '\n');
  } else {
    process.stdout.write(`multiqueue scaling — preset "${base.name}", guest → host stream, ${runs} run(s) of ${seconds} s, ${cores} cores (min / median / max Gb/s; per-pair medians)\n`);
    for (const cell of cells) {
      const one = cells.find((x) => x.case === cell.case && x.pairs === 1);
      const speedup = one !== undefined ? median(cell.gbps) / median(one.gbps) : NaN;
      const perPair = Array.from({ length: cell.pairs }, (_, i) => median(cell.perPairGbps.map((p) => p[i]!)).toFixed(2)).join(' + ');
      process.stdout.write(
        `${cell.case.padEnd(11)} ${String(cell.pairs).padStart(2)} pair(s): ${Math.min(...cell.gbps).toFixed(2)} / ${median(cell.gbps).toFixed(2)} / ${Math.max(...cell.gbps).toFixed(2)} Gb/s` +
          ` (×${speedup.toFixed(2)} vs 1 pair) [${perPair}], ${median(cell.mpps).toFixed(3)} Mpps, CPU s/GB guest ${median(cell.guestCpuSPerGB).toFixed(3)} host ${median(cell.hostCpuSPerGB).toFixed(3)}` +
          `${cell.errors > 0 ? `, ${cell.errors} ERRORS` : ''}\n`,
      );
    }
  }
  if (cells.some((c) => c.errors > 0)) process.exitCode = 1;
}

await main();
