/**
 * RoPE frequencies of every rope type against the formulas of modeling_rope_utils.py evaluated
 * here in f64 (the code under test rounds each step to f32 as torch does, so they agree to f32
 * precision), plus values worked out by hand where the ramp/band logic decides.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, normaliseConfig, ropeOf, type ModelConfig, type RopeScaling } from '../../../manifests/index.ts';
import { PRESETS } from '../../../manifests/presets.ts';

const THETA = 10000;

/** A Mixtral-tiny config with head_dim 16 and the given rope scaling. */
function config(scaling: RopeScaling | null, maxPositionEmbeddings = 64): ModelConfig {
  return { ...normaliseConfig({ ...PRESETS['mixtral-tiny']!.config, head_dim: 16, rope_theta: THETA, max_position_embeddings: maxPositionEmbeddings }, 'test'), ropeScaling: scaling };
}

const plain = (dim: number, theta = THETA) => Array.from({ length: dim / 2 }, (_, j) => 1 / theta ** ((2 * j) / dim));

function expectFreqs(got: Float32Array, want: number[]): void {
  expect(got).toHaveLength(want.length);
  want.forEach((w, j) => expect(Math.abs(got[j]! - w), `pair ${j}: ${got[j]} vs ${w}`).toBeLessThanOrEqual(2e-7 * Math.abs(w)));
}

const scaling = (s: Partial<RopeScaling> & { type: string; factor: number }): RopeScaling => ({
  originalMaxPositionEmbeddings: null, betaFast: null, betaSlow: null, mscale: null, mscaleAllDim: null, ...s,
});

describe('rope frequencies', () => {
  it('default: 1 / theta^(2j/dim), cos/sin unscaled, context capped at max_position_embeddings', () => {
    const rope = ropeOf(config(null));
    expectFreqs(rope.at(1).invFreq, plain(16));
    expect(rope.at(1).scaling).toBe(1);
    expect(rope.maxContext).toBe(64);
  });

  it('linear: every frequency divided by factor', () => {
    const rope = ropeOf(config(scaling({ type: 'linear', factor: 2 })));
    expectFreqs(rope.at(10).invFreq, plain(16).map((v) => v / 2));
  });

  it('dynamic NTK: plain up to max_position_embeddings, then a larger base from seq_len each pass, unbounded context', () => {
    const rope = ropeOf(config(scaling({ type: 'dynamic', factor: 2 }), 16));
    expectFreqs(rope.at(12).invFreq, plain(16));
    expectFreqs(rope.at(16).invFreq, plain(16));
    for (const seqLen of [17, 28]) {
      const base = THETA * ((2 * seqLen) / 16 - 1) ** (16 / 14);
      expectFreqs(rope.at(seqLen).invFreq, plain(16, base));
    }
    expect(rope.at(28).invFreq[1]).toBeLessThan(rope.at(17).invFreq[1]!);
    expect(rope.maxContext).toBe(Infinity);
  });

  it('yarn: extrapolated high frequencies, interpolated low ones, the ramp between; attention factor from factor and mscales', () => {
    // dim 16, original context 64, beta 32/1: low = floor(16 ln(64 / 64π) / 2 ln 1e4) = floor(-0.99) → 0
    // (clamped), high = ceil(16 ln(64 / 2π) / 2 ln 1e4) = ceil(2.02) = 3: ramp j/3 over pairs 0..3
    const s = scaling({ type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64, betaFast: 32, betaSlow: 1 });
    const rope = ropeOf(config(s, 256));
    const ramp = (j: number) => Math.min(1, j / 3);
    expectFreqs(rope.at(1).invFreq, plain(16).map((v, j) => (v / 4) * ramp(j) + v * (1 - ramp(j))));
    expect(rope.at(1).scaling).toBeCloseTo(0.1 * Math.log(4) + 1, 12);
    // DeepSeek-V3's mscale = mscale_all_dim: the cos/sin factor cancels (its softmax scale takes mscale²)
    expect(ropeOf(config({ ...s, mscale: 1, mscaleAllDim: 1 })).at(1).scaling).toBe(1);
    expect(ropeOf(config({ ...s, mscale: 2, mscaleAllDim: 1 })).at(1).scaling).toBeCloseTo((0.2 * Math.log(4) + 1) / (0.1 * Math.log(4) + 1), 12);
    expect(ropeOf(config({ ...s, attentionFactor: 1.5 })).at(1).scaling).toBe(1.5);
    // truncate false keeps the fractional correction range: low 0 (clamped), high 2.0158
    const high = (16 * Math.log(64 / (2 * Math.PI))) / (2 * Math.log(THETA));
    const soft = ropeOf(config({ ...s, truncate: false })).at(1).invFreq;
    expectFreqs(soft, plain(16).map((v, j) => {
      const r = Math.min(1, j / high);
      return (v / 4) * r + v * (1 - r);
    }));
    // beta_fast / beta_slow default to 32 / 1 (a manifest from before these fields existed reads the same)
    expectFreqs(ropeOf(config(scaling({ type: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64 }))).at(1).invFreq, Array.from(rope.at(1).invFreq));
  });

  it('llama3: short wavelengths kept, long ones divided by factor, the band between blended', () => {
    // factor 8, low 1, high 4, original context 32: wavelength 2π·1e4^(j/8) is kept below 8,
    // divided by 8 above 32, and blended with s = (32 / wavelength - 1) / 3 between
    const rope = ropeOf(config(scaling({ type: 'llama3', factor: 8, originalMaxPositionEmbeddings: 32, lowFreqFactor: 1, highFreqFactor: 4 })));
    const want = plain(16).map((v) => {
      const wavelen = (2 * Math.PI) / v;
      if (wavelen < 8) return v;
      if (wavelen > 32) return v / 8;
      const s = (32 / wavelen - 1) / 3;
      return (1 - s) * (v / 8) + s * v;
    });
    expect(want[0]).toBe(plain(16)[0]);
    expect(want[1]).not.toBe(plain(16)[1]);
    expect(want[2]).toBe(plain(16)[2]! / 8);
    expectFreqs(rope.at(1).invFreq, want);
  });

  it('MLA rotates qk_rope_head_dim dimensions', () => {
    const ds = normaliseConfig(PRESETS['deepseek-v3-671b']!.config, 'ds');
    expect(ropeOf(ds).dim).toBe(64);
    expect(ropeOf(ds).at(1).invFreq).toHaveLength(32);
  });

  it('refuses a rope type it cannot compute, by name (a manifest from another build)', () => {
    expect(() => ropeOf(config(scaling({ type: 'longrope', factor: 2 })))).toThrow(ConfigError);
    expect(() => ropeOf(config(scaling({ type: 'longrope', factor: 2 })))).toThrow(/unsupported rope type "longrope"/);
  });
});
