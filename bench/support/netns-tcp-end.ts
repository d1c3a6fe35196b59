// The far end of a TAP for the v86 guest's TCP runs (test/v86.test.ts and bench/v86-nics.ts): a
// network namespace holding the TAP at PEER/24 and a Node child in it with a sink on PORT
// (SHA-256 of what arrives, and how long the connection took from accept to the guest's FIN)
// and a source on PORT+1 (BYTES random bytes, and when it accepted the guest's connection). Root and
// iproute2 (`ip netns`).

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const TCP_END = `
import { createServer } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
const [host, port, n] = process.argv.slice(1);
const source = randomBytes(Number(n));
createServer((s) => {
  const h = createHash('sha256');
  const t0 = performance.now();
  let bytes = 0;
  s.on('data', (d) => { h.update(d); bytes += d.length; });
  s.on('end', () => { console.log('SINK ' + bytes + ' ' + h.digest('hex') + ' ' + (performance.now() - t0).toFixed(3)); s.end(); });
  s.on('error', (e) => console.log('SINK-ERROR ' + e.message));
}).listen(Number(port), host, () => console.log('listening'));
createServer((s) => {
  console.log('SOURCE-ACCEPT ' + Date.now());
  console.log('SOURCE ' + source.length + ' ' + createHash('sha256').update(source).digest('hex'));
  s.on('error', (e) => console.log('SOURCE-ERROR ' + e.message));
  s.end(source);
}).listen(Number(port) + 1, host, () => console.log('listening'));
`;

export interface TcpEndResult {
  /** What the sink received (guest → host): bytes, SHA-256 and ms from accept to the guest's FIN. */
  sink: { bytes: number; sha256: string; ms: number } | null;
  /**
   * What the source sent (host → guest): bytes, SHA-256 and the wall-clock time (Date.now()) it
   * accepted the guest's connection; when the guest had it all is the guest's to say (the
   * end of a TCP send is only the kernel taking the bytes).
   */
  source: { bytes: number; sha256: string; acceptedAt: number | null } | null;
}

export class NetnsTcpEnd {
  /** Everything the child printed. */
  out = '';
  private server: ChildProcess | null = null;

  private constructor(
    readonly ns: string,
    readonly peer: string,
    readonly port: number,
    readonly bytes: number,
  ) {}

  /** Makes the namespace; start() moves a TAP into it. */
  static async create(ns: string, opts: { peer?: string; port?: number; bytes: number }): Promise<NetnsTcpEnd> {
    await run('ip', ['netns', 'add', ns]);
    return new NetnsTcpEnd(ns, opts.peer ?? '10.86.0.2', opts.port ?? 7070, opts.bytes);
  }

  /** Moves the TAP into the namespace, addresses it, and starts the sink and the source (≤ 20 s). */
  async start(tapName: string): Promise<void> {
    const ns = this.ns;
    await run('ip', ['link', 'set', tapName, 'netns', ns]);
    await run('ip', ['-n', ns, 'addr', 'add', `${this.peer}/24`, 'dev', tapName]);
    await run('ip', ['-n', ns, 'link', 'set', tapName, 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    const server = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', TCP_END, this.peer, String(this.port), String(this.bytes)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.server = server;
    server.stdout!.on('data', (d: Buffer) => (this.out += d.toString()));
    server.stderr!.on('data', (d: Buffer) => (this.out += d.toString()));
    const end = Date.now() + 20_000;
    while ((this.out.match(/listening/g) ?? []).length < 2 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    if ((this.out.match(/listening/g) ?? []).length < 2) throw new Error(`the TCP end in namespace ${ns} did not start:\n${this.out}`);
  }

  /** The sink's and the source's results, waiting up to waitMs for the sink's end. */
  async result(waitMs = 10_000): Promise<TcpEndResult> {
    const end = Date.now() + waitMs;
    while (!/SINK /.test(this.out) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const sink = /SINK (\d+) ([0-9a-f]+) ([\d.]+)/.exec(this.out);
    const source = /SOURCE (\d+) ([0-9a-f]+)/.exec(this.out);
    const accepted = /SOURCE-ACCEPT (\d+)/.exec(this.out);
    return {
      sink: sink ? { bytes: Number(sink[1]), sha256: sink[2]!, ms: Number(sink[3]) } : null,
      source: source ? { bytes: Number(source[1]), sha256: source[2]!, acceptedAt: accepted ? Number(accepted[1]) : null } : null,
    };
  }

  async close(): Promise<void> {
    this.server?.kill();
    await run('ip', ['netns', 'del', this.ns]).catch(() => {});
  }
}
