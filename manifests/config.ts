import { ConfigError, ManifestError } from './errors.ts';
import { CONFIG_LIMITS, checkConfigBounds } from './schema.ts';
import type { Architecture, MlaConfig, ModelConfig, MoeConfig, RopeScaling } from './types.ts';

type Raw = Record<string, unknown>;

export const ARCHITECTURES: readonly Architecture[] = ['mixtral', 'qwen3_moe', 'deepseek_v3'];

/** Reads fields of one config.json, each failure naming the file and the field. */
class Fields {
  private readonly raw: Raw;
  private readonly source: string;
  constructor(raw: Raw, source: string) {
    this.raw = raw;
    this.source = source;
  }
  has(key: string): boolean {
    return this.raw[key] !== undefined && this.raw[key] !== null;
  }
  int(key: string, fallback?: number, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${this.source}: missing "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(`${this.source}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
    if (v > max) throw new ConfigError(`${this.source}: "${key}" is ${v}, more than the ${max} this reader accepts`);
    return v;
  }
  intOrNull(key: string): number | null {
    return this.has(key) ? this.int(key) : null;
  }
  num(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${this.source}: missing "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${this.source}: "${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') throw new ConfigError(`${this.source}: "${key}" must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  intList(key: string): number[] {
    const v = this.raw[key];
    if (v === undefined || v === null) return [];
    if (typeof v === 'number') return [this.int(key)];
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x) && x >= 0)) throw new ConfigError(`${this.source}: "${key}" must be a list of integers`);
    return v as number[];
  }
  object(key: string): Raw | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${this.source}: "${key}" must be an object`);
    return v as Raw;
  }
}

/** The architecture a config.json declares (`model_type`), or a ConfigError saying what is supported. */
export function architectureOf(raw: unknown, source: string): Architecture {
  const t = (raw as Raw | null)?.['model_type'];
  if (typeof t !== 'string') throw new ConfigError(`${source}: no "model_type"`);
  if (!(ARCHITECTURES as readonly string[]).includes(t)) {
    throw new ConfigError(`${source}: unsupported architecture "${t}" (supported: ${ARCHITECTURES.join(', ')})`);
  }
  return t as Architecture;
}

/**
 * Normalises a Hugging Face config.json of a supported MoE architecture into ModelConfig, refusing
 * sizes past CONFIG_LIMITS before anything is allocated from them.
 *
 * @example
 * const config = normaliseConfig(JSON.parse(text), 'model/config.json');
 */
export function normaliseConfig(raw: unknown, source: string): ModelConfig {
  const config = normaliseFields(raw, source);
  try {
    checkConfigBounds(config, `${source} (normalised)`);
  } catch (err) {
    if (err instanceof ManifestError) throw new ConfigError(err.message, { cause: err });
    throw err;
  }
  return config;
}

function normaliseFields(raw: unknown, source: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: not a JSON object`);
  const architecture = architectureOf(raw, source);
  const f = new Fields(raw as Raw, source);
  const act = (raw as Raw)['hidden_act'] ?? 'silu';
  if (act !== 'silu') throw new ConfigError(`${source}: unsupported hidden_act ${JSON.stringify(act)} (only silu)`);
  if (f.bool('attention_bias', false)) throw new ConfigError(`${source}: attention_bias is not supported`);
  const L = CONFIG_LIMITS;
  const hiddenSize = f.int('hidden_size', undefined, L.hiddenSize);
  const numHeads = f.int('num_attention_heads', undefined, L.numHeads);
  const numLayers = f.int('num_hidden_layers', undefined, L.numLayers);
  const ropeParams = f.object('rope_parameters');
  const ropeTheta = ropeParams && typeof ropeParams['rope_theta'] === 'number' ? ropeParams['rope_theta'] : f.num('rope_theta', 10000);
  const base = {
    architecture,
    vocabSize: f.int('vocab_size', undefined, L.vocabSize),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads: f.int('num_key_value_heads', numHeads),
    rmsNormEps: f.num('rms_norm_eps', 1e-6),
    ropeTheta,
    ropeInterleaved: false,
    ropeScaling: ropeScalingOf(f, source),
    maxPositionEmbeddings: f.int('max_position_embeddings'),
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: f.intOrNull('bos_token_id'),
    eosTokenIds: f.intList('eos_token_id'),
    intermediateSize: f.int('intermediate_size'),
  };
  const expertsKey = f.has('num_local_experts') ? 'num_local_experts' : f.has('num_experts') ? 'num_experts' : 'n_routed_experts';
  const numExperts = f.int(expertsKey, undefined, L.numExperts);
  const topK = f.int('num_experts_per_tok');
  if (topK > numExperts) throw new ConfigError(`${source}: num_experts_per_tok ${topK} exceeds the ${numExperts} experts`);
  const plainMoe = (expertIntermediateSize: number, normTopkProb: boolean, denseLayers: number[]): MoeConfig => ({
    router: 'softmax_topk',
    numExperts,
    topK,
    expertIntermediateSize,
    normTopkProb,
    denseLayers,
    numSharedExperts: 0,
    sharedIntermediateSize: 0,
    nGroup: 1,
    topkGroup: 1,
    routedScalingFactor: 1,
  });
  switch (architecture) {
    case 'mixtral':
      return {
        ...base,
        headDim: f.int('head_dim', hiddenSize / numHeads),
        qkNorm: false,
        slidingWindow: f.intOrNull('sliding_window'),
        moe: plainMoe(base.intermediateSize, true, []),
        mla: null,
      };
    case 'qwen3_moe': {
      const mlpOnly = new Set(f.intList('mlp_only_layers'));
      const step = f.int('decoder_sparse_step', 1);
      // transformers: a layer is sparse when it is not in mlp_only_layers and (l + 1) % step == 0.
      const dense = range(numLayers).filter((l) => mlpOnly.has(l) || step === 0 || (l + 1) % step !== 0);
      return {
        ...base,
        headDim: f.int('head_dim', hiddenSize / numHeads),
        qkNorm: true,
        slidingWindow: f.bool('use_sliding_window', false) ? f.intOrNull('sliding_window') : null,
        moe: plainMoe(f.int('moe_intermediate_size'), f.bool('norm_topk_prob', false), dense),
        mla: null,
      };
    }
    case 'deepseek_v3': {
      const moeI = f.int('moe_intermediate_size');
      const nShared = f.int('n_shared_experts', 0);
      const nGroup = f.int('n_group', 1);
      const topkGroup = f.int('topk_group', 1);
      if (nGroup === 0 || numExperts % nGroup !== 0) throw new ConfigError(`${source}: n_group ${nGroup} does not divide ${numExperts} experts`);
      if (topkGroup > nGroup) throw new ConfigError(`${source}: topk_group ${topkGroup} exceeds n_group ${nGroup}`);
      const qkNope = f.int('qk_nope_head_dim');
      const qkRope = f.int('qk_rope_head_dim');
      return {
        ...base,
        headDim: qkNope + qkRope,
        ropeInterleaved: f.bool('rope_interleave', true),
        qkNorm: false,
        slidingWindow: null,
        moe: {
          router: 'sigmoid_group_limited',
          numExperts,
          topK,
          expertIntermediateSize: moeI,
          normTopkProb: f.bool('norm_topk_prob', true),
          denseLayers: range(Math.min(numLayers, f.int('first_k_dense_replace', 0))),
          numSharedExperts: nShared,
          sharedIntermediateSize: moeI * nShared,
          nGroup,
          topkGroup,
          routedScalingFactor: f.num('routed_scaling_factor', 1),
        },
        mla: mlaOf(f, base.ropeScaling, qkNope, qkRope),
      };
    }
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function ropeScalingOf(f: Fields, source: string): RopeScaling | null {
  const s = f.object('rope_scaling') ?? f.object('rope_parameters');
  if (!s) return null;
  const type = s['rope_type'] ?? s['type'] ?? 'default';
  if (typeof type !== 'string') throw new ConfigError(`${source}: rope type must be a string`);
  if (type === 'default') return null;
  const sub = new Fields(s, `${source} (rope scaling)`);
  return {
    type,
    factor: sub.num('factor', 1),
    originalMaxPositionEmbeddings: sub.intOrNull('original_max_position_embeddings'),
    betaFast: sub.has('beta_fast') ? sub.num('beta_fast') : null,
    betaSlow: sub.has('beta_slow') ? sub.num('beta_slow') : null,
    mscale: sub.has('mscale') ? sub.num('mscale') : null,
    mscaleAllDim: sub.has('mscale_all_dim') ? sub.num('mscale_all_dim') : null,
  };
}

/** transformers' yarn_get_mscale: 0.1 * m * ln(factor) + 1 when factor > 1. */
function yarnMscale(factor: number, m: number): number {
  return factor <= 1 ? 1 : 0.1 * m * Math.log(factor) + 1;
}

function mlaOf(f: Fields, rope: RopeScaling | null, qkNopeHeadDim: number, qkRopeHeadDim: number): MlaConfig {
  let softmaxScale = (qkNopeHeadDim + qkRopeHeadDim) ** -0.5;
  // DeepseekV3Attention: with rope scaling and a non-zero mscale_all_dim, scale *= mscale².
  if (rope && rope.mscaleAllDim) {
    const m = yarnMscale(rope.factor, rope.mscaleAllDim);
    softmaxScale *= m * m;
  }
  return {
    qLoraRank: f.intOrNull('q_lora_rank'),
    kvLoraRank: f.int('kv_lora_rank'),
    qkNopeHeadDim,
    qkRopeHeadDim,
    vHeadDim: f.int('v_head_dim'),
    softmaxScale,
  };
}
