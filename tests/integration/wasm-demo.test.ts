/**
 * tiny-moe-text on the WASM SIMD backend, split over worker threads: the demo model (q8_0) and a
 * q4_0 conversion generate the same greedy tokens as the TypeScript reference and score text alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, type WasmBackend } from '../../kernels/index.ts';
import { createWasmBackendNode } from '../../kernels/node.ts';
import { convertFixture, FIXTURES } from './fixtures.ts';

const DEMO = new URL('../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const PROMPTS = ['In the beginning', 'The Python interpreter'];

async function greedy(engine: Engine, prompt: string, n: number): Promise<number[]> {
  const ids: number[] = [];
  for await (const t of engine.generate(engine.encode(prompt), { maxNewTokens: n, stopOnEos: false })) ids.push(t.id);
  return ids;
}

describe.each([
  { name: 'the demo model (q8_0)', open: async () => ({ dir: DEMO, cleanup: () => {} }) },
  { name: 'tiny-moe-text at q4_0', open: () => convertFixture(`${FIXTURES}tiny-moe-text`, 'q4_0') },
])('$name on the WASM backend', ({ open }) => {
  let cpu: Engine;
  let wasm: Engine;
  let backend: WasmBackend;
  let cleanup: () => void;
  beforeAll(async () => {
    const model = await open();
    cleanup = model.cleanup;
    cpu = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(model.dir) });
    backend = await createWasmBackendNode({ threads: 2 });
    wasm = await Engine.load({ backend, source: await modelDirSource(model.dir) });
  });
  afterAll(() => {
    backend.destroy();
    cleanup();
  });

  it('runs on two threads', () => {
    expect(backend.threading).toMatchObject({ threads: 2, shared: true });
  });

  it("generates the reference backend's 24 greedy tokens for each prompt", async () => {
    for (const p of PROMPTS) expect(await greedy(wasm, p, 24), p).toEqual(await greedy(cpu, p, 24));
  });

  it('scores a sequence within 1e-4 relative NLL of the reference', async () => {
    const seq = [cpu.encode('And God said, Let there be light: and there was light. And God saw the light, that it was good.')];
    const [a, b] = [await wasm.perplexity(seq), await cpu.perplexity(seq)];
    expect(Math.abs(a.nll - b.nll) / b.nll).toBeLessThanOrEqual(1e-4);
  });
});
