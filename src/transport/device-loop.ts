// The device thread's side of a worker-hosted device: opens the channel and guest memory, builds
// the backend from the registry, handles control commands (activate, reset, save, resume) and
// otherwise runs the backend's own device loop (for virtio-net: NetDevice under the policy
// layer's DeviceLoop), which alone drains the queues, runs the notify cycle and sleeps on the
// kick doorbell. That loop returns when a command is waiting (W_CMD_SEQ moved); this file then
// handles it and starts the loop again. Between commands with no device running (before
// DRIVER_OK, after a reset, paused by a save, broken) it sleeps on the same doorbell for the next
// command only. Notified queues come from the W_PENDING bits, accumulated into cumulative
// per-queue counts (QueueNotify names the queue, §4.2.2.2). Used by the Node and the browser
// worker entries. Runs in browser Web Workers: no `node:` imports.

import { GuestMemory, type RegionSpec } from '../memory/index.js';
import type { WaitStrategy } from '../notify/index.js';
import { BackendHost } from './backend-host.js';
import { Cmd, DeviceChannel, IRQ_DOORBELL, KICK_DOORBELL, W_ACK_SEQ, W_CLOSED, W_CMD_KIND, W_CMD_SEQ, W_PENDING, W_READY, W_RESULT } from './channel.js';
import { DeviceSignals, type ActivationPlan } from './device.js';
import { deviceKind } from './registry.js';

/** Everything a device worker needs, as plain data (workerData in Node, the first message in a browser). */
export interface DeviceWorkerInit {
  channel: SharedArrayBuffer;
  memory: RegionSpec[];
  kind: string;
  options?: unknown;
  /** Module URLs to import first (they register more device kinds). */
  modules?: string[];
  /** How the device sleeps between kicks (default 'block'). */
  wait?: WaitStrategy;
}

export async function runDeviceWorker(init: DeviceWorkerInit): Promise<void> {
  for (const m of init.modules ?? []) await import(m);
  const kind = deviceKind(init.kind);
  const mem = new GuestMemory(init.memory);
  const ch = DeviceChannel.open(init.channel);
  const backend = kind.backend(init.options);
  const kick = ch.doorbell(KICK_DOORBELL, { strategy: init.wait ?? 'block' });
  const irq = ch.doorbell(IRQ_DOORBELL);
  const signals = new DeviceSignals(ch.signalWords);
  const w = ch.words;
  // Commands issued before this loop started count from here (pairs with WorkerRunner.issue's add).
  let handled = Atomics.load(w, W_CMD_SEQ);
  const state = { paused: false };
  const kickCounts = new Uint32Array(32);
  const host = new BackendHost(
    backend,
    mem,
    signals,
    // Ringing the irq doorbell is the device's interrupt line (pairs with the transport's irq wait).
    () => irq.ring(),
    {
      kick,
      kicks: (q) => {
        // Take the notified-queue bits (pairs with the Atomics.or in WorkerRunner.notify, which
        // sets the bit before it rings: a bit set after this exchange comes with a ring that moves
        // the kick sequence past what the loop saw, so its sleep returns at once).
        let bits = Atomics.exchange(w, W_PENDING, 0);
        for (let i = 0; bits !== 0; i++, bits >>>= 1) if (bits & 1) kickCounts[i]!++;
        return kickCounts[q] ?? 0;
      },
      // Acquire: pairs with the Atomics.add of W_CMD_SEQ in WorkerRunner.issue.
      stopped: () => kick.stopped || Atomics.load(w, W_CMD_SEQ) !== handled,
    },
  );
  // Pairs with WorkerRunner.ready's load: the loop below is about to watch the kick doorbell.
  Atomics.store(w, W_READY, 1);
  Atomics.notify(w, W_READY);

  for (;;) {
    if (kick.stopped) break;
    // Acquire: pairs with the Atomics.add of W_CMD_SEQ in WorkerRunner.issue (kind + payload written before).
    const cmd = Atomics.load(w, W_CMD_SEQ);
    if (cmd !== handled) {
      // Stored before the sequence bump, so this load sees the command's kind.
      runCommand(ch, host, Atomics.load(w, W_CMD_KIND), state);
      handled = cmd;
      // Release: the payload and device state changes are visible before the ack (pairs with
      // the transport's load of W_ACK_SEQ).
      Atomics.store(w, W_ACK_SEQ, cmd);
      Atomics.notify(w, W_ACK_SEQ);
      continue;
    }
    // The device loop: returns when a command waits, the channel stopped or the device broke.
    if (!state.paused) host.run();
    const seen = kick.seq();
    // Re-check after reading the sequence: a command that raced with the loop's return either
    // shows up here or moved the sequence past `seen` (the transport writes the word, then rings).
    // Notifications that arrive meanwhile (W_PENDING) wake this wait; the loop above then runs
    // again (or, paused or broken, returns at once and this waits again).
    if (Atomics.load(w, W_CMD_SEQ) !== handled || kick.stopped) continue;
    kick.wait(seen);
  }
  host.close();
  // Pairs with WorkerRunner.close's load: the backend let go of its fds before the thread ends.
  Atomics.store(w, W_CLOSED, 1);
  Atomics.notify(w, W_CLOSED);
}

function runCommand(ch: DeviceChannel, host: BackendHost, kind: number, state: { paused: boolean }): void {
  const w = ch.words;
  try {
    switch (kind) {
      case Cmd.ACTIVATE:
        // A restored backend may hold work already (frames waiting for rx buffers): the device
        // loop that runs after this command looks at every queue before it first sleeps.
        host.activate(ch.readPayload() as ActivationPlan);
        break;
      case Cmd.RESET:
        state.paused = false;
        host.deactivate();
        // Drop notifications aimed at the old incarnation (pairs with WorkerRunner.notify's or);
        // the next incarnation's loop counts kicks from whatever kickCounts hold then.
        Atomics.store(w, W_PENDING, 0);
        break;
      case Cmd.SAVE:
        state.paused = true; // stays paused until RESUME: nothing moves after the snapshot, notify bits wait
        ch.writePayload(host.save());
        break;
      case Cmd.RESUME:
        state.paused = false;
        break;
    }
    // Published by the release store of W_ACK_SEQ that follows (pairs with WorkerRunner.save's load).
    Atomics.store(w, W_RESULT, 0);
  } catch (e) {
    ch.writePayload({ error: e instanceof Error ? e.message : String(e) });
    Atomics.store(w, W_RESULT, 1); // same pairing as the store of 0 above
  }
}
