// Where the study gets its rows: the adapter between the policy module's presets and the study.
// SOURCE is built from src/policy: each RFC preset becomes a row labelled with the RFC's own row
// name (so the RFC's figures sit beside ours), with the data-path facts the runner applies itself
// (queue size, event idx, GSO, mergeable rx buffers) and the policy preset the workloads run; in
// isolated mode an RFC row runs `<preset>-alone` (that row's change alone on the baseline). The
// modern presets follow. LOCAL_SOURCE is a fixed stand-in with the same shape, kept for tests.

import { PRESETS, RFC_ROWS, RFC_ROW_LABELS, rfcRowAlone, type PolicyConfig } from '../policy/index.js';

/** What the study needs to know about one preset. */
export interface PresetInfo {
  description?: string;
  /** The policy preset the workloads run (`preset` param); defaults to the row's name. */
  policyName?: string;
  /** The same row's change alone on the baseline (isolated mode), when the source knows it. */
  alone?: PresetInfo;
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
  /** The row's label (for an RFC row, its name in the RFC's tables). */
  name: string;
  /** Passed to the workloads as `preset`: the policy preset for this row in this mode. */
  policy: string;
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

/** What a policy config tells the study about its data path. */
function infoOf(c: PolicyConfig): PresetInfo {
  return {
    description: c.description,
    policyName: c.name,
    ringSize: c.dataPath.txRingSize,
    gso: c.dataPath.gso,
    mergeable: c.dataPath.mergeableRxBuffers,
    eventIdx: c.interrupts.mode === 'eventIdx',
  };
}

/** The real source: src/policy's presets, RFC rows labelled with the RFC's own row names. */
function policySource(): PresetSource {
  const rfcRows: string[] = [];
  const presets: Record<string, PresetInfo> = {};
  for (const name of RFC_ROWS) {
    const label = RFC_ROW_LABELS[name] ?? name;
    rfcRows.push(label);
    presets[label] = { ...infoOf(PRESETS[name]!), ...(name === RFC_ROWS[0] ? {} : { alone: infoOf(rfcRowAlone(name)) }) };
  }
  for (const [name, c] of Object.entries(PRESETS)) if (!RFC_ROWS.includes(name)) presets[name] = infoOf(c);
  return { rfcRows, presets };
}

/** The study's rows come from src/policy; LOCAL_SOURCE remains for tests of the adapter itself. */
const SOURCE: PresetSource = policySource();
export { LOCAL_SOURCE };

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
    const info = source.presets[name];
    let policy = info?.policyName ?? name;
    if (mode === 'isolated' && i > 0 && info?.alone !== undefined) {
      dp = dataPathOf(info.alone, undefined, base);
      policy = info.alone.policyName ?? policy;
    } else if (mode === 'isolated' && i > 0) {
      const prev = cumulative[i - 1]!;
      dp = { ...base };
      for (const k of Object.keys(dp) as (keyof DataPath)[]) if (cumulative[i]![k] !== prev[k]) (dp as unknown as Record<string, unknown>)[k] = cumulative[i]![k];
    }
    return { name, policy, slug: slugOf(name), kind: 'rfc', rfcIndex: i, description: info?.description ?? LOCAL_PRESETS[name]?.description ?? '', ...dp };
  });
  // A modern preset builds on the RFC's last row (GSO, bigger rings) unless it says otherwise.
  const top = cumulative.at(-1) ?? BASELINE;
  for (const name of Object.keys(source.presets)) {
    if (source.rfcRows.includes(name)) continue;
    rows.push({ name, policy: source.presets[name]?.policyName ?? name, slug: slugOf(name), kind: 'modern', rfcIndex: null, description: source.presets[name]?.description ?? '', ...dataPathOf(source.presets[name], LOCAL_PRESETS[name], top) });
  }
  return rows;
}

/** Finds a row by name, policy preset or slug ("GSO", "rfc-gso", "gso"); throws naming the choices. */
export function findPreset(nameOrSlug: string, mode: StudyMode = 'cumulative', source: PresetSource = SOURCE): StudyPreset {
  const all = studyPresets(mode, source);
  // The row's label, its policy preset name (what `virtq presets` lists), or the label's slug.
  const hit = all.find((p) => p.name === nameOrSlug) ?? all.find((p) => p.policy === nameOrSlug) ?? all.find((p) => p.slug === slugOf(nameOrSlug));
  if (hit === undefined) throw new RangeError(`unknown preset "${nameOrSlug}" (choose from: ${all.map((p) => p.slug).join(', ')})`);
  return hit;
}
