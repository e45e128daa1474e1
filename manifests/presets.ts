import type { Architecture } from './types.ts';

/** config.json of real models (shapes only matter), plus tiny ones of each architecture for tests. */
export const PRESETS: Record<string, { arch: Architecture; config: Record<string, unknown> }> = {
  'mixtral-8x7b': {
    arch: 'mixtral',
    config: {
      model_type: 'mixtral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336, num_hidden_layers: 32,
      num_attention_heads: 32, num_key_value_heads: 8, num_local_experts: 8, num_experts_per_tok: 2, rope_theta: 1e6,
      max_position_embeddings: 32768, rms_norm_eps: 1e-5, sliding_window: null, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
    },
  },
  'qwen3-30b-a3b': {
    arch: 'qwen3_moe',
    config: {
      model_type: 'qwen3_moe', vocab_size: 151936, hidden_size: 2048, intermediate_size: 6144, moe_intermediate_size: 768,
      num_hidden_layers: 48, num_attention_heads: 32, num_key_value_heads: 4, head_dim: 128, num_experts: 128, num_experts_per_tok: 8,
      norm_topk_prob: true, decoder_sparse_step: 1, mlp_only_layers: [], rope_theta: 1e6, max_position_embeddings: 40960,
      rms_norm_eps: 1e-6, tie_word_embeddings: false, bos_token_id: 151643, eos_token_id: 151645,
    },
  },
  'deepseek-v3-671b': {
    arch: 'deepseek_v3',
    config: {
      model_type: 'deepseek_v3', vocab_size: 129280, hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048,
      num_hidden_layers: 61, num_attention_heads: 128, num_key_value_heads: 128, n_routed_experts: 256, n_shared_experts: 1,
      num_experts_per_tok: 8, n_group: 8, topk_group: 4, first_k_dense_replace: 3, routed_scaling_factor: 2.5, norm_topk_prob: true,
      q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128, rope_theta: 10000,
      rope_interleave: true,
      rope_scaling: { type: 'yarn', factor: 40, original_max_position_embeddings: 4096, beta_fast: 32, beta_slow: 1, mscale: 1.0, mscale_all_dim: 1.0 },
      max_position_embeddings: 163840, rms_norm_eps: 1e-6, tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 1,
    },
  },
  // openai/gpt-oss-20b and -120b as their config.json spell them (experts released in MXFP4; synth picks the format)
  'gpt-oss-20b': { arch: 'gpt_oss', config: gptOss(24, 32) },
  'gpt-oss-120b': { arch: 'gpt_oss', config: gptOss(36, 128) },
  'mixtral-tiny': {
    arch: 'mixtral',
    config: {
      model_type: 'mixtral', vocab_size: 512, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 3, num_attention_heads: 4,
      num_key_value_heads: 2, num_local_experts: 8, num_experts_per_tok: 2, rope_theta: 1e6, max_position_embeddings: 256, rms_norm_eps: 1e-5,
    },
  },
  'qwen3moe-tiny': {
    arch: 'qwen3_moe',
    config: {
      model_type: 'qwen3_moe', vocab_size: 512, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, num_experts: 16, num_experts_per_tok: 4, norm_topk_prob: true,
      decoder_sparse_step: 1, mlp_only_layers: [], rope_theta: 10000, max_position_embeddings: 256, rms_norm_eps: 1e-6,
    },
  },
  'deepseekv3-tiny': {
    arch: 'deepseek_v3',
    config: {
      model_type: 'deepseek_v3', vocab_size: 512, hidden_size: 64, intermediate_size: 128, moe_intermediate_size: 32, num_hidden_layers: 3,
      num_attention_heads: 4, num_key_value_heads: 4, n_routed_experts: 16, n_shared_experts: 1, num_experts_per_tok: 4, n_group: 4,
      topk_group: 2, routed_scaling_factor: 2.5, first_k_dense_replace: 1, q_lora_rank: 32, kv_lora_rank: 32, qk_rope_head_dim: 8,
      qk_nope_head_dim: 16, v_head_dim: 16, norm_topk_prob: true, rope_theta: 10000, rope_interleave: true, max_position_embeddings: 256,
      rms_norm_eps: 1e-6,
    },
  },
};

function gptOss(layers: number, experts: number): Record<string, unknown> {
  return {
    model_type: 'gpt_oss', vocab_size: 201088, hidden_size: 2880, intermediate_size: 2880, head_dim: 64, num_hidden_layers: layers,
    num_attention_heads: 64, num_key_value_heads: 8, num_local_experts: experts, num_experts_per_tok: 4, experts_per_token: 4,
    attention_bias: true, swiglu_limit: 7.0, sliding_window: 128, layer_types: Array.from({ length: layers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention')),
    rope_theta: 150000, rope_scaling: { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, truncate: false, original_max_position_embeddings: 4096 },
    max_position_embeddings: 131072, initial_context_length: 4096, rms_norm_eps: 1e-5, tie_word_embeddings: false, hidden_act: 'silu',
    eos_token_id: 200002, pad_token_id: 199999,
  };
}
