import { describe, expect, it } from 'vitest';
import {
  RouterError,
  route,
  routeSigmoidGroupLimited,
  routeSoftmaxTopk,
  dispatchByExpert,
  expertsUsed,
  groupsUsed,
  expertsOfGroup,
  type Routing,
} from '../../../router/index.ts';
import type { MoeConfig } from '../../../manifests/index.ts';
import { gaussian, moe, rng } from './helpers.ts';

const f32 = Math.fround;

/** Straightforward top-k: full sort by (value desc, index asc). */
function refTopk(v: number[], k: number): number[] {
  return v
    .map((x, i) => [x, i] as const)
    .sort((a, b) => (b[0] !== a[0] ? b[0] - a[0] : a[1] - b[1]))
    .slice(0, k)
    .map((p) => p[1]);
}

/** transformers' MixtralTopKRouter / Qwen3MoeTopKRouter, step by step; selects on probabilities as torch does. */
function refSoftmax(row: number[], k: number, norm: boolean): { experts: number[]; weights: number[] } {
  const m = Math.max(...row);
  const ex = row.map((x) => Math.exp(x - m));
  const s = ex.reduce((a, b) => a + b, 0);
  const p = ex.map((x) => f32(x / s));
  const experts = refTopk(p, k);
  let w = experts.map((i) => p[i]!);
  if (norm) {
    const t = w.reduce((a, b) => f32(a + b), 0);
    w = w.map((x) => f32(x / t));
  }
  return { experts, weights: w };
}

/** transformers' DeepseekV3MoE.route_tokens_to_experts, step by step. */
function refDeepseek(
  row: number[],
  bias: number[],
  c: { topK: number; nGroup: number; topkGroup: number; norm: boolean; scale: number },
): { experts: number[]; weights: number[]; groups: number[] } {
  const e = row.length;
  const gs = e / c.nGroup;
  const s = row.map((x) => f32(1 / (1 + Math.exp(-x))));
  const choice = s.map((x, i) => f32(x + bias[i]!));
  const groupScores: number[] = [];
  for (let g = 0; g < c.nGroup; g++) {
    const top = refTopk(choice.slice(g * gs, (g + 1) * gs), 2);
    groupScores.push(f32(choice[g * gs + top[0]!]! + choice[g * gs + top[1]!]!));
  }
  const groups = refTopk(groupScores, c.topkGroup);
  const masked = choice.map((x, i) => (groups.includes(Math.floor(i / gs)) ? x : 0.0));
  const experts = refTopk(masked, c.topK);
  let w = experts.map((i) => s[i]!);
  if (c.norm) {
    const d = f32(w.reduce((a, b) => f32(a + b), 0) + 1e-20);
    w = w.map((x) => f32(x / d));
  }
  return { experts, weights: w.map((x) => f32(x * c.scale)), groups };
}

function row(r: Routing, t: number): { experts: number[]; weights: number[]; groups: number[] } {
  return {
    experts: [...r.experts.subarray(t * r.k, (t + 1) * r.k)],
    weights: [...r.weights.subarray(t * r.k, (t + 1) * r.k)],
    groups: r.groups ? [...r.groups.subarray(t * r.topkGroup, (t + 1) * r.topkGroup)] : [],
  };
}

function expectWeightsClose(got: number[], want: number[]): void {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < got.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(want[i]!)));
}


