import { ConfigError, ManifestError } from './errors.ts';
import { yarnMscale } from './rope.ts';
import { CONFIG_LIMITS, checkConfigBounds } from './schema.ts';
import { ROPE_TYPES, type Architecture, type LayerType, type MlaConfig, type ModelConfig, type MoeConfig, type RopeScaling } from './types.ts';

type Raw = Record<string, unknown>;

export const ARCHITECTURES: readonly Architecture[] = ['mixtral', 'qwen3_moe', 'deepseek_v3', 'gpt_oss'];

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
  /** A positive integer (a window or a length of 0 would mean nothing can be attended to). */
  positive(key: string): number {
    const v = this.int(key);
    if (v === 0) throw new ConfigError(`${this.source}: "${key}" must be positive, got 0`);
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
  strings(key: string): string[] | null {
    const v = this.raw[key];
    if (v === undefined || v === null) return null;
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) throw new ConfigError(`${this.source}: "${key}" must be a list of strings`);
    return v as string[];
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
  // gpt-oss always has attention biases (GptOssConfig sets attention_bias = True whatever it is given)
  if (architecture !== 'gpt_oss' && f.bool('attention_bias', false)) throw new ConfigError(`${source}: attention_bias is not supported`);
  const L = CONFIG_LIMITS;
  const hiddenSize = f.int('hidden_size', undefined, L.hiddenSize);
  const numHeads = f.int('num_attention_heads', undefined, L.numHeads);
  const numLayers = f.int('num_hidden_layers', undefined, L.numLayers);
  const maxPositionEmbeddings = f.int('max_position_embeddings', undefined, L.maxPositionEmbeddings);
  const rope = ropeOf(f, source, architecture, maxPositionEmbeddings);
  const base = {
    architecture,
    vocabSize: f.int('vocab_size', undefined, L.vocabSize),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads: f.int('num_key_value_heads', numHeads),
    rmsNormEps: f.num('rms_norm_eps', 1e-6),
    ropeTheta: rope.theta,
    ropeInterleaved: false,
    ropeScaling: rope.scaling,
    maxPositionEmbeddings,
    tieWordEmbeddings: f.bool('tie_word_embeddings', false),
    bosTokenId: f.intOrNull('bos_token_id'),
    eosTokenIds: f.intList('eos_token_id'),
    intermediateSize: f.int('intermediate_size'),
  };
  const expertsKey = f.has('num_local_experts') ? 'num_local_experts' : f.has('num_experts') ? 'num_experts' : 'n_routed_experts';
  const numExperts = f.int(expertsKey, undefined, L.numExperts);
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
        ...uniformWindow(f, source, architecture, numLayers, f.has('sliding_window') ? f.positive('sliding_window') : null),
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
        ...uniformWindow(f, source, architecture, numLayers, f.bool('use_sliding_window', false) && f.has('sliding_window') ? f.positive('sliding_window') : null),
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
        ...noWindow(f, source, architecture),
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
 * the clamped SwiGLU; YaRN and alternating sliding/full layers by default.
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
  // GptOssConfig: layer_types alternates sliding and full attention unless given; sliding_window defaults to 128
  const layerTypes = raw['layer_types'] ?? range(base.numLayers).map((i) => ((i + 1) % 2 ? 'sliding_attention' : 'full_attention'));
  const window = f.has('sliding_window') ? f.positive('sliding_window') : 128;
  // an explicit null rope_scaling is GptOssConfig(rope_scaling=None): plain RoPE; absent means its YaRN default
  const hasRope = 'rope_scaling' in raw || 'rope_parameters' in raw;
  const rope = hasRope ? { scaling: base.ropeScaling } : ropeOf(new Fields({ ...raw, rope_scaling: GPT_OSS_DEFAULT_YARN }, source), source, 'gpt_oss', base.maxPositionEmbeddings);
  return {
    ...base,
    rmsNormEps: f.num('rms_norm_eps', 1e-5),
    ropeScaling: rope.scaling,
    headDim,
    qkNorm: false,
    ...perLayerWindow({ ...raw, layer_types: layerTypes }, source, base.numLayers, window),
    moe: { ...moe, router: 'topk_softmax', expertBias: true, clampedSwiglu: { ...GPT_OSS_SWIGLU } },
    mla: null,
    attentionBias: true,
    attentionSinks: true,
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** rope_theta when a config states none: the architecture's `default_theta` in transformers 5. */
const DEFAULT_THETA: Record<Architecture, number> = { mixtral: 1e6, qwen3_moe: 1e4, deepseek_v3: 1e4, gpt_oss: 150000 };

/**
 * The RoPE dictionary as transformers 5 standardises it: `rope_scaling` (the hub's spelling) wins
 * over `rope_parameters` unless empty; `rope_type` over `type`; rope_theta from the dictionary,
 * else the top level, else the architecture's default.
 */
function ropeOf(f: Fields, source: string, arch: Architecture, maxPositionEmbeddings: number): { theta: number; scaling: RopeScaling | null } {
  const scaling = f.object('rope_scaling');
  const dict = scaling && Object.keys(scaling).length > 0 ? scaling : f.object('rope_parameters') ?? {};
  const key = scaling && Object.keys(scaling).length > 0 ? 'rope_scaling' : 'rope_parameters';
  const where = `${source} (${key})`;
  // nested dictionaries are per-layer-type parameters (Gemma 3 style)
  const nested = Object.keys(dict).filter((k) => typeof dict[k] === 'object' && dict[k] !== null && !Array.isArray(dict[k]));
  if (nested.length > 0) throw new ConfigError(`${where}: RoPE parameters per layer type (${nested.join(', ')}) are not supported`);
  const d = new Fields(dict, where);
  const theta = d.has('rope_theta') ? d.num('rope_theta') : f.num('rope_theta', DEFAULT_THETA[arch]);
  for (const [fields, name] of [[d, key], [f, 'the config']] as const) {
    if (fields.has('partial_rotary_factor') && fields.num('partial_rotary_factor') !== 1) {
      throw new ConfigError(`${source}: "partial_rotary_factor" ${fields.num('partial_rotary_factor')} in ${name} is not supported (${arch} rotates whole heads)`);
    }
  }
  const type = dict['rope_type'] ?? dict['type'] ?? 'default';
  if (typeof type !== 'string') throw new ConfigError(`${where}: "rope_type" must be a string, got ${JSON.stringify(type)}`);
  if (type === 'default') return { theta, scaling: null };
  if (!(ROPE_TYPES as readonly string[]).includes(type)) {
    throw new ConfigError(`${where}: unsupported rope type "${type}" (supported: default, ${ROPE_TYPES.join(', ')})`);
  }
  // transformers moves the pre-training length into the dictionary, a top-level value first
  const originalMax = type === 'yarn' || type === 'llama3'
    ? f.has('original_max_position_embeddings') ? f.positive('original_max_position_embeddings') : d.has('original_max_position_embeddings') ? d.positive('original_max_position_embeddings') : maxPositionEmbeddings
    : null;
  // yarn alone derives a missing factor (max_position_embeddings / original); the others require it
  const factor = type === 'yarn' && !d.has('factor') ? maxPositionEmbeddings / originalMax! : d.num('factor');
  if (!(factor > 0)) throw new ConfigError(`${where}: "factor" must be positive, got ${factor}`);
  const opt = (k: string): number | null => (d.has(k) ? d.num(k) : null);
  // mscale_all_dim is kept for every type: DeepSeek-V3 folds it into its softmax scale whatever the type
  const common = { type, factor, originalMaxPositionEmbeddings: originalMax, betaFast: null, betaSlow: null, mscale: null, mscaleAllDim: opt('mscale_all_dim') };
  switch (type) {
    case 'yarn':
      return {
        theta,
        scaling: { ...common, betaFast: opt('beta_fast'), betaSlow: opt('beta_slow'), mscale: opt('mscale'), attentionFactor: opt('attention_factor'), truncate: d.bool('truncate', true) },
      };
    case 'llama3': {
      const low = d.num('low_freq_factor');
      const high = d.num('high_freq_factor');
      if (!(low > 0 && high > low)) throw new ConfigError(`${where}: llama3 needs 0 < low_freq_factor < high_freq_factor, got ${low} and ${high}`);
      return { theta, scaling: { ...common, lowFreqFactor: low, highFreqFactor: high } };
    }
    default:
      return { theta, scaling: common };
  }
}

/**
 * Mixtral and Qwen3-MoE in transformers 5 apply `sliding_window` to every layer (one mask for
 * the whole model; Qwen3-MoE ignores `max_window_layers`). A `layer_types` that says otherwise
 * would describe a model transformers does not run, so it is refused rather than guessed.
 */
function uniformWindow(f: Fields, source: string, arch: Architecture, numLayers: number, window: number | null): { slidingWindow: number | null } {
  const types = layerTypesOf(f, source, numLayers);
  const want: LayerType = window === null ? 'full_attention' : 'sliding_attention';
  const odd = types ? types.flatMap((t, l) => (t === want ? [] : [l])) : [];
  if (odd.length > 0) {
    throw new ConfigError(`${source}: "layer_types" marks layers ${odd.join(', ')} as ${types![odd[0]!]}, but ${arch} ` +
      (window === null ? 'has no sliding window enabled' : `applies sliding_window ${window} to every layer`));
  }
  return { slidingWindow: window };
}

/** DeepSeek-V3 attends to the whole context: any window key is refused by name. */
function noWindow(f: Fields, source: string, arch: Architecture): { slidingWindow: null } {
  if (f.has('sliding_window')) throw new ConfigError(`${source}: "sliding_window" is set, but ${arch} has no sliding-window attention`);
  if (f.bool('use_sliding_window', false)) throw new ConfigError(`${source}: "use_sliding_window" is set, but ${arch} has no sliding-window attention`);
  if (layerTypesOf(f, source, Infinity)?.includes('sliding_attention')) throw new ConfigError(`${source}: "layer_types" has sliding_attention layers, but ${arch} has no sliding-window attention`);
  return { slidingWindow: null };
}

/** transformers' `layer_types`: one of 'full_attention' / 'sliding_attention' per layer; null when absent. */
function layerTypesOf(f: Fields, source: string, numLayers: number): LayerType[] | null {
  const types = f.strings('layer_types');
  if (!types) return null;
  if (Number.isFinite(numLayers) && types.length !== numLayers) throw new ConfigError(`${source}: "layer_types" has ${types.length} entries for ${numLayers} layers`);
  const bad = types.find((t) => t !== 'full_attention' && t !== 'sliding_attention');
  if (bad !== undefined) throw new ConfigError(`${source}: "layer_types" entry "${bad}" is not supported (only full_attention and sliding_attention)`);
  return types as LayerType[];
}

/**
 * Per-layer windows from `layer_types` (gpt-oss style: alternating sliding and full layers). The
 * result omits `layerTypes` when every layer is sliding, so such configs encode as before.
 */
export function perLayerWindow(raw: Record<string, unknown>, source: string, numLayers: number, window: number | null): Pick<ModelConfig, 'slidingWindow' | 'layerTypes'> {
  const types = layerTypesOf(new Fields(raw, source), source, numLayers);
  if (!types || types.every((t) => t === 'full_attention')) return { slidingWindow: types ? null : window };
  if (window === null) throw new ConfigError(`${source}: "layer_types" has sliding_attention layers but no "sliding_window"`);
  return types.every((t) => t === 'sliding_attention') ? { slidingWindow: window } : { slidingWindow: window, layerTypes: types };
}

/** The window layer `l` attends over (null: the whole causal context). */
export function layerWindow(cfg: ModelConfig, l: number): number | null {
  if (cfg.slidingWindow === null) return null;
  return cfg.layerTypes?.[l] === 'full_attention' ? null : cfg.slidingWindow;
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
