/**
 * RoPE inverse frequencies and the cos/sin scale ("attention factor") exactly as transformers 5
 * computes them in `modeling_rope_utils.py`, one f32 rounding per torch op, so the rotation angles
 * f32(position) · invFreq match bit for bit or within an ulp.
 *
 * Every type but `dynamic` is fixed at load. `dynamic` (NTK) recomputes the frequencies from
 * seq_len = last position + 1 on each forward pass where it exceeds max_position_embeddings (as
 * transformers' `dynamic_rope_update` does); keys already cached keep the rotation they got.
 * transformers also keeps that state across sequences on one model object, which a fresh KV cache
 * here does not: each sequence is computed as transformers computes it on a freshly loaded model.
 */
import { ConfigError } from './errors.ts';
import { ROPE_TYPES, type ModelConfig, type RopeScaling, type RopeType } from './types.ts';

const f32 = Math.fround;

export interface RopeFrequencies {
  /** ropeDim / 2 inverse frequencies, pair j rotating by position · invFreq[j]. */
  invFreq: Float32Array;
  /** Multiplies cos and sin (YaRN's attention factor; 1 for the other types). */
  scaling: number;
}

export interface Rope {
  /** Rotated dimensions per head (MLA: qk_rope_head_dim). */
  readonly dim: number;
  /** The frequencies of a forward pass whose last position is seqLen - 1. */
  at(seqLen: number): RopeFrequencies;
  /** Longest context the model may run: max_position_embeddings, unbounded for dynamic NTK (its purpose). */
  readonly maxContext: number;
}

/**
 * The model's RoPE, or a ConfigError naming a rope type this build does not compute (a manifest
 * written by another build, say).
 *
 * @example
 * const rope = ropeOf(manifest.config);
 * backend.rope(q, { ...params, ...rope.at(start + m) });
 */
export function ropeOf(cfg: ModelConfig): Rope {
  const dim = cfg.mla ? cfg.mla.qkRopeHeadDim : cfg.headDim;
  const s = cfg.ropeScaling;
  const base = defaultInvFreq(cfg.ropeTheta, dim);
  const fixed = (invFreq: Float32Array, scaling = 1): Rope => ({ dim, maxContext: cfg.maxPositionEmbeddings, at: () => ({ invFreq, scaling }) });
  if (s === null) return fixed(base);
  const type = knownType(s);
  switch (type) {
    case 'linear':
      return fixed(base.map((v) => f32(v / f32(s.factor))));
    case 'llama3':
      return fixed(llama3InvFreq(base, s, cfg));
    case 'yarn':
      return fixed(yarnInvFreq(cfg.ropeTheta, dim, s, cfg), yarnAttentionFactor(s));
    case 'dynamic':
      return dynamicRope(cfg, dim, s.factor, base);
  }
}

function knownType(s: RopeScaling): RopeType {
  if (!(ROPE_TYPES as readonly string[]).includes(s.type)) {
    throw new ConfigError(`model config: unsupported rope type "${s.type}" (supported: default, ${ROPE_TYPES.join(', ')})`);
  }
  return s.type as RopeType;
}

/** 1 / base^(2j/dim), each step in f32 as torch computes it. */
function defaultInvFreq(base: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let j = 0; j < out.length; j++) out[j] = 1 / f32(f32(base) ** f32((2 * j) / dim));
  return out;
}

function dynamicRope(cfg: ModelConfig, dim: number, factor: number, initial: Float32Array): Rope {
  const mpe = cfg.maxPositionEmbeddings;
  // at load (seq_len None) transformers computes the base in Python floats: it equals theta
  const atLoad = cfg.ropeTheta * ((factor * mpe) / mpe - (factor - 1)) ** (dim / (dim - 2));
  const first = atLoad === cfg.ropeTheta ? initial : defaultInvFreq(atLoad, dim);
  let last: { seqLen: number; freq: RopeFrequencies } | null = null;
  return {
    dim,
    maxContext: Infinity,
    at(seqLen) {
      if (seqLen <= mpe) return { invFreq: first, scaling: 1 };
      if (last?.seqLen !== seqLen) {
        // seq_len is a tensor in the forward-time update, so every step is f32
        const grown = f32(f32(f32(f32(f32(factor) * seqLen) / mpe) - f32(factor - 1)) ** f32(dim / (dim - 2)));
        last = { seqLen, freq: { invFreq: defaultInvFreq(f32(f32(cfg.ropeTheta) * grown), dim), scaling: 1 } };
      }
      return last.freq;
    },
  };
}

/** transformers' get_mscale: 0.1 · m · ln(scale) + 1 when scale > 1. */
export function yarnMscale(scale: number, m = 1): number {
  return scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1;
}

function yarnAttentionFactor(s: RopeScaling): number {
  if (s.attentionFactor !== undefined && s.attentionFactor !== null) return s.attentionFactor;
  // Python truthiness: 0 and None both mean "not given"
  if (s.mscale && s.mscaleAllDim) return yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim);
  return yarnMscale(s.factor);
}

function yarnInvFreq(base: number, dim: number, s: RopeScaling, cfg: ModelConfig): Float32Array {
  const originalMax = s.originalMaxPositionEmbeddings ?? cfg.maxPositionEmbeddings;
  const betaFast = s.betaFast || 32;
  const betaSlow = s.betaSlow || 1;
  const correctionDim = (rotations: number) => (dim * Math.log(originalMax / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (s.truncate ?? true) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const out = new Float32Array(dim / 2);
  for (let j = 0; j < out.length; j++) {
    const ramp = Math.min(1, Math.max(0, f32(f32(j - f32(low)) / f32(high - low))));
    const extrapolationFactor = f32(1 - ramp);
    const posFreq = f32(f32(base) ** f32((2 * j) / dim));
    const extrapolation = f32(1 / posFreq);
    const interpolation = f32(1 / f32(f32(s.factor) * posFreq));
    out[j] = f32(f32(interpolation * f32(1 - extrapolationFactor)) + f32(extrapolation * extrapolationFactor));
  }
  return out;
}

/**
 * Llama 3.1: long wavelengths divided by factor, short ones kept, the band between blended.
 * `2π / invFreq` is torch's reciprocal-then-multiply, and comparisons run in f32.
 */
function llama3InvFreq(base: Float32Array, s: RopeScaling, cfg: ModelConfig): Float32Array {
  const oldContext = s.originalMaxPositionEmbeddings ?? cfg.maxPositionEmbeddings;
  const low = s.lowFreqFactor!;
  const high = s.highFreqFactor!;
  const lowWavelen = f32(oldContext / low);
  const highWavelen = f32(oldContext / high);
  const factor = f32(s.factor);
  return base.map((inv) => {
    const wavelen = f32(f32(1 / inv) * f32(2 * Math.PI));
    const scaled = wavelen > lowWavelen ? f32(inv / factor) : inv;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const smooth = f32(f32(f32(f32(1 / wavelen) * oldContext) - f32(low)) / f32(high - low));
    return f32(f32(f32(f32(1 - smooth) * scaled) / factor) + f32(smooth * scaled));
  });
}
