/**
 * Engine behaviour beyond matching transformers: streaming, EOS, seeded sampling, the finiteness
 * guard, and bad prompts. On the TypeScript reference backend with the committed demo model.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, NonFiniteError, type ModelSource } from '../../../engine/index.ts';
import { modelDirSource } from '../../../engine/node.ts';
import { argmax, createSampler, seededRandom } from '../../../engine/sampling.ts';
import { createCpuBackend, createWebGpuBackend } from '../../../kernels/index.ts';
import { tensorByName } from '../../../manifests/index.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const PROMPT = [854, 265, 3311];

async function ids(engine: Engine, prompt: number[], opts: Parameters<Engine['generate']>[1]): Promise<number[]> {
  const out: number[] = [];
  for await (const t of engine.generate(prompt, opts)) out.push(t.id);
  return out;
}

describe('generate', () => {
  let source: ModelSource;
  let engine: Engine;
  beforeAll(async () => {
    source = await modelDirSource(DEMO);
    engine = await Engine.load({ backend: createCpuBackend(), source });
  });

  it('streams each token as it is chosen, with its text and the experts of every layer', async () => {
    const seen: number[] = [];
    const gen = engine.generate(PROMPT, { maxNewTokens: 5, stopOnEos: false });
    for await (const t of gen) {
      seen.push(t.id);
      // the stats already count this token when it is handed out
      expect(gen.stats.generatedTokens).toBe(seen.length);
      expect(t.experts).toHaveLength(engine.config.numLayers);
      for (const layer of t.experts) expect(new Set(layer).size).toBe(engine.config.moe.topK);
    }
    expect(seen).toHaveLength(5);
    expect(gen.stats.ttftMs).toBeGreaterThan(0);
    expect(gen.stats.decodeTokPerS).toBeGreaterThan(0);
  });

  it('stops at the model\'s end-of-sequence token', async () => {
    const greedy = await ids(engine, PROMPT, { maxNewTokens: 6, stopOnEos: false });
    const eos = greedy[2]!;
    const withEos: ModelSource = { ...source, manifest: { ...source.manifest, config: { ...source.manifest.config, eosTokenIds: [eos] } } };
    const e2 = await Engine.load({ backend: createCpuBackend(), source: withEos });
    expect(await ids(e2, PROMPT, { maxNewTokens: 6 })).toEqual(greedy.slice(0, greedy.indexOf(eos) + 1));
    expect(await ids(e2, PROMPT, { maxNewTokens: 6, stopOnEos: false })).toEqual(greedy);
  });

  it('samples reproducibly from a seed, and greedy at temperature 0', async () => {
    const a = await ids(engine, PROMPT, { maxNewTokens: 8, temperature: 1, topP: 0.95, seed: 7, stopOnEos: false });
    const b = await ids(engine, PROMPT, { maxNewTokens: 8, temperature: 1, topP: 0.95, seed: 7, stopOnEos: false });
    const c = await ids(engine, PROMPT, { maxNewTokens: 8, temperature: 1, topP: 0.95, seed: 8, stopOnEos: false });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(await ids(engine, PROMPT, { maxNewTokens: 8, temperature: 0, stopOnEos: false })).toEqual(await ids(engine, PROMPT, { maxNewTokens: 8, stopOnEos: false }));
  });

  it('rejects an empty prompt and ids outside the vocabulary', async () => {
    expect(() => engine.generate([], { maxNewTokens: 1 })).toThrow(EngineError);
    await expect(ids(engine, [engine.config.vocabSize], { maxNewTokens: 1 })).rejects.toThrow(/outside the vocabulary/);
  });

  it.each(['cpu', 'webgpu'] as const)('stops with an error naming the layer and position when the hidden state goes non-finite (%s)', async (backendName) => {
    // poison one embedding row: the token at position 2 carries NaN into layer 0
    const bad = 777;
    const embed = tensorByName(source.manifest).get('embed')!;
    expect(embed.dtype).toBe('q8_0');
    const poisoned: ModelSource = {
      ...source,
      shard: async (hash) => {
        const bytes = await source.shard(hash);
        if (hash !== source.manifest.shards[embed.shard]!.hash) return bytes;
        const copy = bytes.slice();
        // q8_0 scales (f16) follow the quants; a NaN scale poisons the blocks of that row
        const cols = embed.shape[1]!;
        const blocks = (embed.shape[0]! * cols) / 32;
        const scales = new DataView(copy.buffer, copy.byteOffset + embed.offset + blocks * 32);
        for (let b = (bad * cols) / 32; b < ((bad + 1) * cols) / 32; b++) scales.setUint16(b * 2, 0x7e00, true);
        return copy;
      },
    };
    const e = await Engine.load({ backend: backendName === 'cpu' ? createCpuBackend() : await createWebGpuBackend(), source: poisoned });
    const err = await ids(e, [PROMPT[0]!, PROMPT[1]!, bad, PROMPT[2]!], { maxNewTokens: 2 }).catch((x: unknown) => x);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as NonFiniteError).layer).toBe(0);
    expect((err as NonFiniteError).position).toBe(2);
    expect((err as Error).message).toMatch(/layer 0, token position 2/);
    // a one-token step runs on the device (routing, experts and checks there)
    const one = await ids(e, [bad], { maxNewTokens: 1 }).catch((x: unknown) => x);
    expect(one).toBeInstanceOf(NonFiniteError);
    // the device checks only the end of the step; the per-layer re-run names the first place: layer 0
    expect((one as Error).message).toMatch(/layer 0, token position 0 /);
    // the engine is still usable for prompts that avoid the poisoned row
    expect(await ids(e, PROMPT, { maxNewTokens: 3, stopOnEos: false })).toEqual(await ids(engine, PROMPT, { maxNewTokens: 3, stopOnEos: false }));
  });

  it.each(['cpu', 'webgpu'] as const)('decodes with one read-back per token, choosing what the per-layer path chooses (%s)', async (backendName) => {
    const backend = backendName === 'cpu' ? createCpuBackend() : await createWebGpuBackend();
    const onDevice = await Engine.load({ backend, source });
    // an observer of every layer keeps routing on the CPU, one read-back per MoE layer
    const perLayer = await Engine.load({ backend, source, observer: { routed: () => {} } });
    const run = async (e: Engine) => {
      const gen = e.generate(PROMPT, { maxNewTokens: 4, stopOnEos: false });
      const tokens = [];
      for await (const t of gen) tokens.push({ id: t.id, experts: t.experts });
      return { tokens, perToken: gen.stats.counters.perToken };
    };
    const device = await run(onDevice);
    const host = await run(perLayer);
    expect(device.tokens).toEqual(host.tokens);
    expect(device.perToken.readBacks).toBe(1);
    expect(device.perToken.submits).toBe(1);
    expect(host.perToken.readBacks).toBeGreaterThanOrEqual(engine.config.numLayers + 1);
  });
});

describe('sampling', () => {
  it('argmax takes the first of equal maxima', () => {
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
  });

  it('top-p keeps only the smallest set reaching p', () => {
    const logits = Float32Array.from([2, 1.5, 1, -30]);
    const sample = createSampler({ temperature: 1, topP: 0.5, seed: 1 });
    for (let i = 0; i < 50; i++) expect(sample(logits, 0, logits.length)).toBe(0);
    const wide = createSampler({ temperature: 1, topP: 1, seed: 1 });
    const drawn = new Set(Array.from({ length: 200 }, () => wide(logits, 0, logits.length)));
    expect(drawn).toEqual(new Set([0, 1, 2]));
  });

  it('a seed gives the same stream', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    for (let i = 0; i < 10; i++) expect(a()).toBe(b());
  });

  it('rejects a top-p outside (0, 1]', () => {
    expect(() => createSampler({ temperature: 1, topP: 0 })).toThrow(RangeError);
  });
});
