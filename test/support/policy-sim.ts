// A deterministic single-thread simulation of one driver and one policy-driven device on a real
// split ring (DriverQueue + DeviceQueue over GuestMemory) with a fake clock and counting
// doorbells. The device runs DeviceLoop.pass/prepareSleep exactly as DeviceLoop.run does, and
// "sleeps" until its kick doorbell moves or its deadline passes; the driver sleeps until the
// irq doorbell moves. A state where both sleep with work outstanding and no deadline is a
// deadlock: a buffer published and never signalled.

import { GuestMemory } from '../../src/memory/index.js';
import { DeviceQueue, DriverQueue, DescriptorChain, SplitLayout, type Segment } from '../../src/virtqueue/index.js';
import { DeviceLoop, FakeClock, packetLayout, type LoopDoorbell, type PolicyConfig } from '../../src/policy/index.js';

export class SimBell implements LoopDoorbell {
  value = 0;
  rings = 0;
  onRing: (() => void) | null = null;
  seq(): number {
    return this.value;
  }
  ring(): boolean {
    this.value++;
    this.rings++;
    this.onRing?.();
    return true;
  }
  wait(): never {
    throw new Error('the simulation never blocks');
  }
  waitUntil(): never {
    throw new Error('the simulation never blocks');
  }
}

export interface SimResult {
  delivered: number;
  reaped: number;
  errors: string[];
  kicks: number;
  forcedKicks: number;
  kicksSuppressed: number;
  interrupts: number;
  deadlock: string | null;
  device: Record<string, number>;
}

const FRAME_BYTES = 64;

export class PolicySim {
  readonly clock = new FakeClock(0);
  readonly kick = new SimBell();
  readonly irq = new SimBell();
  readonly mem: GuestMemory;
  readonly dev: DeviceQueue;
  readonly drv: DriverQueue<number>;
  readonly loop: DeviceLoop;
  readonly role: 'tx' | 'rx';
  readonly capacity: number;
  readonly errors: string[] = [];
  delivered = 0; // device side: consumed (tx) or produced (rx)
  reaped = 0; // driver side: completions (tx) or received (rx)
  sent = 0;
  forcedKicks = 0;
  kicksSuppressed = 0;
  /** Whether kicks were on at each drain that moved a chain (tx.kicksDuringFlush is about this). */
  readonly kicksOnAtDrain: boolean[] = [];
  // Device sleep state.
  devAsleep = false;
  private devSeen = 0;
  private devDeadline = Infinity;
  private lastKickSeq = 0;
  // Driver sleep state.
  drvWaiting = false;
  private drvSeen = 0;
  private fullEpisode = false;
  private readonly free: number[] = [];
  private readonly segs: Segment[];
  private readonly chain = new DescriptorChain();

  constructor(
    readonly policy: PolicyConfig,
    readonly direction: 'g2h' | 'h2g',
    readonly count: number,
  ) {
    this.role = direction === 'g2h' ? 'tx' : 'rx';
    const size = direction === 'g2h' ? policy.dataPath.txRingSize : policy.dataPath.rxRingSize;
    const eventIdx = policy.interrupts.mode === 'eventIdx';
    const lay = packetLayout(policy, FRAME_BYTES, size);
    this.capacity = lay.capacityPackets;
    const ringBytes = SplitLayout.packedBytes(size);
    const dataBase = Math.ceil(ringBytes / 4096) * 4096;
    this.mem = GuestMemory.allocate(dataBase + this.capacity * 128 + 4096);
    const layout = SplitLayout.packedAt(size, 0);
    this.dev = new DeviceQueue(this.mem, layout, { eventIdx });
    this.drv = new DriverQueue<number>(this.mem, layout, { eventIdx });
    for (let i = 0; i < this.capacity; i++) this.free.push(dataBase + i * 128);
    this.segs = lay.segments.map((len) => ({ addr: 0, len }));
    const dev = this.dev;
    this.loop = new DeviceLoop({
      policy,
      kick: this.kick,
      irq: this.irq,
      clock: this.clock,
      stopped: () => false,
      packets: () => this.delivered,
      bytes: () => this.delivered * FRAME_BYTES,
      queues: [
        {
          role: this.role,
          capacityPackets: this.capacity,
          drain: (budget) => this.drain(budget),
          publish: () => dev.publishUsed(),
          needsNotification: () => dev.needsNotification(),
          pending: () => dev.pending(),
          inFlight: () => dev.inFlight,
          disableKicks: () => dev.disableNotification(),
          enableKicks: () => dev.enableNotification(),
          backendReadable: () => this.delivered < this.count,
          done: () => false,
        },
      ],
    });
    if (this.role === 'rx') {
      this.postRxBuffers();
    }
  }

  private drain(budget: number): number {
    let k = 0;
    while (k < budget) {
      if (this.role === 'rx' && this.delivered >= this.count) break;
      const c = this.dev.pop(this.chain);
      if (c === null) break;
      if (k === 0) this.kicksOnAtDrain.push(this.dev.notificationsEnabled);
      if (this.role === 'tx') {
        const seq = this.mem.readU32(c.addrs[0]!);
        if (seq !== this.delivered) this.errors.push(`device got ${seq}, expected ${this.delivered}`);
        this.dev.addUsed(c.head, 0);
      } else {
        this.mem.writeU32(c.addrs[c.readableCount]!, this.delivered);
        this.dev.addUsed(c.head, 4);
      }
      this.delivered++;
      k++;
    }
    return k;
  }

  private setSegs(addr: number): void {
    let a = addr;
    for (const s of this.segs) {
      s.addr = a;
      a += s.len;
    }
  }

