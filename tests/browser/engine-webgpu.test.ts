/**
 * The engine in headless Chromium (WebGPU on SwiftShader): a converted fixture served over HTTP
 * gives the same greedy ids in the browser as in Node, and both equal transformers' ids.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createWebGpuBackend } from '../../kernels/index.ts';
import { convertFixture, hfMoeDir, readGolden, type HfMoeGolden } from '../integration/fixtures.ts';
import { WEBGPU_FLAGS, withPage } from './harness.ts';

const ENTRY = fileURLToPath(new URL('./engine-page.ts', import.meta.url));

describe('engine in the browser', () => {
  let model: { dir: string; cleanup: () => void };
  beforeAll(async () => {
    model = await convertFixture(hfMoeDir('mixtral-tiny'), 'f16');
  });
  afterAll(() => model?.cleanup());

  it('generates in a Chromium tab the greedy ids Node generates', async () => {
    const golden = readGolden<HfMoeGolden>(hfMoeDir('mixtral-tiny'));
    const n = golden.greedy_ids.length;
    const node = await Engine.load({ backend: await createWebGpuBackend(), source: await modelDirSource(model.dir) });
    const nodeIds: number[] = [];
    for await (const t of node.generate(golden.input_ids, { maxNewTokens: n, stopOnEos: false })) nodeIds.push(t.id);

    const logs: string[] = [];
    const browser = await withPage(ENTRY, async (page) => {
      await page.waitForFunction(() => 'dopplerGreedy' in globalThis);
      return page.evaluate(
        ([ids, count]) => (globalThis as unknown as { dopplerGreedy(u: string, i: number[], n: number): Promise<{ ids: number[]; adapter: string }> })
          .dopplerGreedy(new URL('/model/', location.href).href, ids, count),
        [golden.input_ids, n] as const,
      );
    }, { flags: WEBGPU_FLAGS, mounts: { '/model/': model.dir }, onConsole: (l) => logs.push(l) });

    expect(browser.adapter, logs.join('\n')).toBe('webgpu');
    expect(browser.ids).toEqual(nodeIds);
    expect(nodeIds).toEqual(golden.greedy_ids);
  });
});
