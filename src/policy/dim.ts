// A DIM-style walk (Linux net_dim's algorithm as documented in docs.kernel.org/networking/
// net_dim and reference §2.5, written anew): samples (time, packets, bytes, events); every
// `nevents` events it compares byte, then packet rates (higher is better), then event rates
// (lower is better), a difference counting only above `thresholdPct`; it walks a 1-D profile
// list right or left, turns when not better, parks on top when the "one step back" pattern or an
// edge shows the optimum, and parks tired after 2× the profile count of steps without settling.
// Three knobs of ours, off by default (net_dim): a minimum sample time, a number of agreeing
// samples to leave a parking spot, and ties resolved toward less delay (see the constructor).
// Pure: it is fed counters and times. Browser-safe.

export type DimState = 'parkingOnTop' | 'parkingTired' | 'goingRight' | 'goingLeft';
export type DimCompare = 'better' | 'same' | 'worse';

interface Rates {
  bpms: number;
  ppms: number;
  epms: number;
}

export class Dim {
  state: DimState = 'parkingOnTop';
  profileIx: number;
  /** Profile changes made, and samples taken. */
  changes = 0;
  samples = 0;
  /** Packets and events in the last completed sample. */
  lastSamplePackets = 0;
  lastSampleEvents = 0;
  private stepsLeft = 0;
  private stepsRight = 0;
  private tired = 0;
  private prev: Rates = { bpms: 0, ppms: 0, epms: 0 };
  private readonly curr: Rates = { bpms: 0, ppms: 0, epms: 0 };
  private startUs = 0;
  private startPackets = 0;
  private startBytes = 0;
  private startEvents = 0;
  private started = false;
  /** Consecutive parked samples that differed from the reference, and which way. */
  private exitVotes = 0;
  private exitDir: DimCompare = 'same';

  constructor(
    readonly profileCount: number,
    startIx: number,
    readonly nevents = 64,
    readonly thresholdPct = 10,
    /** A sample also lasts at least this long (µs); 0 = events alone end it (net_dim). */
    readonly minSampleUs = 0,
    /**
     * Consecutive samples that must differ from the parked reference, the same way, before the
     * walk leaves its parking spot (net_dim: 1). A single sample hit by a scheduler gap then no
     * longer sends the walk exploring.
     */
    readonly parkExitSamples = 1,
    /**
     * Ties go to less delay (ours; net_dim turns on a tie and keeps walking): a step right that
     * is not better, or a step left that is worse, is taken back and the walk parks there, with
     * that profile's sample as the reference. Profiles must be ordered by delay, least first.
     */
    readonly tieToLower = false,
  ) {
    this.profileIx = startIx;
  }

  /**
   * Feeds cumulative counters; returns true when the profile index changed (read profileIx).
   * Call it after every event (notification or flush).
   */
  update(nowUs: number, packets: number, bytes: number, events: number): boolean {
    if (!this.started) {
      this.started = true;
      this.restart(nowUs, packets, bytes, events);
      return false;
    }
    if (events - this.startEvents < this.nevents) return false;
    if (nowUs - this.startUs < this.minSampleUs) return false;
    const ms = (nowUs - this.startUs) / 1000;
    if (ms <= 0) return false;
    const c = this.curr;
    c.bpms = (bytes - this.startBytes) / ms;
    c.ppms = (packets - this.startPackets) / ms;
    c.epms = (events - this.startEvents) / ms;
    this.samples++;
    this.lastSamplePackets = packets - this.startPackets;
    this.lastSampleEvents = events - this.startEvents;
    const changed = this.decide(c);
    this.restart(nowUs, packets, bytes, events);
    if (changed) this.changes++;
    return changed;
  }

  /** Compares a sample with the previous one (bytes, then packets, then events). */
  compare(curr: Rates, prev: Rates): DimCompare {
    if (prev.bpms === 0) return curr.bpms > 0 ? 'better' : 'same';
    if (this.significant(curr.bpms, prev.bpms)) return curr.bpms > prev.bpms ? 'better' : 'worse';
    if (prev.ppms === 0) return curr.ppms > 0 ? 'better' : 'same';
    if (this.significant(curr.ppms, prev.ppms)) return curr.ppms > prev.ppms ? 'better' : 'worse';
    if (prev.epms === 0) return 'same';
    if (this.significant(curr.epms, prev.epms)) return curr.epms < prev.epms ? 'better' : 'worse';
    return 'same';
  }

