// `virtq study`: every RFC row (and the modern presets) × stream g→h, stream h→g, ping g→h,
// ping h→g. Prints the RFC's two tables with our figures and a mechanism table; writes the
// JSON, a Markdown report and an SVG chart. --quick fits the whole matrix in under 3 minutes
// (what `npm start` runs); without it the plan is the RFC's (10 × 20 s, 100000 pings). With
// --trace FILE every engine run is traced into FILE-<row>-<cell>-<run> (docs/tracing.md).

import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, relative } from 'node:path';
import type { Command } from 'commander';
import {
  FAITHFUL_PLAN,
  ProgressLine,
  findPreset,
  formatProgress,
  formatStudy,
  quickPlan,
  renderMarkdown,
  reportHasProblems,
  renderSvg,
  studyPresets,
  type StudyPlan,
} from '../../study/index.js';
import { runStudy } from '../../study/runner.js';
import { parseMode, parsePositive, parseWait, runTraceFromCli } from './bench-net.js';
import { addTraceOptions, type TraceCliOptions } from '../trace-options.js';

interface StudyOpts extends TraceCliOptions {
  quick?: boolean;
  runs?: string;
  seconds?: string;
  count?: string;
  warmupMs?: string;
  mode: string;
  rows?: string;
  modern: boolean;
  msgSize: string;
  out: string;
  json?: string;
  md?: string;
  svg?: string;
  streamWorkload: string;
  wait?: string;
  pingWorkload: string;
}

function writeOut(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

export function registerStudy(program: Command): void {
  const study = program
    .command('study')
    .description("the 2008 virtio_net RFC's study: every row × stream and flood ping in both directions, as tables, JSON, Markdown and SVG")
    .option('--quick', 'fit the whole study in under 3 minutes (3 short runs per cell, time-capped pings)')
    .option('--runs <n>', 'stream runs per cell (faithful: 10)')
    .option('--seconds <s>', 'measured seconds per stream run (faithful: 20)')
    .option('--count <n>', 'echo requests per ping cell (faithful: 100000)')
    .option('--warmup-ms <ms>', 'excluded from each stream run (faithful: 1000, quick: 200)')
    .option('--mode <m>', 'cumulative (each row adds one change, as the RFC did) or isolated (each change alone against the baseline)', 'cumulative')
    .option('--rows <list>', 'comma-separated preset names or slugs (default: every row)')
    .option('--no-modern', 'only the RFC rows')
    .option('--msg-size <bytes>', 'stream send size (netperf -m)', '16384')
    .option('--out <dir>', 'directory for study.json, study.md and study.svg', 'out')
    .option('--json <file>', 'JSON report path (default <out>/study.json)')
    .option('--md <file>', 'Markdown report path (default <out>/study.md)')
    .option('--svg <file>', 'SVG chart path (default <out>/study.svg)')
    .option('--stream-workload <name>', 'stream workload name or module path', 'net-stream')
    .option('--ping-workload <name>', 'ping workload name or module path', 'net-ping')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)');
  addTraceOptions(study).action(async (o: StudyOpts) => {
    const mode = parseMode(o.mode);
    let rows = o.rows !== undefined ? o.rows.split(',').map((s) => findPreset(s.trim(), mode)) : studyPresets(mode);
    if (o.rows === undefined && !o.modern) rows = rows.filter((r) => r.kind === 'rfc');
    const base: StudyPlan = o.quick ? quickPlan(rows.length) : FAITHFUL_PLAN;
    const plan: StudyPlan = {
      ...base,
      ...(o.runs !== undefined ? { runs: parsePositive('--runs', o.runs) } : {}),
      ...(o.seconds !== undefined ? { seconds: parsePositive('--seconds', o.seconds, false) } : {}),
      ...(o.count !== undefined ? { count: parsePositive('--count', o.count) } : {}),
      ...(o.warmupMs !== undefined ? { warmupMs: parsePositive('--warmup-ms', o.warmupMs) } : {}),
    };
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, false, progress);
    const report = await runStudy({
      rows,
      plan,
      mode,
      ...parseWait(o.wait),
      msgBytes: parsePositive('--msg-size', o.msgSize),
      streamWorkload: o.streamWorkload,
      pingWorkload: o.pingWorkload,
      ...(trace !== undefined ? { trace } : {}),
      command: ['virtq', ...process.argv.slice(2)].join(' '),
      machine: { node: process.version, platform: `${process.platform} ${process.arch}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown' },
      onProgress: (e) => progress.update(formatProgress(e)),
    });
    progress.clear();
    const jsonPath = o.json ?? `${o.out}/study.json`;
    const mdPath = o.md ?? `${o.out}/study.md`;
    const svgPath = o.svg ?? `${o.out}/study.svg`;
    writeOut(jsonPath, JSON.stringify(report, null, 2) + '\n');
    writeOut(svgPath, renderSvg(report));
    const href = relative(dirname(mdPath), svgPath) || basename(svgPath);
    writeOut(mdPath, renderMarkdown(report, { svgHref: href }));
    process.stdout.write(formatStudy(report));
    process.stdout.write(`\nwrote ${jsonPath}, ${mdPath}, ${svgPath}\n`);
    if (reportHasProblems(report)) process.exitCode = 1;
  });
}
