// Types shared by the peer-baseline benchmark (`virtq bench peers`): per-run results, the
// summaries of a whole report, the options, and the kick strategies. No code that touches
// threads or shared memory lives here, so both the main thread and the workers may import it.

/** One run of one throughput case at one payload size. */
export interface PeerCaseResult {
  /** Case name, stable across runs (for example `bare-ring/spin2000+wait/b32`). */
  name: string;
  payloadBytes: number;
  /** Packets the consumer took in the measured window (sampled by the main thread). */
  packets: number;
  bytes: number;
  seconds: number;
  pps: number;
  gbps: number;
  /** Thread CPU seconds of each worker over its view of the measured window. */
  cpuSecondsProducer: number;
  cpuSecondsConsumer: number;
  /** (producer + consumer CPU seconds) per 10^9 payload bytes delivered. */
  cpuSecondsPerGB: number;
  /** Atomics.notify calls by both sides per 1000 packets delivered. */
  notifiesPer1000: number;
  /** Times the consumer went to sleep (Atomics.wait) per 1000 packets delivered. */
  consumerSleepsPer1000: number;
  /** Every packet arrived once, in order, with its length intact; and some arrived. */
  verified: boolean;
  /** Registered case this row came from (`bare-ring`, `postmessage-copy`, …). */
  caseName: string;
  /** Kick strategy, for cases that take one. */
  strategy?: string;
  /** Publish batch (index store every N packets), for ring cases. */
  publishEvery?: number;
  /** True when CPU time is process-wide (no per-thread /proc data), so not per worker. */
  cpuProcessWide: boolean;
  /** Set when the run failed; the numeric fields are then zero. */
  error?: string;
}

/** One run of a ping-pong latency case. */
export interface PingPongResult {
  name: string;
  strategy: string;
  rtts: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  meanUs: number;
  error?: string;
}

/** min / median / max over runs. */
export interface Spread {
  min: number;
  median: number;
  max: number;
}

export interface PeerCaseSummary {
  name: string;
  caseName: string;
  payloadBytes: number;
  strategy?: string;
  publishEvery?: number;
  runs: number;
  pps: Spread;
  gbps: Spread;
  cpuSecondsPerGB: Spread;
  notifiesPer1000: Spread;
  consumerSleepsPer1000: Spread;
  allVerified: boolean;
  /** Median pps over the median pps of the bare-ring reference; null when there is none. */
  ppsRatioVsBareRing: number | null;
  /** Name of the bare-ring row the ratio divides by. */
  ratioReference: string | null;
  results: PeerCaseResult[];
}

export interface PingPongSummary {
  name: string;
  strategy: string;
  runs: number;
  rtts: number;
  p50Us: Spread;
  p99Us: Spread;
  maxUs: Spread;
  meanUs: Spread;
  results: PingPongResult[];
}

export interface PeersBenchOptions {
  payloads: number[];
  durationMs: number;
  runs: number;
  strategies: string[];
  quick: boolean;
  /** Only these registered cases (default: all). */
  cases?: string[];
  /** Warm-up before the measured window (default: durationMs / 5, clamped to 20…250 ms). */
  warmupMs?: number;
  /** Called after each run, for progress output. */
  onResult?: (result: PeerCaseResult | PingPongResult, index: number, total: number) => void;
}

export interface PeersReport {
  generatedAt: string;
  node: string;
  cpus: number;
  cpuModel: string;
  command: string;
  options: {
    payloads: number[];
    durationMs: number;
    warmupMs: number;
    runs: number;
    strategies: string[];
    quick: boolean;
    cases: string[];
  };
  /** The case the ratio column divides by. */
  reference: string;
  throughput: PeerCaseSummary[];
  latency: PingPongSummary[];
  totalSeconds: number;
}

/** Parsed kick strategy: poll `spinIters` times, then sleep in Atomics.wait if allowed. */
export interface KickStrategy {
  /** Canonical name: `wait`, `spin<N>+wait` or `spin`. */
  name: string;
  spinIters: number;
  canSleep: boolean;
}

export const DEFAULT_STRATEGIES: readonly string[] = ['wait', 'spin2000+wait', 'spin'];
/** Strategy of the bare-ring row that cases without a strategy are compared with. */
export const REFERENCE_STRATEGY = 'spin2000+wait';

/**
 * Parses `wait` (alias `block`), `spin<N>+wait` (alias `hybrid` = spin2000+wait) and `spin`
 * (alias `poll`). Throws a RangeError naming the bad strategy.
 */
export function parseStrategy(text: string): KickStrategy {
  const t = text.trim().toLowerCase();
  if (t === 'wait' || t === 'block') return { name: 'wait', spinIters: 0, canSleep: true };
  if (t === 'spin' || t === 'poll') return { name: 'spin', spinIters: Infinity, canSleep: false };
  if (t === 'hybrid' || t === 'spin2000') return { name: 'spin2000+wait', spinIters: 2000, canSleep: true };
  const m = /^spin(\d+)\+wait$/.exec(t);
  if (m !== null) {
    const n = Number(m[1]);
    return { name: `spin${n}+wait`, spinIters: n, canSleep: true };
  }
  throw new RangeError(`unknown kick strategy "${text}" (expected wait, spin<N>+wait or spin)`);
}

/** What a throughput runner gets for one run. */
export interface PeerRunContext {
  payloadBytes: number;
  durationMs: number;
  warmupMs: number;
  /** Set for cases registered per strategy; undefined for the others. */
  strategy?: KickStrategy;
  quick: boolean;
  runIndex: number;
}

/** What a latency runner gets for one run. */
export interface LatencyRunContext {
  durationMs: number;
  warmupMs: number;
  strategy: KickStrategy;
  /** Stop recording after this many round trips (default: no cap within the window). */
  maxRtts?: number;
  quick: boolean;
  runIndex: number;
}
