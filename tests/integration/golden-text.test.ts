/**
 * The trained fixture tiny-moe-text (bf16 source) at every weight format, against transformers'
 * float32 golden outputs:
 *  - f32, f16: every prompt's 32 greedy ids and text exactly; validation NLL within 0.5%;
 *  - q8_0: NLL within 1%; q4_0: NLL within 4% (measured values: bench/results/quality.json).
 * The full validation set runs on the TypeScript reference backend; WebGPU (SwiftShader here, far
 * slower per token: 0.3–1 tok/s on a loaded 2-core machine) runs the first greedy tokens of two
 * prompts at f16 and one short validation slice at f16 and q4_0, and must agree with the reference.
 * Timeouts are generous: these are correctness checks, and speed is measured by the benches.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../../kernels/index.ts';
import type { WeightDtype } from '../../manifests/index.ts';
import { convertFixture, FIXTURES, readGolden, type TextGolden } from './fixtures.ts';

const SOURCE = `${FIXTURES}tiny-moe-text`;
const golden = readGolden<TextGolden>(SOURCE);
/** Validation text WebGPU scores, compared with the reference backend on the same tokens. */
const GPU_SLICE = [golden.val_seq_ids[0]!.slice(0, 64)];
/** Greedy tokens WebGPU must reproduce, from the start of the first prompts' golden continuations. */
const GPU_PROMPTS = 2;
const GPU_TOKENS = 8;
/** Per test: the reference backend scores 8,192 tokens, SwiftShader decodes at well under 1 tok/s under load. */
const SLOW = 900_000;
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
  }, SLOW);
  afterAll(() => cleanup?.());

  if (exactGreedy) {
    it('continues every golden prompt with the same 32 greedy tokens and text', async () => {
      for (const p of golden.prompts) {
        expect(reference.encode(p.text)).toEqual(p.input_ids);
        const { ids, text } = await continuation(reference, p.input_ids, p.greedy_ids.length);
        expect(ids, p.text).toEqual(p.greedy_ids);
        expect(text).toBe(p.greedy_text);
      }
    }, SLOW);
  }

  it(`keeps the validation NLL within ${nllTolerance * 100}% of transformers' float32`, async () => {
    const { nll, tokens } = await reference.perplexity(golden.val_seq_ids);
    expect(tokens).toBe(golden.val_seq_ids.length * (golden.val_seq_ids[0]!.length - 1));
    expect(Math.abs(nll - golden.val_nll_f32) / golden.val_nll_f32).toBeLessThanOrEqual(nllTolerance);
  }, SLOW);

  if (gpuGreedy || gpuNll) {
    describe('on WebGPU', () => {
      let gpu: Engine;
      beforeAll(async () => {
        gpu = await Engine.load({ backend: await createWebGpuBackend(), source: await modelDirSource(dir) });
      }, SLOW);
      if (gpuGreedy) {
        it(`generates the first ${GPU_TOKENS} golden tokens of ${GPU_PROMPTS} prompts`, async () => {
          for (const p of golden.prompts.slice(0, GPU_PROMPTS)) {
            expect((await continuation(gpu, p.input_ids, GPU_TOKENS)).ids, p.text).toEqual(p.greedy_ids.slice(0, GPU_TOKENS));
          }
        }, SLOW);
      }
      if (gpuNll) {
        it('scores validation text as the reference backend does (NLL within 1e-4 relative)', async () => {
          const [a, b] = [await gpu.perplexity(GPU_SLICE), await reference.perplexity(GPU_SLICE)];
          expect(Math.abs(a.nll - b.nll) / b.nll).toBeLessThanOrEqual(1e-4);
        }, SLOW);
      }
    });
  }
});
