/**
 * Expert routing exactly as Hugging Face transformers 5 defines it, on router logits computed by
 * the engine (`logits = hidden · gateᵀ`, f32, [tokens, E] row-major).
 *
 * - softmax_topk (MixtralTopKRouter, Qwen3MoeTopKRouter): p = softmax(logits) over all E experts in
 *   f32, top-k of p, and when normTopkProb (always for Mixtral) w = p_sel / Σ p_sel; otherwise w = p_sel.
 * - sigmoid_group_limited (DeepseekV3MoE.route_tokens_to_experts): s = sigmoid(logits);
 *   c = s + e_score_correction_bias (selection only); each of nGroup contiguous groups is scored by the
 *   sum of its two largest c; the best topkGroup groups are kept and every other expert's c is
 *   replaced by 0.0 (transformers' masked_fill value, not -inf); top-k of the masked c over all E;
 *   w = s_sel, divided by (Σ s_sel + 1e-20) when normTopkProb, times routedScalingFactor.
 *   Because the mask value is 0.0 and c may be negative (a negative bias), a masked expert can
 *   outrank a kept one: transformers then runs an expert outside the chosen groups, and so do we.
 *
 * - topk_softmax (GptOssTopKRouter): l = logits + bias (the router Linear's bias); top-k of l;
 *   w = softmax over the k chosen l.
 *
 * Ties: torch's CPU topk (partial_sort / nth_element on value only) promises no order among equal
 * values. We make it deterministic: the lower index wins among equals, for groups and experts.
 *
 * Selection for softmax_topk compares logits rather than probabilities: softmax is strictly
 * monotonic, so the chosen set is the same except where two distinct logits round to one f32
 * probability, which is a tie torch itself leaves unordered.
 */
import type { MoeConfig } from '../manifests/index.ts';

export class RouterError extends Error {
  override name = 'RouterError';
}

/** Per-token routing decision: row t holds token t's k experts, best first. */
export interface Routing {
  readonly tokens: number;
  readonly k: number;
  readonly numExperts: number;
  /** [tokens, k] expert ids, ordered by descending selection score (ties: lower id first). */
  readonly experts: Int32Array;
  /** [tokens, k] the weight each expert's output is multiplied by. */
  readonly weights: Float32Array;
  /** Group-limited routing only: [tokens, topkGroup] kept groups, best first; null otherwise. */
  readonly groups: Int32Array | null;
  readonly topkGroup: number;
  /** Experts per group (E / nGroup) for group-limited routing; 0 otherwise. */
  readonly groupSize: number;
}

export type SoftmaxTopkConfig = Pick<MoeConfig, 'numExperts' | 'topK' | 'normTopkProb'>;
export type GroupLimitedConfig = Pick<
  MoeConfig,
  'numExperts' | 'topK' | 'normTopkProb' | 'nGroup' | 'topkGroup' | 'routedScalingFactor'
>;

export type TopkSoftmaxConfig = Pick<MoeConfig, 'numExperts' | 'topK'>;

const f32 = Math.fround;

/**
 * Indices of the k largest values of v[start, start+len), best first, lower index first among
 * equals. Written into out[outStart..outStart+k). Insertion into a sorted prefix: k is small.
 */
export function topkInto(
  v: ArrayLike<number>,
  start: number,
  len: number,
  k: number,
  out: Int32Array,
  outStart: number,
): void {
  let n = 0;
  for (let i = 0; i < len; i++) {
    const x = v[start + i]!;
    if (n === k && !(x > v[start + out[outStart + k - 1]!]!)) continue;
    let j = n < k ? n++ : k - 1;
    // strictly greater moves ahead, so an equal later index stays behind the earlier one
    while (j > 0 && x > v[start + out[outStart + j - 1]!]!) {
      out[outStart + j] = out[outStart + j - 1]!;
      j--;
    }
    out[outStart + j] = i;
  }
}

function tokensOf(logits: Float32Array, numExperts: number): number {
  if (!Number.isInteger(numExperts) || numExperts <= 0) {
    throw new RouterError(`numExperts must be a positive integer, got ${numExperts}`);
  }
  if (logits.length % numExperts !== 0) {
    throw new RouterError(`router logits length ${logits.length} is not a multiple of numExperts ${numExperts}`);
  }
  return logits.length / numExperts;
}

function checkK(k: number, numExperts: number): void {
  if (!Number.isInteger(k) || k <= 0 || k > numExperts) {
    throw new RouterError(`topK must be in 1..${numExperts}, got ${k}`);
  }
}

function checkFinite(logits: Float32Array, t: number, e: number): void {
  for (let i = 0; i < e; i++) {
    if (!Number.isFinite(logits[t * e + i]!)) {
      throw new RouterError(`router logit of token ${t}, expert ${i} is ${logits[t * e + i]}`);
    }
  }
}

/** Mixtral / Qwen3-MoE routing: softmax over all experts, top-k, optional renormalisation. */
export function routeSoftmaxTopk(logits: Float32Array, cfg: SoftmaxTopkConfig): Routing {
  const e = cfg.numExperts;
  const k = cfg.topK;
  const tokens = tokensOf(logits, e);
  checkK(k, e);
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  for (let t = 0; t < tokens; t++) {
    checkFinite(logits, t, e);
    const base = t * e;
    topkInto(logits, base, e, k, experts, t * k);
    let max = -Infinity;
    for (let i = 0; i < e; i++) max = Math.max(max, logits[base + i]!);
    let sum = 0;
    for (let i = 0; i < e; i++) sum += Math.exp(logits[base + i]! - max);
    let selSum = 0;
    for (let j = 0; j < k; j++) {
      const p = f32(Math.exp(logits[base + experts[t * k + j]!]! - max) / sum);
      weights[t * k + j] = p;
      selSum = f32(selSum + p);
    }
    if (cfg.normTopkProb) {
      for (let j = 0; j < k; j++) weights[t * k + j] = f32(weights[t * k + j]! / selSum);
    }
  }
  return { tokens, k, numExperts: e, experts, weights, groups: null, topkGroup: 0, groupSize: 0 };
}

