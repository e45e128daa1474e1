/** Reference models and their transformers-computed outputs, converted on demand for the tests. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightDtype } from '../../manifests/index.ts';
import { convert } from '../../manifests/node.ts';

export const FIXTURES = fileURLToPath(new URL('../../../shared/fixtures/', import.meta.url));
export const HF_MOE = ['mixtral-tiny', 'qwen3moe-tiny', 'deepseekv3-tiny'] as const;
/** Released-checkpoint configurations (rope types, windows, gpt-oss, FP8/MXFP4 sources), made by tests/fixtures/hf-moe-ext/make_fixtures.py. */
export const HF_MOE_EXT = [
  'deepseekv3-yarn', 'qwen3moe-yarn', 'mixtral-linear', 'mixtral-llama3', 'mixtral-dynamic', 'mixtral-window', 'qwen3moe-window',
  'gptoss-plain', 'gptoss-tiny', 'gptoss-mxfp4', 'deepseekv3-fp8',
] as const;

export interface HfMoeGolden {
  input_ids: number[];
  prefill_logits: number[][];
  greedy_ids: number[];
  greedy_step_logits: number[][];
  prefill_gate_outputs: Record<string, number[][]>;
}

export interface TextGolden {
  prompts: { text: string; input_ids: number[]; prefill_logits_last: number[]; greedy_ids: number[]; greedy_text: string; greedy_step_logits: number[][] }[];
  val_seq_ids: number[][];
  val_nll_f32: number;
}

export function hfMoeDir(name: string): string {
  return join(FIXTURES, 'hf-moe', name);
}

export function hfMoeExtDir(name: string): string {
  return fileURLToPath(new URL(`../fixtures/hf-moe-ext/${name}`, import.meta.url));
}

export function readGolden<T>(dir: string): T {
  return JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as T;
}

/** Converts a fixture into a fresh temporary RDRR directory; `cleanup` removes it. */
export async function convertFixture(source: string, quant: WeightDtype, expertQuant?: WeightDtype): Promise<{ dir: string; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'doppler-fixture-'));
  await convert({ source, out: dir, quant, expertQuant });
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
