// `virtq tap`: virtq's guest behind a real Linux TAP interface, answering ARP and ICMP echo for
// --guest-address through driver → rings → device → TAP. Runs until SIGINT/SIGTERM (or --ms),
// then prints the counters. Needs root (or CAP_NET_ADMIN) and the native addon.

import type { Command } from 'commander';
import { runTapDemo } from '../../backend/tap.js';
import { describeFeatures } from '../../net/features.js';

export function registerTap(program: Command): void {
  program
    .command('tap')
    .description("answer ARP and ping for --guest-address behind a TAP interface, through virtq's rings (root, native addon)")
    .requiredOption('--name <ifname>', 'TAP interface name to create (e.g. vq0)')
    .option('--address <cidr>', 'host-side address of the TAP, e.g. 10.77.0.1/24')
    .requiredOption('--guest-address <ipv4>', "the guest's address, e.g. 10.77.0.2")
    .option('--queue-size <n>', 'queue size', '256')
    .option('--no-offload', 'do not announce GUEST_CSUM / TUN_F_CSUM')
    .option('--ms <n>', 'stop after this many milliseconds (default: until SIGINT/SIGTERM)')
    .action(async (o: { name: string; address?: string; guestAddress: string; queueSize: string; offload: boolean; ms?: string }) => {
      const demo = await runTapDemo({
        name: o.name,
        guestAddress: o.guestAddress,
        queueSize: Number(o.queueSize),
        offload: o.offload,
        ...(o.address !== undefined ? { address: o.address } : {}),
      });
      process.stdout.write(
        `virtq tap: ${demo.name} up${o.address ? ` at ${o.address}` : ''}, guest ${o.guestAddress}; vnet header ${demo.hdrBytes} B, ` +
          `TUNSETOFFLOAD 0x${demo.offloadFlags.toString(16)}, features ${describeFeatures(demo.features).join(' ')}\nready\n`,
      );
      await new Promise<void>((resolve) => {
        const finish = (): void => resolve();
        process.once('SIGINT', finish);
        process.once('SIGTERM', finish);
        if (o.ms !== undefined) setTimeout(finish, Number(o.ms)).unref();
      });
      const s = await demo.stop();
      process.stdout.write(
        `virtq tap: stopped\n` +
          `  device: ${s.device.rxFrames} frames TAP→guest, ${s.device.txFrames} guest→TAP, ${s.device.calls} interrupts, ` +
          `drops: tap write ${s.device.tapWriteErrors}, no rx buffer ${s.device.tapRxDropNoBuffer}, too big ${s.device.rxDropTooBig}, malformed tx ${s.device.txDropMalformed}\n` +
          `  guest: ${s.guest.rxFrames} received (${s.guest.rxNeedsCsum} with NEEDS_CSUM), ${s.guest.txFrames} sent, ${s.guest.kicks} kicks, no tx buffer ${s.guest.txDropNoBuffer}\n` +
          `  responder: ${s.responder.arpReplies} ARP replies, ${s.responder.echoReplies} echo replies, ignored ${JSON.stringify(s.responder.ignored)}\n`,
      );
    });
}
