// `virtq vhost-user`: virtq's device as a vhost-user-net backend on a Unix socket, for QEMU
// (-netdev vhost-user) or DPDK's virtio_user. Runs until SIGINT/SIGTERM (or --ms). Needs the
// native addon (no root needed for the socket itself).

import type { Command } from 'commander';
import { startVhostUser } from '../../vhost-user/index.js';

export function registerVhostUser(program: Command): void {
  program
    .command('vhost-user')
    .description('serve a vhost-user-net backend on a Unix socket (QEMU, DPDK virtio_user); native addon')
    .requiredOption('--socket <path>', 'Unix socket path to listen on')
    .option('--backend <b>', 'reflect (frames back with MACs swapped) | responder (answer ARP/ping for --address) | tap:NAME (frames to/from a TAP; root)', 'reflect')
    .option('--tap-address <cidr>', 'with tap:NAME, the host-side address of the TAP, e.g. 10.78.0.2/24')
    .option('--address <ipv4>', "the responder's address", '10.78.0.2')
    .option('--spin-us <n>', 're-check the rings this long after work before sleeping', '0')
    .option('--ms <n>', 'stop after this many milliseconds (default: until SIGINT/SIGTERM)')
    .action(async (o: { socket: string; backend: string; tapAddress?: string; address: string; spinUs: string; ms?: string }) => {
      const tapName = o.backend.startsWith('tap:') ? o.backend.slice(4) : undefined;
      const backend = tapName !== undefined ? 'tap' : o.backend;
      if (backend !== 'reflect' && backend !== 'responder' && backend !== 'tap') throw new Error(`--backend must be reflect, responder or tap:NAME (got ${o.backend})`);
      if (tapName === '') throw new Error('--backend tap:NAME needs an interface name');
      const h = await startVhostUser({
        socketPath: o.socket,
        backend,
        ...(tapName !== undefined ? { tapName } : {}),
        ...(o.tapAddress !== undefined ? { tapAddress: o.tapAddress } : {}),
        address: o.address,
        spinUs: Number(o.spinUs),
        onDisconnect: (err, f) =>
          process.stdout.write(`virtq vhost-user: frontend disconnected${err ? ` with error: ${err}` : ''}; frames tx ${f.txFrames} rx ${f.rxFrames}\n`),
      });
      process.stdout.write(`virtq vhost-user: listening on ${o.socket} (${o.backend})\nready\n`);
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
        if (o.ms !== undefined) setTimeout(resolve, Number(o.ms)).unref();
      });
      const r = await h.stop();
      process.stdout.write(
        `virtq vhost-user: stopped after ${r.server.connections} connection(s), ${r.server.protocolErrors} protocol error(s)${r.server.lastError ? ` (last: ${r.server.lastError})` : ''}\n` +
          `  frames: driver→device ${r.frames.txFrames}, device→driver ${r.frames.rxFrames}; drops: malformed tx ${r.frames.txDropMalformed}, too big ${r.frames.rxDropTooBig}\n` +
          `  messages ${r.backend.messages}, memory tables ${r.backend.memTables}, ring starts ${r.backend.ringStarts}, calls ${r.backend.calls}\n`,
      );
    });
}
