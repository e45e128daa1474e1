/**
 * The RDRR model format: what a converted model looks like to every other part of Doppler.
 *
 * A model directory holds `manifest.msgpack` (the canonical manifest: its BLAKE3 is the model id),
 * `manifest.json` (a readable view of the same data) and `shards/<blake3-hex>`. Tokenizer files
 * copied from the source are stored as blobs in `shards/` too (named by their hash, listed in
 * `Manifest.tokenizer`), so whatever moves shards moves them.
 *
 * The in-memory Manifest below is the expanded form; the encoded msgpack form may be more compact
 * (for example, tensor entries of experts derived from the config) as long as decode(encode(m))
 * deep-equals m.
 */

/** How a weight matrix is stored (manifests/formats/ holds one record per format). Activations are always f32. */
export type WeightDtype = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'mxfp4';

/**
 * Byte layout of one tensor inside a shard (little-endian throughout). A 2-D tensor has shape
 * [rows, cols] = [out_features, in_features], row-major, exactly as PyTorch's `Linear.weight`.
 * Every format stores a main array padded to 4 bytes, then (block formats) a scales array padded
 * to 4 bytes, so a GPU can bind both aligned. Blocks run along a row (cols must be whole blocks);
 * block b covers weights [32b, 32b + 32) in row-major order.
 * - f32: rows*cols floats.
 * - f16: rows*cols IEEE halves (read on the GPU as packed u32 pairs).
 * - q8_0: 32 bytes of int8 quants per block, then one f16 scale d per block; w = q * d.
 * - q4_0: 16 bytes per block (byte j: weight j in its low nibble, weight j + 16 in its high
 *   nibble), then one f16 scale d per block; w = (nibble - 8) * d, as llama.cpp does.
 * - mxfp4: 16 bytes per block (byte j: weight 2j in its low nibble, weight 2j + 1 in its high
 *   nibble, FP4 e2m1 codes as OpenAI ships gpt-oss), then one e8m0 scale byte e per block;
 *   w = e2m1(code) * 2^(e - 127).
 * Every tensor starts at an offset that is a multiple of TENSOR_ALIGN inside its shard, so a GPU
 * can bind it in place.
 */
export const TENSOR_ALIGN = 256;

export type Architecture = 'mixtral' | 'qwen3_moe' | 'deepseek_v3';

/** Everything a forward pass needs, normalised across architectures. */
export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  /** Per-head dimension of q/k/v for standard attention (MLA uses the `mla` block instead). */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** `rope_scaling` / `rope_parameters` beyond the default RoPE (DeepSeek-V3's YaRN); null for plain RoPE. */
  ropeScaling: RopeScaling | null;
  /** `rope_interleave` (DeepSeek-V3): rotate adjacent pairs instead of halves. */
  ropeInterleaved: boolean;
  /** Per-head RMSNorm on q and k (Qwen3-MoE). */
  qkNorm: boolean;
  maxPositionEmbeddings: number;
  /** Mixtral/Qwen3 `sliding_window` when the config enables it; null means full causal attention. */
  slidingWindow: number | null;
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Dense-MLP intermediate size (dense layers and Mixtral-style experts when moe.expertIntermediate is absent). */
  intermediateSize: number;
  moe: MoeConfig;
  /** Multi-head latent attention (DeepSeek-V3); null for standard attention. */
  mla: MlaConfig | null;
}

/** RoPE frequency scaling as the HF config states it (only the fields YaRN needs are normalised). */
export interface RopeScaling {
  type: string;
  factor: number;
  originalMaxPositionEmbeddings: number | null;
  betaFast: number | null;
  betaSlow: number | null;
  mscale: number | null;
  mscaleAllDim: number | null;
}

export type RouterKind = 'softmax_topk' | 'sigmoid_group_limited';

export interface MoeConfig {
  router: RouterKind;
  numExperts: number;
  topK: number;
  expertIntermediateSize: number;
  /** softmax_topk: renormalise the selected probabilities (Mixtral: always true; Qwen3: norm_topk_prob). */
  normTopkProb: boolean;
  /** Layers whose MLP is dense rather than MoE (DeepSeek first_k_dense_replace, Qwen3 mlp_only_layers / decoder_sparse_step). */
  denseLayers: number[];
  numSharedExperts: number;
  /** Intermediate size of the shared-expert MLP (DeepSeek: moe_intermediate_size * n_shared_experts). */
  sharedIntermediateSize: number;
  nGroup: number;
  topkGroup: number;
  routedScalingFactor: number;
}

export interface MlaConfig {
  qLoraRank: number | null;
  kvLoraRank: number;
  qkNopeHeadDim: number;
  qkRopeHeadDim: number;
  vHeadDim: number;
  /** Softmax scale, including any YaRN mscale adjustment. */
  softmaxScale: number;
}

/**
 * Canonical tensor names (architecture-independent). `{l}` is the layer, `{e}` the expert.
 *   embed, final_norm, lm_head
 *   layers.{l}.attn_norm, layers.{l}.ffn_norm
 *   layers.{l}.attn.{q,k,v,o}              standard attention projections
 *   layers.{l}.attn.{q_norm,k_norm}        Qwen3 per-head norms
 *   layers.{l}.attn.{q_a,q_a_norm,q_b,kv_a,kv_a_norm,kv_b}   MLA (q: when q_lora_rank is null)
 *   layers.{l}.mlp.{gate,up,down}          dense MLP
 *   layers.{l}.moe.router, layers.{l}.moe.router_bias       (router_bias = e_score_correction_bias)
 *   layers.{l}.moe.experts.{e}.{gate,up,down}
 *   layers.{l}.moe.shared.{gate,up,down}
 */
export interface TensorEntry {
  name: string;
  shape: number[];
  dtype: WeightDtype;
  /** Index into Manifest.shards. */
  shard: number;
  offset: number;
  length: number;
}

export interface ShardEntry {
  /** Lowercase hex BLAKE3 of the shard's bytes; the file is shards/<hash>. */
  hash: string;
  size: number;
  /** 'dense' for shared weights, or 'expert' for one routed expert (or part of one). */
  kind: 'dense' | 'expert';
}

export interface ExpertEntry {
  layer: number;
  expert: number;
  /** Indices into Manifest.shards holding this expert's tensors (several when it was split). */
  shards: number[];
  bytes: number;
}

/** How a converted checkpoint stored its weights, for `inspect`. */
export interface SourceInfo {
  /** Storage of the tensors read, sorted: safetensors dtypes (BF16, F8_E4M3, …) or MXFP4 for packed experts. */
  dtypes: string[];
  /** Its own quantization (`quantization_config`), e.g. "fp8 block-scaled 128×128" or "mxfp4"; null when it had none. */
  quantization: string | null;
}

export interface Manifest {
  format: 'rdrr';
  version: 1;
  name: string;
  config: ModelConfig;
  /** The quantization asked for; individual tensors say what they got. */
  quant: WeightDtype;
  /** Routed experts' quantization, when it differs from `quant` (convert --expert-quant). */
  expertQuant?: WeightDtype;
  /** What the converted checkpoint stored (absent for synth models). */
  source?: SourceInfo;
  tensors: TensorEntry[];
  shards: ShardEntry[];
  experts: ExpertEntry[];
  /** Tokenizer files copied from the source: file name (e.g. tokenizer.json) → BLAKE3 hex of its blob in shards/. */
  tokenizer: Record<string, string>;
  totals: { parameters: number; bytes: number; denseBytes: number; expertBytes: number };
}