  /** One decision on a sample; returns true when the profile changed. */
  decide(curr: Rates): boolean {
    const prevIx = this.profileIx;
    const prevState = this.state;
    switch (this.state) {
      case 'parkingOnTop': {
        const c = this.compare(curr, this.prev);
        if (c === 'same') this.exitVotes = 0;
        else {
          this.exitVotes = c === this.exitDir ? this.exitVotes + 1 : 1;
          this.exitDir = c;
          if (this.exitVotes >= this.parkExitSamples) this.exitParking();
        }
        break;
      }
      case 'parkingTired':
        if (--this.tired === 0) this.exitParking();
        break;
      case 'goingRight':
      case 'goingLeft': {
        const c = this.compare(curr, this.prev);
        if (this.tieToLower) {
          const right = this.state === 'goingRight';
          if ((right && c !== 'better') || (!right && c === 'worse')) {
            // Back to the profile the reference sample was taken on, which stays the reference.
            this.profileIx += right ? -1 : 1;
            this.parkOnTop();
            return this.profileIx !== prevIx;
          }
        } else {
          if (c !== 'better') this.turn();
          if (this.onTop()) {
            this.parkOnTop();
            break;
          }
        }
        const r = this.step();
        if (r === 'edge') this.parkOnTop();
        else if (r === 'tired') this.parkTired();
        break;
      }
    }
    // The reference sample stays put while parked on top (so a drift away from it is noticed).
    if (prevState !== 'parkingOnTop' || this.state !== 'parkingOnTop') {
      this.prev.bpms = curr.bpms;
      this.prev.ppms = curr.ppms;
      this.prev.epms = curr.epms;
    }
    return this.profileIx !== prevIx;
  }

  private significant(val: number, ref: number): boolean {
    return ref !== 0 && (100 * Math.abs(val - ref)) / ref > this.thresholdPct;
  }

  private restart(nowUs: number, packets: number, bytes: number, events: number): void {
    this.startUs = nowUs;
    this.startPackets = packets;
    this.startBytes = bytes;
    this.startEvents = events;
  }

  private onTop(): boolean {
    if (this.state === 'goingRight') return this.stepsLeft > 1 && this.stepsRight === 1;
    if (this.state === 'goingLeft') return this.stepsRight > 1 && this.stepsLeft === 1;
    return true;
  }

  private turn(): void {
    if (this.state === 'goingRight') {
      this.state = 'goingLeft';
      this.stepsLeft = 0;
    } else if (this.state === 'goingLeft') {
      this.state = 'goingRight';
      this.stepsRight = 0;
    }
  }

  private step(): 'stepped' | 'edge' | 'tired' {
    if (this.tired === this.profileCount * 2) return 'tired';
    if (this.state === 'goingRight') {
      if (this.profileIx === this.profileCount - 1) return 'edge';
      this.profileIx++;
      this.stepsRight++;
    } else if (this.state === 'goingLeft') {
      if (this.profileIx === 0) return 'edge';
      this.profileIx--;
      this.stepsLeft++;
    }
    this.tired++;
    return 'stepped';
  }

  /** Jumps to `ix` and parks there (used by guards outside the walk). */
  parkAt(ix: number): void {
    this.profileIx = ix;
    this.parkOnTop();
  }

  private parkOnTop(): void {
    this.exitVotes = 0;
    this.stepsLeft = 0;
    this.stepsRight = 0;
    this.tired = 0;
    this.state = 'parkingOnTop';
  }

  private parkTired(): void {
    this.tired = this.profileCount;
    this.state = 'parkingTired';
  }

  private exitParking(): void {
    this.state = this.profileIx > 0 ? 'goingLeft' : 'goingRight';
    this.step();
  }
}
