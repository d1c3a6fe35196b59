// Policy matrix: every preset (or a chosen list) through the policy-stream workload in both
// directions, several timed runs each, interleaved (run 1 of every cell, then run 2, …) so all
// rows share the machine's conditions. Reports per cell: throughput min / median / max (Gb/s of
// frame bytes at the receiver), the ratio of its median to the first preset's median in the same
// run, CPU ns per byte (both sides), and the mechanism counters per 1000 packets: kicks,
// interrupts, timer fires with their lateness (p50 / p99 µs), mean flush size, ring-full events,
// global-lock wait, busy-poll hits, spurious and empty wake-ups, adaptive profile.
//
//   node dist/bench/policy-matrix.js [--quick] [--json] [--runs N] [--ms N] [--pings N]
//                                    [--presets a,b,c] [--directions g2h,h2g] [--alone] [--no-ping]
//
// Besides the streams, a flood-ping cell per preset (g2h, one 64-byte packet in flight, --pings
// round trips) reports RTT p50 / p99 / max in µs (median over runs), like the RFC's ping -f table.
//
// --alone adds each RFC row applied alone on top of the baseline (`<preset>-alone`).
// --quick: 1 run of 500 ms per cell (sanity only; the real numbers need a quiet machine).
// Each run lasts --ms plus STARTUP_ALLOWANCE_MS (the engine's clock starts before the workers
// are up); rates come from each side's own window, opened after warm-up.

import { Command } from 'commander';
import { Engine, type EngineResult } from '../src/engine/index.js';
import { PRESETS, RFC_ROWS, policyArenaBytes, policyQueues, resolvePolicy, type PolicyConfig } from '../src/policy/index.js';

interface Opts {
  quick?: boolean;
  json?: boolean;
  runs: string;
  ms: string;
  presets?: string;
  directions: string;
  alone?: boolean;
  pings: string;
  ping: boolean;
}

interface PingReport {
  preset: string;
  runs: number;
  rttUs: { p50: number; p99: number; max: number };
  p50RatioToFirst: number;
  timerFiresPerPacket: number;
  interruptsPerPacket: number;
  errors: number;
}

interface RunSample {
  gbps: number;
  cpuNsPerByte: number;
  extra: Record<string, number>;
  packets: number;
  spuriousWakeups: number;
}