/** DeepSeek-V3 routing: sigmoid scores, bias for selection, group-limited top-k, scaled weights. */
export function routeSigmoidGroupLimited(logits: Float32Array, bias: Float32Array | null, cfg: GroupLimitedConfig): Routing {
  const e = cfg.numExperts;
  const k = cfg.topK;
  const tokens = tokensOf(logits, e);
  checkK(k, e);
  const nGroup = cfg.nGroup;
  if (!Number.isInteger(nGroup) || nGroup <= 0 || e % nGroup !== 0) {
    throw new RouterError(`nGroup ${nGroup} does not divide numExperts ${e}`);
  }
  const groupSize = e / nGroup;
  if (groupSize < 2) {
    throw new RouterError(`group-limited routing scores each group by its top-2 experts; groups of ${groupSize} cannot be scored`);
  }
  const topkGroup = cfg.topkGroup;
  if (!Number.isInteger(topkGroup) || topkGroup <= 0 || topkGroup > nGroup) {
    throw new RouterError(`topkGroup must be in 1..${nGroup}, got ${topkGroup}`);
  }
  if (bias !== null && bias.length !== e) {
    throw new RouterError(`e_score_correction_bias has ${bias.length} entries, expected ${e}`);
  }
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const groups = new Int32Array(tokens * topkGroup);
  const scores = new Float32Array(e);
  const choice = new Float32Array(e);
  const groupScores = new Float32Array(nGroup);
  const top2 = new Int32Array(2);
  const kept = new Uint8Array(nGroup);
  for (let t = 0; t < tokens; t++) {
    checkFinite(logits, t, e);
    for (let i = 0; i < e; i++) {
      scores[i] = 1 / (1 + Math.exp(-logits[t * e + i]!));
      choice[i] = bias === null ? scores[i]! : scores[i]! + bias[i]!;
    }
    for (let g = 0; g < nGroup; g++) {
      topkInto(choice, g * groupSize, groupSize, 2, top2, 0);
      groupScores[g] = choice[g * groupSize + top2[0]!]! + choice[g * groupSize + top2[1]!]!;
    }
    topkInto(groupScores, 0, nGroup, topkGroup, groups, t * topkGroup);
    kept.fill(0);
    for (let j = 0; j < topkGroup; j++) kept[groups[t * topkGroup + j]!] = 1;
    for (let i = 0; i < e; i++) if (!kept[(i / groupSize) | 0]) choice[i] = 0;
    topkInto(choice, 0, e, k, experts, t * k);
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const s = scores[experts[t * k + j]!]!;
      weights[t * k + j] = s;
      sum = f32(sum + s);
    }
    const denom = cfg.normTopkProb ? f32(sum + 1e-20) : 1;
    for (let j = 0; j < k; j++) {
      weights[t * k + j] = f32(f32(weights[t * k + j]! / denom) * cfg.routedScalingFactor);
    }
  }
  return { tokens, k, numExperts: e, experts, weights, groups, topkGroup, groupSize };
}

/**
 * gpt-oss routing (GptOssTopKRouter): l = logits + bias in f32 (the router Linear's bias), top-k
 * of l, weights = softmax over the k chosen values (f32), no renormalisation or scaling.
 */
export function routeTopkSoftmax(logits: Float32Array, bias: Float32Array | null, cfg: TopkSoftmaxConfig): Routing {
  const e = cfg.numExperts;
  const k = cfg.topK;
  const tokens = tokensOf(logits, e);
  checkK(k, e);
  if (bias !== null && bias.length !== e) throw new RouterError(`router bias has ${bias.length} entries, expected ${e}`);
  const experts = new Int32Array(tokens * k);
  const weights = new Float32Array(tokens * k);
  const biased = new Float32Array(e);
  for (let t = 0; t < tokens; t++) {
    checkFinite(logits, t, e);
    for (let i = 0; i < e; i++) biased[i] = bias === null ? logits[t * e + i]! : logits[t * e + i]! + bias[i]!;
    topkInto(biased, 0, e, k, experts, t * k);
    // best first, so the first chosen value is the max
    const max = biased[experts[t * k]!]!;
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(biased[experts[t * k + j]!]! - max);
    for (let j = 0; j < k; j++) weights[t * k + j] = f32(Math.exp(biased[experts[t * k + j]!]! - max) / sum);
  }
  return { tokens, k, numExperts: e, experts, weights, groups: null, topkGroup: 0, groupSize: 0 };
}

/**
 * Route with the model's configured router. `bias` is the layer's router bias: DeepSeek-V3's
 * e_score_correction_bias (selection only), gpt-oss's router Linear bias (added to the logits).
 */
export function route(logits: Float32Array, moe: MoeConfig, bias: Float32Array | null = null): Routing {
  switch (moe.router) {
    case 'softmax_topk':
      return routeSoftmaxTopk(logits, moe);
    case 'sigmoid_group_limited':
      return routeSigmoidGroupLimited(logits, bias, moe);
    case 'topk_softmax':
      return routeTopkSoftmax(logits, bias, moe);
    default:
      throw new RouterError(`unknown router kind "${String(moe.router)}"`);
  }
}