describe('softmax top-k routing (Mixtral, Qwen3-MoE)', () => {
  const cases = [
    { e: 8, k: 2, norm: true },
    { e: 16, k: 4, norm: true },
    { e: 16, k: 4, norm: false },
    { e: 64, k: 8, norm: true },
    { e: 128, k: 1, norm: false },
    { e: 5, k: 5, norm: true },
  ];
  for (const { e, k, norm } of cases) {
    it(`matches the reference on random logits (E=${e}, k=${k}, norm=${norm})`, () => {
      const g = gaussian(rng(e * 31 + k));
      const tokens = 64;
      const logits = Float32Array.from({ length: tokens * e }, () => g() * 2);
      const r = routeSoftmaxTopk(logits, { numExperts: e, topK: k, normTopkProb: norm });
      expect(r.tokens).toBe(tokens);
      for (let t = 0; t < tokens; t++) {
        const want = refSoftmax([...logits.subarray(t * e, (t + 1) * e)], k, norm);
        const got = row(r, t);
        expect(got.experts).toEqual(want.experts);
        expectWeightsClose(got.weights, want.weights);
        if (norm) expect(Math.abs(got.weights.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-6);
      }
    });
  }

  it('breaks ties by lower expert index, in order', () => {
    const u = rng(7);
    const e = 12;
    const k = 4;
    const tokens = 200;
    const logits = Float32Array.from({ length: tokens * e }, () => Math.floor(u() * 3) - 1);
    const r = routeSoftmaxTopk(logits, { numExperts: e, topK: k, normTopkProb: true });
    let tiedAtBoundary = 0;
    for (let t = 0; t < tokens; t++) {
      const rowv = [...logits.subarray(t * e, (t + 1) * e)];
      const want = refSoftmax(rowv, k, true);
      expect(row(r, t).experts).toEqual(want.experts);
      const sorted = [...rowv].sort((a, b) => b - a);
      if (sorted[k - 1] === sorted[k]) tiedAtBoundary++;
    }
    expect(tiedAtBoundary).toBeGreaterThan(100);
    const allEqual = routeSoftmaxTopk(new Float32Array(8), { numExperts: 8, topK: 3, normTopkProb: true });
    expect([...allEqual.experts]).toEqual([0, 1, 2]);
    expect([...allEqual.weights].map((w) => w.toFixed(6))).toEqual(['0.333333', '0.333333', '0.333333']);
  });

  it('route() dispatches on the configured router kind', () => {
    const logits = Float32Array.from([0.1, 2, -1, 0.5, 3, 0, 0, 1]);
    const r = route(logits, moe({ numExperts: 4, topK: 2 }));
    expect([...r.experts]).toEqual([1, 3, 0, 3]);
    expect(r.groups).toBeNull();
  });
});

describe('group-limited sigmoid routing (DeepSeek-V3)', () => {
  const cases = [
    { e: 16, nGroup: 4, topkGroup: 2, k: 4, norm: true, scale: 2.5, biasStd: 0.5 },
    { e: 256, nGroup: 8, topkGroup: 4, k: 8, norm: true, scale: 2.5, biasStd: 0.05 },
    { e: 64, nGroup: 8, topkGroup: 3, k: 6, norm: false, scale: 1, biasStd: 1 },
    { e: 16, nGroup: 1, topkGroup: 1, k: 4, norm: true, scale: 1, biasStd: 0.5 },
    { e: 16, nGroup: 4, topkGroup: 4, k: 4, norm: true, scale: 1.5, biasStd: 0.5 },
    { e: 16, nGroup: 8, topkGroup: 1, k: 4, norm: true, scale: 1, biasStd: 0.5 },
    { e: 32, nGroup: 4, topkGroup: 1, k: 4, norm: true, scale: 1, biasStd: 3 },
  ];
  for (const c of cases) {
    it(`matches the reference on random scores (E=${c.e}, groups ${c.topkGroup}/${c.nGroup}, k=${c.k}, bias std ${c.biasStd})`, () => {
      const g = gaussian(rng(c.e * 7 + c.nGroup * 3 + c.topkGroup));
      const tokens = 64;
      const logits = Float32Array.from({ length: tokens * c.e }, () => g());
      const bias = Float32Array.from({ length: c.e }, () => g() * c.biasStd);
      const r = routeSigmoidGroupLimited(logits, bias, {
        numExperts: c.e,
        topK: c.k,
        nGroup: c.nGroup,
        topkGroup: c.topkGroup,
        normTopkProb: c.norm,
        routedScalingFactor: c.scale,
      });
      expect(r.groupSize).toBe(c.e / c.nGroup);
      for (let t = 0; t < tokens; t++) {
        const want = refDeepseek([...logits.subarray(t * c.e, (t + 1) * c.e)], [...bias], {
          topK: c.k,
          nGroup: c.nGroup,
          topkGroup: c.topkGroup,
          norm: c.norm,
          scale: c.scale,
        });
        const got = row(r, t);
        expect(got.experts).toEqual(want.experts);
        expect(got.groups).toEqual(want.groups);
        expectWeightsClose(got.weights, want.weights);
        if (c.norm) expect(Math.abs(got.weights.reduce((a, b) => a + b, 0) - c.scale)).toBeLessThan(1e-5 * c.scale);
      }
    });
  }

  it('masks dropped groups with 0.0 as transformers does, so a masked expert can beat a negative kept one', () => {
    // s = 0.5 everywhere; group 0 scores -1.0, group 1 scores -0.9 and is kept.
    const r = routeSigmoidGroupLimited(new Float32Array(4), Float32Array.from([-1, -1, 0.1, -2]), {
      numExperts: 4,
      topK: 2,
      nGroup: 2,
      topkGroup: 1,
      normTopkProb: true,
      routedScalingFactor: 1,
    });
    expect([...r.groups!]).toEqual([1]);
    expect([...r.experts]).toEqual([2, 0]);
    expect([...r.weights]).toEqual([0.5, 0.5]);
  });

  it('fills k beyond the kept groups with masked experts, lowest index first', () => {
    const logits = Float32Array.from([0, 0, 0, 0, 5, 4, 3, 2]);
    const r = routeSigmoidGroupLimited(logits, null, {
      numExperts: 8,
      topK: 6,
      nGroup: 4,
      topkGroup: 2,
      normTopkProb: false,
      routedScalingFactor: 1,
    });
    expect([...r.groups!]).toEqual([2, 3]);
    expect([...r.experts]).toEqual([4, 5, 6, 7, 0, 1]);
  });

  it('breaks group and expert ties by lower index', () => {
    const u = rng(99);
    const e = 16;
    const c = { topK: 4, nGroup: 4, topkGroup: 2, norm: true, scale: 2.5 };
    const tokens = 300;
    const logits = Float32Array.from({ length: tokens * e }, () => Math.floor(u() * 3) - 1);
    const bias = Float32Array.from({ length: e }, (_, i) => (i % 3 === 0 ? 0.25 : 0));
    const r = routeSigmoidGroupLimited(logits, bias, {
      numExperts: e,
      topK: c.topK,
      nGroup: c.nGroup,
      topkGroup: c.topkGroup,
      normTopkProb: c.norm,
      routedScalingFactor: c.scale,
    });
    for (let t = 0; t < tokens; t++) {
      const want = refDeepseek([...logits.subarray(t * e, (t + 1) * e)], [...bias], c);
      const got = row(r, t);
      expect(got.groups).toEqual(want.groups);
      expect(got.experts).toEqual(want.experts);
    }
    const flat = routeSigmoidGroupLimited(new Float32Array(16), null, {
      numExperts: 16,
      topK: 4,
      nGroup: 4,
      topkGroup: 2,
      normTopkProb: true,
      routedScalingFactor: 1,
    });
    expect([...flat.groups!]).toEqual([0, 1]);
    expect([...flat.experts]).toEqual([0, 1, 2, 3]);
  });

  it('route() passes the bias through for sigmoid_group_limited', () => {
    const cfg = moe({ router: 'sigmoid_group_limited', numExperts: 4, topK: 1, nGroup: 2, topkGroup: 1, routedScalingFactor: 2 });
    const r = route(new Float32Array(4), cfg, Float32Array.from([0, 0, 0, 1]));
    expect([...r.experts]).toEqual([3]);
    expect([...r.weights]).toEqual([2]);
  });
});

describe('bad input', () => {
  it('rejects shapes, configs and non-finite logits with RouterError', () => {
    const cfg = { numExperts: 4, topK: 2, normTopkProb: true };
    expect(() => routeSoftmaxTopk(new Float32Array(7), cfg)).toThrow(RouterError);
    expect(() => routeSoftmaxTopk(new Float32Array(8), { ...cfg, topK: 5 })).toThrow(/topK/);
    expect(() => routeSoftmaxTopk(Float32Array.from([0, 1, NaN, 0]), cfg)).toThrow(/token 0, expert 2/);
    const g = { numExperts: 8, topK: 2, nGroup: 3, topkGroup: 1, normTopkProb: true, routedScalingFactor: 1 };
    expect(() => routeSigmoidGroupLimited(new Float32Array(8), null, g)).toThrow(/nGroup 3/);
    expect(() => routeSigmoidGroupLimited(new Float32Array(8), null, { ...g, nGroup: 8 })).toThrow(/top-2/);
    expect(() => routeSigmoidGroupLimited(new Float32Array(8), null, { ...g, nGroup: 2, topkGroup: 3 })).toThrow(/topkGroup/);
    expect(() => routeSigmoidGroupLimited(new Float32Array(8), new Float32Array(3), { ...g, nGroup: 2 })).toThrow(/bias/);
    expect(() => route(new Float32Array(8), moe({ router: 'bogus' as MoeConfig['router'], numExperts: 4 }))).toThrow(/bogus/);
  });
});

describe('dispatch by expert', () => {
  it('inverts a routing into per-expert rows and scales that reconstruct it', () => {
    const g = gaussian(rng(5));
    const e = 16;
    const tokens = 40;
    const r = routeSoftmaxTopk(Float32Array.from({ length: tokens * e }, () => g()), { numExperts: e, topK: 4, normTopkProb: true });
    const d = dispatchByExpert(r);
    expect(d.offsets[d.offsets.length - 1]).toBe(tokens * 4);
    expect([...d.experts]).toEqual([...expertsUsed(r)]);
    const back = new Map<string, number>();
    for (let i = 0; i < d.experts.length; i++) {
      let prev = -1;
      for (let j = d.offsets[i]!; j < d.offsets[i + 1]!; j++) {
        expect(d.rows[j]!).toBeGreaterThan(prev);
        prev = d.rows[j]!;
        back.set(`${d.rows[j]}:${d.experts[i]}`, d.scales[j]!);
      }
    }
    for (let t = 0; t < tokens; t++) {
      for (let j = 0; j < 4; j++) expect(back.get(`${t}:${r.experts[t * 4 + j]}`)).toBe(r.weights[t * 4 + j]);
    }
    expect(back.size).toBe(tokens * 4);
  });

  it('lists groups used and the experts of a group', () => {
    const r = routeSigmoidGroupLimited(Float32Array.from([5, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0]), null, {
      numExperts: 8,
      topK: 2,
      nGroup: 4,
      topkGroup: 1,
      normTopkProb: true,
      routedScalingFactor: 1,
    });
    expect([...groupsUsed(r)]).toEqual([0, 2]);
    expect([...expertsOfGroup(2, 2)]).toEqual([4, 5]);
    expect(groupsUsed(routeSoftmaxTopk(new Float32Array(4), { numExperts: 4, topK: 1, normTopkProb: true })).length).toBe(0);
  });
});