interface CellReport {
  preset: string;
  direction: 'g2h' | 'h2g';
  frameBytes: number;
  runs: number;
  gbps: { min: number; median: number; max: number };
  ratioToFirst: number;
  cpuNsPerByte: number;
  per1000Packets: { kicks: number; interrupts: number; timerFires: number; ringFullEvents: number; spuriousWakeups: number; emptyWakeups: number };
  timerLatenessUs: { p50: number; p99: number };
  meanFlush: number;
  lockWaitUsPerRun: number;
  busyPollHits: number;
  adaptiveMeanProfileIx: number | null;
  errors: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Worker startup before the start barrier (200–450 ms seen on a loaded 2-core VM). */
const STARTUP_ALLOWANCE_MS = 600;

async function runOnce(policy: PolicyConfig, direction: 'g2h' | 'h2g', ms: number): Promise<{ r: EngineResult; frameBytes: number }> {
  const frameBytes = policy.dataPath.gso ? 65536 : 1500;
  const r = await Engine.run({
    workload: 'policy-stream',
    queues: policyQueues(policy, direction),
    arenaBytes: policyArenaBytes(policy, frameBytes, direction),
    params: { policy, direction, count: 0, verify: 'seq', warmupMs: STARTUP_ALLOWANCE_MS + Math.min(200, ms / 4) },
    durationMs: ms + STARTUP_ALLOWANCE_MS,
    timeoutMs: ms + 30_000,
  });
  return { r, frameBytes };
}

function sample(r: EngineResult, direction: 'g2h' | 'h2g'): RunSample {
  const recv = direction === 'g2h' ? r.host : r.guest;
  const gbps = recv.windowMs > 0 ? (recv.windowBytes * 8) / (recv.windowMs * 1e6) : 0;
  const cpu = r.host.windowCpuNs + r.guest.windowCpuNs;
  return {
    gbps,
    cpuNsPerByte: recv.windowBytes > 0 ? cpu / recv.windowBytes : NaN,
    extra: { ...r.guest.extra, ...r.host.extra },
    packets: recv.packets,
    spuriousWakeups: r.host.spuriousWakeups + r.guest.spuriousWakeups,
  };
}

async function main(): Promise<void> {
  const o = new Command()
    .option('--quick', 'one short run per cell (sanity only)')
    .option('--json', 'print JSON instead of a table')
    .option('--runs <n>', 'runs per cell', '3')
    .option('--ms <n>', 'duration of one run, ms', '2000')
    .option('--presets <list>', 'comma-separated preset names (default: every preset)')
    .option('--directions <list>', 'g2h,h2g', 'g2h,h2g')
    .option('--alone', 'also run each RFC row alone on top of the baseline')
    .option('--pings <n>', 'round trips per ping cell', '20000')
    .option('--no-ping', 'skip the flood-ping cells')
    .parse()
    .opts<Opts>();
  const runs = o.quick ? 1 : Math.max(1, Number(o.runs));
  const ms = o.quick ? 500 : Math.max(100, Number(o.ms));
  const names = o.presets ? o.presets.split(',').map((s) => s.trim()) : Object.keys(PRESETS);
  if (o.alone) for (const n of RFC_ROWS.slice(1)) names.push(`${n}-alone`);
  const policies = names.map((n) => resolvePolicy(n));
  const directions = o.directions.split(',').map((d) => d.trim()) as ('g2h' | 'h2g')[];
  const cells = policies.flatMap((p) => directions.map((d) => ({ p, d, samples: [] as RunSample[], frameBytes: 0, errors: 0 })));
  for (let run = 0; run < runs; run++) {
    for (const c of cells) {
      const { r, frameBytes } = await runOnce(c.p, c.d, ms);
      c.frameBytes = frameBytes;
      c.errors += r.host.errors + r.guest.errors;
      c.samples.push(sample(r, c.d));
      if (!o.json) process.stderr.write(`run ${run + 1}/${runs} ${c.p.name} ${c.d}: ${c.samples.at(-1)!.gbps.toFixed(2)} Gb/s\n`);
    }
  }
  const pingCells = o.ping ? policies.map((p) => ({ p, p50: [] as number[], p99: [] as number[], max: [] as number[], timer: 0, irq: 0, packets: 0, errors: 0 })) : [];
  const pings = o.quick ? 1000 : Math.max(100, Number(o.pings));
  for (let run = 0; run < runs; run++) {
    for (const c of pingCells) {
      const r = await Engine.run({
        workload: 'policy-stream',
        queues: policyQueues(c.p, 'g2h'),
        arenaBytes: policyArenaBytes(c.p, 64, 'g2h'),
        params: { policy: c.p, direction: 'g2h', count: pings, frameBytes: 64, inflight: 1, verify: 'full' },
        timeoutMs: 120_000,
      });
      c.p50.push(r.guest.extra.rttP50Us ?? NaN);
      c.p99.push(r.guest.extra.rttP99Us ?? NaN);
      c.max.push(r.guest.extra.rttMaxUs ?? NaN);
      c.timer += r.host.extra.timerFires ?? 0;
      c.irq += r.host.extra.interrupts ?? 0;
      c.packets += r.host.packets;
      c.errors += r.host.errors + r.guest.errors;
      if (!o.json) process.stderr.write(`ping run ${run + 1}/${runs} ${c.p.name}: p50 ${c.p50.at(-1)!.toFixed(1)} µs\n`);
    }
  }
  const pingReports: PingReport[] = pingCells.map((c) => ({
    preset: c.p.name,
    runs: c.p50.length,
    rttUs: { p50: median(c.p50), p99: median(c.p99), max: Math.max(...c.max) },
    p50RatioToFirst: median(c.p50) / median(pingCells[0]!.p50),
    timerFiresPerPacket: c.timer / Math.max(1, c.packets),
    interruptsPerPacket: c.irq / Math.max(1, c.packets),
    errors: c.errors,
  }));
  const firstMedian = new Map<string, number>();
  const reports: CellReport[] = cells.map((c) => {
    const g = c.samples.map((s) => s.gbps);
    const med = median(g);
    if (!firstMedian.has(c.d)) firstMedian.set(c.d, med);
    const sum = (k: string): number => c.samples.reduce((a, s) => a + (s.extra[k] ?? 0), 0);
    const pk = c.samples.reduce((a, s) => a + s.packets, 0) / 1000 || 1;
    return {
      preset: c.p.name,
      direction: c.d,
      frameBytes: c.frameBytes,
      runs: c.samples.length,
      gbps: { min: Math.min(...g), median: med, max: Math.max(...g) },
      ratioToFirst: med / firstMedian.get(c.d)!,
      cpuNsPerByte: median(c.samples.map((s) => s.cpuNsPerByte)),
      per1000Packets: {
        kicks: sum('kicks') / pk,
        interrupts: sum('interrupts') / pk,
        timerFires: sum('timerFires') / pk,
        ringFullEvents: sum('ringFullEvents') / pk,
        spuriousWakeups: c.samples.reduce((a, s) => a + s.spuriousWakeups, 0) / pk,
        emptyWakeups: (sum('devEmptyWakeups') + sum('emptyInterrupts')) / pk,
      },
      timerLatenessUs: { p50: median(c.samples.map((s) => s.extra.timerLatenessP50Us ?? 0)), p99: median(c.samples.map((s) => s.extra.timerLatenessP99Us ?? 0)) },
      meanFlush: median(c.samples.map((s) => s.extra.devFlushMean ?? 0)),
      lockWaitUsPerRun: (sum('devLockWaitUs') + sum('drvLockWaitUs')) / c.samples.length,
      busyPollHits: sum('busyPollHits'),
      adaptiveMeanProfileIx: c.p.adaptive ? median(c.samples.map((s) => s.extra.adaptiveMeanProfileIx ?? 0)) : null,
      errors: c.errors,
    };
  });
  if (o.json) {
    process.stdout.write(JSON.stringify({ runs, ms, pings, cells: reports, ping: pingReports }, null, 2) + '\n');
    return;
  }
  const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
  process.stdout.write(`policy matrix: ${runs} run(s) × ${ms} ms per cell; ratio = median / first preset's median (same direction, same run)\n`);
  process.stdout.write(
    ['preset', 'dir', 'frame', 'Gb/s min/med/max', 'ratio', 'cpu ns/B', 'kicks/k', 'irqs/k', 'timer/k', 'late p50/p99 µs', 'flush', 'full/k', 'lock µs', 'busy', 'empty/k', 'dim', 'err'].join('\t') + '\n',
  );
  for (const r of reports) {
    process.stdout.write(
      [
        r.preset,
        r.direction,
        r.frameBytes,
        `${f(r.gbps.min)}/${f(r.gbps.median)}/${f(r.gbps.max)}`,
        f(r.ratioToFirst),
        f(r.cpuNsPerByte, 3),
        f(r.per1000Packets.kicks, 1),
        f(r.per1000Packets.interrupts, 1),
        f(r.per1000Packets.timerFires, 1),
        `${f(r.timerLatenessUs.p50, 1)}/${f(r.timerLatenessUs.p99, 1)}`,
        f(r.meanFlush, 1),
        f(r.per1000Packets.ringFullEvents, 1),
        f(r.lockWaitUsPerRun, 0),
        r.busyPollHits,
        f(r.per1000Packets.emptyWakeups, 1),
        r.adaptiveMeanProfileIx === null ? '-' : f(r.adaptiveMeanProfileIx, 2),
        r.errors,
      ].join('\t') + '\n',
    );
  }
  if (pingReports.length > 0) {
    process.stdout.write(`\nflood ping (g2h, 64 B, one in flight, ${pings} round trips per run; RTT µs, median over runs)\n`);
    process.stdout.write(['preset', 'p50', 'p99', 'max', 'p50 ratio', 'timer/pkt', 'irq/pkt', 'err'].join('\t') + '\n');
    for (const r of pingReports) {
      process.stdout.write([r.preset, f(r.rttUs.p50, 1), f(r.rttUs.p99, 1), f(r.rttUs.max, 0), f(r.p50RatioToFirst), f(r.timerFiresPerPacket), f(r.interruptsPerPacket), r.errors].join('\t') + '\n');
    }
  }
  if (reports.some((r) => r.errors > 0) || pingReports.some((r) => r.errors > 0)) process.exitCode = 1;
}

await main();
