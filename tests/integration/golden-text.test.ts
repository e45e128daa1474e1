/**
 * The trained fixture tiny-moe-text (bf16 source) at every weight format: greedy continuations of
 * the golden prompts and the validation NLL against transformers' float32 value.
 *  - f32, f16: every prompt's 32 greedy ids exactly; NLL within 0.5%.
 *  - q8_0: NLL within 1%; q4_0: NLL within 4% (measured: bench/results/quality.json).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createWebGpuBackend } from '../../kernels/index.ts';
import type { WeightDtype } from '../../manifests/index.ts';
import { convertFixture, FIXTURES, readGolden, type TextGolden } from './fixtures.ts';

const SOURCE = `${FIXTURES}tiny-moe-text`;
const golden = readGolden<TextGolden>(SOURCE);
const CASES: { quant: WeightDtype; exactGreedy: boolean; nllTolerance: number }[] = [
  { quant: 'f32', exactGreedy: true, nllTolerance: 0.005 },
  { quant: 'f16', exactGreedy: true, nllTolerance: 0.005 },
  { quant: 'q8_0', exactGreedy: false, nllTolerance: 0.01 },
  { quant: 'q4_0', exactGreedy: false, nllTolerance: 0.04 },
];

describe.each(CASES)('tiny-moe-text at $quant', ({ quant, exactGreedy, nllTolerance }) => {
  let engine: Engine;
  let cleanup: () => void;
  beforeAll(async () => {
    const c = await convertFixture(SOURCE, quant);
    cleanup = c.cleanup;
    engine = await Engine.load({ backend: await createWebGpuBackend(), source: await modelDirSource(c.dir) });
  });
  afterAll(() => cleanup?.());

  if (exactGreedy) it('continues every golden prompt with the same 32 greedy tokens and text', async () => {
    for (const p of golden.prompts) {
      expect(engine.encode(p.text)).toEqual(p.input_ids);
      const ids: number[] = [];
      let text = '';
      for await (const t of engine.generate(p.input_ids, { maxNewTokens: p.greedy_ids.length, stopOnEos: false })) {
        ids.push(t.id);
        text += t.text;
      }
      expect(ids, p.text).toEqual(p.greedy_ids);
      expect(text).toBe(p.greedy_text);
    }
  });

  it(`keeps the validation NLL within ${nllTolerance * 100}% of transformers' float32`, async () => {
    const { nll, tokens } = await engine.perplexity(golden.val_seq_ids);
    expect(tokens).toBe(golden.val_seq_ids.length * (golden.val_seq_ids[0]!.length - 1));
    expect(Math.abs(nll - golden.val_nll_f32) / golden.val_nll_f32).toBeLessThanOrEqual(nllTolerance);
  });
});
