/**
 * Sliding windows and rope scaling through the engine, on the committed demo model with its
 * config changed in memory (the weights do not care): decoding through a ring-buffer KV cache
 * equals one prefill pass over the same tokens; dynamic NTK re-rotates per pass and may run past
 * max_position_embeddings; a rope type the build cannot compute is refused at load. Exactness
 * against transformers is the golden tests' job (tests/integration/golden-hf-moe.test.ts).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, type ModelSource } from '../../../engine/index.ts';
import { modelDirSource } from '../../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../../kernels/index.ts';
import { ConfigError, type ModelConfig } from '../../../manifests/index.ts';
import { maxAbsDiff } from '../../integration/fixtures.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const PROMPT = [854, 265, 3311];
const BACKENDS: Record<string, () => Promise<Backend>> = { cpu: async () => createCpuBackend(), webgpu: () => createWebGpuBackend() };

let demo: ModelSource;
beforeAll(async () => {
  demo = await modelDirSource(DEMO);
});

function withConfig(change: Partial<ModelConfig>): ModelSource {
  return { ...demo, manifest: { ...demo.manifest, config: { ...demo.manifest.config, ...change } } };
}

/** Greedy ids and the logits of each step, decoding one token per pass after the prompt. */
async function decode(engine: Engine, prompt: number[], n: number) {
  const gen = engine.generate(prompt, { maxNewTokens: n, stopOnEos: false, keepLogits: true });
  const ids: number[] = [];
  for await (const t of gen) ids.push(t.id);
  return { ids, steps: gen.stepLogits };
}

/** Every position's logits from one pass over `seq`. */
async function prefill(engine: Engine, seq: number[]): Promise<Float32Array[]> {
  const gen = engine.generate(seq, { maxNewTokens: 1, stopOnEos: false, keepLogits: true });
  for await (const _ of gen);
  return gen.prefillLogits;
}

describe.each(Object.keys(BACKENDS))('%s backend', (name) => {
  const load = async (change: Partial<ModelConfig>) => Engine.load({ backend: await BACKENDS[name]!(), source: withConfig(change) });
  // SwiftShader decodes slowly: fewer tokens, and the cross-checks that need no GPU stay on the CPU
  const n = name === 'cpu' ? 8 : 4;

  it('a sliding window decoded through its ring buffer equals one pass over the same tokens', async () => {
    const engine = await load({ slidingWindow: 3 });
    const { ids, steps } = await decode(engine, PROMPT, n);
    const once = await prefill(engine, [...PROMPT, ...ids.slice(0, -1)]);
    steps.forEach((row, i) => expect(maxAbsDiff(row, once[PROMPT.length - 1 + i]!), `step ${i}`).toBeLessThanOrEqual(1e-4));
    if (name !== 'cpu') return;
    // the window bites: full attention gives other logits once the context is longer than it
    const full = await prefill(await load({}), [...PROMPT, ...ids.slice(0, -1)]);
    expect(maxAbsDiff(full[0]!, once[0]!)).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(full.at(-1)!, once.at(-1)!)).toBeGreaterThan(1e-2);
    // and a window longer than the context changes nothing
    const wide = await prefill(await load({ slidingWindow: 64 }), [...PROMPT, ...ids.slice(0, -1)]);
    expect(maxAbsDiff(full.at(-1)!, wide.at(-1)!)).toBeLessThanOrEqual(1e-4);
    // between steps each windowed layer holds only its window
    expect(engine.generate(PROMPT, { maxNewTokens: 40 }).stats.kvCacheBytes).toBe(3 * 6 * 2 * 2 * 32 * 4);
  });

  it('dynamic NTK: plain RoPE up to max_position_embeddings, new frequencies per pass beyond it, and no cap at it', async () => {
    const mpe = 5;
    const dynamic = await load({ maxPositionEmbeddings: mpe, ropeScaling: { type: 'dynamic', factor: 2, originalMaxPositionEmbeddings: null, betaFast: null, betaSlow: null, mscale: null, mscaleAllDim: null } });
    const plain = await load({ maxPositionEmbeddings: mpe });
    const d = await decode(dynamic, PROMPT, n);
    const p = await decode(plain, PROMPT, n);
    expect(d.ids).toHaveLength(n);
    // the plain model stops at its context; the dynamic one goes on
    expect(p.ids).toHaveLength(Math.min(n, mpe - PROMPT.length + 1));
    // passes whose last position is below max_position_embeddings rotate as plain RoPE does
    for (let i = 0; i < mpe - PROMPT.length + 1 && i < p.steps.length; i++) expect(maxAbsDiff(d.steps[i]!, p.steps[i]!)).toBeLessThanOrEqual(1e-4);
    // beyond it, keys keep the rotation of the pass that cached them: one pass over the same tokens
    // (every key rotated with the final frequencies) gives other logits
    const once = await prefill(dynamic, [...PROMPT, ...d.ids.slice(0, -1)]);
    expect(maxAbsDiff(d.steps.at(-1)!, once.at(-1)!)).toBeGreaterThan(1e-3);
    expect(maxAbsDiff(d.steps[0]!, once[PROMPT.length - 1]!)).toBeGreaterThan(1e-3);
  });
});

describe('load', () => {
  it('refuses a rope type it cannot compute, by name, before fetching any weight', async () => {
    let fetched = 0;
    const source = withConfig({ ropeScaling: { type: 'longrope', factor: 2, originalMaxPositionEmbeddings: null, betaFast: null, betaSlow: null, mscale: null, mscaleAllDim: null } });
    const counting: ModelSource = { ...source, shard: (h) => (fetched++, source.shard(h)) };
    await expect(Engine.load({ backend: createCpuBackend(), source: counting })).rejects.toThrow(ConfigError);
    await expect(Engine.load({ backend: createCpuBackend(), source: counting })).rejects.toThrow(/unsupported rope type "longrope"/);
    expect(fetched).toBe(0);
  });
});
