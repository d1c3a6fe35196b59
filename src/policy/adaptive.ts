// The adaptive policy: a Dim walk over profiles that each set the tx timer interval and the
// interrupt coalescing, applied to the modules it drives. Profile 0 of the shipped preset is
// "no delay" (flush at once, no coalescing), so the walk starts from the latency-optimal point
// and only moves right when byte/packet rates improve significantly. Browser-safe.

import type { AdaptiveConfig, AdaptiveProfile } from './config.js';
import { Dim } from './dim.js';
import type { InterruptHooks, IrqDecision, TxMitigationHooks } from './hooks.js';

export class AdaptivePolicy {
  readonly dim: Dim;
  readonly profiles: readonly AdaptiveProfile[];
  /** Time-weighted sum of the profile index (for the mean profile over a run). */
  private ixUsSum = 0;
  private lastUs = -1;
  private firstUs = -1;

  /** Times the batching guard parked the walk on profile 0. */
  guardParks = 0;
  private readonly minPacketsPerFlush: number;
  private flushesAtSample = 0;

  constructor(cfg: AdaptiveConfig) {
    this.profiles = cfg.profiles;
    this.minPacketsPerFlush = cfg.minPacketsPerFlush;
    this.dim = new Dim(cfg.profiles.length, cfg.startIx, cfg.nevents, cfg.thresholdPct, cfg.minSampleUs, cfg.parkExitSamples, cfg.tieToLower);
  }

  get profile(): AdaptiveProfile {
    return this.profiles[this.dim.profileIx]!;
  }

  /** Applies the current profile to the driven modules; returns 'check' if an irq is now due. */
  apply(nowUs: number, tx: readonly (TxMitigationHooks | null)[], irqs: readonly InterruptHooks[]): IrqDecision {
    const p = this.profile;
    for (const t of tx) t?.setIntervalUs?.(p.txTimerUs);
    let d: IrqDecision = 'defer';
    for (const i of irqs) if (i.setCoalesce?.(nowUs, p.coalescePackets, p.coalesceUsecs) === 'check') d = 'check';
    return d;
  }

  /**
   * Feeds cumulative device counters (`flushes` for the batching guard); returns true when the
   * profile changed (call apply()).
   */
  update(nowUs: number, packets: number, bytes: number, events: number, flushes = 0): boolean {
    if (this.firstUs < 0) this.firstUs = nowUs;
    else this.ixUsSum += this.dim.profileIx * (nowUs - this.lastUs);
    this.lastUs = nowUs;
    const samplesBefore = this.dim.samples;
    const before = this.dim.profileIx;
    let changed = this.dim.update(nowUs, packets, bytes, events);
    if (this.dim.samples !== samplesBefore && this.minPacketsPerFlush > 0) {
      const sampleFlushes = flushes - this.flushesAtSample;
      this.flushesAtSample = flushes;
      if (sampleFlushes > 0 && this.dim.lastSamplePackets / sampleFlushes < this.minPacketsPerFlush && this.dim.profileIx !== 0) {
        this.dim.parkAt(0);
        this.guardParks++;
        changed = before !== 0;
      }
    }
    return changed;
  }

  /** Time-weighted mean profile index since the first update. */
  meanProfileIx(nowUs: number): number {
    if (this.firstUs < 0 || nowUs <= this.firstUs) return this.dim.profileIx;
    const sum = this.ixUsSum + this.dim.profileIx * (nowUs - this.lastUs);
    return sum / (nowUs - this.firstUs);
  }
}
