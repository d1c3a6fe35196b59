// Where the study gets its rows: the adapter between the policy module's presets and the study.
// Until src/policy exports them, LOCAL_SOURCE below stands in: the RFC's row names exactly as
// rfc-tables.json spells them, plus the modern presets' names, each with the data-path facts
// the runner applies itself (queue size, event idx, GSO, mergeable rx buffers). The lead points
// SOURCE at the real module after merging:
//
//   import { PRESETS, RFC_ROWS } from '../policy/index.js';
//   const SOURCE: PresetSource = { rfcRows: RFC_ROWS, presets: PRESETS };
//
// Expected shape: RFC_ROWS is the RFC's row names in order (keys of PRESETS); PRESETS maps every
// preset name (RFC rows and modern ones) to an object with optional `description`, `ringSize`,
// `gso`, `mergeable`, `eventIdx` (cumulative: an RFC row's values include every earlier row's
// change). Missing fields fall back to the local table, then to the 2008 baseline.

/** What the study needs to know about one preset. */
export interface PresetInfo {
  description?: string;
  ringSize?: number;
  gso?: boolean;
  mergeable?: boolean;
  eventIdx?: boolean;
}

export interface PresetSource {
  rfcRows: readonly string[];
  presets: Readonly<Record<string, PresetInfo>>;
}

export type StudyMode = 'cumulative' | 'isolated';

/** Data-path settings the runner applies (queues and workload params). */
export interface DataPath {
  ringSize: number;
  gso: boolean;
  mergeable: boolean;
  eventIdx: boolean;
}

/** One row of the study, resolved for a mode. */
export interface StudyPreset extends DataPath {
  /** Passed to the workloads as `preset`. */
  name: string;
  /** CLI spelling: lower case, runs of other characters as '-' ("50us-tx-timer-rearm"). */
  slug: string;
  kind: 'rfc' | 'modern';
  description: string;
  /** For an RFC row: its position in the RFC's order (0 = baseline). */
  rfcIndex: number | null;
}

const BASELINE: DataPath = { ringSize: 128, gso: false, mergeable: false, eventIdx: false };

const LOCAL_PRESETS: Record<string, PresetInfo> = {
  baseline: { description: 'kvm-71: 2 ns tx timer bounded to ~250 µs, re-armed on every kick, ring-full(64) flush; per-buffer irqs; rx always kicks; 128/128 rings; 2 copies; lock held', ...BASELINE },
  '50us tx timer + rearm': { description: 'tx timer of a real 50 µs, precise host timer', ...BASELINE },
  '250us tx timer + rearm': { description: 'tx timer of 250 µs', ...BASELINE },
  '150us tx timer + rearm': { description: 'tx timer of 150 µs (the value QEMU kept)', ...BASELINE },
  'no ring-full heuristic': { description: 'a kick while the timer is armed flushes at once (QEMU tx=timer)', ...BASELINE },
  VIRTIO_F_NOTIFY_ON_EMPTY: { description: 'one interrupt per drain: irq when no buffers are available or in flight', ...BASELINE },
  'recv NO_NOTIFY': { description: 'rx refill kicks suppressed until the device runs out of rx buffers', ...BASELINE },
  GSO: { description: 'TSO/CSUM offload: 64 KiB GSO frames, big rx buffers', ...BASELINE, gso: true },
  'ring size == 256': { description: 'both rings 256 entries', ...BASELINE, gso: true, ringSize: 256 },
  'ring size == 512': { description: 'both rings 512 entries', ...BASELINE, gso: true, ringSize: 512 },
  'drop mutex during tapfd read': { description: 'global lock released while the backend reads a frame', ...BASELINE, gso: true, ringSize: 512 },
  'aligouri zero-copy': { description: 'one copy fewer on host→guest', ...BASELINE, gso: true, ringSize: 512 },
  'event-idx': { description: 'modern: VIRTIO_F_EVENT_IDX kick and interrupt suppression (vhost style)', ringSize: 256, gso: true, mergeable: true, eventIdx: true },
  'tx-bh': { description: 'modern: QEMU tx=bh, flush from a bottom half with a burst limit, no timer', ringSize: 256, gso: true, mergeable: true, eventIdx: true },
  'busy-poll': { description: 'modern: the device polls the rings for a while before sleeping', ringSize: 256, gso: true, mergeable: true, eventIdx: true },
  adaptive: { description: 'modern: DIM-style adaptive mitigation aiming at the best row of every column', ringSize: 256, gso: true, mergeable: true, eventIdx: true },
};

