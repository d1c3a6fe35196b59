// Device-side interrupt (used-buffer notification) rules: kvm-71's per-buffer legacy rule,
// VIRTIO_F_NOTIFY_ON_EMPTY with the in-flight count, the 1.x flags rule, event idx, each
// optionally behind VIRTIO_NET_F_NOTF_COAL coalescing (max packets / max µs). The driver's own
// suppression (flags, used_event) is applied by the loop through DeviceQueue.needsNotification
// when this module answers 'check'. Pure state over given times. Browser-safe.

import type { CoalesceConfig, InterruptConfig, InterruptMode } from './config.js';
import type { InterruptHooks, IrqDecision } from './hooks.js';

export class InterruptCounters {
  decisions = 0;
  /** Notifications sent regardless of suppression (ring empty / nothing in flight). */
  forced = 0;
  /** Decisions deferred by coalescing. */
  deferred = 0;
  /** Coalescing conditions met by packet count, and by elapsed time. */
  coalescePacketFires = 0;
  coalesceTimeFires = 0;
}

export class InterruptPolicy implements InterruptHooks {
  readonly counters = new InterruptCounters();
  readonly mode: InterruptMode;
  readonly publishBatch: number;
  private maxPackets = 0;
  private maxUsecs = 0;
  private coalescing = false;
  private count = 0;
  private firstUs = 0;

  constructor(cfg: InterruptConfig) {
    this.mode = cfg.mode;
    this.publishBatch = cfg.publishBatch;
    this.applyCoalesce(cfg.coalesce);
  }

  get needsRingState(): boolean {
    return this.mode === 'legacyPerBuffer' || this.mode === 'notifyOnEmpty';
  }

  /** The coalescing parameters in effect (null: every packet meets the condition). */
  get coalesce(): CoalesceConfig | null {
    return this.coalescing ? { maxPackets: this.maxPackets, maxUsecs: this.maxUsecs } : null;
  }

  /** Packets counted towards the coalescing condition since the last notification. */
  get coalescedPackets(): number {
    return this.count;
  }

  afterPublish(nowUs: number, published: number, pendingAvail: number, inFlight: number): IrqDecision {
    const c = this.counters;
    c.decisions++;
    // kvm-71 virtio_notify: "Always notify when queue is empty" (reference §0).
    // NOTIFY_ON_EMPTY: empty means nothing available and nothing in flight (reference §1.4).
    const empty =
      (this.mode === 'legacyPerBuffer' && pendingAvail === 0) || (this.mode === 'notifyOnEmpty' && pendingAvail === 0 && inFlight === 0);
    if (empty) {
      c.forced++;
      this.resetCoalesce();
      return 'force';
    }
    if (!this.coalescing) return 'check';
    // virtio 1.4 §5.1.9.5.10: counting starts at the first packet after the last notification.
    if (this.count === 0) this.firstUs = nowUs;
    this.count += published;
    if (this.count >= this.maxPackets) {
      c.coalescePacketFires++;
      this.resetCoalesce();
      return 'check';
    }
    if (nowUs - this.firstUs >= this.maxUsecs) {
      c.coalesceTimeFires++;
      this.resetCoalesce();
      return 'check';
    }
    c.deferred++;
    return 'defer';
  }

  deadlineUs(): number {
    return this.coalescing && this.count > 0 ? this.firstUs + this.maxUsecs : Infinity;
  }

  onDeadline(nowUs: number): IrqDecision {
    if (this.count === 0 || nowUs < this.firstUs + this.maxUsecs) return 'defer';
    this.counters.coalesceTimeFires++;
    this.resetCoalesce();
    return 'check';
  }

  /** New coalescing parameters (last set wins); 'check' when the new ones are already met. */
  setCoalesce(nowUs: number, maxPackets: number, maxUsecs: number): IrqDecision {
    this.applyCoalesce({ maxPackets, maxUsecs });
    if (this.count === 0) return 'defer';
    if (!this.coalescing || this.count >= this.maxPackets || nowUs - this.firstUs >= this.maxUsecs) {
      this.resetCoalesce();
      return 'check';
    }
    return 'defer';
  }

  private applyCoalesce(c: CoalesceConfig | null): void {
    // "If either is 0, every packet meets the condition" (NOTF_COAL).
    this.coalescing = c !== null && c.maxPackets > 0 && c.maxUsecs > 0;
    this.maxPackets = c?.maxPackets ?? 0;
    this.maxUsecs = c?.maxUsecs ?? 0;
  }

  private resetCoalesce(): void {
    this.count = 0;
  }
}

/** rx kicks (reference §1.5): always, or only when the device found the rx ring empty. */
export class RxKickPolicy {
  /** Passes that asked for kicks off (buffers left) and on (starved). */
  suppressed = 0;
  requested = 0;
  constructor(readonly mode: 'always' | 'onlyWhenStarved') {}

  wantKicks(pendingAvail: number): boolean {
    if (this.mode === 'always' || pendingAvail === 0) {
      this.requested++;
      return true;
    }
    this.suppressed++;
    return false;
  }
}
