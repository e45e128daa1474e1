/** gpt-oss routing (GptOssTopKRouter): top-k of logits + bias, softmax over the chosen k. */
import { describe, expect, it } from 'vitest';
import { Prefetcher, RouterError, expertsUsed, route, routeTopkSoftmax } from '../../../router/index.ts';
import { gaussian, moe, rng } from './helpers.ts';

const f32 = Math.fround;
const cfg = moe({ router: 'topk_softmax', numExperts: 6, topK: 3, normTopkProb: false });

/** transformers step by step: F.linear's f32 bias add, topk (ties: lower index), softmax in f32. */
function reference(row: number[], bias: number[], k: number): { experts: number[]; weights: number[] } {
  const l = row.map((x, i) => f32(x + bias[i]!));
  const experts = l.map((x, i) => [x, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((p) => p[1]);
  const top = experts.map((i) => l[i]!);
  const ex = top.map((x) => Math.exp(x - top[0]!));
  const s = ex.reduce((a, b) => a + b, 0);
  return { experts, weights: ex.map((x) => f32(x / s)) };
}

describe('topk_softmax routing', () => {
  it('adds the bias before choosing, and weights are a softmax over the chosen only', () => {
    const logits = Float32Array.from([3, 1, 2.5, 0, -1, 2.9]);
    const bias = Float32Array.from([0, 2.5, 0, 0, 0, 0]);
    const r = route(logits, cfg, bias);
    // with the bias expert 1 (3.5) wins; without it, it would not be chosen at all
    expect(Array.from(r.experts)).toEqual([1, 0, 5]);
    const e = [Math.exp(0), Math.exp(-0.5), Math.exp(-0.6)];
    const s = e[0]! + e[1]! + e[2]!;
    expect(Array.from(r.weights)).toEqual(e.map((x) => f32(x / s)));
    expect(Array.from(route(logits, cfg, null).experts)).toEqual([0, 5, 2]);
  });

  it('matches the step-by-step reference on random tokens, including ties', () => {
    const g = gaussian(rng(7));
    const tokens = 50;
    const logits = Float32Array.from({ length: tokens * 6 }, () => g());
    logits[6 * 3 + 1] = logits[6 * 3 + 4]!; // a tie: the lower index goes first
    const bias = Array.from({ length: 6 }, () => g() * 0.5);
    const r = routeTopkSoftmax(logits, Float32Array.from(bias), cfg);
    for (let t = 0; t < tokens; t++) {
      const want = reference(Array.from(logits.subarray(t * 6, t * 6 + 6)), Array.from(Float32Array.from(bias)), 3);
      expect(Array.from(r.experts.subarray(t * 3, t * 3 + 3)), `token ${t}`).toEqual(want.experts);
      const got = Array.from(r.weights.subarray(t * 3, t * 3 + 3));
      got.forEach((w, j) => expect(Math.abs(w - want.weights[j]!)).toBeLessThanOrEqual(2 ** -23));
      expect(got.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 6);
    }
  });

  it('refuses a bias of the wrong length and non-finite logits', () => {
    expect(() => route(new Float32Array(6), cfg, new Float32Array(5))).toThrow(RouterError);
    expect(() => route(Float32Array.from([0, NaN, 0, 0, 0, 0]), cfg, null)).toThrow(/expert 1 is NaN/);
  });

  it('the prefetcher predicts with the router bias added, as the engine routes', () => {
    const H = 8;
    const g = gaussian(rng(9));
    const weight = Float32Array.from({ length: 6 * H }, () => g() * 0.1);
    // a bias that dominates the small logits: the chosen experts are the bias's top-3
    const bias = Float32Array.from([0, 5, 0, 4, 0, 3]);
    const p = new Prefetcher({ moe: cfg, hiddenSize: H, numLayers: 2, gate: () => ({ weight, bias }), hashesOf: (l, e) => [`${l}/${e}`], target: { prefetch: () => {} }, statsWeight: 0, width: 3 });
    const h = Float32Array.from({ length: H }, () => g());
    const logits = new Float32Array(6);
    for (let j = 0; j < 6; j++) for (let i = 0; i < H; i++) logits[j] += weight[j * H + i]! * h[i]!;
    const routed = expertsUsed(route(logits, cfg, bias));
    expect([...routed].sort()).toEqual([1, 3, 5]);
    expect([...p.predict(0, h).get(1)!].sort()).toEqual([1, 3, 5]);
  });
});
