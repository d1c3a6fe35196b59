// `virtq tap`: virtq's guest behind a real Linux TAP interface, answering ARP and ICMP echo for
// --guest-address through the one data path: NetDriver → rings → NetDevice → TAP, both loops
// under --preset. Runs until SIGINT/SIGTERM (or --ms), then prints the counters of the device,
// the guest's driver and its stack. --pcap records every frame crossing the TAP; --trace writes a
// latency trace that `virtq trace analyze` reads. Needs root (or CAP_NET_ADMIN) and the addon.

import { InvalidArgumentError, type Command } from 'commander';
import { MAX_TAP_DEMO_QUEUES, runTapDemo, type TapDemoStats } from '../../engine/tap-demo.js';
import { describeFeatures } from '../../net/features.js';
import { resolvePolicy } from '../../policy/index.js';
import { TraceSession } from '../../trace/session.js';
import { writeTraceFile } from '../../trace/output.js';
import { addTraceOptions, traceOptionsFromCli, type TraceCliOptions } from '../trace-options.js';
import { ipv4, ipv4Cidr, outputFile, policySpec, positiveInt, powerOfTwo } from '../args.js';

interface TapOpts extends TraceCliOptions {
  name: string;
  address?: string;
  guestAddress: string;
  preset: string;
  queueSize?: number;
  offload: boolean;
  pcap?: string;
  ms?: number;
  queues: number;
}

/** --queues: 1..MAX_TAP_DEMO_QUEUES pairs. */
function tapQueues(v: string): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < 1 || x > MAX_TAP_DEMO_QUEUES) throw new InvalidArgumentError(`Expected an integer from 1 to ${MAX_TAP_DEMO_QUEUES}.`);
  return x;
}

function n(x: number | undefined): number {
  return x ?? 0;
}

/** The counters printed at stop (one line each for the device, the guest's driver and its stack). */
export function formatTapStats(s: TapDemoStats): string {
  const dev = s.device;
  const g = s.guest;
  const ep = s.endpoint;
  return (
    `  device: ${n(dev['dev.rxFrames'])} frames TAP→guest, ${n(dev['dev.txFrames'])} guest→TAP, ${n(dev.interrupts)} interrupts ` +
    `(${n(dev.irqSuppressed)} suppressed), ${n(dev.kicksSeen)} wake-ups; drops: rx ${n(dev['dev.rxDropped'])}, tx ${n(dev['dev.txDropped'])}, ` +
    `tap write ${s.tap.txWriteErrors}, tap bad header ${s.tap.rxBadHeader}, kernel TAP queue ${s.tap.kernelTxDropped < 0 ? 'unknown' : s.tap.kernelTxDropped}; rx starved ${n(dev['dev.rxStarved'])}, queue errors ${n(dev['dev.queueErrors'])}\n` +
    `  guest: ${n(g['drv.rxFrames'])} received (${n(g['drv.rxNeedsCsum'])} with NEEDS_CSUM, ${n(g['drv.rxDataValid'])} DATA_VALID), ` +
    `${n(g['drv.txFrames'])} sent, ${n(g.kicks)} kicks (${n(g.kicksSuppressed)} suppressed), ${n(g.interruptsTaken)} interrupts taken, tx busy ${n(g['drv.txBusy'])}\n` +
    `  endpoint: ${ep.arpRequestsIn} ARP requests and ${ep.echoRequestsIn} echo requests answered, ${ep.controlDrops} replies dropped, ` +
    `${ep.ignored} frames ignored, ${ep.parseErrors} unparsable\n` +
    (s.pairs !== undefined
      ? `  pairs: ${s.pairs.map((p, i) => `${i}: TAP→guest ${n(p.device['dev.rxFrames'])} guest→TAP ${n(p.device['dev.txFrames'])}`).join('; ')}\n`
      : '') +
    (s.pcap !== undefined ? `  pcap: ${s.pcap.recorded} frames recorded, ${s.pcap.errors} errors\n` : '') +
    (s.failure !== null ? `  failure: ${s.failure}\n` : '')
  );
}

