// The page: starts the emulator worker (which starts the device worker), shows its log and
// exposes the result as globalThis.__virtqResult for the headless test.

interface Doc {
  getElementById(id: string): { textContent: string | null } | null;
}
interface PageWorker {
  postMessage(v: unknown): void;
  addEventListener(type: 'message' | 'error', fn: (e: { data?: unknown; message?: string }) => void): void;
}
const g = globalThis as unknown as {
  document: Doc;
  location: { search: string };
  crossOriginIsolated?: boolean;
  Worker: new (url: URL, opts: { type: 'module' }) => PageWorker;
  __virtqResult?: unknown;
};

const log = (line: string): void => {
  const el = g.document.getElementById('log');
  if (el) el.textContent = (el.textContent === 'starting…' ? '' : (el.textContent ?? '') + '\n') + line;
};

const params = new URLSearchParams(g.location.search);
const frames = Number(params.get('frames') ?? 100_000);
const bytes = Number(params.get('bytes') ?? 1514);

if (!g.crossOriginIsolated) {
  log('not cross-origin isolated: SharedArrayBuffer is unavailable (serve with COOP/COEP headers)');
  g.__virtqResult = { ok: false, error: 'not cross-origin isolated' };
} else {
  const w = new g.Worker(new URL('./emulator-worker.js', import.meta.url), { type: 'module' });
  w.addEventListener('message', (e) => {
    const m = e.data as { log?: string; result?: unknown };
    if (m.log) log(m.log);
    if (m.result) g.__virtqResult = m.result;
  });
  w.addEventListener('error', (e) => {
    log(`emulator worker error: ${e.message ?? '?'}`);
    g.__virtqResult = { ok: false, error: e.message ?? 'worker error' };
  });
  w.postMessage({ frames, bytes });
}