  private publishAndKick(): void {
    this.drv.publish();
    if (this.drv.kickNeeded()) this.kick.ring();
    else this.kicksSuppressed++;
  }

  private postRxBuffers(): number {
    let n = 0;
    while (this.free.length > 0 && this.drv.numFree >= this.segs.length) {
      const addr = this.free.pop()!;
      this.setSegs(addr);
      this.drv.add([], this.segs, addr);
      n++;
    }
    if (n > 0) this.publishAndKick();
    return n;
  }

  /** Driver: send up to `k` packets (tx) or refill (rx). Forced kick when the tx ring is full. */
  driverSend(k: number): void {
    if (this.drvWaiting) return;
    if (this.role === 'rx') {
      this.postRxBuffers();
      return;
    }
    let n = 0;
    while (n < k && this.sent < this.count && this.free.length > 0 && this.drv.numFree >= this.segs.length) {
      const addr = this.free.pop()!;
      this.mem.writeU32(addr, this.sent++);
      this.setSegs(addr);
      this.drv.add(this.segs, [], addr);
      n++;
    }
    if (n > 0) {
      this.fullEpisode = false;
      this.publishAndKick();
    } else if (this.sent < this.count && this.free.length === 0 && !this.fullEpisode) {
      this.fullEpisode = true;
      this.forcedKicks++;
      this.kick.ring();
    }
  }

  /** Driver: reap completions (tx) or received packets (rx). */
  driverReap(): number {
    if (this.drvWaiting) return 0;
    let n = 0;
    let u;
    while ((u = this.drv.reap()) !== null) {
      if (this.role === 'rx') {
        const seq = this.mem.readU32(u.token);
        if (seq !== this.reaped) this.errors.push(`driver got ${seq}, expected ${this.reaped}`);
      }
      this.reaped++;
      this.free.push(u.token);
      n++;
    }
    return n;
  }

  /** Driver: enable interrupts (at once or delayed) and sleep unless the re-check finds work. */
  driverWait(): void {
    if (this.drvWaiting || this.drv.outstanding === 0) return;
    this.drvSeen = this.irq.seq();
    const again = this.policy.interrupts.driverEnable === 'delayed' && this.role === 'tx' ? this.drv.enableInterruptsDelayed() : this.drv.enableInterrupts();
    if (again) {
      this.drv.disableInterrupts();
      return;
    }
    this.drvWaiting = true;
  }

  /** Driver wakes when the irq doorbell moved. */
  driverPoll(): void {
    if (this.drvWaiting && this.irq.seq() !== this.drvSeen) {
      this.drvWaiting = false;
      this.drv.disableInterrupts();
    }
  }

  /**
   * Device: if awake (or woken), run passes until it would sleep. `interject` runs once between
   * the last empty pass and the re-enable + re-check: the race window the re-check closes.
   */
  deviceStep(interject: (() => void) | null = null, maxIterations = 10_000): void {
    if (this.devAsleep) {
      if (this.kick.seq() === this.devSeen && this.clock.nowUs() < this.devDeadline) return;
      this.devAsleep = false;
    }
    for (let i = 0; i < maxIterations; i++) {
      const seen = this.kick.seq();
      const kicks = seen - this.lastKickSeq;
      this.lastKickSeq = seen;
      if (this.loop.pass(kicks)) continue;
      if (interject !== null) {
        interject();
        interject = null;
      }
      if (this.loop.prepareSleep()) continue;
      this.devAsleep = true;
      this.devSeen = seen;
      this.devDeadline = this.loop.nextDeadline(this.clock.nowUs()).deadlineUs;
      return;
    }
    throw new Error('device never went idle');
  }

  get deviceDeadline(): number {
    return this.devAsleep ? this.devDeadline : this.clock.nowUs();
  }

  private get finished(): boolean {
    return this.role === 'tx' ? this.sent >= this.count && this.reaped >= this.count : this.reaped >= this.count;
  }

  /**
   * Runs to completion: the driver sends/refills, reaps and waits; the device runs when woken;
   * time jumps to the device's deadline when nothing else can move. Returns the outcome.
   */
  finish(maxRounds = 100_000): SimResult {
    let deadlock: string | null = null;
    for (let r = 0; r < maxRounds && !this.finished; r++) {
      this.driverPoll();
      if (!this.drvWaiting) {
        this.driverReap();
        this.driverSend(64);
        this.deviceStep();
        this.driverPoll();
        if (!this.drvWaiting) {
          this.driverReap();
          if (this.finished) break;
          this.driverWait();
        }
        continue;
      }
      // The driver sleeps: the device must be awake, woken, or have a deadline.
      const before = this.kick.seq();
      this.deviceStep();
      this.driverPoll();
      if (!this.drvWaiting) continue;
      if (this.devAsleep && this.kick.seq() === before) {
        const d = this.deviceDeadline;
        if (d === Infinity) {
          deadlock = `driver waits for an interrupt with ${this.drv.outstanding} outstanding (delivered ${this.delivered}, reaped ${this.reaped}) and the device sleeps with no deadline`;
          break;
        }
        this.clock.set(Math.max(this.clock.nowUs(), d));
      }
    }
    if (deadlock === null && !this.finished) deadlock = `not finished after ${maxRounds} rounds (delivered ${this.delivered}, reaped ${this.reaped})`;
    return {
      delivered: this.delivered,
      reaped: this.reaped,
      errors: this.errors,
      kicks: this.kick.rings,
      forcedKicks: this.forcedKicks,
      kicksSuppressed: this.kicksSuppressed,
      interrupts: this.irq.rings,
      deadlock,
      device: this.loop.toExtra(),
    };
  }
}
