// `virtq study`: every RFC row (and the modern presets) × stream g→h, stream h→g, ping g→h,
// ping h→g. Prints the RFC's two tables with our figures and a mechanism table; writes the
// JSON, a Markdown report and an SVG chart. --quick fits the whole matrix in under 3 minutes
// (what `npm start` runs); without it the plan is the RFC's (10 × 20 s, 100000 pings). With
// --trace FILE every engine run is traced into FILE-<row>-<cell>-<run> (docs/tracing.md).

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { basename, dirname, relative } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import {
  FAITHFUL_PLAN,
  ProgressLine,
  formatProgress,
  formatStudy,
  quickPlan,
  renderMarkdown,
  reportHasProblems,
  renderSvg,
  studyPresets,
  type StudyPlan,
  type StudyReport,
  REPORT_SCHEMA,
  rfcFiguresFor,
} from '../../study/index.js';
import { resumeMismatch, runStudy, studyPlanOf, type StudyOptions } from '../../study/runner.js';
import { runTraceFromCli, studyMode, studyPresetOf, waitOf, waitStrategy } from './bench-net.js';
import { listOf, nonNegativeInt, oneOf, outputDir, outputFileMkdir, policySpec, positiveInt, positiveNumber, type JsonOption } from '../args.js';
import type { RingKind } from '../../virtqueue/index.js';
import type { WaitSettings } from '../../engine/index.js';
import type { StudyMode } from '../../study/index.js';
import { addTraceOptions, type TraceCliOptions } from '../trace-options.js';
import { GuestStudyError, runGuestStudy, type GuestAccel } from '../../study/guest-qemu.js';

interface StudyOpts extends TraceCliOptions {
  quick?: boolean;
  runs?: number;
  seconds?: number;
  count?: number;
  warmupMs?: number;
  mode: StudyMode;
  rows?: string[];
  modern: boolean;
  resume?: boolean;
  msgSize: number;
  out: string;
  json?: JsonOption;
  md?: string;
  svg?: string;
  streamWorkload: string;
  wait?: WaitSettings['strategy'];
  pingWorkload: string;
  guest?: 'qemu';
  guestAccel: GuestAccel;
  guestSeconds?: number;
  guestCount?: number;
  guestOnly?: boolean;
  ring: RingKind;
  inOrder?: boolean;
  queues: number;
}

/** The quick plan's guest cells: 3 s of iperf3 each way, 500 flood pings (a TCG boot runs ~1 Gb/s). */
const GUEST_QUICK = { seconds: 3, count: 500 };

