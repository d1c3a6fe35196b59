// How long each cell of the study runs. The faithful plan is the RFC's (10 × 20 s netperf runs,
// 100000 flood pings); the quick plan spends a fixed wall-clock budget over the selected rows so
// that `virtq study --quick` (what `npm start` runs) ends in under 3 minutes with every row.
// Also the time estimates behind the progress line's ETA. Pure.

export interface StudyPlan {
  /** Stream runs per cell and their measured length. */
  runs: number;
  seconds: number;
  /** Excluded from each stream run's window (and from ping's start), ms. */
  warmupMs: number;
  /** Echo requests per ping cell. */
  count: number;
  /** Quick mode: a ping cell is stopped after this long even if `count` was not reached. */
  pingCapMs: number | null;
  quick: boolean;
}

/**
 * Wall time an engine run costs besides its measured part (thread pool start, module loading,
 * start barrier, teardown), ms: ~110 ms measured on an idle 2-core machine, doubled for margin.
 */
export const ENGINE_OVERHEAD_MS = 250;
/** The quick study's budget: 3 minutes minus room for the build and Node's start-up. */
export const QUICK_BUDGET_MS = 150_000;
/** Share of a row's budget that goes to the two stream cells (the rest to the two ping cells). */
const STREAM_SHARE = 0.7;
/** Optimistic RTT used to estimate an uncapped ping cell, ms. */
const EST_RTT_MS = 0.1;

export const FAITHFUL_PLAN: StudyPlan = { runs: 10, seconds: 20, warmupMs: 1000, count: 100_000, pingCapMs: null, quick: false };

const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

/**
 * The quick plan for `rowCount` rows: 3 runs per stream cell, 200 ms warm-up, run length and
 * ping cap chosen so that the whole matrix (rows × 2 stream cells × 3 runs + rows × 2 ping
 * cells) fits `budgetMs`; run length kept within 0.25–2 s, ping cap within 0.3–3 s.
 */
export function quickPlan(rowCount: number, budgetMs: number = QUICK_BUDGET_MS): StudyPlan {
  const runs = 3;
  const warmupMs = 200;
  const perRowMs = budgetMs / Math.max(1, rowCount);
  const streamRunWallMs = (perRowMs * STREAM_SHARE) / (2 * runs);
  const seconds = clamp(Math.floor((streamRunWallMs - ENGINE_OVERHEAD_MS - warmupMs) / 10) / 100, 0.25, 2);
  const pingCapMs = clamp(Math.floor((perRowMs * (1 - STREAM_SHARE)) / 2 - ENGINE_OVERHEAD_MS), 300, 3000);
  return { runs, seconds, warmupMs, count: 20_000, pingCapMs, quick: true };
}

/** Estimated wall time of one stream run, ms. */
export function estimateStreamRunMs(plan: Pick<StudyPlan, 'seconds' | 'warmupMs'>): number {
  return plan.warmupMs + plan.seconds * 1000 + ENGINE_OVERHEAD_MS;
}

/** Estimated wall time of one ping cell, ms. */
export function estimatePingMs(plan: StudyPlan): number {
  const byCount = plan.count * EST_RTT_MS;
  return (plan.pingCapMs === null ? byCount : Math.min(byCount, plan.pingCapMs)) + ENGINE_OVERHEAD_MS;
}

/** Estimated wall time of one study row (two stream cells, two ping cells), ms. */
export function estimateRowMs(plan: StudyPlan): number {
  return 2 * plan.runs * estimateStreamRunMs(plan) + 2 * estimatePingMs(plan);
}

/**
 * Remaining time from the planned remainder, scaled by how the run has gone so far (actual ÷
 * planned of what is done); the plan alone before anything finished.
 */
export function etaMs(plannedDoneMs: number, actualDoneMs: number, plannedLeftMs: number): number {
  const scale = plannedDoneMs > 0 && actualDoneMs > 0 ? actualDoneMs / plannedDoneMs : 1;
  return Math.max(0, plannedLeftMs * scale);
}
