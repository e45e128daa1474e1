import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';

/** Debian's chromium, and the flags every headless test run needs here. */
export const CHROMIUM = '/usr/bin/chromium';
export const BASE_FLAGS = ['--no-sandbox', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--headless'];
/** Extra flags for WebGPU on SwiftShader (see PLATFORM-FACTS). */
export const WEBGPU_FLAGS = ['--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader'];

export interface HarnessOptions {
  /** Chromium flags beyond BASE_FLAGS. */
  flags?: string[];
  /** URL prefix → local directory served read-only beside the bundle, e.g. { '/model/': dir }. */
  mounts?: Record<string, string>;
  /** Console lines of the page are forwarded to this (default: dropped). */
  onConsole?: (line: string) => void;
  /** Response headers added to everything served (e.g. COOP/COEP for cross-origin isolation). */
  headers?: Record<string, string>;
}

export interface BrowserSession {
  /** Base URL of the page (index.html loading the bundled entry). */
  url: string;
  /** A new tab with the page loaded and its entry module run. */
  newPage(): Promise<Page>;
  context: BrowserContext;
}

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.json': 'application/json', '.map': 'application/json', '.wasm': 'application/wasm' };

/** Bundles a TypeScript entry for the browser into `dir` as bundle.js plus an index.html that loads it. */
export async function bundleEntry(entryTs: string, dir: string): Promise<void> {
  await build({
    entryPoints: [resolve(entryTs)],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile: join(dir, 'bundle.js'),
    sourcemap: 'inline',
    logLevel: 'error',
  });
  await writeFile(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><title>doppler test</title><script type="module" src="/bundle.js"></script>\n');
}

function serve(root: string, mounts: Record<string, string>, headers: Record<string, string>): Promise<Server> {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const mount = Object.keys(mounts).find((p) => path.startsWith(p));
    const base = mount ? mounts[mount]! : root;
    const rel = mount ? path.slice(mount.length) : path === '/' ? 'index.html' : path.slice(1);
    const file = normalize(join(base, rel));
    if (!file.startsWith(normalize(base) + sep) && file !== normalize(base)) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store', ...headers });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok(server));
  });
}

/**
 * Bundles `entryTs`, serves it on 127.0.0.1, launches headless Debian Chromium, and hands `run` a
 * session that opens tabs on the page. Everything (browser, server, bundle) is torn down afterwards,
 * whether `run` succeeds or throws.
 */
export async function withBrowser<T>(entryTs: string, run: (s: BrowserSession) => Promise<T>, opts: HarnessOptions = {}): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'doppler-browser-'));
  let server: Server | undefined;
  let browser: Browser | undefined;
  try {
    await bundleEntry(entryTs, dir);
    server = await serve(dir, opts.mounts ?? {}, opts.headers ?? {});
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_FLAGS, ...(opts.flags ?? [])] });
    const context = await browser.newContext();
    const newPage = async () => {
      const page = await context.newPage();
      if (opts.onConsole) page.on('console', (m) => opts.onConsole!(m.text()));
      page.on('pageerror', (e) => opts.onConsole?.(`pageerror: ${e.message}`));
      await page.goto(url);
      return page;
    };
    return await run({ url, newPage, context });
  } finally {
    await browser?.close().catch(() => undefined);
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((r) => server!.close(() => r()));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/** One tab on the bundled entry: the common case of withBrowser. */
export function withPage<T>(entryTs: string, run: (page: Page) => Promise<T>, opts: HarnessOptions = {}): Promise<T> {
  return withBrowser(entryTs, async (s) => run(await s.newPage()), opts);
}
