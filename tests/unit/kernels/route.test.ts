/**
 * Backend.route on both backends against router/ (the reference) on seeded random logits, many of
 * them exactly tied (logits drawn from a few values), for every router the engine supports:
 * expert ids must be equal, weights within 1e-6 relative (the GPU's exp is f32).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuBackend, createWebGpuBackend, KernelError, type Backend, type RouteParams, type WebGpuBackend } from '../../../kernels/index.ts';
import { routeSigmoidGroupLimited, routeSoftmaxTopk, type Routing } from '../../../router/index.ts';
import { rng } from './helpers.ts';

let gpu: WebGpuBackend;
beforeAll(async () => {
  gpu = await createWebGpuBackend();
});
afterAll(() => gpu.destroy());

const base = { nGroup: 1, topkGroup: 1, routedScalingFactor: 1 };
const CASES: { name: string; p: RouteParams; bias: 'none' | 'mixed' }[] = [
  { name: 'Mixtral: softmax top-2 of 8, renormalised', p: { ...base, router: 'softmax_topk', numExperts: 8, topK: 2, normTopkProb: true }, bias: 'none' },
  { name: 'Qwen3-MoE: softmax top-8 of 128, not renormalised', p: { ...base, router: 'softmax_topk', numExperts: 128, topK: 8, normTopkProb: false }, bias: 'none' },
  { name: 'softmax top-1 of 3', p: { ...base, router: 'softmax_topk', numExperts: 3, topK: 1, normTopkProb: true }, bias: 'none' },
  {
    name: 'DeepSeek-V3 shape: sigmoid, bias, 8 groups keep 4, top-8 of 256, scaled',
    p: { router: 'sigmoid_group_limited', numExperts: 256, topK: 8, normTopkProb: true, nGroup: 8, topkGroup: 4, routedScalingFactor: 2.5 },
    bias: 'mixed',
  },
  {
    name: 'sigmoid, 4 groups keep 2, top-3 of 16, no bias, not normalised',
    p: { router: 'sigmoid_group_limited', numExperts: 16, topK: 3, normTopkProb: false, nGroup: 4, topkGroup: 2, routedScalingFactor: 1 },
    bias: 'none',
  },
  {
    name: 'sigmoid, negative bias (masked experts can win), 2 groups keep 1, top-4 of 8',
    p: { router: 'sigmoid_group_limited', numExperts: 8, topK: 4, normTopkProb: true, nGroup: 2, topkGroup: 1, routedScalingFactor: 1 },
    bias: 'mixed',
  },
];

/** Logits from a handful of values, so rows hold exact ties (and fully tied rows). */
function tiedLogits(rand: () => number, tokens: number, e: number): Float32Array {
  const out = new Float32Array(tokens * e);
  for (let t = 0; t < tokens; t++) {
    const levels = t % 5 === 0 ? 1 : 2 + (t % 4);
    for (let i = 0; i < e; i++) out[t * e + i] = Math.floor(rand() * levels) * 0.75 - 1;
  }
  return out;
}

async function run(b: Backend, logits: Float32Array, p: RouteParams, bias: Float32Array | null): Promise<Float32Array> {
  const tokens = logits.length / p.numExperts;
  const l = b.act(tokens, p.numExperts);
  b.write(l, logits);
  const out = b.act(tokens, 2 * p.topK, false);
  const bw = bias ? b.weight(b.upload(new Uint8Array(bias.buffer.slice(0))), 0, 'f32', 1, p.numExperts) : null;
  b.route(l, p, bw, out);
  return b.read(out);
}

function expectSame(got: Float32Array, ref: Routing, what: string): void {
  const k = ref.k;
  for (let t = 0; t < ref.tokens; t++) {
    const ids = Array.from(got.subarray(t * 2 * k, t * 2 * k + k));
    expect(ids, `${what}, token ${t}`).toEqual(Array.from(ref.experts.subarray(t * k, (t + 1) * k)));
    for (let j = 0; j < k; j++) {
      const w = got[t * 2 * k + k + j]!;
      const r = ref.weights[t * k + j]!;
      expect(Math.abs(w - r), `${what}, token ${t}, weight ${j}: ${w} vs ${r}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(r)));
    }
  }
}

describe.each(['cpu', 'webgpu'])('Backend.route on %s', (backendName) => {
  const backend = (): Backend => (backendName === 'cpu' ? createCpuBackend() : gpu);
  it.each(CASES)('$name equals router/ on tied and random logits', async ({ p, bias }) => {
    const rand = rng(p.numExperts * 31 + p.topK);
    const tokens = 70;
    const biasHost = bias === 'none' ? null : Float32Array.from({ length: p.numExperts }, () => (rand() - 0.6) * 0.5);
    for (const logits of [tiedLogits(rand, tokens, p.numExperts), Float32Array.from({ length: tokens * p.numExperts }, () => (rand() * 2 - 1) * 4)]) {
      const ref = p.router === 'softmax_topk' ? routeSoftmaxTopk(logits, p) : routeSigmoidGroupLimited(logits, biasHost, p);
      expectSame(await run(backend(), logits, p, biasHost), ref, backendName);
    }
  });

  it('gives a row with a non-finite logit ids within the experts, and the other rows their routing', async () => {
    for (const { p } of [CASES[0]!, CASES[4]!]) {
      const rand = rng(3);
      const logits = Float32Array.from({ length: 3 * p.numExperts }, () => rand() * 2 - 1);
      logits[p.numExperts + 1] = NaN;
      logits[2 * p.numExperts + 2] = Infinity;
      const got = await run(backend(), logits, p, null);
      const clean = logits.slice(0, p.numExperts);
      const ref = p.router === 'softmax_topk' ? routeSoftmaxTopk(clean, p) : routeSigmoidGroupLimited(clean, null, p);
      expectSame(got.subarray(0, 2 * p.topK), ref, backendName);
      for (let t = 1; t < 3; t++) {
        for (let j = 0; j < p.topK; j++) {
          const id = got[t * 2 * p.topK + j]!;
          expect(Number.isInteger(id) && id >= 0 && id < p.numExperts, `${backendName} row ${t}: id ${id}`).toBe(true);
        }
      }
    }
  });

  it('refuses a bias for softmax routing, groups that do not divide the experts, and a wrong output shape', () => {
    const b = backend();
    const l = b.act(2, 8);
    const softmax: RouteParams = CASES[0]!.p;
    const bias = b.weight(b.upload(new Uint8Array(32)), 0, 'f32', 1, 8);
    expect(() => b.route(l, softmax, bias, b.act(2, 4))).toThrow(KernelError);
    expect(() => b.route(l, { ...CASES[5]!.p, nGroup: 3 }, null, b.act(2, 8))).toThrow(/nGroup 3/);
    expect(() => b.route(l, softmax, null, b.act(2, 3))).toThrow(/expected \[2, 4\]/);
  });
});
