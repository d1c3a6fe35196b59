// Node-only: a static server for the browser example with the headers that make the page
// cross-origin isolated (COOP same-origin + COEP require-corp), so SharedArrayBuffer exists.
// Serves /dist/** and /examples/browser/** from the repository root, nothing else.
//
//   node dist/examples/browser/serve.js [port]   → open http://localhost:PORT/examples/browser/index.html

import { createServer, type Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(fileURLToPath(new URL('../../..', import.meta.url)));
const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8', '.wasm': 'application/wasm', '.map': 'application/json', '.css': 'text/css' };
const ALLOWED = ['/dist/', '/examples/browser/', '/examples/v86/'];

export interface StaticServer {
  url: string;
  close(): Promise<void>;
}

/**
 * `mounts` serves more folders: URL prefix (e.g. '/v86/') → directory (the v86 page maps v86's
 * build and the guest images this way).
 */
export function startServer(port = 0, host = '127.0.0.1', mounts: Record<string, string> = {}): Promise<StaticServer> {
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = resolve(ROOT, '.' + normalize(path));
    let allowed = ALLOWED.some((p) => path.startsWith(p)) && file.startsWith(ROOT + sep);
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (!path.startsWith(prefix)) continue;
      const base = resolve(dir);
      file = resolve(base, '.' + normalize('/' + path.slice(prefix.length)));
      allowed = file.startsWith(base + sep);
    }
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'Cache-Control': 'no-store',
    };
    if (!allowed) {
      res.writeHead(404, headers).end('not found');
      return;
    }
    readFile(file).then(
      (body) => res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404, headers).end('not found'),
    );
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const addr = server.address();
      const p = typeof addr === 'object' && addr ? addr.port : port;
      ok({ url: `http://${host}:${p}`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const s = await startServer(Number(process.argv[2] ?? 8080));
  console.log(`open ${s.url}/examples/browser/index.html (add ?frames=200000 for a longer run)`);
}