export function registerTap(program: Command): void {
  const cmd = program
    .command('tap')
    .description("answer ARP and ping for --guest-address behind a TAP interface, through virtq's driver, rings and device (root, native addon)")
    .requiredOption('--name <ifname>', 'TAP interface name to create (e.g. vq0)')
    .option('--address <cidr>', 'host-side address of the TAP, e.g. 10.77.0.1/24', ipv4Cidr)
    .requiredOption('--guest-address <ipv4>', "the guest's address, e.g. 10.77.0.2", ipv4)
    .option('--preset <name>', 'notification policy of both loops (`virtq presets` lists them; JSON accepted)', policySpec, 'vhost')
    .option('--queue-size <n>', "ring size of both queues (default: the preset's)", powerOfTwo(2, 32768))
    .option('--no-offload', 'the guest accepts no checksum/segmentation offloads (TUNSETOFFLOAD 0)')
    .option('--pcap <file>', 'record every frame crossing the TAP into a pcap file', outputFile)
    .option('--ms <n>', 'stop after this many milliseconds (default: until SIGINT/SIGTERM)', positiveInt)
    .option('--queues <n>', `queue pairs: a multiqueue TAP (IFF_MULTI_QUEUE), one queue, rings and worker pair per pair, 1..${MAX_TAP_DEMO_QUEUES}`, tapQueues, 1);
  addTraceOptions(cmd).action(async (o: TapOpts, c: Command) => {
    if (o.queues > 1 && (o.pcap !== undefined || o.trace !== undefined)) c.error("error: option '--queues' above 1 cannot be combined with --pcap or --trace (they record one queue pair)");
    const policy = resolvePolicy(o.preset);
    const queueSize = o.queueSize;
    const traceOpts = traceOptionsFromCli(o);
    // Long runs: copy the records out while the demo runs, so a full buffer drops nothing.
    const session = traceOpts !== undefined ? new TraceSession({ ...traceOpts, drainEveryMs: 200 }) : undefined;
    const demo = await runTapDemo({
      name: o.name,
      guestAddress: o.guestAddress,
      preset: policy,
      offload: o.offload,
      queues: o.queues,
      ...(queueSize !== undefined ? { queueSize } : {}),
      ...(o.address !== undefined ? { address: o.address } : {}),
      ...(o.pcap !== undefined ? { pcapPath: o.pcap } : {}),
      ...(session !== undefined ? { trace: session } : {}),
    });
    process.stdout.write(
      `virtq tap: ${demo.name} up${o.address ? ` at ${o.address}` : ''}, guest ${o.guestAddress}; preset ${policy.name}${demo.queues > 1 ? `, ${demo.queues} queue pairs` : ''}, rings rx ${demo.queueSizes.rx} tx ${demo.queueSizes.tx}; ` +
        `vnet header ${demo.hdrBytes} B, TUNSETOFFLOAD 0x${demo.offloadFlags.toString(16)}, features ${describeFeatures(demo.features).join(' ')}\nready\n`,
    );
    await new Promise<void>((resolve) => {
      const finish = (): void => resolve();
      process.once('SIGINT', finish);
      process.once('SIGTERM', finish);
      if (o.ms !== undefined) setTimeout(finish, o.ms).unref();
    });
    const s = await demo.stop();
    process.stdout.write(`virtq tap: stopped\n${formatTapStats(s)}`);
    if (session !== undefined && traceOpts !== undefined) {
      const t = writeTraceFile(session, traceOpts.file, { workload: 'virtq tap', preset: policy.name, features: `0x${demo.features.toString(16)}` });
      const lost = t.dropped.guest + t.dropped.host;
      process.stdout.write(`  trace: wrote ${t.path} (${t.packets} packets, ${t.incomplete} incomplete, ${t.events} events${lost > 0 ? `, ${lost} records dropped` : ''})\n`);
    }
    if (s.failure !== null) process.exitCode = 1;
  });
}
