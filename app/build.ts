/**
 * Builds the page with vite into a folder the server serves. Rebuilds only when a source the page
 * bundles is newer than the last build, so `npm start` is quick after the first time.
 */
import { readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const APP = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(APP);
/** The folders the page's bundle draws from. */
const SOURCES = ['app', 'engine', 'kernels', 'manifests', 'router', 'storage', 'swarm'];
export const DEFAULT_APP_DIR = join(ROOT, '.doppler-app');

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) newest = Math.max(newest, await newestMtime(p));
    else if (e.name.endsWith('.ts') || e.name.endsWith('.html')) newest = Math.max(newest, (await stat(p)).mtimeMs);
  }
  return newest;
}

/** The built page in `outDir` (index.html + assets), built now when missing or stale. */
export async function buildApp(outDir = DEFAULT_APP_DIR, log: (line: string) => void = () => undefined): Promise<string> {
  const built = await stat(join(outDir, 'index.html')).then((s) => s.mtimeMs, () => 0);
  let newest = 0;
  for (const d of SOURCES) newest = Math.max(newest, await newestMtime(join(ROOT, d)));
  if (built > newest) return outDir;
  log(`building the page into ${outDir} …`);
  const { build } = await import('vite');
  await build({
    root: APP,
    configFile: false,
    logLevel: 'error',
    base: './',
    build: { outDir, emptyOutDir: true, target: 'es2022', sourcemap: false, chunkSizeWarningLimit: 4096 },
    worker: { format: 'es' },
  });
  return outDir;
}
