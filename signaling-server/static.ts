/** The built page, served from a directory: only files under it, with types the browser needs. */
import { readFile } from 'node:fs/promises';
import type { ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json',
  '.wasm': 'application/wasm', '.svg': 'image/svg+xml', '.png': 'image/png', '.map': 'application/json', '.ico': 'image/x-icon',
};

/**
 * Headers on every response: cross-origin isolation (SharedArrayBuffer for the WASM helpers needs
 * COOP + COEP), and CORP so the isolated page may load its own files.
 */
export const ISOLATION_HEADERS = {
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** Serves `path` from `root` (index.html for `/`); false when there is no such file. */
export async function serveStatic(root: string, path: string, res: ServerResponse): Promise<boolean> {
  const rel = path === '/' ? 'index.html' : decodeURIComponent(path).slice(1);
  const file = normalize(join(root, rel));
  if (!file.startsWith(normalize(root) + sep)) return false;
  let body: Buffer;
  try {
    body = await readFile(file);
  } catch {
    return false;
  }
  // Built assets carry a content hash in their names; index.html must be re-read to find new ones.
  const cache = rel === 'index.html' ? 'no-cache' : 'public, max-age=3600';
  res.writeHead(200, { ...ISOLATION_HEADERS, 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': cache });
  res.end(body);
  return true;
}
