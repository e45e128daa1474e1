/**
 * What each weight format costs in quality on the trained fixture tiny-moe-text: validation NLL
 * (transformers' float32 value beside it) and the golden prompts' greedy continuations.
 *
 *   node_modules/.bin/node bench/quality.ts [--backend cpu|webgpu] [--formats f32,q8_0,q4_0+mxfp4,…] [--out FILE]
 *
 * A format `A+B` stores dense matrices as A and routed experts as B. Results go to --out, or to
 * bench/results/quality.json when that does not exist yet (a committed result is never overwritten
 * without --out); the JSON is printed either way.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { openModelAt } from '../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../kernels/index.ts';
import { isWeightDtype, type WeightDtype } from '../manifests/index.ts';
import { convert } from '../manifests/node.ts';
import { invocation } from './invocation.ts';

const { values } = parseArgs({ options: { backend: { type: 'string', default: 'cpu' }, formats: { type: 'string', default: 'f32,f16,q8_0,q4_0' }, out: { type: 'string' } } });
const formats = values.formats.split(',').map((f) => {
  const [quant, expertQuant = quant] = f.split('+');
  if (!isWeightDtype(quant) || !isWeightDtype(expertQuant)) throw new Error(`--formats: unknown format in "${f}"`);
  return { quant: quant as WeightDtype, expertQuant: expertQuant as WeightDtype };
});
const source = new URL('../../shared/fixtures/tiny-moe-text', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(join(source, 'golden.json'), 'utf8')) as {
  prompts: { text: string; input_ids: number[]; greedy_ids: number[]; greedy_text: string }[];
  val_seq_ids: number[][];
  val_nll_f32: number;
};

const rows = [];
for (const { quant, expertQuant } of formats) {
  const dir = mkdtempSync(join(tmpdir(), 'doppler-quality-'));
  try {
    const { manifest } = await convert({ source, out: dir, quant, expertQuant });
    const backend = values.backend === 'webgpu' ? await createWebGpuBackend() : createCpuBackend();
    const { engine } = await openModelAt({ model: dir, backend });
    const prompts = [];
    for (const p of golden.prompts) {
      const ids: number[] = [];
      let text = '';
      for await (const t of engine.generate(p.input_ids, { maxNewTokens: p.greedy_ids.length, stopOnEos: false })) {
        ids.push(t.id);
        text += t.text;
      }
      prompts.push({ prompt: p.text, text, sameIdsAsTransformers: JSON.stringify(ids) === JSON.stringify(p.greedy_ids) });
    }
    const { nll } = await engine.perplexity(golden.val_seq_ids);
    rows.push({ quant, expertQuant, modelBytes: manifest.totals.bytes, nll, nllIncrease: (nll - golden.val_nll_f32) / golden.val_nll_f32, perplexity: Math.exp(nll), prompts });
    console.error(`${quant}${expertQuant !== quant ? `+${expertQuant}` : ''}: ${manifest.totals.bytes} bytes, NLL ${nll.toFixed(5)} (${(((nll - golden.val_nll_f32) / golden.val_nll_f32) * 100).toFixed(3)}%)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const out = {
  bench: 'quality',
  command: invocation('quality.ts'),
  date: new Date().toISOString(),
  transformersNllF32: golden.val_nll_f32,
  tokens: golden.val_seq_ids.length * (golden.val_seq_ids[0]!.length - 1),
  rows,
};
const text = JSON.stringify(out, null, 2) + '\n';
const committed = new URL('./results/quality.json', import.meta.url);
if (values.out) writeFileSync(values.out, text);
else if (!existsSync(committed)) writeFileSync(committed, text);
console.log(text);
