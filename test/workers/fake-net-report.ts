// A synthetic StudyReport (no threads) for the renderer tests: every row gets three stream
// runs g→h, two h→g and three pings per direction, with numbers that depend on the row index.

import {
  REPORT_SCHEMA,
  iputilsRtt,
  quickPlan,
  summarize,
  type Mechanism,
  type PingCell,
  type RowResult,
  type StreamCell,
  type StudyPreset,
  type StudyReport,
} from '../../src/study/index.js';
import { rfcFiguresFor } from '../../src/study/rfc-figures.js';

function mech(over: Partial<Mechanism> = {}): Mechanism {
  return {
    packets: 1000,
    kicks: 20,
    interrupts: 10,
    kicksPerPacket: 0.02,
    interruptsPerPacket: 0.01,
    avgBatch: 50,
    timerFires: NaN,
    timerFiresPerPacket: NaN,
    timerLatenessUsMean: NaN,
    timerLatenessUsMax: NaN,
    sleepsPerPacket: 0.005,
    spuriousWakeups: 0,
    kickFlushShare: NaN,
    lockContendedPerPacket: NaN,
    lockWaitUsPerPacket: NaN,
    ...over,
  };
}

function streamCell(p: StudyPreset, d: 'g2h' | 'h2g', gbps: number[]): StreamCell {
  return {
    kind: 'stream',
    direction: d,
    preset: p.name,
    queueSize: p.ringSize,
    msgBytes: 16384,
    gso: p.gso,
    runs: gbps.map((g) => ({ gbps: g, windowMs: 1000, windowBytes: (g * 1e9) / 8, guestCpuSPerGB: 0.1, hostCpuSPerGB: 0.2, errors: 0, mechanism: mech(), extra: {} })),
    gbps: summarize(gbps),
    guestCpuSPerGB: summarize(gbps.map(() => 0.1)),
    hostCpuSPerGB: summarize(gbps.map(() => 0.2)),
    mechanism: mech(),
    errors: 0,
  };
}

function pingCell(p: StudyPreset, d: 'g2h' | 'h2g', rtts: number[]): PingCell {
  return {
    kind: 'ping',
    direction: d,
    preset: p.name,
    queueSize: p.ringSize,
    count: rtts.length,
    result: { sent: rtts.length, received: rtts.length, rtt: iputilsRtt(rtts), p50Us: 30, p99Us: 90, ewmaUs: 30, ipgUs: 40, errors: 0, mechanism: mech({ kicksPerPacket: 1, interruptsPerPacket: 1 }), extra: {} },
  };
}

function row(p: StudyPreset, i: number): RowResult {
  return {
    name: p.name,
    slug: p.slug,
    kind: p.kind,
    description: p.description,
    dataPath: { ringSize: p.ringSize, gso: p.gso, mergeable: p.mergeable, eventIdx: p.eventIdx },
    rfc: p.kind === 'rfc' ? rfcFiguresFor(p.name) : null,
    stream: { g2h: streamCell(p, 'g2h', [10 + i, 11 + i, 12 + i]), h2g: streamCell(p, 'h2g', [5 + i, 6 + i]) },
    ping: { g2h: pingCell(p, 'g2h', [20, 30, 40 + i]), h2g: pingCell(p, 'h2g', [25, 35, 7602]) },
  };
}

export function syntheticReport(rows: StudyPreset[]): StudyReport {
  return {
    schema: REPORT_SCHEMA,
    generatedAt: '2026-01-01T00:00:00.000Z',
    command: 'virtq study --quick',
    machine: { node: 'v20', platform: 'linux x64', cpus: 2, cpuModel: 'test' },
    plan: { ...quickPlan(rows.length), mode: 'cumulative', msgBytes: 16384, mtu: 1500, streamWorkload: 'net-stream', pingWorkload: 'net-ping', waitStrategy: 'hybrid' },
    rfcSource: 'RFC',
    rows: rows.map(row),
    totalSeconds: 1,
  };
}

