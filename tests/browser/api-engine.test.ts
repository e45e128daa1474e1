/**
 * The in-tab API in headless Chromium without WebGPU: createEngine falls back to the TypeScript
 * backend, loads the chat test model over HTTP with progress, and streams the reply Node's chat
 * session gives.
 */
import { rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChatSession, Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend } from '../../kernels/index.ts';
import { makeChatModel } from '../integration/chat-model.ts';
import { withPage } from './harness.ts';

const ENTRY = fileURLToPath(new URL('./api-page.ts', import.meta.url));

describe('createEngine in a tab', () => {
  let model: { dir: string; root: string };
  beforeAll(async () => {
    model = await makeChatModel();
  });
  afterAll(async () => {
    if (model) await rm(model.root, { recursive: true, force: true });
  });

  it('streams the reply Node gives, on the TypeScript backend when the tab has no WebGPU', async () => {
    const session = new ChatSession(await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(model.dir) }));
    const expected = (await session.chat([{ role: 'user', content: 'In the beginning' }], { maxTokens: 8, temperature: 0 }).result).text;
    const logs: string[] = [];
    const tab = await withPage(ENTRY, async (page) => {
      await page.waitForFunction(() => 'dopplerApiChat' in globalThis);
      return page.evaluate((n) => (globalThis as unknown as { dopplerApiChat(u: string, n: number): Promise<{ content: string; finish: string; backend: string; stages: string[] }> })
        .dopplerApiChat(new URL('/model/', location.href).href, n), 8);
    }, { mounts: { '/model/': model.dir }, onConsole: (l) => logs.push(l) });
    expect(tab.backend, logs.join('\n')).toBe('cpu');
    expect(tab.content).toBe(expected);
    expect(tab.finish).toBe('length');
    expect(tab.stages).toEqual(['manifest', 'shard', 'ready']);
  });
});
