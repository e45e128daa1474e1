import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeManifest, encodeManifest, ManifestError, manifestOfPlan, normaliseConfig, ConfigError, planModel, shardHashesOfExpert, storedDtype, tensorByName, type Manifest } from '../../../manifests/index.ts';
import { convert, PRESETS } from '../../../manifests/node.ts';
import { FIXTURES } from './helpers.ts';

const fakeHashes = (n: number): string[] => Array.from({ length: n }, (_, i) => (i * 2654435761 + 1).toString(16).padStart(64, 'a').slice(-64));

function presetManifest(preset: string, quant: 'f16' | 'q4_0', shardMiB = 64): Manifest {
  const plan = planModel(normaliseConfig(PRESETS[preset]!.config, preset), quant, shardMiB * 1024 * 1024);
  return manifestOfPlan(plan, preset, fakeHashes(plan.shards.length), { 'tokenizer.json': 'ab'.repeat(32) });
}

const work = mkdtempSync(join(tmpdir(), 'rdrr-fmt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('manifest encoding', () => {
  it('round-trips converted fixtures exactly (compact layout)', async () => {
    const out = join(work, 'ds');
    const r = await convert({ source: join(FIXTURES, 'hf-moe/deepseekv3-tiny'), out, quant: 'q4_0' });
    const bytes = readFileSync(join(out, 'manifest.msgpack'));
    expect(decodeManifest(bytes)).toEqual(r.manifest);
    // 33 shards × 32-byte hashes dominate; the tensor table is derived, not stored.
    expect(bytes.length).toBeLessThan(33 * 32 + 1200);
  });

  it('round-trips real-model shapes, including experts split over several shards', () => {
    for (const [preset, quant, mib] of [['mixtral-8x7b', 'f16', 64], ['qwen3-30b-a3b', 'q4_0', 64], ['deepseek-v3-671b', 'q4_0', 64], ['deepseek-v3-671b', 'f16', 16]] as const) {
      const m = presetManifest(preset, quant, mib);
      const back = decodeManifest(encodeManifest(m));
      expect(back).toEqual(m);
    }
    const split = presetManifest('mixtral-8x7b', 'f16');
    expect(split.experts[0]!.shards.length).toBe(3); // 3 × 117 MB tensors > 64 MiB each
  });

  it('round-trips a separate expert format and a source record, still in the compact layout', () => {
    const plan = planModel(normaliseConfig(PRESETS['qwen3-30b-a3b']!.config, 'q'), 'q8_0', 64 * 1024 * 1024, 'mxfp4');
    const m = manifestOfPlan(plan, 'q', fakeHashes(plan.shards.length), {}, { dtypes: ['BF16', 'MXFP4'], quantization: 'mxfp4' });
    expect(m.expertQuant).toBe('mxfp4');
    expect(m.tensors.find((t) => t.name === 'layers.0.moe.experts.0.gate')!.dtype).toBe('mxfp4');
    expect(m.tensors.find((t) => t.name === 'layers.0.attn.q')!.dtype).toBe('q8_0');
    const bytes = encodeManifest(m);
    expect(decodeManifest(bytes)).toEqual(m);
    expect(bytes.length).toBeLessThan(plan.shards.length * 32 + 4000); // hashes plus the config: no tensor table
    // 4.25 bits per expert weight: 16 code bytes + 1 scale byte per 32 weights
    const e = m.tensors.find((t) => t.name === 'layers.0.moe.experts.0.down')!;
    expect(e.length).toBe((2048 * 768 * 17) / 32);
  });

  it('keeps every rope and window field through encoding; a manifest written before them still decodes', () => {
    const m = presetManifest('mixtral-tiny', 'f16');
    const withAll: Manifest = {
      ...m,
      config: {
        ...m.config,
        slidingWindow: 8,
        layerTypes: ['sliding_attention', 'full_attention', 'sliding_attention'],
        ropeScaling: { type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 0.8, attentionFactor: null, truncate: false, lowFreqFactor: null, highFreqFactor: null },
      },
    };
    expect(decodeManifest(encodeManifest(withAll))).toEqual(withAll);
    // the committed demo model predates layerTypes and the new rope fields
    const old = decodeManifest(readFileSync(new URL('../../../models/tiny-moe-text-q8_0/manifest.msgpack', import.meta.url)));
    expect(old.config).not.toHaveProperty('layerTypes');
    expect(old.config.ropeScaling).toBeNull();
  });

  it('stores full tables when the layout is not the derivable one, and still round-trips', () => {
    const m = presetManifest('qwen3moe-tiny', 'f16');
    const tweaked: Manifest = { ...m, tensors: [...m.tensors].reverse() };
    const compact = encodeManifest(m).length;
    const full = encodeManifest(tweaked);
    expect(full.length).toBeGreaterThan(compact);
    expect(decodeManifest(full)).toEqual(tweaked);
  });

  it('gives one ManifestError naming the source for bytes that are not a manifest', () => {
    expect(() => decodeManifest(new Uint8Array([0xc1, 0x00, 0x12]), 'x/manifest.msgpack')).toThrow(ManifestError);
    expect(() => decodeManifest(new Uint8Array([0xc1]), 'x/manifest.msgpack')).toThrow(/x\/manifest\.msgpack/);
    const m = presetManifest('mixtral-tiny', 'f16');
    const bytes = encodeManifest(m);
    expect(() => decodeManifest(bytes.subarray(0, bytes.length - 40), 'cut')).toThrow(/cut/);
    const bad = encodeManifest({ ...m, tensors: m.tensors.map((t, i) => (i === 0 ? { ...t, shard: 999 } : t)) });
    expect(() => decodeManifest(bad, 'bad')).toThrow(/shard 999/);
  });

  it('falls back to f16 for block formats when a row is not whole 32-weight blocks, and records it', () => {
    expect(storedDtype({ shape: [64, 48], role: 'matrix' }, 'q4_0')).toBe('f16');
    expect(storedDtype({ shape: [48, 64], role: 'matrix' }, 'q8_0')).toBe('q8_0');
    expect(storedDtype({ shape: [48, 64], role: 'router' }, 'q8_0')).toBe('f32');
    const config = normaliseConfig({ ...PRESETS['mixtral-tiny']!.config, hidden_size: 48 }, 'h48');
    const plan = planModel(config, 'q4_0', 1 << 20);
    const m = manifestOfPlan(plan, 'h48', fakeHashes(plan.shards.length), {});
    const t = tensorByName(m);
    expect(t.get('layers.0.attn.q')!.dtype).toBe('f16'); // [48, 48]
    expect(t.get('layers.0.moe.experts.0.down')!.dtype).toBe('q4_0'); // [48, 128]
    expect(t.get('layers.0.moe.experts.0.gate')!.dtype).toBe('f16'); // [128, 48]
    expect(decodeManifest(encodeManifest(m))).toEqual(m);
  });

  it('answers expert and tensor lookups', () => {
    const m = presetManifest('deepseekv3-tiny', 'q4_0');
    const hashes = shardHashesOfExpert(m, 2, 15);
    expect(hashes).toHaveLength(1);
    const t = tensorByName(m).get('layers.2.moe.experts.15.down')!;
    expect(m.shards[t.shard]!.hash).toBe(hashes[0]);
    expect(() => shardHashesOfExpert(m, 0, 0)).toThrow(ManifestError); // layer 0 is dense
  });
});

