/**
 * The engine against Hugging Face transformers on the architectures, plain and as released
 * (YaRN, linear, llama3 and dynamic RoPE, sliding windows, gpt-oss with MXFP4 experts, DeepSeek-V3
 * in FP8 with block scales; goldens of quantised sources from the dequantised weights): prefill logits and
 * every greedy step within 1e-3, the 16 greedy ids exactly, and the experts chosen at each prompt
 * position equal to those transformers' own router outputs select. Run on the TypeScript reference
 * backend, on WebGPU (SwiftShader here) and on the WASM SIMD backend split over 3 threads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../kernels/index.ts';
import { createWasmBackendNode } from '../../kernels/node.ts';
import { dequantize, tensorByName, type WeightDtype } from '../../manifests/index.ts';
import { readShardFile } from '../../manifests/node.ts';
import { route } from '../../router/index.ts';
import { convertFixture, hfMoeDir, hfMoeExtDir, HF_MOE, HF_MOE_EXT, maxAbsDiff, readGolden, type HfMoeGolden } from './fixtures.ts';

const TOLERANCE = 1e-3;
const BACKENDS: Record<string, () => Promise<Backend>> = {
  cpu: async () => createCpuBackend(),
  webgpu: () => createWebGpuBackend(),
  wasm: () => createWasmBackendNode({ threads: 3 }),
};

/** name → source directory; a missing fixture fails its rows rather than dropping them. */
const SOURCES = new Map<string, string>([...HF_MOE.map((n) => [n, hfMoeDir(n)] as const), ...HF_MOE_EXT.map((n) => [n, hfMoeExtDir(n)] as const)]);
/** Conversions that keep the released expert format rather than f32: the same golden must hold. */
const KEPT: Record<string, { fixture: string; expertQuant: WeightDtype }> = { 'gptoss-mxfp4 with experts kept mxfp4': { fixture: 'gptoss-mxfp4', expertQuant: 'mxfp4' } };
for (const [name, k] of Object.entries(KEPT)) SOURCES.set(name, hfMoeExtDir(k.fixture));
const converted = new Map<string, { dir: string; cleanup: () => void }>();
beforeAll(async () => {
  for (const [name, dir] of SOURCES) converted.set(name, await convertFixture(dir, 'f32', KEPT[name]?.expertQuant));
});
afterAll(() => {
  for (const c of converted.values()) c.cleanup();
});

describe.each(Object.keys(BACKENDS))('%s backend', (backendName) => {
  describe.each([...SOURCES.keys()])('%s at f32', (name) => {
    const golden = readGolden<HfMoeGolden>(SOURCES.get(name)!);
    let engine: Engine;
    let ids: number[];
    let prefill: Float32Array[];
    let steps: Float32Array[];
    let routing: Awaited<ReturnType<typeof run>>['routing'];

    async function run() {
      const source = await modelDirSource(converted.get(name)!.dir);
      engine = await Engine.load({ backend: await BACKENDS[backendName]!(), source });
      const gen = engine.generate(golden.input_ids, { maxNewTokens: golden.greedy_ids.length, keepLogits: true, stopOnEos: false });
      const out: number[] = [];
      for await (const t of gen) out.push(t.id);
      return { ids: out, prefill: gen.prefillLogits, steps: gen.stepLogits, routing: gen.prefillRouting };
    }

    beforeAll(async () => {
      ({ ids, prefill, steps, routing } = await run());
    });

    it('reproduces the prefill logits of every position', () => {
      expect(prefill).toHaveLength(golden.input_ids.length);
      prefill.forEach((row, i) => expect(maxAbsDiff(row, golden.prefill_logits[i]!)).toBeLessThanOrEqual(TOLERANCE));
    });

    it('generates the same 16 greedy ids from the same step logits', () => {
      expect(ids).toEqual(golden.greedy_ids);
      steps.forEach((row, i) => expect(maxAbsDiff(row, golden.greedy_step_logits[i]!)).toBeLessThanOrEqual(TOLERANCE));
    });

    it('routes each prompt position to the experts transformers chose', async () => {
      const dir = converted.get(name)!.dir;
      const tensors = tensorByName(engine.manifest);
      const layers = Object.entries(golden.prefill_gate_outputs);
      expect(layers.length).toBeGreaterThan(0);
      for (const [module, gate] of layers) {
        const layer = Number(/layers\.(\d+)\./.exec(module)![1]);
        // gpt-oss's recorded router logits already include its router bias
        const biasEntry = engine.config.moe.router === 'topk_softmax' ? undefined : tensors.get(`layers.${layer}.moe.router_bias`);
        const bias = biasEntry
          ? dequantize(biasEntry, (await readShardFile(dir, engine.manifest.shards[biasEntry.shard]!.hash)).subarray(biasEntry.offset, biasEntry.offset + biasEntry.length))
          : null;
        const expected = route(Float32Array.from(gate.flat()), engine.config.moe, bias);
        const ours = routing[layer]!;
        expect(ours).not.toBeNull();
        const k = ours!.k;
        for (let t = 0; t < golden.input_ids.length; t++) {
          const a = [...ours!.experts.subarray(t * k, t * k + k)].sort((x, y) => x - y);
          const b = [...expected.experts.subarray(t * k, t * k + k)].sort((x, y) => x - y);
          expect(a, `layer ${layer} position ${t}`).toEqual(b);
        }
      }
    });
  });
});
