// `virtq demo`: a short end-to-end run of the ring between two worker threads (the stream
// workload through the engine), printing what moved and how. Replaced as `npm start`'s job by
// the study once it exists.

import type { Command } from 'commander';
import { Engine } from '../../engine/index.js';
import type { WaitStrategy } from '../../notify/index.js';
import { multipleOf, oneOf, positiveInt } from '../args.js';
import { queueSize } from './bench-net.js';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('send packets through a split virtqueue between two worker threads and report')
    .option('--ms <n>', 'how long to run', positiveInt, 1000)
    .option('--payload <bytes>', 'payload bytes per packet (multiple of 4)', multipleOf(4, 8), 1500)
    .option('--queue-size <n>', 'queue size (power of 2, 1..32768)', queueSize, 256)
    .option('--strategy <s>', 'wait strategy: block | hybrid | spin', oneOf<WaitStrategy>(['block', 'hybrid', 'spin']), 'hybrid')
    .action(async (o: { ms: number; payload: number; queueSize: number; strategy: WaitStrategy }) => {
      const { strategy, payload: payloadBytes } = o;
      const result = await Engine.run({
        workload: 'stream',
        queues: [{ size: o.queueSize }],
        wait: { strategy },
        durationMs: o.ms,
        params: { payloadBytes, verify: 'full', warmupMs: 100 },
      });
      const g = result.guest;
      const h = result.host;
      const s = h.windowMs / 1000;
      const pps = h.windowPackets / s;
      process.stdout.write(
        `virtq demo: ${h.packets} packets of ${payloadBytes} B through a ${o.queueSize}-entry split ring (${strategy} waits)\n` +
          `  every payload word verified: ${h.errors === 0 && g.errors === 0 ? 'no errors' : `${h.errors + g.errors} ERRORS (${h.firstError ?? g.firstError})`}\n` +
          `  ${(pps / 1e6).toFixed(2)} Mpps, ${((pps * payloadBytes * 8) / 1e9).toFixed(2)} Gb/s over ${h.windowMs.toFixed(0)} ms after warm-up\n` +
          `  kicks ${g.rings} (${((g.rings / Math.max(1, g.packets)) * 1000).toFixed(1)} per 1000 packets), interrupts ${h.rings}, host sleeps ${h.sleeps}, guest sleeps ${g.sleeps}\n`,
      );
      if (h.errors + g.errors > 0) process.exitCode = 1;
    });
}
