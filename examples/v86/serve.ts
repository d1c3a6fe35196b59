// Node-only: serves the v86 page cross-origin isolated, with v86's build at /v86/ and the guest
// images (test/support/build-v86-guest.sh's cache) at /guest/.
//
//   node dist/examples/v86/serve.js [port] [guest dir]   → open http://127.0.0.1:PORT/examples/v86/index.html?count=1000

import { dirname, join, resolve } from 'node:path';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { startServer, type StaticServer } from '../browser/serve.js';

export function startV86Server(port = 0, guestDir = join(homedir(), '.cache', 'virtq', 'v86-guest')): Promise<StaticServer> {
  const v86Build = dirname(fileURLToPath(import.meta.resolve('v86')));
  return startServer(port, '127.0.0.1', { '/v86/': v86Build, '/guest/': guestDir });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const s = await startV86Server(Number(process.argv[2] ?? 8086), process.argv[3]);
  console.log(`open ${s.url}/examples/v86/index.html?count=1000`);
}
