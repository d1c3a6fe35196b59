// `virtq vhost-user`: virtq's device (NetDevice + the policy's DeviceLoop) as a vhost-user-net
// backend on a Unix socket, for QEMU (-netdev vhost-user) or DPDK's virtio_user, with a port
// behind it (host stack, reflect, TAP), a policy preset, and optional trace and pcap. Runs until
// SIGINT/SIGTERM (or --ms). Needs the native addon (root only for a TAP).

import type { Command } from 'commander';
import { startVhostUser, type VhostPortKind } from '../../vhost-user/index.js';
import { addTraceOptions, traceOptionsFromCli, type TraceCliOptions } from '../trace-options.js';
import { ipv4, ipv4Cidr, mac, outputFile, policySpec, positiveInt, socketPath } from '../args.js';
import { InvalidArgumentError } from 'commander';

interface VhostUserCliOptions extends TraceCliOptions {
  socket: string;
  client?: boolean;
  backend: string;
  tapAddress?: string;
  address: string;
  peerAddress: string;
  peerMac: string;
  preset: string;
  pcap?: string;
  ms?: number;
  queues: number;
}

/** --queues: 1..64 queue pairs. */
function queuePairs(value: string): number {
  const n = positiveInt(value);
  if (n > 64) throw new InvalidArgumentError('Expected 1..64 queue pairs.');
  return n;
}

/** --backend: hoststack (alias responder), reflect, or tap:NAME. */
function backendArg(value: string): string {
  if (value === 'hoststack' || value === 'responder' || value === 'reflect' || /^tap:[^\s/]{1,15}$/.test(value)) return value;
  throw new InvalidArgumentError('Expected hoststack, responder, reflect or tap:NAME (an interface name of 1..15 characters).');
}

