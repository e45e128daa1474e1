/**
 * The persistent tier in a real browser: OPFS in headless Chromium keeps verified shards across a
 * "restart", serves them without the source, and a corrupted OPFS file is caught and refetched.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { Result } from './storage-page.ts';
import { withPage } from './harness.ts';

const ENTRY = fileURLToPath(new URL('./storage-page.ts', import.meta.url));
// no trailing slash: the harness checks served paths against the mount directory
const MODEL = fileURLToPath(new URL('../../models/tiny-moe-text-q8_0', import.meta.url));


describe('ShardStore on OPFS in Chromium', () => {
  it('persists verified shards, restarts warm without a source, and repairs a corrupted file', async () => {
    const logs: string[] = [];
    const r = await withPage(ENTRY, async (page) => {
      await page.waitForFunction(() => 'dopplerOpfs' in globalThis);
      return page.evaluate(
        ([folder]) => (globalThis as unknown as { dopplerOpfs(u: string, f: string, n: number): Promise<Result> })
          .dopplerOpfs(new URL('/model/', location.href).href, folder, 6),
        [`doppler-test-${Date.now()}`] as const,
      );
    }, { mounts: { '/model/': MODEL }, onConsole: (l) => logs.push(l) });
    expect(r.shards, logs.join('\n')).toBe(6);
    expect(r.first.remote.hits).toBe(6);
    expect(r.first.persistent!.entries).toBe(6);
    expect(r.warm.persistent!.hits).toBe(6);
    expect(r.warm.remote.hits).toBe(0);
    expect(r.repaired.persistent!.verifyFailures).toBe(1);
    expect(r.repaired.persistent!.hits).toBe(5);
    expect(r.repaired.remote.hits).toBe(1);
    expect(r.files.length).toBe(6);
  });
});
