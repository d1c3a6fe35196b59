// The study's results as plain data: what a stream cell, a ping cell, a row and the whole
// report hold (the JSON schema `virtq-study/1`, documented in docs/study.md). Pure: the
// renderers and the tests use these without starting threads.

import type { GuestRowResult, GuestStudyInfo } from './guest-plan.js';
import type { Direction, Mechanism, PingResult, StreamRun } from './measure.js';
import type { StudyPlan } from './plan.js';
import type { StudyMode } from './presets-source.js';
import type { RfcRowFigures } from './rfc-figures.js';
import type { Summary } from './stats.js';

export const DEFAULT_STREAM_WORKLOAD = 'net-stream';
export const DEFAULT_PING_WORKLOAD = 'net-ping';
export const REPORT_SCHEMA = 'virtq-study/1';

export interface StreamCell {
  kind: 'stream';
  direction: Direction;
  preset: string;
  queueSize: number;
  msgBytes: number;
  gso: boolean;
  /** Queue pairs run at once, each on its own guest and host worker (absent: 1). */
  queuePairs?: number;
  runs: StreamRun[];
  /** Over the runs' Gb/s. */
  gbps: Summary;
  guestCpuSPerGB: Summary;
  hostCpuSPerGB: Summary;
  /** Mean over runs of each mechanism figure. */
  mechanism: Mechanism | null;
  /** Verification errors over all runs (must be 0). */
  errors: number;
  /** Why the cell has fewer runs than asked (a failed run), if it does. */
  error?: string;
}

export interface PingCell {
  kind: 'ping';
  direction: Direction;
  preset: string;
  queueSize: number;
  count: number;
  result: PingResult | null;
  error?: string;
}

export interface RowResult {
  name: string;
  slug: string;
  kind: 'rfc' | 'modern';
  description: string;
  dataPath: { ringSize: number; gso: boolean; mergeable: boolean; eventIdx: boolean };
  /** The RFC's figures for this row (2008 hardware under KVM), null for modern presets. */
  rfc: RfcRowFigures | null;
  stream: { g2h: StreamCell | null; h2g: StreamCell | null };
  ping: { g2h: PingCell | null; h2g: PingCell | null };
  /** The same row against a real Linux guest (`virtq study --guest qemu`), when it ran. */
  guest?: GuestRowResult;
}

export interface StudyReport {
  schema: typeof REPORT_SCHEMA;
  generatedAt: string;
  command: string;
  machine: { node: string; platform: string; cpus: number; cpuModel: string };
  /** `ring`/`inOrder` appear only when not the default (split ring, no IN_ORDER). */
  plan: StudyPlan & { mode: StudyMode; msgBytes: number; mtu: number; streamWorkload: string; pingWorkload: string; waitStrategy: string; ring?: 'packed'; inOrder?: true; queuePairs?: number };
  rfcSource: string;
  rows: RowResult[];
  totalSeconds: number;
  /** The RFC's five conclusions judged on this report's rows (conclusions.ts states each rule). */
  conclusions?: ConclusionVerdict[];
  /** How the rows ran against a real Linux guest (`--guest qemu`): the VMM, KVM or TCG, the boots. */
  guest?: GuestStudyInfo;
  /** True when the study was stopped (SIGINT) before its last cell: the last row may lack cells (null). */
  interrupted?: true;
}

export interface ProgressEvent {
  rowIndex: number;
  rowCount: number;
  row: string;
  /** 'stream g2h' | 'stream h2g' | 'ping g2h' | 'ping h2g'. */
  cell: string;
  run: number;
  runs: number;
  elapsedMs: number;
  etaMs: number;
}

/** Whether any cell of the report failed or saw verification errors. */
export function reportHasProblems(report: StudyReport): boolean {
  const guestBad = (g: RowResult['guest']): boolean =>
    g !== undefined && (g.stream?.g2h?.error !== undefined || g.stream?.h2g?.error !== undefined || g.ping?.error !== undefined || (g.ping?.ping != null && g.ping.ping.received < g.ping.ping.transmitted));
  if (report.guest?.error !== undefined || report.rows.some((r) => guestBad(r.guest))) return true;
  return report.rows.some((r) =>
    (['g2h', 'h2g'] as Direction[]).some(
      (d) => r.stream[d]?.error !== undefined || (r.stream[d]?.errors ?? 0) > 0 || r.ping[d]?.error !== undefined || (r.ping[d]?.result?.errors ?? 0) > 0,
    ),
  );
}

/** How one RFC conclusion fared (conclusions.ts states the rules). */
export type Verdict = 'reproduced' | 'partly' | 'not reproduced' | 'not measured';

/** A throughput ratio (average Gb/s), ours and the RFC's, per direction. */
export interface PairRatios {
  label: string;
  ours: Record<Direction, number>;
  rfc: Record<Direction, number>;
}

export interface ConclusionVerdict {
  /** 1-based, in the RFC's order. */
  number: number;
  text: string;
  /** The rule the verdict came from, in words. */
  rule: string;
  verdict: Verdict;
  /** What decided the verdict, with the figures. */
  why: string;
  /**
   * The mechanism counters that explain the ratios (which part of the model decides this
   * conclusion), from the study's mechanism table; absent for a report without the counters.
   */
  mechanism?: string;
  pairs: PairRatios[];
}
