/**
 * The WASM backend in headless Chromium: in a cross-origin isolated page (COOP/COEP headers) it
 * runs on Web Workers over a SharedArrayBuffer; without isolation it runs single-threaded and says
 * so. Either way the demo model gives the reference backend's greedy ids, and a GEMV split across
 * threads matches the reference.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend } from '../../kernels/index.ts';
import { withPage } from './harness.ts';
import type { WasmPageResult } from './wasm-page.ts';

const ENTRY = fileURLToPath(new URL('./wasm-page.ts', import.meta.url));
const DEMO = fileURLToPath(new URL('../../models/tiny-moe-text-q8_0', import.meta.url));
const PROMPT = 'In the beginning';
const N = 12;
const ISOLATION = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

async function inBrowser(headers: Record<string, string>): Promise<{ result: WasmPageResult; logs: string[] }> {
  const logs: string[] = [];
  const result = await withPage(ENTRY, async (page) => {
    await page.waitForFunction(() => 'dopplerWasm' in globalThis);
    return page.evaluate(
      ([prompt, n]) => (globalThis as unknown as { dopplerWasm(u: string, p: string, n: number): Promise<WasmPageResult> })
        .dopplerWasm(new URL('/model/', location.href).href, prompt, n),
      [PROMPT, N] as const,
    );
  }, { mounts: { '/model/': DEMO }, headers, onConsole: (l) => logs.push(l) });
  return { result, logs };
}

describe('WASM backend in the browser', () => {
  it('uses Web Workers when cross-origin isolated and one thread (saying why) when not; same greedy ids as the reference', async () => {
    const ref = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(DEMO) });
    const want: number[] = [];
    for await (const t of ref.generate(ref.encode(PROMPT), { maxNewTokens: N, stopOnEos: false })) want.push(t.id);

    const isolated = await inBrowser(ISOLATION);
    expect(isolated.result.threading, isolated.logs.join('\n')).toEqual({ threads: 2, shared: true, note: null });
    expect(isolated.result.ids).toEqual(want);
    expect(isolated.result.gemvMaxErr).toBeLessThanOrEqual(1e-3);

    const plain = await inBrowser({});
    expect(plain.result.threading).toMatchObject({ threads: 1, shared: false });
    expect(plain.result.threading.note).toMatch(/SharedArrayBuffer/);
    expect(plain.result.ids).toEqual(want);
    expect(plain.result.gemvMaxErr).toBeLessThanOrEqual(1e-3);
  });
});
