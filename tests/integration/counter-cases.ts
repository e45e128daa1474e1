/**
 * The runs whose backend counters (dispatches, read-backs, bytes uploaded, submissions) are
 * ratcheted: the demo model and a golden fixture, on each backend, prefill plus a few greedy
 * decode steps. bench/counters.ts writes their baseline; counters.test.ts compares against it.
 */
import { fileURLToPath } from 'node:url';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend, type BackendCounters } from '../../kernels/index.ts';
import { convertFixture, hfMoeDir, readGolden, type HfMoeGolden } from './fixtures.ts';

export const BASELINE_PATH = fileURLToPath(new URL('../../bench/baselines/counters.json', import.meta.url));
/** Generated tokens per run: the first comes from the prefill, the rest are decode steps. */
const NEW_TOKENS = 4;

export interface CaseCounters {
  prefill: BackendCounters;
  perToken: BackendCounters;
}

/** model case → backend → counters. */
export type CounterBaseline = Record<string, Record<string, CaseCounters>>;

interface CounterCase {
  /** A model directory (and its cleanup) and the prompt ids. */
  open(): Promise<{ dir: string; ids: number[]; cleanup: () => void }>;
}

export const CASES: Record<string, CounterCase> = {
  'tiny-moe-text-q8_0': {
    async open() {
      const dir = fileURLToPath(new URL('../../models/tiny-moe-text-q8_0', import.meta.url));
      // "In the beginning" through the model's tokenizer, fixed here so the case needs none
      return { dir, ids: [854, 265, 3311], cleanup: () => {} };
    },
  },
  'deepseekv3-tiny-f32': {
    async open() {
      const { dir, cleanup } = await convertFixture(hfMoeDir('deepseekv3-tiny'), 'f32');
      return { dir, ids: readGolden<HfMoeGolden>(hfMoeDir('deepseekv3-tiny')).input_ids, cleanup };
    },
  },
};

export const BACKENDS: Record<string, () => Promise<Backend>> = {
  cpu: async () => createCpuBackend(),
  webgpu: () => createWebGpuBackend(),
};

export async function measureCounters(caseName: string, backendName: string): Promise<CaseCounters> {
  const c = CASES[caseName];
  const make = BACKENDS[backendName];
  if (!c || !make) throw new Error(`no counter case ${caseName} on ${backendName}`);
  const { dir, ids, cleanup } = await c.open();
  try {
    const engine = await Engine.load({ backend: await make(), source: await modelDirSource(dir) });
    const gen = engine.generate(ids, { maxNewTokens: NEW_TOKENS, stopOnEos: false });
    for await (const _ of gen) { /* drain */ }
    return { prefill: gen.stats.counters.prefill, perToken: gen.stats.counters.perToken };
  } finally {
    cleanup();
  }
}