/** Writes whole or not at all (a temporary file renamed over the path): a reader never sees half a report. */
function writeOut(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/** The earlier report --resume continues, checked to be a study of the same plan (else a usage error). */
function readResumable(path: string, plan: StudyReport['plan'], cmd: Command): StudyReport {
  let earlier: StudyReport;
  try {
    earlier = JSON.parse(readFileSync(path, 'utf8')) as StudyReport;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return cmd.error(`error: option '--resume': cannot read ${path} (${code ?? (e as Error).message}).`);
  }
  if (earlier.schema !== REPORT_SCHEMA || !Array.isArray(earlier.rows)) return cmd.error(`error: option '--resume': ${path} is not a study report (${REPORT_SCHEMA}).`);
  const why = resumeMismatch(earlier, plan);
  if (why !== null) return cmd.error(`error: option '--resume': ${path} is a study of another plan (${why}).`);
  return earlier;
}

/** --queues: 1..16 pairs. */
function queuePairsOption(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new InvalidArgumentError('Expected an integer from 1 to 16.');
  return n;
}

function guestVmm(v: string): 'qemu' {
  if (v !== 'qemu') throw new InvalidArgumentError('the only guest VMM is qemu.');
  return v;
}

function guestAccel(v: string): GuestAccel {
  if (v !== 'auto' && v !== 'kvm' && v !== 'tcg') throw new InvalidArgumentError('choose auto, kvm or tcg.');
  return v;
}

export function registerStudy(program: Command): void {
  const study = program
    .command('study')
    .description("the 2008 virtio_net RFC's study: every row × stream and flood ping in both directions, as tables, JSON, Markdown and SVG")
    .option('--quick', 'fit the whole study in under 3 minutes (3 short runs per cell, time-capped pings)')
    .option('--runs <n>', 'stream runs per cell (faithful: 10)', positiveInt)
    .option('--seconds <s>', 'measured seconds per stream run (faithful: 20)', positiveNumber)
    .option('--count <n>', 'echo requests per ping cell (faithful: 100000)', positiveInt)
    .option('--warmup-ms <ms>', 'excluded from each stream run (faithful: 1000, quick: 200)', nonNegativeInt)
    .option('--mode <m>', 'cumulative (each row adds one change, as the RFC did) or isolated (each change alone against the baseline)', studyMode, 'cumulative')
    .option('--rows <list>', 'comma-separated presets (`virtq presets` lists them; RFC row labels and slugs too; default: every row)', listOf(policySpec))
    .option('--no-modern', 'only the RFC rows')
    .option('--resume', 'continue the study in the JSON report (--json, or <out>/study.json) that an interrupted run of the same plan wrote: its finished cells are kept')
    .option('--msg-size <bytes>', 'stream send size (netperf -m)', positiveInt, 16384)
    .option('--out <dir>', 'directory for study.json, study.md and study.svg', outputDir, 'out')
    .option('--json [file]', 'JSON report path (default <out>/study.json); without FILE also print the JSON instead of the tables', outputFileMkdir)
    .option('--md <file>', 'Markdown report path (default <out>/study.md)', outputFileMkdir)
    .option('--svg <file>', 'SVG chart path (default <out>/study.svg)', outputFileMkdir)
    .option('--stream-workload <name>', 'stream workload name or module path', 'net-stream')
    .option('--ping-workload <name>', 'ping workload name or module path', 'net-ping')
    .option('--wait <strategy>', 'both sides wait by block, hybrid (spin then block) or spin (default: the engine\'s, hybrid)', waitStrategy)
    .option('--guest <vmm>', 'also run each row against a real Linux guest: qemu (root; boots the guest of the QEMU tests on virtq\'s vhost-user device, TAP backend; docs/study.md)', guestVmm)
    .option('--guest-accel <a>', 'with --guest: kvm, tcg, or auto (KVM when /dev/kvm opens and QEMU can use it, else TCG)', guestAccel, 'auto')
    .option('--guest-seconds <s>', 'with --guest: iperf3 -t per stream cell (quick: 3, else the plan\'s --seconds)', positiveInt)
    .option('--guest-count <n>', 'with --guest: ping -f -c per row (quick: 500, else the plan\'s --count)', positiveInt)
    .option('--guest-only', 'with --guest: skip the in-process cells (only the guest tables are filled)')
    .option('--ring <kind>', 'ring layout of every queue: split or packed (VIRTIO_F_RING_PACKED)', oneOf(['split', 'packed'] as const), 'split')
    .option('--in-order', 'VIRTIO_F_IN_ORDER on every queue')
    .option('--queues <n>', 'stream cells run N queue pairs at once, each pair on its own guest and host worker (multiqueue; ping cells use one pair), 1..16', queuePairsOption, 1);
  addTraceOptions(study).action(async (o: StudyOpts, cmd: Command) => {
    // Every output path is checked before the first cell runs (the explicit ones already were,
    // as they were parsed): a study can take hours, and its results must not be lost at the end.
    const jsonPath = typeof o.json === 'string' ? o.json : `${o.out}/study.json`;
    const mdPath = o.md ?? `${o.out}/study.md`;
    const svgPath = o.svg ?? `${o.out}/study.svg`;
    for (const [flag, path] of [['--out <dir>', jsonPath], ['--out <dir>', mdPath], ['--out <dir>', svgPath]] as const) {
      try {
        outputFileMkdir(path);
      } catch (e) {
        if (!(e instanceof InvalidArgumentError)) throw e;
        cmd.error(`error: option '${flag}': cannot write ${path}. ${e.message}`);
      }
    }
    const mode = o.mode;
    let rows = o.rows !== undefined ? o.rows.map((s) => studyPresetOf(s, mode)) : studyPresets(mode);
    if (o.rows === undefined && !o.modern) rows = rows.filter((r) => r.kind === 'rfc');
    const base: StudyPlan = o.quick ? quickPlan(rows.length) : FAITHFUL_PLAN;
    const plan: StudyPlan = {
      ...base,
      ...(o.runs !== undefined ? { runs: o.runs } : {}),
      ...(o.seconds !== undefined ? { seconds: o.seconds } : {}),
      ...(o.count !== undefined ? { count: o.count } : {}),
      ...(o.warmupMs !== undefined ? { warmupMs: o.warmupMs } : {}),
    };
    const progress = new ProgressLine(process.stderr);
    const trace = runTraceFromCli(o, false, progress);
    // Ctrl-C: finish the cell in flight, then write and print what is done (a second one quits at once;
    // the JSON written after each cell holds every finished one).
    const stop = new AbortController();
    const onSigint = (): void => {
      if (stop.signal.aborted) process.exit(130);
      stop.abort();
      progress.clear();
      process.stderr.write(`virtq study: stopping after the cell in flight (Ctrl-C again to quit now; finished cells are in ${jsonPath})\n`);
    };
    if (o.queues > 1 && trace !== undefined) cmd.error("error: option '--queues' above 1 cannot be traced: trace a one-pair study");
    const studyOptions: StudyOptions = {
      rows,
      ...(o.queues > 1 ? { queuePairs: o.queues } : {}),
      plan,
      mode,
      ...waitOf(o.wait),
      msgBytes: o.msgSize,
      streamWorkload: o.streamWorkload,
      pingWorkload: o.pingWorkload,
      ring: o.ring,
      ...(o.inOrder === true ? { inOrder: true } : {}),
      ...(trace !== undefined ? { trace } : {}),
      command: ['virtq', ...process.argv.slice(2)].join(' '),
      machine: { node: process.version, platform: `${process.platform} ${process.arch}`, cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown' },
      onProgress: (e) => progress.update(formatProgress(e)),
    };
    if (o.guest === undefined && (o.guestOnly === true || o.guestSeconds !== undefined || o.guestCount !== undefined)) cmd.error("error: option '--guest-only', '--guest-seconds' and '--guest-count' need --guest qemu");
    const resumeFrom = o.resume === true ? readResumable(jsonPath, studyPlanOf(studyOptions), cmd) : undefined;
    process.on('SIGINT', onSigint);
    const report = await runStudy({
      ...studyOptions,
      ...(o.guestOnly === true ? { rows: [] } : {}),
      ...(resumeFrom !== undefined ? { resumeFrom } : {}),
      signal: stop.signal,
      onCell: (soFar) => writeOut(jsonPath, JSON.stringify(soFar, null, 2) + '\n'),
    });
    if (o.guestOnly === true) {
      // The rows still head the tables (in-process cells not run), so the guest's sit beside the RFC's.
      report.rows = rows.map((r) => ({ name: r.name, slug: r.slug, kind: r.kind, description: r.description, dataPath: { ringSize: r.ringSize, gso: r.gso, mergeable: r.mergeable, eventIdx: r.eventIdx }, rfc: r.kind === 'rfc' ? rfcFiguresFor(r.name) : null, stream: { g2h: null, h2g: null }, ping: { g2h: null, h2g: null } }));
    }
    if (o.guest !== undefined && !stop.signal.aborted) {
      const t0 = performance.now();
      try {
        const g = await runGuestStudy({
          rows,
          seconds: o.guestSeconds ?? (o.quick ? GUEST_QUICK.seconds : plan.seconds),
          count: o.guestCount ?? (o.quick ? GUEST_QUICK.count : plan.count),
          accel: o.guestAccel,
          signal: stop.signal,
          onProgress: (line) => progress.update(`${line} (${((performance.now() - t0) / 1000).toFixed(0)} s)`),
        });
        report.guest = g.info;
        for (const r of report.rows) {
          const x = g.rows.get(r.slug);
          if (x !== undefined) r.guest = x;
        }
      } catch (e) {
        if (!(e instanceof GuestStudyError)) throw e;
        progress.clear();
        if (e.code === 'missing') cmd.error(`error: option '--guest': ${e.message}`);
        process.stderr.write(`virtq study: the guest part failed: ${e.message}\n`);
        report.guest = { vmm: 'qemu', accel: 'tcg', qemuVersion: 'unknown', kernel: '', initramfsVersion: '', seconds: 0, count: 0, boots: [], totalSeconds: (performance.now() - t0) / 1000, error: e.message };
      }
      report.totalSeconds += (performance.now() - t0) / 1000;
    }
    process.off('SIGINT', onSigint);
    progress.clear();
    writeOut(jsonPath, JSON.stringify(report, null, 2) + '\n');
    writeOut(svgPath, renderSvg(report));
    const href = relative(dirname(mdPath), svgPath) || basename(svgPath);
    writeOut(mdPath, renderMarkdown(report, { svgHref: href }));
    if (o.json === true) {
      process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      process.stderr.write(`wrote ${jsonPath}, ${mdPath}, ${svgPath}\n`);
    } else {
      process.stdout.write(formatStudy(report));
      process.stdout.write(`\nwrote ${jsonPath}, ${mdPath}, ${svgPath}\n`);
    }
    if (report.interrupted) {
      process.stderr.write('virtq study: interrupted; the reports hold the cells finished before Ctrl-C\n');
      process.exitCode = 130;
    } else if (reportHasProblems(report)) process.exitCode = 1;
  });
}
