/**
 * RoPE and sliding-window keys of config.json in the spellings the hub and transformers 5 write,
 * and the refusals: whatever a config sets that the engine would not honour is a ConfigError
 * naming the key.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointError, ConfigError, layerWindow, MODEL_FILES, normaliseConfig, perLayerWindow } from '../../../manifests/index.ts';
import { convert } from '../../../manifests/node.ts';
import { PRESETS } from '../../../manifests/presets.ts';
import { FIXTURES, readSafetensors, writeSafetensors } from './helpers.ts';

const mixtral = PRESETS['mixtral-tiny']!.config;
const qwen = PRESETS['qwen3moe-tiny']!.config;
const deepseek = PRESETS['deepseekv3-tiny']!.config;
const YARN = { factor: 4, original_max_position_embeddings: 64, beta_fast: 32, beta_slow: 1, mscale: 1, mscale_all_dim: 1 };

describe('rope config', () => {
  it('reads rope_scaling with "type" or "rope_type", and rope_parameters with its rope_theta', () => {
    const hub = normaliseConfig({ ...deepseek, rope_scaling: { type: 'yarn', ...YARN } }, 'hub');
    expect(hub.ropeScaling).toEqual({
      type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 1, attentionFactor: null, truncate: true,
    });
    const v5 = normaliseConfig({ ...deepseek, rope_theta: undefined, rope_parameters: { rope_type: 'yarn', rope_theta: 5e4, ...YARN } }, 'v5');
    expect(v5.ropeScaling).toEqual(hub.ropeScaling);
    expect(v5.ropeTheta).toBe(5e4);
    expect(normaliseConfig({ ...qwen, rope_scaling: { rope_type: 'linear', factor: 2 } }, 'q').ropeScaling).toMatchObject({ type: 'linear', factor: 2 });
    // rope_type wins over type; rope_scaling over rope_parameters (transformers: `rope_scaling or rope_parameters`)
    expect(normaliseConfig({ ...qwen, rope_scaling: { type: 'linear', rope_type: 'dynamic', factor: 2 } }, 'q').ropeScaling!.type).toBe('dynamic');
    expect(normaliseConfig({ ...qwen, rope_scaling: { type: 'linear', factor: 3 }, rope_parameters: { rope_type: 'default' } }, 'q').ropeScaling!.factor).toBe(3);
    expect(normaliseConfig({ ...qwen, rope_scaling: {}, rope_parameters: { rope_type: 'linear', factor: 5 } }, 'q').ropeScaling!.factor).toBe(5);
    expect(normaliseConfig({ ...qwen, rope_scaling: { type: 'default' } }, 'q').ropeScaling).toBeNull();
  });

  it('defaults as transformers 5 does: the architecture default_theta, original context = max_position_embeddings, top-level original first', () => {
    expect(normaliseConfig({ ...mixtral, rope_theta: undefined }, 'm').ropeTheta).toBe(1e6);
    expect(normaliseConfig({ ...qwen, rope_theta: undefined }, 'q').ropeTheta).toBe(1e4);
    expect(normaliseConfig({ ...qwen, rope_scaling: { rope_type: 'yarn', factor: 4 } }, 'q').ropeScaling!.originalMaxPositionEmbeddings).toBe(256);
    expect(normaliseConfig({ ...qwen, original_max_position_embeddings: 100, rope_scaling: { rope_type: 'yarn', factor: 4, original_max_position_embeddings: 32 } }, 'q').ropeScaling!.originalMaxPositionEmbeddings).toBe(100);
    // yarn alone derives a missing factor from the two lengths
    expect(normaliseConfig({ ...qwen, rope_scaling: { rope_type: 'yarn', original_max_position_embeddings: 64 } }, 'q').ropeScaling!.factor).toBe(4);
    expect(normaliseConfig({ ...mixtral, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } }, 'm').ropeScaling)
      .toMatchObject({ type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 32 });
  });

  it('refuses by name what it would not honour', () => {
    expect(() => normaliseConfig({ ...mixtral, rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [2] } }, 'a/config.json'))
      .toThrow(/a\/config\.json \(rope_scaling\): unsupported rope type "longrope"/);
    expect(() => normaliseConfig({ ...mixtral, rope_parameters: { rope_type: 'su', factor: 2 } }, 'b')).toThrow(/unsupported rope type "su"/);
    expect(() => normaliseConfig({ ...mixtral, rope_scaling: { type: 'linear' } }, 'c')).toThrow(/missing "factor"/);
    expect(() => normaliseConfig({ ...mixtral, rope_scaling: { type: 'llama3', factor: 8, high_freq_factor: 4 } }, 'd')).toThrow(/missing "low_freq_factor"/);
    expect(() => normaliseConfig({ ...mixtral, partial_rotary_factor: 0.5 }, 'e')).toThrow(/"partial_rotary_factor" 0.5/);
    expect(() => normaliseConfig({ ...mixtral, rope_parameters: { rope_type: 'default', partial_rotary_factor: 0.25 } }, 'f')).toThrow(/partial_rotary_factor/);
    const perType = { full_attention: { rope_type: 'default' }, sliding_attention: { rope_type: 'linear', factor: 2 } };
    expect(() => normaliseConfig({ ...mixtral, layer_types: ['full_attention', 'full_attention', 'full_attention'], rope_parameters: perType }, 'g')).toThrow(/per layer type/);
    expect(() => normaliseConfig({ ...mixtral, rope_scaling: { type: 'linear', factor: -1 } }, 'h')).toThrow(ConfigError);
  });
});

describe('sliding-window config', () => {
  const windows = (raw: Record<string, unknown>) => {
    const cfg = normaliseConfig(raw, 't');
    return Array.from({ length: cfg.numLayers }, (_, l) => layerWindow(cfg, l));
  };

  it('Mixtral: sliding_window on every layer; null means none', () => {
    expect(windows({ ...mixtral, sliding_window: 8 })).toEqual([8, 8, 8]);
    expect(windows({ ...mixtral, sliding_window: null })).toEqual([null, null, null]);
    expect(normaliseConfig({ ...mixtral, sliding_window: 8 }, 't')).not.toHaveProperty('layerTypes');
  });

  it('Qwen3-MoE: only with use_sliding_window, then on every layer (transformers 5 ignores max_window_layers)', () => {
    expect(windows({ ...qwen, sliding_window: 6 })).toEqual([null, null, null]);
    expect(windows({ ...qwen, use_sliding_window: true, sliding_window: 6, max_window_layers: 1 })).toEqual([6, 6, 6]);
    expect(windows({ ...qwen, use_sliding_window: true, sliding_window: 6, layer_types: ['sliding_attention', 'sliding_attention', 'sliding_attention'] })).toEqual([6, 6, 6]);
  });

  it('refuses a window it cannot honour, naming the key', () => {
    expect(() => normaliseConfig({ ...qwen, use_sliding_window: true, sliding_window: 6, layer_types: ['full_attention', 'sliding_attention', 'sliding_attention'] }, 'q'))
      .toThrow(/"layer_types" marks layers 0 as full_attention, but qwen3_moe applies sliding_window 6 to every layer/);
    expect(() => normaliseConfig({ ...mixtral, layer_types: ['sliding_attention', 'full_attention', 'full_attention'] }, 'm')).toThrow(/"layer_types" marks layers 0/);
    expect(() => normaliseConfig({ ...mixtral, layer_types: ['full_attention'] }, 'm')).toThrow(/"layer_types" has 1 entries for 3 layers/);
    expect(() => normaliseConfig({ ...mixtral, sliding_window: 8, layer_types: ['chunked_attention', 'sliding_attention', 'sliding_attention'] }, 'm')).toThrow(/"chunked_attention" is not supported/);
    expect(() => normaliseConfig({ ...mixtral, sliding_window: 0 }, 'm')).toThrow(/"sliding_window" must be positive/);
    expect(() => normaliseConfig({ ...deepseek, sliding_window: 128 }, 'd')).toThrow(/"sliding_window" is set, but deepseek_v3 has no sliding-window attention/);
    expect(() => normaliseConfig({ ...deepseek, use_sliding_window: true }, 'd')).toThrow(/"use_sliding_window"/);
    expect(() => normaliseConfig({ ...deepseek, layer_types: ['sliding_attention', 'full_attention', 'full_attention'] }, 'd')).toThrow(/"layer_types" has sliding_attention layers/);
    expect(normaliseConfig({ ...deepseek, sliding_window: null, layer_types: ['full_attention', 'full_attention', 'full_attention'] }, 'd').slidingWindow).toBeNull();
  });

  it('per-layer windows from layer_types (gpt-oss: alternating sliding and full layers)', () => {
    const alternating = ['sliding_attention', 'full_attention', 'sliding_attention', 'full_attention'];
    const w = perLayerWindow({ layer_types: alternating }, 'g', 4, 128);
    expect(w).toEqual({ slidingWindow: 128, layerTypes: alternating });
    const cfg = { ...normaliseConfig({ ...mixtral, num_hidden_layers: 4 }, 't'), ...w };
    expect([0, 1, 2, 3].map((l) => layerWindow(cfg, l))).toEqual([128, null, 128, null]);
    expect(perLayerWindow({ layer_types: ['sliding_attention', 'sliding_attention'] }, 'g', 2, 8)).toEqual({ slidingWindow: 8 });
    expect(perLayerWindow({ layer_types: ['full_attention', 'full_attention'] }, 'g', 2, 8)).toEqual({ slidingWindow: null });
    expect(perLayerWindow({}, 'g', 2, 8)).toEqual({ slidingWindow: 8 });
    expect(() => perLayerWindow({ layer_types: alternating }, 'g', 4, null)).toThrow(/no "sliding_window"/);
  });
});

describe('convert', () => {
  const work = mkdtempSync(join(tmpdir(), 'rdrr-positions-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it.each([
    [{ rope_scaling: { type: 'longrope', short_factor: [1], long_factor: [2] } }, /unsupported rope type "longrope"/],
    [{ model_type: 'deepseek_v3', ...PRESETS['deepseekv3-tiny']!.config, sliding_window: 4 }, /"sliding_window" is set, but deepseek_v3/],
  ])('refuses %j before writing anything', async (change, message) => {
    const src = join(FIXTURES, 'hf-moe/mixtral-tiny');
    const dir = mkdtempSync(join(work, 'src-'));
    symlinkSync(join(src, 'model.safetensors'), join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')), ...change }));
    const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
    await expect(convert({ source: dir, out, quant: 'f32' })).rejects.toThrow(ConfigError);
    await expect(convert({ source: dir, out, quant: 'f32' })).rejects.toThrow(message);
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });

  it.each(['model.layers.0.self_attn.sinks', 'model.layers.1.self_attn.q_proj.bias'])('refuses a checkpoint carrying %s, which mixtral has no place for', async (extra) => {
    const src = join(FIXTURES, 'hf-moe/mixtral-tiny');
    const dir = mkdtempSync(join(work, 'src-'));
    symlinkSync(join(src, 'config.json'), join(dir, 'config.json'));
    const tensors = Object.fromEntries([...readSafetensors(join(src, 'model.safetensors'))].map(([n, t]) => [n, { dtype: t.dtype, shape: t.shape, data: t.bytes }]));
    writeSafetensors(join(dir, 'model.safetensors'), { ...tensors, [extra]: { dtype: 'F32', shape: [4], data: new Uint8Array(16) } });
    const out = join(work, `out-${Math.random().toString(36).slice(2)}`);
    await expect(convert({ source: dir, out, quant: 'f32' })).rejects.toThrow(CheckpointError);
    await expect(convert({ source: dir, out, quant: 'f32' })).rejects.toThrow(new RegExp(`tensor ${extra.replaceAll('.', '\\.')} \\((attention sinks|a bias)\\) is not supported for architecture mixtral`));
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });
});
