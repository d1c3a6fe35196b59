// `virtq bench guest`: the Linux guest of the QEMU tests on virtq (vhost-user, TAP port) beside
// the same guest on QEMU's own virtio-net + TAP (vhost=off), alternating runs, each boot
// measuring iperf3 both ways and a flood ping (src/study/guest-bench.ts). Root and QEMU.

import { writeFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { emitReport, jsonHelp, oneOf, outputFile, policySpec, positiveInt, type ArgParser, type JsonOption } from '../args.js';
import { GUEST_BENCH_LIMITS, GuestBenchOptionError, runGuestBench, UDP_RATE } from '../../study/guest-bench.js';
import { formatGuestBench, guestBenchHasProblems } from '../../study/guest-bench-report.js';
import { GuestStudyError, type GuestAccel } from '../../study/guest-boot.js';

interface GuestBenchCli {
  runs: number;
  seconds: number;
  count: number;
  udpRate: string;
  accel: GuestAccel;
  preset: string;
  json?: JsonOption;
  console?: boolean;
}

/** A positive integer no larger than `max`. */
function upTo(max: number): ArgParser<number> {
  return (value) => {
    const x = positiveInt(value);
    if (x > max) throw new InvalidArgumentError(`Expected a positive integer ≤ ${max}.`);
    return x;
  };
}

function udpRate(value: string): string {
  if (!UDP_RATE.test(value)) throw new InvalidArgumentError('Expected digits with an optional K, M or G (iperf3 -b), e.g. 200M.');
  return value;
}

export function registerBenchGuest(bench: Command): void {
  bench
    .command('guest')
    .description("the Linux guest of the QEMU tests through virtq (vhost-user + TAP) vs QEMU's own virtio-net + TAP (vhost=off): TCP both ways and flood ping, alternating runs (root, QEMU)")
    .option('--runs <n>', 'A/B runs, each booting the guest once per backend (order alternates)', upTo(GUEST_BENCH_LIMITS.runs), 5)
    .option('--seconds <s>', 'iperf3 -t per direction', upTo(GUEST_BENCH_LIMITS.seconds), 10)
    .option('--count <n>', 'echo requests per flood ping (ping -i 0, each reply timed for the p99)', upTo(GUEST_BENCH_LIMITS.count), 1000)
    .option('--udp-rate <r>', 'offered rate of the UDP host→guest loss run (iperf3 -b: digits with K, M or G)', udpRate, '200M')
    .option('--accel <a>', 'kvm, tcg, or auto (KVM when /dev/kvm opens and QEMU can use it, else TCG)', oneOf(['auto', 'kvm', 'tcg'] as const), 'auto')
    .option('--preset <p>', "virtq's notification policy: a preset (`virtq presets`), <rfc preset>-alone, or policy JSON", policySpec, 'vhost')
    .option('--json [file]', jsonHelp('the report'), outputFile)
    .option('--console', "echo the guest's serial console to stderr (debugging)")
    .action(async (o: GuestBenchCli, cmd: Command) => {
      const stop = new AbortController();
      const onSignal = (): void => stop.abort();
      process.once('SIGINT', onSignal);
      const t0 = performance.now();
      try {
        const report = await runGuestBench({
          runs: o.runs,
          seconds: o.seconds,
          count: o.count,
          udpRate: o.udpRate,
          accel: o.accel,
          preset: o.preset,
          signal: stop.signal,
          onProgress: (line) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0)} s] ${line}\n`),
          ...(o.console === true ? { onConsole: (t: string) => process.stderr.write(t) } : {}),
        });
        emitReport(o.json, () => `${JSON.stringify(report, null, 2)}\n`, () => formatGuestBench(report), writeFileSync);
        if (guestBenchHasProblems(report)) process.exitCode = 1;
      } catch (e) {
        if (e instanceof GuestBenchOptionError) cmd.error(`error: ${e.message}`);
        if (!(e instanceof GuestStudyError)) throw e;
        // A missing tool is a usage problem of this machine; a guest that does not boot carries its console's tail.
        process.stderr.write(`virtq bench guest: ${e.message}\n`);
        process.exitCode = e.code === 'missing' ? 2 : 1;
      } finally {
        process.off('SIGINT', onSignal);
      }
    });
}
