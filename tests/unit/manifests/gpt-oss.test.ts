/**
 * gpt-oss in the converter: config.json in the hub's and transformers' spellings, the fused
 * interleaved experts split into one shard per expert (biases with it), and bad input refused by
 * name with no manifest written. The fixture (tests/fixtures/hf-moe-ext/gptoss-plain) has I = H,
 * where the [E, I, H] down projection could be mistaken for [E, H, I].
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, decodeManifest, dequantize, encodeManifest, MODEL_FILES, normaliseConfig, planModel, tensorByName } from '../../../manifests/index.ts';
import { convert, PRESETS, readShardFile } from '../../../manifests/node.ts';
import { readSafetensors, toF32, writeSafetensors, type RawTensor } from './helpers.ts';

const SRC = join(import.meta.dirname, '../../fixtures/hf-moe-ext/gptoss-plain');
const config = JSON.parse(readFileSync(join(SRC, 'config.json'), 'utf8')) as Record<string, unknown>;
const work = mkdtempSync(join(tmpdir(), 'rdrr-gptoss-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('gpt_oss config', () => {
  const norm = (edit: Record<string, unknown>, drop: string[] = []) => {
    const c: Record<string, unknown> = { ...config, ...edit };
    for (const k of drop) delete c[k];
    return normaliseConfig(c, 'config.json');
  };

  it('normalises the fixture: biases, sinks, topk_softmax router, clamped SwiGLU, every layer MoE', () => {
    const c = norm({});
    expect(c).toMatchObject({ architecture: 'gpt_oss', headDim: 16, numKvHeads: 2, ropeTheta: 150000, ropeScaling: null, attentionBias: true, attentionSinks: true, rmsNormEps: 1e-5 });
    expect(c.moe).toMatchObject({ router: 'topk_softmax', numExperts: 8, topK: 2, expertIntermediateSize: 64, denseLayers: [], expertBias: true, clampedSwiglu: { alpha: 1.702, limit: 7 } });
  });

  it('reads the hub spelling: experts_per_token, rope_theta, no head_dim (GptOssConfig: 64)', () => {
    const c = norm({ experts_per_token: 2, rope_theta: 10000, rope_scaling: null, layer_types: ['full_attention', 'full_attention', 'full_attention', 'full_attention'] }, ['num_experts_per_tok', 'rope_parameters', 'head_dim']);
    expect([c.moe.topK, c.ropeTheta, c.headDim]).toEqual([2, 10000, 64]);
    expect(() => norm({ experts_per_token: 3 })).toThrow(/num_experts_per_tok 2 and experts_per_token 3 disagree/);
  });

  it('reads windows and YaRN, with GptOssConfig\'s defaults where the file is silent', () => {
    const alt = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    expect(norm({ layer_types: alt })).toMatchObject({ slidingWindow: 8, layerTypes: alt });
    // without layer_types GptOssConfig alternates sliding and full attention; without sliding_window it is 128
    expect(norm({}, ['layer_types', 'sliding_window'])).toMatchObject({ slidingWindow: 128, layerTypes: alt });
    // all full attention: no window at all, whatever sliding_window says
    expect(norm({})).toMatchObject({ slidingWindow: null });
    expect(norm({}).layerTypes).toBeUndefined();
    const yarn = { rope_type: 'yarn', factor: 32, beta_fast: 32, beta_slow: 1, truncate: false, original_max_position_embeddings: 4096 };
    expect(norm({ rope_scaling: yarn, rope_theta: 150000 }, ['rope_parameters']).ropeScaling).toMatchObject({ type: 'yarn', factor: 32, truncate: false });
    // without any rope field GptOssConfig applies YaRN (factor 32 from 4096)
    expect(norm({}, ['rope_parameters'])).toMatchObject({ ropeTheta: 150000, ropeScaling: { type: 'yarn', factor: 32, originalMaxPositionEmbeddings: 4096, truncate: false } });
  });

  it('the gpt-oss-20b and -120b presets have the released shapes: 20.9 B and 116.8 B parameters', () => {
    for (const [name, layers, experts, total] of [['gpt-oss-20b', 24, 32, 20_914_757_184], ['gpt-oss-120b', 36, 128, 116_829_156_672]] as const) {
      const c = normaliseConfig(PRESETS[name]!.config, name);
      expect(c).toMatchObject({ numLayers: layers, slidingWindow: 128, ropeScaling: { type: 'yarn', factor: 32 }, moe: { numExperts: experts, topK: 4 } });
      expect(c.layerTypes!.filter((t) => t === 'full_attention')).toHaveLength(layers / 2);
      const plan = planModel(c, 'f16', 64 << 20);
      expect(plan.tensors.reduce((n, t) => n + t.spec.shape.reduce((a, b) => a * b, 1), 0)).toBe(total);
    }
  });

  it('refuses what it would not honour, by name', () => {
    expect(() => norm({ swiglu_limit: 5 })).toThrow(/swiglu_limit 5 is not supported/);
    expect(() => norm({ attention_bias: false })).toThrow(/attention_bias false/);
    expect(() => norm({ layer_types: ['full_attention'] })).toThrow(/"layer_types" has 1 entries for 4 layers/);
    expect(() => norm({ layer_types: ['sliding_attention', 'chunked_attention', 'full_attention', 'full_attention'] })).toThrow(/"layer_types" entry "chunked_attention" is not supported/);
    expect(() => norm({ rope_parameters: { rope_theta: 150000, rope_type: 'longrope', factor: 2 } })).toThrow(/unsupported rope type "longrope"/);
  });
});

describe('gpt_oss convert', () => {
  const source = readSafetensors(join(SRC, 'model.safetensors'));
  const f32 = (name: string): Float32Array => toF32(source.get(name)!);

  it('splits gate_up [E, H, 2I] (interleaved) and down [E, I, H] into per-expert [out, in] tensors with their biases', async () => {
    const out = join(work, 'plain');
    const { manifest } = await convert({ source: SRC, out, quant: 'f32' });
    const tensors = tensorByName(manifest);
    const read = async (name: string): Promise<Float32Array> => {
      const t = tensors.get(name)!;
      const shard = await readShardFile(out, manifest.shards[t.shard]!.hash);
      return dequantize(t, shard.subarray(t.offset, t.offset + t.length));
    };
    const [E, H, I] = [8, 64, 64];
    for (const l of [0, 3]) {
      const gu = f32(`model.layers.${l}.mlp.experts.gate_up_proj`);
      const dn = f32(`model.layers.${l}.mlp.experts.down_proj`);
      const gub = f32(`model.layers.${l}.mlp.experts.gate_up_proj_bias`);
      const db = f32(`model.layers.${l}.mlp.experts.down_proj_bias`);
      for (let e = 0; e < E; e++) {
        const p = `layers.${l}.moe.experts.${e}`;
        const gate = new Float32Array(I * H);
        const up = new Float32Array(I * H);
        const down = new Float32Array(H * I);
        for (let i = 0; i < I; i++) for (let h = 0; h < H; h++) {
          gate[i * H + h] = gu[(e * H + h) * 2 * I + 2 * i]!;
          up[i * H + h] = gu[(e * H + h) * 2 * I + 2 * i + 1]!;
          down[h * I + i] = dn[(e * I + i) * H + h]!;
        }
        expect(await read(`${p}.gate`)).toEqual(gate);
        expect(await read(`${p}.up`)).toEqual(up);
        expect(await read(`${p}.down`)).toEqual(down);
        expect(await read(`${p}.gate_bias`)).toEqual(Float32Array.from({ length: I }, (_, i) => gub[e * 2 * I + 2 * i]!));
        expect(await read(`${p}.up_bias`)).toEqual(Float32Array.from({ length: I }, (_, i) => gub[e * 2 * I + 2 * i + 1]!));
        expect(await read(`${p}.down_bias`)).toEqual(db.subarray(e * H, (e + 1) * H));
        // the expert's six tensors share its one shard
        const entry = manifest.experts.find((x) => x.layer === l && x.expert === e)!;
        expect(entry.shards).toHaveLength(1);
        for (const s of ['gate', 'up', 'down', 'gate_bias', 'up_bias', 'down_bias']) expect(tensors.get(`${p}.${s}`)!.shard).toBe(entry.shards[0]);
      }
      expect(await read(`layers.${l}.attn.sinks`)).toEqual(f32(`model.layers.${l}.self_attn.sinks`));
      expect(await read(`layers.${l}.attn.k_bias`)).toEqual(f32(`model.layers.${l}.self_attn.k_proj.bias`));
      expect(await read(`layers.${l}.moe.router_bias`)).toEqual(f32(`model.layers.${l}.mlp.router.bias`));
    }
    // the manifest's tensor table is derived from the config (biases included) and round-trips
    expect(decodeManifest(encodeManifest(manifest))).toEqual(manifest);
    // biases, sinks and the router stay f32 whatever the matrices get
    const q8 = await convert({ source: SRC, out: join(work, 'plain-q8'), quant: 'q8_0' });
    const q8t = tensorByName(q8.manifest);
    for (const n of ['layers.0.attn.q_bias', 'layers.0.attn.sinks', 'layers.0.moe.router_bias', 'layers.0.moe.experts.3.down_bias']) expect(q8t.get(n)!.dtype).toBe('f32');
    expect(q8t.get('layers.0.moe.experts.3.down')!.dtype).toBe('q8_0');
  });

  /** The fixture with tensors removed or replaced; returns the source directory. */
  function edited(name: string, edit: (t: Map<string, RawTensor>) => void): string {
    const dir = join(work, `src-${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const t = new Map(source);
    edit(t);
    writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries([...t].map(([k, v]) => [k, { dtype: v.dtype, shape: v.shape, data: v.bytes }])));
    return dir;
  }

  it.each([
    ['a missing sinks tensor', (t: Map<string, RawTensor>) => t.delete('model.layers.2.self_attn.sinks'), /tensor model\.layers\.2\.self_attn\.sinks \(canonical layers\.2\.attn\.sinks\) is missing/],
    ['a missing attention bias', (t: Map<string, RawTensor>) => t.delete('model.layers.1.self_attn.v_proj.bias'), /tensor model\.layers\.1\.self_attn\.v_proj\.bias .* is missing/],
    ['a missing router bias', (t: Map<string, RawTensor>) => t.delete('model.layers.0.mlp.router.bias'), /tensor model\.layers\.0\.mlp\.router\.bias .* is missing/],
    ['a missing expert bias', (t: Map<string, RawTensor>) => t.delete('model.layers.3.mlp.experts.gate_up_proj_bias'), /tensor model\.layers\.3\.mlp\.experts\.gate_up_proj_bias \(canonical layers\.3\.moe\.experts\.0\.gate_bias\) is missing/],
    ['a missing down projection', (t: Map<string, RawTensor>) => t.delete('model.layers.0.mlp.experts.down_proj'), /tensor model\.layers\.0\.mlp\.experts\.down_proj .* is missing/],
    ['gate_up of the wrong shape', (t: Map<string, RawTensor>) => {
      const g = t.get('model.layers.1.mlp.experts.gate_up_proj')!;
      t.set('model.layers.1.mlp.experts.gate_up_proj', { ...g, shape: [8, 128, 64] });
    }, /tensor model\.layers\.1\.mlp\.experts\.gate_up_proj has shape \[8, 128, 64\], config\.json implies \[E, 64, 128\]/],
    ['too few experts', (t: Map<string, RawTensor>) => {
      const d = t.get('model.layers.0.mlp.experts.down_proj')!;
      t.set('model.layers.0.mlp.experts.down_proj', { ...d, shape: [4, 64, 64], bytes: d.bytes.subarray(0, 4 * 64 * 64 * 4) });
    }, /down_proj has shape \[4, 64, 64\], config\.json implies \[E, 64, 64\] covering expert 4/],
  ])('%s is refused by name and no manifest is written', async (name, edit, message) => {
    const dir = edited(name.replace(/\W+/g, '-'), edit);
    const out = join(work, `out-${name.replace(/\W+/g, '-')}`);
    const err = await convert({ source: dir, out, quant: 'f32' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(message);
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });

  it('a config it would not honour is a ConfigError before anything is read', async () => {
    const dir = join(work, 'src-limit');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, swiglu_limit: 10 }));
    await expect(convert({ source: dir, out: join(work, 'out-limit') })).rejects.toBeInstanceOf(ConfigError);
    expect(existsSync(join(work, 'out-limit', MODEL_FILES.manifest))).toBe(false);
  });
});
