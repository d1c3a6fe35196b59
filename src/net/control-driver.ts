// The driver side of the virtio-net control virtqueue (virtio 1.2 §5.1.6.5): one command at a
// time, as Linux's virtnet_send_command does — the command's class, command and data in one
// device-readable buffer, the ack byte in one device-writable buffer, published, then the ack
// reaped. Does not wait or kick: send() returns whether the device wants a kick (the caller's
// loop decides), poll() returns the ack once the device has used the chain. The device is
// untrusted: a used entry for an unknown head or with a length other than 1 is reported as
// 'bad-reply', never trusted. Runs in Web Workers too: no `node:` imports.

import type { Arena } from '../memory/arena.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { DriverVirtqueue } from '../virtqueue/index.js';
import { CTRL_ERR, CTRL_OK, encodeControl, type ControlCommand } from './control.js';
import { MAX_CONTROL_BYTES } from './control-queue.js';
import { NetError } from './errors.js';

/** What became of a command: the device's ack, or a reply that cannot be trusted. */
export type ControlReply = 'ok' | 'err' | 'bad-reply';

const TOKEN = 1;

export class ControlDriver {
  private readonly cmdAddr: number;
  private readonly ackAddr: number;
  private outstanding = false;
  /** Commands sent, and replies by kind. */
  readonly stats = { sent: 0, ok: 0, err: 0, badReplies: 0 };

  constructor(
    private readonly mem: GuestMemory,
    arena: Arena,
    readonly queue: DriverVirtqueue<number>,
  ) {
    this.cmdAddr = arena.alloc(MAX_CONTROL_BYTES, 64);
    this.ackAddr = arena.alloc(64, 64);
  }

  /** True while a command waits for its ack. */
  get busy(): boolean {
    return this.outstanding;
  }

  /**
   * Queues `cmd` (or raw readable bytes, for tests of a hostile driver) and publishes it. Returns
   * true when the device wants a kick. Throws NetError when a command is still outstanding.
   */
  send(cmd: ControlCommand | Uint8Array): boolean {
    if (this.outstanding) throw new NetError('bad-argument', 'control-driver', 'a control command is still waiting for its ack');
    const bytes = cmd instanceof Uint8Array ? cmd : encodeControl(cmd);
    if (bytes.length === 0 || bytes.length > MAX_CONTROL_BYTES) throw new NetError('bad-argument', 'control-driver', `a command of ${bytes.length} bytes`);
    this.mem.copyIn(this.cmdAddr, bytes);
    // An ack the device never wrote must not read as OK.
    this.mem.writeU8(this.ackAddr, 0xff);
    const head = this.queue.add([{ addr: this.cmdAddr, len: bytes.length }], [{ addr: this.ackAddr, len: 1 }], TOKEN);
    if (head < 0) throw new NetError('bad-argument', 'control-driver', 'no free descriptors on the control queue');
    this.outstanding = true;
    this.stats.sent++;
    this.queue.publish();
    return this.queue.kickNeeded();
  }

  /** The reply to the outstanding command once the device used it, else null. */
  poll(): ControlReply | null {
    if (!this.outstanding) return null;
    const u = this.queue.reap();
    if (u === null) return null;
    this.outstanding = false;
    const ack = this.mem.readU8(this.ackAddr);
    if (u.token !== TOKEN || u.len !== 1 || (ack !== CTRL_OK && ack !== CTRL_ERR)) {
      this.stats.badReplies++;
      return 'bad-reply';
    }
    if (ack === CTRL_OK) {
      this.stats.ok++;
      return 'ok';
    }
    this.stats.err++;
    return 'err';
  }
}
