/**
 * What each weight format costs in quality on the trained fixture tiny-moe-text: validation NLL
 * (transformers' float32 value beside it), model and routed-expert bytes, and the golden prompts'
 * greedy continuations. A row is a format for every matrix, or `Q+E` (attention, embeddings and
 * lm_head in Q, routed experts in E, as `doppler convert --quant Q --expert-quant E` makes).
 *
 *   node_modules/.bin/node bench/quality.ts [--backend cpu|webgpu] [--formats f32,q8_0+q3_g64,…] [--out FILE]
 *
 * Without --out the results go to stdout, so a partial run never replaces the committed
 * bench/results/quality.json; with --out an existing file's rows that this run did not measure are
 * kept (each row records the command that measured it).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openModelAt } from '../engine/node.ts';
import { createCpuBackend, createWebGpuBackend } from '../kernels/index.ts';
import { formatOf, type WeightDtype } from '../manifests/index.ts';
import { convert } from '../manifests/node.ts';
import { benchArgs, invocation } from './invocation.ts';

const ALL_ROWS = ['f32', 'f16', 'q8_0', 'q4_0', 'q8_0+q4_0', 'q8_0+q3_g64', 'q4_0+q3_g64', 'q8_0+q2_g32'];
const { values } = benchArgs({ backend: { type: 'string', default: 'cpu' }, formats: { type: 'string' }, out: { type: 'string' } });
const source = new URL('../../shared/fixtures/tiny-moe-text', import.meta.url).pathname;
const golden = JSON.parse(readFileSync(join(source, 'golden.json'), 'utf8')) as {
  prompts: { text: string; input_ids: number[]; greedy_ids: number[]; greedy_text: string }[];
  val_seq_ids: number[][];
  val_nll_f32: number;
};
const command = invocation('quality.ts');

/** `Q` or `Q+E` → the convert options; unknown formats are refused by name. */
function parseRow(row: string): { quant: WeightDtype; expertQuant: WeightDtype } {
  const m = /^([^+]+)(?:\+(.+))?$/.exec(row);
  if (!m) throw new Error(`--formats: ${JSON.stringify(row)} is neither Q nor Q+E`);
  const quant = formatOf(m[1]!).name;
  return { quant, expertQuant: m[2] ? formatOf(m[2]).name : quant };
}

/** A results row; rows written before `row` existed are named by their `quant`. */
interface Row {
  row?: string;
  quant: string;
  [field: string]: unknown;
}

async function measure(row: string): Promise<Row> {
  const { quant, expertQuant } = parseRow(row);
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
    const nllIncrease = (nll - golden.val_nll_f32) / golden.val_nll_f32;
    console.error(`${row}: NLL ${nll.toFixed(5)} (${(nllIncrease * 100).toFixed(3)}%), ${manifest.totals.bytes} bytes, experts ${manifest.totals.expertBytes}`);
    return { row, quant, expertQuant, modelBytes: manifest.totals.bytes, expertBytes: manifest.totals.expertBytes, nll, nllIncrease, perplexity: Math.exp(nll), prompts, command };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const wanted = values.formats ? values.formats.split(',') : ALL_ROWS;
const fresh: Row[] = [];
for (const row of wanted) fresh.push(await measure(row));
const previous = values.out && existsSync(values.out) ? (JSON.parse(readFileSync(values.out, 'utf8')) as { command: string; rows: Row[] }) : null;
// rows from before rows recorded their command were measured by the file's own command
const kept = (previous?.rows ?? []).map((r) => ({ command: previous!.command, ...r }));
const rows = [...kept.filter((r) => !wanted.includes(r.row ?? r.quant)), ...fresh].sort((a, b) => ALL_ROWS.indexOf(a.row ?? a.quant) - ALL_ROWS.indexOf(b.row ?? b.quant));
const out = {
  bench: 'quality',
  command,
  date: new Date().toISOString(),
  transformersNllF32: golden.val_nll_f32,
  tokens: golden.val_seq_ids.length * (golden.val_seq_ids[0]!.length - 1),
  rows,
};
const json = JSON.stringify(out, null, 2) + '\n';
if (values.out) writeFileSync(values.out, json);
else process.stdout.write(json);