export function registerVhostUser(program: Command): void {
  const cmd = program
    .command('vhost-user')
    .description('serve a vhost-user-net backend on a Unix socket (QEMU, DPDK virtio_user); native addon')
    .requiredOption('--socket <path>', 'Unix socket path to listen on (its directory must exist); with --client, the socket to connect to', socketPath)
    .option('--client', "connect to a frontend that listens on --socket (QEMU server=on, DPDK virtio_user server=1) and reconnect with back-off when it restarts")
    .option('--backend <b>', 'hoststack (answer ARP/ping for --address; alias: responder) | reflect (frames back with MACs swapped) | tap:NAME (frames to/from a TAP; root)', backendArg, 'reflect')
    .option('--tap-address <cidr>', 'with tap:NAME, the host-side address of the TAP, e.g. 10.78.0.2/24', ipv4Cidr)
    .option('--address <ipv4>', "the host stack's address", ipv4, '10.78.0.2')
    .option('--peer-address <ipv4>', "the driver's address, for the host stack", ipv4, '10.78.0.1')
    .option('--peer-mac <mac>', "the driver's MAC until its ARP request tells (QEMU's default)", mac, '52:54:00:12:34:56')
    .option('--preset <p>', 'notification policy: a preset (`virtq presets`), <rfc preset>-alone, or policy JSON', policySpec, 'vhost')
    .option('--pcap <file>', 'record every frame both ways into a pcap file (GSO frames as their segments)', outputFile)
    .option('--ms <n>', 'stop after this many milliseconds (default: until SIGINT/SIGTERM)', positiveInt)
    .option('--queues <n>', 'receive/transmit queue pairs to serve (multiqueue: QEMU queues=N, DPDK virtio_user queues=N), 1..64', queuePairs, 1);
  addTraceOptions(cmd).action(async (o: VhostUserCliOptions) => {
    const tapName = o.backend.startsWith('tap:') ? o.backend.slice(4) : undefined;
    const backend = tapName !== undefined ? 'tap' : o.backend === 'responder' ? 'hoststack' : o.backend;
    if (backend !== 'reflect' && backend !== 'hoststack' && backend !== 'tap') throw new Error(`--backend must be hoststack, reflect or tap:NAME (got ${o.backend})`);
    if (tapName === '') throw new Error('--backend tap:NAME needs an interface name');
    const trace = traceOptionsFromCli(o);
    const h = await startVhostUser({
      socketPath: o.socket,
      ...(o.client === true ? { client: true } : {}),
      backend: backend as VhostPortKind,
      ...(tapName !== undefined ? { tapName } : {}),
      ...(o.tapAddress !== undefined ? { tapAddress: o.tapAddress } : {}),
      address: o.address,
      peerAddress: o.peerAddress,
      peerMac: o.peerMac,
      preset: o.preset,
      queues: o.queues,
      ...(o.pcap !== undefined ? { pcapPath: o.pcap } : {}),
      ...(trace !== undefined ? { trace } : {}),
      onDisconnect: (err, f, _features, reason) =>
        process.stdout.write(`virtq vhost-user: frontend disconnected${err ? ' with an error' : ''}: ${reason}; frames from driver ${f.txFrames} to driver ${f.rxFrames}\n`),
      onRefused: (reason) => process.stdout.write(`virtq vhost-user: ${reason}\n`),
      onWarning: (message) => process.stderr.write(`virtq vhost-user: warning: ${message}\n`),
    });
    process.stdout.write(`virtq vhost-user: ${o.client === true ? 'connecting to' : 'listening on'} ${o.socket} (${o.backend}, preset ${o.preset}${o.queues > 1 ? `, ${o.queues} queue pairs` : ''})\nready\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
      if (o.ms !== undefined) setTimeout(resolve, o.ms).unref();
    });
    const r = await h.stop();
    const c = r.counters;
    const drops = (prefix: string): string =>
      Object.entries(c)
        .filter(([k, v]) => k.startsWith(prefix) && v > 0)
        .map(([k, v]) => `${k.slice(prefix.length)} ${v}`)
        .join(', ') || 'none';
    process.stdout.write(
      `virtq vhost-user: stopped after ${r.server.connections} connection(s)${o.client === true ? ` (${r.server.connectFailures} connect attempts refused)` : ''}, ${r.server.protocolErrors} protocol error(s)${r.server.lastError ? ` (last: ${r.server.lastError})` : ''}\n` +
        `  frames: driver→device ${r.frames.txFrames} (${r.frames.txBytes} bytes), device→driver ${r.frames.rxFrames} (${r.frames.rxBytes} bytes)\n` +
        `  drops: tx ${r.frames.txDropped} (${drops('dev.txDrops.')}), rx ${r.frames.rxDropped} (${drops('dev.rxDrops.')}); ring errors ${r.frames.queueErrors}\n` +
        `  offloads: tx GSO frames ${c['dev.txGsoFrames'] ?? 0}, software segments ${c['dev.txSwSegments'] ?? 0}, checksums completed tx ${c['dev.txCsumCompleted'] ?? 0} rx ${c['dev.rxCsumCompleted'] ?? 0}\n` +
        (o.queues > 1 ? `  pairs: ${Array.from({ length: o.queues }, (_, i) => `${i}: driver→device ${c[`pair${i}.txFrames`] ?? 0} device→driver ${c[`pair${i}.rxFrames`] ?? 0}`).join('; ')}\n` : '') +
        `  loop: kicks ${c.kicksSeen ?? 0}, interrupts ${c.interrupts ?? 0} (suppressed ${c.irqSuppressed ?? 0}), sleeps ${c.devSleeps ?? 0}, timer fires ${c.timerFires ?? 0}\n` +
        `  messages ${r.backend.messages}, memory tables ${r.backend.memTables}, ring starts ${r.backend.ringStarts}, data path starts ${r.backend.serviceStarts}, calls ${r.backend.calls}${r.backend.lostPackedPositions > 0 ? `, packed rings restarted at a lost position ${r.backend.lostPackedPositions}` : ''}\n` +
        (r.hoststack ? `  host stack: ARP requests ${r.hoststack.arpRequestsIn}, echo requests ${r.hoststack.echoRequestsIn}, frames out ${r.hoststack.framesOut}, ignored ${r.hoststack.ignored}, dropped ${r.hoststack.controlDrops}\n` : '') +
        (r.tap ? `  tap: written ${r.tap.txFrames} (write errors ${r.tap.txWriteErrors}), read ${r.tap.rxFrames} (bad headers ${r.tap.rxBadHeader}), dropped by the kernel's TAP queue while the guest had no rx buffers ${r.tap.kernelTxDropped < 0 ? 'unknown' : r.tap.kernelTxDropped}\n` : '') +
        (r.reflect ? `  reflect: ${r.reflect.reflected} frames, dropped full ${r.reflect.dropsFull}, short ${r.reflect.dropsShort}\n` : '') +
        (o.pcap !== undefined ? `  pcap: ${r.pcapRecorded} frames into ${o.pcap}, ${r.pcapErrors} not recordable\n` : '') +
        (r.trace ? `  trace: ${r.trace.path} (${r.trace.packets} packets, ${r.trace.incomplete} device-side only, ${r.trace.events} events)\n` : ''),
    );
  });
}
