// The virtio-net data path's observer contract (src/net/observer.ts) on its own, without the
// tracer: NetDriver and NetDevice report each tx frame's add, pop, done and reap under the same
// identity (its avail position), drops with their reason, and nothing at all (not one call)
// when the observer is disabled — the untraced baseline.

import test from 'node:test';
import assert from 'node:assert/strict';
import { NET_OBSERVER_OFF, NO_ID, type DropReason, type NetObserver } from '../src/net/observer.js';
import { GsoType, emptyNetHdr } from '../src/net/header.js';
import { makeNetRig, netDriver } from './support/net-pair.js';

const TX_QUEUE = 1;

/** An observer that writes every call down as `name(args)`. */
class RecordingObserver implements NetObserver {
  readonly calls: string[] = [];
  constructor(readonly enabled = true) {}
  addTime(seq: number): number {
    this.calls.push(`addTime(${seq})`);
    return 1000 + seq;
  }
  addAt(seq: number, tNs: number, queue = 0): void {
    this.calls.push(`addAt(${seq},${tNs},${queue})`);
  }
  reap(seq: number, lenBytes: number, queue = 0): void {
    this.calls.push(`reap(${seq},${lenBytes},${queue})`);
  }
  publish(entries: number, queue = 0): void {
    this.calls.push(`publish(${entries},${queue})`);
  }
  kick(queue = 0): void {
    this.calls.push(`kick(${queue})`);
  }
  driverWake(): void {
    this.calls.push('driverWake()');
  }
  ringFull(inFlight: number, queue = 0): void {
    this.calls.push(`ringFull(${inFlight},${queue})`);
  }
  pop(seq: number, queue = 0): boolean {
    this.calls.push(`pop(${seq},${queue})`);
    return true;
  }
  done(seq: number, lenBytes: number, queue = 0): void {
    this.calls.push(`done(${seq},${lenBytes},${queue})`);
  }
  drop(reason: DropReason, seq = NO_ID, queue = 0): void {
    this.calls.push(`drop(${reason},${seq},${queue})`);
  }
  error(code: string, seq = NO_ID, queue = 0): void {
    this.calls.push(`error(${code},${seq},${queue})`);
  }
  used(entries: number, queue = 0): void {
    this.calls.push(`used(${entries},${queue})`);
  }
  interrupt(queue = 0): void {
    this.calls.push(`interrupt(${queue})`);
  }
  deviceWake(): void {
    this.calls.push('deviceWake()');
  }
  timerArmed(intervalNs: number, queue = 0): void {
    this.calls.push(`timerArmed(${intervalNs},${queue})`);
  }
  timerFired(latenessNs: number, queue = 0): void {
    this.calls.push(`timerFired(${latenessNs},${queue})`);
  }
  notifications(on: boolean, queue = 0): void {
    this.calls.push(`notifications(${on},${queue})`);
  }
}

const frame = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i < 12 ? 0x52 : i & 0xff));

/** Sends `lens` frames through a driver and a device sharing one observer per side; returns both. */
function sendFrames(guest: NetObserver, host: NetObserver, lens: number[], badSeq = -1): void {
  const r = makeNetRig({ device: { tracer: host } });
  const d = netDriver(r, { tracer: guest });
  lens.forEach((len, seq) => {
    const hdr = emptyNetHdr();
    // A GSO frame without the GSO features negotiated: the device drops it as a bad header.
    if (seq === badSeq) hdr.gsoType = GsoType.TCPV4;
    assert.ok(d.transmit(frame(len), 0, len, hdr));
  });
  d.flushTx();
  assert.equal(r.device.processTx(64), lens.length);
  r.txq.publishUsed();
  d.reapTx();
}

test('the driver and the device report every tx frame under its avail position, with its length', () => {
  const guest = new RecordingObserver();
  const host = new RecordingObserver();
  sendFrames(guest, host, [100, 101, 102]);
  assert.deepEqual(guest.calls, [
    'addTime(0)', `addAt(0,1000,${TX_QUEUE})`,
    'addTime(1)', `addAt(1,1001,${TX_QUEUE})`,
    'addTime(2)', `addAt(2,1002,${TX_QUEUE})`,
    `reap(0,100,${TX_QUEUE})`, `reap(1,101,${TX_QUEUE})`, `reap(2,102,${TX_QUEUE})`,
  ]);
  assert.deepEqual(host.calls, [
    `pop(0,${TX_QUEUE})`, `done(0,100,${TX_QUEUE})`,
    `pop(1,${TX_QUEUE})`, `done(1,101,${TX_QUEUE})`,
    `pop(2,${TX_QUEUE})`, `done(2,102,${TX_QUEUE})`,
  ]);
});

test('a frame the device drops is reported with its reason and identity', () => {
  const guest = new RecordingObserver();
  const host = new RecordingObserver();
  sendFrames(guest, host, [100, 101], 1);
  assert.ok(host.calls.includes(`drop(bad-header,1,${TX_QUEUE})`), host.calls.join(' '));
});

test('a disabled observer is never called: the untraced data path makes no observer call', () => {
  const guest = new RecordingObserver(false);
  const host = new RecordingObserver(false);
  sendFrames(guest, host, [100, 101, 102], 2);
  assert.deepEqual(guest.calls, []);
  assert.deepEqual(host.calls, []);
});

test('no observer at all is the disabled NET_OBSERVER_OFF', () => {
  assert.equal(NET_OBSERVER_OFF.enabled, false);
  assert.ok(Object.isFrozen(NET_OBSERVER_OFF));
  sendFrames(NET_OBSERVER_OFF, NET_OBSERVER_OFF, [100, 101]);
});
