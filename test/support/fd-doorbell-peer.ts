// Worker for test/fd-doorbell.test.ts: the peer side of a shared-words FdDoorbell ping-pong.
// It waits for each ping (spinning or sleeping in poll(2) per workerData.spin), optionally
// dawdles so the main thread falls asleep, then rings back; it counts what it saw.

import { parentPort, workerData } from 'node:worker_threads';
import { FdDoorbell } from '../../src/backend/fd-doorbell.js';
import { loadIo } from '../../src/backend/native.js';

interface PeerData {
  words: SharedArrayBuffer;
  kick: number;
  call: number;
  rounds: number;
  spin: number;
}

const d = workerData as PeerData;
const words = new Int32Array(d.words);
const io = loadIo();
// Main rings word 0 and sleeps on word 3; this side rings word 2 and sleeps on word 1.
const db = new FdDoorbell({
  io,
  waitFds: () => [d.kick],
  ringFds: () => [d.call],
  stopped: () => false,
  idlePollMs: 50,
  shared: { words, waitSeq: 0, waitSleeping: 1, ringSeq: 2, ringSleeping: 3, spinUs: d.spin },
});
let seen = db.seq();
parentPort!.postMessage('ready');
for (let i = 0; i < d.rounds; i++) {
  while (db.seq() === seen) db.wait(seen);
  seen = db.seq();
  // Every 7th round dawdle ~200 µs so the other side's spin runs out and it sleeps in poll(2).
  if (i % 7 === 3) {
    const until = performance.now() + 0.2;
    while (performance.now() < until);
  }
  db.ring(0);
}
parentPort!.postMessage({ spinWakes: db.spinWakes, ringsWithoutWrite: db.ringsWithoutWrite, rings: db.rings });
