/**
 * The trained fixture tiny-moe-text (bf16 source) at every weight format, against transformers'
 * float32 golden outputs:
 *  - f32, f16: every prompt's 32 greedy ids and text exactly; validation NLL within 0.5%;
 *  - q8_0: NLL within 1%; q4_0: NLL within 4% (measured values: bench/results/quality.json).
 * The full validation set runs on the TypeScript reference backend; WebGPU (SwiftShader here, far
 * slower per token) runs the greedy prompts at f16 and a slice of the validation set at f16 and
 * q4_0, and must agree with the reference.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../../kernels/index.ts';
import type { WeightDtype } from '../../manifests/index.ts';
import { convertFixture, FIXTURES, readGolden, type TextGolden } from './fixtures.ts';

const SOURCE = `${FIXTURES}tiny-moe-text`;
const golden = readGolden<TextGolden>(SOURCE);
/** Validation sequences WebGPU scores, compared with the reference backend on the same ones. */
const GPU_SLICE = golden.val_seq_ids.slice(0, 2);
const CASES: { quant: WeightDtype; exactGreedy: boolean; nllTolerance: number; gpuGreedy: boolean; gpuNll: boolean }[] = [
  { quant: 'f32', exactGreedy: true, nllTolerance: 0.005, gpuGreedy: false, gpuNll: false },
  { quant: 'f16', exactGreedy: true, nllTolerance: 0.005, gpuGreedy: true, gpuNll: true },
  { quant: 'q8_0', exactGreedy: false, nllTolerance: 0.01, gpuGreedy: false, gpuNll: false },
  { quant: 'q4_0', exactGreedy: false, nllTolerance: 0.04, gpuGreedy: false, gpuNll: true },
];

async function continuation(engine: Engine, ids: number[], n: number): Promise<{ ids: number[]; text: string }> {
  const out: number[] = [];
  let text = '';
  for await (const t of engine.generate(ids, { maxNewTokens: n, stopOnEos: false })) {
    out.push(t.id);
    text += t.text;
  }
  return { ids: out, text };
}

describe.each(CASES)('tiny-moe-text at $quant', ({ quant, exactGreedy, nllTolerance, gpuGreedy, gpuNll }) => {
  let reference: Engine;
  let dir: string;
  let cleanup: () => void;
  beforeAll(async () => {
    ({ dir, cleanup } = await convertFixture(SOURCE, quant));
    reference = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(dir) });
  });
  afterAll(() => cleanup?.());

  if (exactGreedy) {
    it('continues every golden prompt with the same 32 greedy tokens and text', async () => {
      for (const p of golden.prompts) {
        expect(reference.encode(p.text)).toEqual(p.input_ids);
        const { ids, text } = await continuation(reference, p.input_ids, p.greedy_ids.length);
        expect(ids, p.text).toEqual(p.greedy_ids);
        expect(text).toBe(p.greedy_text);
      }
    });
  }

  it(`keeps the validation NLL within ${nllTolerance * 100}% of transformers' float32`, async () => {
    const { nll, tokens } = await reference.perplexity(golden.val_seq_ids);
    expect(tokens).toBe(golden.val_seq_ids.length * (golden.val_seq_ids[0]!.length - 1));
    expect(Math.abs(nll - golden.val_nll_f32) / golden.val_nll_f32).toBeLessThanOrEqual(nllTolerance);
  });

  if (gpuGreedy || gpuNll) {
    describe('on WebGPU', () => {
      let gpu: Engine;
      beforeAll(async () => {
        gpu = await Engine.load({ backend: await createWebGpuBackend(), source: await modelDirSource(dir) });
      });
      if (gpuGreedy) {
        it('generates the golden continuations', async () => {
          for (const p of golden.prompts) expect((await continuation(gpu, p.input_ids, p.greedy_ids.length)).ids, p.text).toEqual(p.greedy_ids);
        });
      }
      if (gpuNll) {
        it('scores validation text as the reference backend does (NLL within 1e-4 relative)', async () => {
          const [a, b] = [await gpu.perplexity(GPU_SLICE), await reference.perplexity(GPU_SLICE)];
          expect(Math.abs(a.nll - b.nll) / b.nll).toBeLessThanOrEqual(1e-4);
        });
      }
    });
  }
});