const LOCAL_SOURCE: PresetSource = {
  rfcRows: [
    'baseline',
    '50us tx timer + rearm',
    '250us tx timer + rearm',
    '150us tx timer + rearm',
    'no ring-full heuristic',
    'VIRTIO_F_NOTIFY_ON_EMPTY',
    'recv NO_NOTIFY',
    'GSO',
    'ring size == 256',
    'ring size == 512',
    'drop mutex during tapfd read',
    'aligouri zero-copy',
  ],
  presets: LOCAL_PRESETS,
};

/** The one line the lead changes after merging the policy module (see the file comment). */
const SOURCE: PresetSource = LOCAL_SOURCE;

export function slugOf(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function dataPathOf(info: PresetInfo | undefined, fallback: PresetInfo | undefined, base: DataPath): DataPath {
  return {
    ringSize: info?.ringSize ?? fallback?.ringSize ?? base.ringSize,
    gso: info?.gso ?? fallback?.gso ?? base.gso,
    mergeable: info?.mergeable ?? fallback?.mergeable ?? base.mergeable,
    eventIdx: info?.eventIdx ?? fallback?.eventIdx ?? base.eventIdx,
  };
}

/**
 * Every row of the study, in order: the RFC's rows, then the modern presets. In `isolated` mode
 * an RFC row's data path is the baseline's plus only what that row changed against the row
 * before it (its own patch); modern presets are the same in both modes.
 */
export function studyPresets(mode: StudyMode = 'cumulative', source: PresetSource = SOURCE): StudyPreset[] {
  const cumulative = source.rfcRows.map((name) => dataPathOf(source.presets[name], LOCAL_PRESETS[name], BASELINE));
  const base = cumulative[0] ?? BASELINE;
  const rows: StudyPreset[] = source.rfcRows.map((name, i) => {
    let dp = cumulative[i]!;
    if (mode === 'isolated' && i > 0) {
      const prev = cumulative[i - 1]!;
      dp = { ...base };
      for (const k of Object.keys(dp) as (keyof DataPath)[]) if (cumulative[i]![k] !== prev[k]) (dp as unknown as Record<string, unknown>)[k] = cumulative[i]![k];
    }
    return { name, slug: slugOf(name), kind: 'rfc', rfcIndex: i, description: source.presets[name]?.description ?? LOCAL_PRESETS[name]?.description ?? '', ...dp };
  });
  // A modern preset builds on the RFC's last row (GSO, bigger rings) unless it says otherwise.
  const top = cumulative.at(-1) ?? BASELINE;
  for (const name of Object.keys(source.presets)) {
    if (source.rfcRows.includes(name)) continue;
    rows.push({ name, slug: slugOf(name), kind: 'modern', rfcIndex: null, description: source.presets[name]?.description ?? '', ...dataPathOf(source.presets[name], LOCAL_PRESETS[name], top) });
  }
  return rows;
}

/** Finds a row by exact name or slug ("GSO", "gso", "ring-size-256"); throws naming the choices. */
export function findPreset(nameOrSlug: string, mode: StudyMode = 'cumulative', source: PresetSource = SOURCE): StudyPreset {
  const all = studyPresets(mode, source);
  const hit = all.find((p) => p.name === nameOrSlug) ?? all.find((p) => p.slug === slugOf(nameOrSlug));
  if (hit === undefined) throw new RangeError(`unknown preset "${nameOrSlug}" (choose from: ${all.map((p) => p.slug).join(', ')})`);
  return hit;
}
