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
export type WeightDtype = 'f32' | 'f16' | 'q8_0' | 'q4_0' | 'mxfp4' | 'q3_g64' | 'q2_g32';

/**
 * Byte layout of one tensor inside a shard (little-endian throughout). A 2-D tensor has shape
 * [rows, cols] = [out_features, in_features], row-major, exactly as PyTorch's `Linear.weight`.
 * Every format stores a main array padded to 4 bytes, then (block formats) a scales array padded
 * to 4 bytes, so a GPU can bind both aligned. Blocks run along a row (cols must be whole blocks);
 * block b covers weights [Gb, Gb + G) (G = 32, or the format's group) in row-major order.
 * - f32: rows*cols floats.
 * - f16: rows*cols IEEE halves (read on the GPU as packed u32 pairs).
 * - q8_0: 32 bytes of int8 quants per block, then one f16 scale d per block; w = q * d.
 * - q4_0: 16 bytes per block (byte j: weight j in its low nibble, weight j + 16 in its high
 *   nibble), then one f16 scale d per block; w = (nibble - 8) * d, as llama.cpp does.
 * - mxfp4: 16 bytes per block (byte j: weight 2j in its low nibble, weight 2j + 1 in its high
 *   nibble, FP4 e2m1 codes as OpenAI ships gpt-oss), then one e8m0 scale byte e per block;
 *   w = e2m1(code) * 2^(e - 127).
 * - q3_g64, q2_g32: blocks of 64 / 32 weights: the codes' low 2 bits, 16 per word, then (3-bit)
 *   their high bits, 32 per word; then 3 bytes per block: f16 d, byte zb; w = (q - zb/2^(8-bits))·d
 *   (manifests/formats/group.ts).
 * Every tensor starts at an offset that is a multiple of TENSOR_ALIGN inside its shard, so a GPU
 * can bind it in place.
 */
export const TENSOR_ALIGN = 256;

export type Architecture = 'mixtral' | 'qwen3_moe' | 'deepseek_v3' | 'gpt_oss';

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
  /**
   * `rope_scaling` / `rope_parameters` of a rope type other than `default`; null for plain RoPE.
   * `manifests/rope.ts` turns it into the frequencies transformers computes.
   */
  ropeScaling: RopeScaling | null;
  /** `rope_interleave` (DeepSeek-V3): rotate adjacent pairs instead of halves. */
  ropeInterleaved: boolean;
  /** Per-head RMSNorm on q and k (Qwen3-MoE). */
  qkNorm: boolean;
  maxPositionEmbeddings: number;
  /**
   * `sliding_window` when the config enables it: a token attends to itself and the window - 1
   * tokens before it (transformers' `kv_idx > q_idx - sliding_window`). null: full causal attention.
   */
  slidingWindow: number | null;
  /**
   * Which layers use the window (transformers' `layer_types`), present only when some layer does
   * not: absent, every layer uses `slidingWindow` (Mixtral, Qwen3-MoE, manifests written before
   * this field). Read it through `layerWindow`.
   */
  layerTypes?: LayerType[];
  tieWordEmbeddings: boolean;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** Dense-MLP intermediate size (dense layers and Mixtral-style experts when moe.expertIntermediate is absent). */
  intermediateSize: number;
  moe: MoeConfig;
  /** Multi-head latent attention (DeepSeek-V3); null for standard attention. */
  mla: MlaConfig | null;
  /**
   * gpt-oss: q/k/v/o carry biases (`layers.{l}.attn.{q,k,v,o}_bias`). Set only where true, so the
   * manifests of other architectures stay byte-identical.
   */
  attentionBias?: boolean;
  /** gpt-oss: a learned logit per head (`layers.{l}.attn.sinks`) joins every softmax denominator. */
  attentionSinks?: boolean;
}

/** transformers' `layer_types` values Doppler runs. */
export const LAYER_TYPES = ['full_attention', 'sliding_attention'] as const;
export type LayerType = (typeof LAYER_TYPES)[number];

/** The rope types transformers 5 computes and Doppler reproduces (`default` is `ropeScaling: null`). */
export const ROPE_TYPES = ['linear', 'dynamic', 'yarn', 'llama3'] as const;
export type RopeType = (typeof ROPE_TYPES)[number];

/**
 * RoPE frequency scaling as the HF config states it (either spelling: `rope_scaling` with `type` or
 * `rope_type`, or transformers 5's `rope_parameters`). Fields a type does not use are null.
 * `type` is a string, not RopeType, because a manifest may name a type this build does not know:
 * loading such a manifest is refused by name.
 */
export interface RopeScaling {
  type: string;
  factor: number;
  /** yarn, llama3: the pre-training context (defaults to max_position_embeddings, as transformers does). */
  originalMaxPositionEmbeddings: number | null;
  betaFast: number | null;
  betaSlow: number | null;
  mscale: number | null;
  mscaleAllDim: number | null;
  /** yarn: `attention_factor` as stated; null derives it from factor and the mscales. Absent in older manifests. */
  attentionFactor?: number | null;
  /** yarn: `truncate` (floor/ceil the correction range); absent means true, transformers' default. */
  truncate?: boolean;
  /** llama3: `low_freq_factor` and `high_freq_factor`. */
  lowFreqFactor?: number | null;
  highFreqFactor?: number | null;
}

/**
 * softmax_topk: softmax over all experts, then top-k (Mixtral, Qwen3-MoE); sigmoid_group_limited:
 * DeepSeek-V3; topk_softmax: top-k of the (biased) logits, softmax over the chosen k (gpt-oss).
 */
export const ROUTER_KINDS = ['softmax_topk', 'sigmoid_group_limited', 'topk_softmax'] as const;
export type RouterKind = (typeof ROUTER_KINDS)[number];

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
  /** gpt-oss: every routed expert carries biases (`.gate_bias`, `.up_bias`, `.down_bias`). Absent means none. */
  expertBias?: boolean;
  /**
   * gpt-oss's clamped SwiGLU: gate = min(gate, limit), up = clamp(up, ±limit),
   * act = (up + 1) · gate · σ(alpha · gate). Absent means silu(gate) · up.
   */
  clampedSwiglu?: { alpha: number; limit: number };
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
 *   layers.{l}.attn.{q,k,v,o}_bias, layers.{l}.attn.sinks   gpt-oss attention biases and sink logits
 *   layers.{l}.moe.router, layers.{l}.moe.router_bias       (router_bias: DeepSeek's e_score_correction_bias,
 *                                                            gpt-oss's router Linear bias; routing says how it applies)
 *   layers.{l}.moe.experts.{e}.{gate,up,down}
 *   layers.{l}.moe.experts.{e}.{gate,up,down}_bias           gpt-oss expert biases (in the expert's shard)
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
  /**
   * Two-level manifests (large models): per MoE layer in layer order, the BLAKE3 of the blob in
   * shards/ that lists that layer's expert shard hashes. The encoded top level then carries these
   * instead of the expert hashes; decoding needs the blobs (`loadManifest`). Absent: single-level.
   */
  layerLists?: string[];
}
