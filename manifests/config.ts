import { ConfigError } from './errors.ts';
import type { Architecture, MlaConfig, ModelConfig, MoeConfig, RopeScaling } from './types.ts';

type Raw = Record<string, unknown>;

const ARCHITECTURES: readonly Architecture[] = ['mixtral', 'qwen3_moe', 'deepseek_v3', 'gpt_oss'];

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
  int(key: string, fallback?: number): number {
    const v = this.raw[key];
    if (v === undefined || v === null) {
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`${this.source}: missing "${key}"`);
    }
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(`${this.source}: "${key}" must be a non-negative integer, got ${JSON.stringify(v)}`);
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

/** Normalises a Hugging Face config.json of a supported MoE architecture into ModelConfig. */
export function normaliseConfig(raw: unknown, source: string): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${source}: not a JSON object`);
  const architecture = architectureOf(raw, source);
  const f = new Fields(raw as Raw, source);
  const act = (raw as Raw)['hidden_act'] ?? 'silu';
  if (act !== 'silu') throw new ConfigError(`${source}: unsupported hidden_act ${JSON.stringify(act)} (only silu)`);
  // gpt-oss always has attention biases (GptOssConfig sets attention_bias = True whatever it is given)
  if (architecture !== 'gpt_oss' && f.bool('attention_bias', false)) throw new ConfigError(`${source}: attention_bias is not supported`);
  const hiddenSize = f.int('hidden_size');
  const numHeads = f.int('num_attention_heads');
  const numLayers = f.int('num_hidden_layers');
  const ropeParams = f.object('rope_parameters');
  const ropeTheta = ropeParams && typeof ropeParams['rope_theta'] === 'number' ? ropeParams['rope_theta'] : f.num('rope_theta', 10000);
  const base = {
    architecture,
    vocabSize: f.int('vocab_size'),
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
  const numExperts = f.has('num_local_experts') ? f.int('num_local_experts') : f.has('num_experts') ? f.int('num_experts') : f.int('n_routed_experts');
  const topK = architecture === 'gpt_oss' ? gptOssTopK(f, source) : f.int('num_experts_per_tok');
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
    case 'gpt_oss':
      return gptOssConfig(f, raw as Raw, base, plainMoe(base.intermediateSize, false, []), source);
  }
}

/** gpt-oss's hub config.json spells the expert count per token `experts_per_token` as well. */
function gptOssTopK(f: Fields, source: string): number {
  const a = f.has('num_experts_per_tok') ? f.int('num_experts_per_tok') : null;
  const b = f.has('experts_per_token') ? f.int('experts_per_token') : null;
  if (a !== null && b !== null && a !== b) throw new ConfigError(`${source}: num_experts_per_tok ${a} and experts_per_token ${b} disagree`);
  const k = a ?? b;
  if (k === null) throw new ConfigError(`${source}: missing "num_experts_per_tok" (or "experts_per_token")`);
  return k;
}

/** transformers' GptOssExperts hard-codes these; a config asking for others would not be honoured. */
const GPT_OSS_SWIGLU = { alpha: 1.702, limit: 7.0 };
/** GptOssConfig's defaults where the file leaves a field out. */
const GPT_OSS_DEFAULT_YARN: Raw = { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096 };

/**
 * gpt-oss (GptOssConfig / modeling_gpt_oss): attention with q/k/v/o biases and per-head sinks,
 * every layer MoE, router `top-k of (x·Wᵀ + b)` then softmax over the k, experts with biases and
 * the clamped SwiGLU. `layer_types` alternates sliding and full attention unless the file says.
 */
function gptOssConfig(f: Fields, raw: Raw, base: Omit<ModelConfig, 'headDim' | 'qkNorm' | 'slidingWindow' | 'moe' | 'mla'>, moe: MoeConfig, source: string): ModelConfig {
  if (f.has('attention_bias') && !f.bool('attention_bias', true)) {
    throw new ConfigError(`${source}: attention_bias false is not what gpt_oss runs (transformers always uses attention biases)`);
  }
  const limit = f.num('swiglu_limit', GPT_OSS_SWIGLU.limit);
  if (limit !== GPT_OSS_SWIGLU.limit) {
    throw new ConfigError(`${source}: swiglu_limit ${limit} is not supported (transformers' GptOssExperts always clamps at ${GPT_OSS_SWIGLU.limit})`);
  }
  const numHeads = base.numHeads;
  // GptOssConfig: head_dim defaults to 64 when absent, hidden_size / heads when given as null
  const headDim = 'head_dim' in raw ? f.int('head_dim', base.hiddenSize / numHeads) : 64;
  const layerTypes = gptOssLayerTypes(raw['layer_types'], base.numLayers, source);
  const sliding = layerTypes.filter((t) => t === 'sliding_attention').length;
  if (sliding > 0) {
    throw new ConfigError(`${source}: layer_types has ${sliding} sliding_attention layers (sliding_window ${f.intOrNull('sliding_window')}); sliding-window attention is not supported for gpt_oss yet`);
  }
  // an explicit null rope_scaling is GptOssConfig(rope_scaling=None): plain RoPE; absent means its YaRN default
  const hasRope = 'rope_scaling' in raw || 'rope_parameters' in raw;
  const ropeScaling = hasRope ? base.ropeScaling : ropeScalingOf(new Fields({ rope_scaling: GPT_OSS_DEFAULT_YARN }, source), source);
  if (ropeScaling) {
    throw new ConfigError(`${source}: rope type "${ropeScaling.type}"${hasRope ? '' : ' (GptOssConfig\'s default when rope_scaling is absent)'} is not supported for gpt_oss yet`);
  }
  return {
    ...base,
    ropeTheta: f.has('rope_theta') || f.has('rope_parameters') ? base.ropeTheta : 150000,
    rmsNormEps: f.num('rms_norm_eps', 1e-5),
    ropeScaling,
    headDim,
    qkNorm: false,
    slidingWindow: null,
    moe: { ...moe, router: 'topk_softmax', expertBias: true, clampedSwiglu: { ...GPT_OSS_SWIGLU } },
    mla: null,
    attentionBias: true,
    attentionSinks: true,
  };
}

/** `layer_types` as given, or GptOssConfig's default: sliding for even layers, full for odd. */
function gptOssLayerTypes(v: unknown, numLayers: number, source: string): string[] {
  if (v === undefined || v === null) return range(numLayers).map((i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
  if (!Array.isArray(v) || v.length !== numLayers || !v.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
    throw new ConfigError(`${source}: "layer_types" must list sliding_attention or full_attention for each of the ${numLayers} layers`);
  }
  return v as string[];
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