describe('config normalisation', () => {
  const load = (d: string): unknown => JSON.parse(readFileSync(join(FIXTURES, d, 'config.json'), 'utf8'));

  it('reads the fixtures', () => {
    const mix = normaliseConfig(load('hf-moe/mixtral-tiny'), 'mixtral');
    expect(mix).toMatchObject({ architecture: 'mixtral', headDim: 16, ropeTheta: 1e6, numKvHeads: 2, slidingWindow: null, mla: null });
    expect(mix.moe).toMatchObject({ router: 'softmax_topk', numExperts: 8, topK: 2, normTopkProb: true, expertIntermediateSize: 128, denseLayers: [] });
    const qwen = normaliseConfig(load('hf-moe/qwen3moe-tiny'), 'qwen');
    expect(qwen).toMatchObject({ qkNorm: true, headDim: 16, ropeTheta: 10000, bosTokenId: null, eosTokenIds: [] });
    expect(qwen.moe).toMatchObject({ numExperts: 16, topK: 4, expertIntermediateSize: 32, normTopkProb: true });
    const ds = normaliseConfig(load('hf-moe/deepseekv3-tiny'), 'ds');
    expect(ds.moe).toMatchObject({ router: 'sigmoid_group_limited', numExperts: 16, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5, denseLayers: [0], numSharedExperts: 1, sharedIntermediateSize: 32 });
    expect(ds.mla).toEqual({ qLoraRank: 32, kvLoraRank: 32, qkNopeHeadDim: 16, qkRopeHeadDim: 8, vHeadDim: 16, softmaxScale: 24 ** -0.5 });
    expect(ds.ropeInterleaved).toBe(true);
  });

  it('applies the YaRN mscale to the MLA softmax scale as transformers does', () => {
    const ds = normaliseConfig(PRESETS['deepseek-v3-671b']!.config, 'ds');
    const mscale = 0.1 * 1.0 * Math.log(40) + 1;
    expect(ds.mla!.softmaxScale).toBeCloseTo(192 ** -0.5 * mscale * mscale, 12);
    expect(ds.ropeScaling).toMatchObject({ type: 'yarn', factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1 });
    expect(ds.moe.denseLayers).toEqual([0, 1, 2]);
  });

  it('handles Qwen3 sparse-step and mlp_only_layers, and the rope_theta spellings', () => {
    const base = PRESETS['qwen3moe-tiny']!.config;
    expect(normaliseConfig({ ...base, num_hidden_layers: 6, decoder_sparse_step: 2, mlp_only_layers: [5] }, 'q').moe.denseLayers).toEqual([0, 2, 4, 5]);
    expect(normaliseConfig({ ...base, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } }, 'q').ropeTheta).toBe(5e5);
    expect(normaliseConfig({ ...base, rope_theta: 7e5 }, 'q').ropeTheta).toBe(7e5);
  });

  it('rejects unsupported architectures and missing fields, naming the file', () => {
    expect(() => normaliseConfig({ model_type: 'llama' }, 'a/config.json')).toThrow(/a\/config\.json: unsupported architecture "llama"/);
    expect(() => normaliseConfig({ ...PRESETS['mixtral-tiny']!.config, hidden_size: undefined }, 'b/config.json')).toThrow(ConfigError);
    expect(() => normaliseConfig({ ...PRESETS['mixtral-tiny']!.config, hidden_act: 'gelu' }, 'c')).toThrow(/hidden_act/);
  });
});
