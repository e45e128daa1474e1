/**
 * Hostile weights and inputs past the last block: NaN in the final norm or the LM head must stop
 * the step on both backends (never a token sampled from NaN logits), and perplexity refuses what
 * generate refuses (sequences longer than the context) and never reports a non-finite NLL.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Engine, EngineError, NonFiniteError, type ModelSource } from '../../../engine/index.ts';
import { modelDirSource } from '../../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../../kernels/index.ts';
import { tensorByName, type TensorEntry } from '../../../manifests/index.ts';
import { main } from '../../../cli/main.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const PROMPT = [854, 265, 3311];

/** The model with one tensor's stored bytes changed by `mutate` (a DataView over that tensor). */
function poisoned(source: ModelSource, name: string, mutate: (v: DataView, t: TensorEntry) => void): ModelSource {
  const t = tensorByName(source.manifest).get(name)!;
  const hash = source.manifest.shards[t.shard]!.hash;
  return {
    ...source,
    shard: async (h) => {
      const bytes = await source.shard(h);
      if (h !== hash) return bytes;
      const copy = bytes.slice();
      mutate(new DataView(copy.buffer, copy.byteOffset + t.offset, t.length), t);
      return copy;
    },
  };
}

async function firstError(engine: Engine, prompt: number[]): Promise<unknown> {
  try {
    for await (const _ of engine.generate(prompt, { maxNewTokens: 2, stopOnEos: false })) void _;
  } catch (err) {
    return err;
  }
  return null;
}

const backends: Record<'cpu' | 'webgpu', () => Promise<Backend>> = { cpu: async () => createCpuBackend(), webgpu: () => createWebGpuBackend() };

describe('finiteness guard past the last block', () => {
  let source: ModelSource;
  beforeAll(async () => {
    source = await modelDirSource(DEMO);
  });

  it.each(['cpu', 'webgpu'] as const)('a NaN in the final norm stops the step (%s)', async (b) => {
    const bad = poisoned(source, 'final_norm', (v) => v.setFloat32(4 * 17, NaN, true));
    const e = await Engine.load({ backend: await backends[b](), source: bad });
    const err = await firstError(e, PROMPT);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as NonFiniteError).layer).toBe(e.config.numLayers);
    expect((err as NonFiniteError).position).toBe(PROMPT.length - 1);
    expect((err as Error).message).toMatch(/final norm/);
  });

  it.each(['cpu', 'webgpu'] as const)('a NaN in the LM head stops the step instead of sampling (%s)', async (b) => {
    // q8_0: quants then f16 scales; a NaN scale for row 5's first block makes logit 5 NaN
    const bad = poisoned(source, 'lm_head', (v, t) => {
      const blocks = (t.shape[0]! * t.shape[1]!) / 32;
      v.setUint16(blocks * 32 + ((5 * t.shape[1]!) / 32) * 2, 0x7e00, true);
    });
    const e = await Engine.load({ backend: await backends[b](), source: bad });
    const err = await firstError(e, PROMPT);
    expect(err).toBeInstanceOf(NonFiniteError);
    expect((err as Error).message).toMatch(/logits/);
    await expect(e.perplexity([[...PROMPT, 7]])).rejects.toBeInstanceOf(NonFiniteError);
  });
});

describe('perplexity bounds', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(DEMO) });
  });

  it('refuses a sequence longer than the context, naming it', async () => {
    const ctx = engine.config.maxPositionEmbeddings;
    const long = Array.from({ length: ctx + 2 }, (_, i) => (i * 7) % 100);
    await expect(engine.perplexity([[1, 2, 3], long])).rejects.toThrow(/sequence 1 has \d+ tokens; the model's context is/);
    await expect(engine.perplexity([[1, 2, 3], long])).rejects.toBeInstanceOf(EngineError);
  });

  it('exits non-zero from the CLI when a sequence is too long', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const f = join(await mkdtemp(join(tmpdir(), 'doppler-ppl-')), 'ids.json');
    await writeFile(f, JSON.stringify([Array.from({ length: 1100 }, () => 5)]));
    const errors: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errors.push(a.join(' '));
    try {
      expect(await main(['perplexity', DEMO, '--ids-file', f, '--backend', 'cpu'])).toBe(1);
    } finally {
      console.error = orig;
    }
    expect(errors.join('\n')).toMatch(/context is 1024/);
  });

  it('refuses a fractional token budget', () => {
    expect(() => engine.generate(PROMPT, { maxNewTokens: 1.5 })).toThrow(/integer/);
  });
});
