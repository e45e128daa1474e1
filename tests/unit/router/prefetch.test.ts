import { describe, expect, it } from 'vitest';
import { Prefetcher, RouterError, expertsUsed, route, type LayerGate, type PrefetcherOptions } from '../../../router/index.ts';
import { gaussian, moe, rng } from './helpers.ts';

const H = 16;


class RecordingTarget {
  readonly prefetches: { hashes: string[]; priority: number; layersAhead: number }[] = [];
  readonly cancelled: string[] = [];
  prefetch(hashes: string[], priority: number, hint?: { layersAhead: number }): void {
    this.prefetches.push({ hashes, priority, layersAhead: hint!.layersAhead });
  }
  cancel(hashes: string[]): void {
    this.cancelled.push(...hashes);
  }
}

const hashOf = (l: number, e: number) => `L${l}E${e}`;

function gates(layers: number, e: number, seed: number, opts: { shared?: boolean; bias?: boolean; dense?: number[] } = {}): (LayerGate | null)[] {
  const g = gaussian(rng(seed));
  const one = () => ({
    weight: Float32Array.from({ length: e * H }, () => g()),
    bias: opts.bias ? Float32Array.from({ length: e }, () => g() * 0.3) : null,
  });
  const shared = one();
  return Array.from({ length: layers }, (_, l) => (opts.dense?.includes(l) ? null : opts.shared ? shared : one()));
}

function make(over: Partial<PrefetcherOptions> & { gateList: (LayerGate | null)[] }): { p: Prefetcher; target: RecordingTarget } {
  const target = new RecordingTarget();
  const p = new Prefetcher({
    moe: moe(),
    hiddenSize: H,
    numLayers: over.gateList.length,
    gate: (l) => over.gateList[l] ?? null,
    hashesOf: (l, e) => [hashOf(l, e)],
    target,
    ...over,
  });
  return { p, target };
}

function logitsOf(gate: LayerGate, h: Float32Array, e: number): Float32Array {
  const rows = h.length / H;
  const out = new Float32Array(rows * e);
  for (let r = 0; r < rows; r++) for (let j = 0; j < e; j++) {
    let acc = 0;
    for (let i = 0; i < H; i++) acc += gate.weight[j * H + i]! * h[r * H + i]!;
    out[r * e + j] = acc;
  }
  return out;
}

describe('Prefetcher', () => {
  it('predicts exactly when the coming gate sees the same hidden state, and scores precision/recall', () => {
    const gl = gates(4, 8, 1, { shared: true });
    const { p, target } = make({ gateList: gl, statsWeight: 0 });
    const g = gaussian(rng(2));
    for (let t = 0; t < 20; t++) {
      const h = Float32Array.from({ length: H }, () => g());
      const actual = expertsUsed(route(logitsOf(gl[1]!, h, 8), moe()));
      const predicted = p.predict(0, h).get(1)!;
      expect([...predicted]).toEqual([...actual]);
      p.observe(1, actual);
    }
    const s = p.stats();
    expect(s.nextLayer).toMatchObject({ layers: 20, predicted: 40, actual: 40, correct: 40, precision: 1, recall: 1 });
    expect(target.prefetches.length).toBe(40);
    expect(target.cancelled).toEqual([]);
  });

  it('counts misses in precision and recall, and cancels predicted experts the layer did not use', () => {
    const gl = gates(3, 8, 3);
    const { p, target } = make({ gateList: gl, statsWeight: 0 });
    const h = Float32Array.from({ length: H }, (_, i) => Math.sin(i));
    const predicted = [...p.predict(0, h).get(1)!];
    const other = [0, 1, 2, 3, 4, 5, 6, 7].find((e) => !predicted.includes(e))!;
    p.observe(1, [predicted[0]!, other]);
    expect(p.stats().nextLayer).toMatchObject({ predicted: 2, actual: 2, correct: 1, precision: 0.5, recall: 0.5 });
    expect(target.cancelled).toEqual([hashOf(1, predicted[1]!)]);
  });

  it('predicts several layers ahead at descending priority, skipping dense layers', () => {
    const gl = gates(5, 8, 4, { dense: [0, 2] });
    const { p, target } = make({ gateList: gl, depth: 2 });
    const h = Float32Array.from({ length: H }, (_, i) => Math.cos(i));
    const out = p.predict(-1, h);
    expect([...out.keys()]).toEqual([1, 3]);
    const prio = (l: number) => target.prefetches.filter((x) => x.hashes[0]!.startsWith(`L${l}E`)).map((x) => x.priority);
    expect(prio(1).length).toBe(2);
    expect(prio(3).length).toBe(2);
    expect(Math.min(...prio(1))).toBeGreaterThan(Math.max(...prio(3)));
    const ahead = (l: number) => target.prefetches.filter((x) => x.hashes[0]!.startsWith(`L${l}E`)).map((x) => x.layersAhead);
    expect(ahead(1)).toEqual([1, 1]);
    expect(ahead(3)).toEqual([2, 2]);
    p.observe(1, out.get(1)!);
    p.predict(1, h);
    p.observe(3, out.get(3)!);
    const s = p.stats();
    expect(s.byDepth[1]!.layers).toBe(1);
    expect(s.nextLayer.layers).toBe(2);
  });

  it('a nearer re-prediction cancels what the farther one fetched and no longer expects', () => {
    const gl = gates(3, 8, 5);
    const { p, target } = make({ gateList: gl, depth: 2, statsWeight: 0 });
    const g = gaussian(rng(6));
    let first: number[] = [];
    let second: number[] = [];
    for (let t = 0; t < 50 && first.every((e) => second.includes(e)); t++) {
      first = [...p.predict(-1, Float32Array.from({ length: H }, () => g())).get(1)!];
      second = [...p.predict(0, Float32Array.from({ length: H }, () => g())).get(1)!];
    }
    const dropped = first.filter((e) => !second.includes(e)).map((e) => hashOf(1, e));
    expect(dropped.length).toBeGreaterThan(0);
    for (const d of dropped) expect(target.cancelled).toContain(d);
    p.reset();
    for (const e of second) expect(target.cancelled).toContain(hashOf(1, e));
  });

  it('learns popularity and layer-to-layer transitions from observed traffic', () => {
    const gl = gates(3, 8, 7);
    const { p } = make({ gateList: gl, statsWeight: 1 });
    for (let t = 0; t < 40; t++) {
      const a = t % 2;
      p.observe(0, [a]);
      p.observe(1, a === 0 ? [5, 6] : [2, 7]);
    }
    const h = Float32Array.from({ length: H }, () => 1);
    p.observe(0, [1]);
    expect([...p.predict(0, h).get(1)!]).toEqual([2, 7]);
    p.observe(1, [2, 7]);
    p.observe(0, [0]);
    expect([...p.predict(0, h).get(1)!]).toEqual([5, 6]);
  });

  it('applies the layer norm and the DeepSeek-V3 router (bias, groups) to the early gate', () => {
    const cfg = moe({ router: 'sigmoid_group_limited', numExperts: 16, topK: 4, nGroup: 4, topkGroup: 2, routedScalingFactor: 2.5 });
    const gl = gates(3, 16, 8, { shared: true, bias: true });
    const normW = Float32Array.from({ length: H }, (_, i) => 0.5 + (i % 3));
    const gated = gl.map((x) => (x ? { ...x, norm: normW } : null));
    const { p } = make({ gateList: gated, moe: cfg, statsWeight: 0 });
    const g = gaussian(rng(9));
    for (let t = 0; t < 10; t++) {
      const h = Float32Array.from({ length: 3 * H }, () => g() * 3);
      const normed = new Float32Array(h.length);
      for (let r = 0; r < 3; r++) {
        const row = h.subarray(r * H, (r + 1) * H);
        const inv = 1 / Math.sqrt(row.reduce((a, x) => a + x * x, 0) / H + 1e-6);
        for (let i = 0; i < H; i++) normed[r * H + i] = row[i]! * inv * normW[i]!;
      }
      const actual = expertsUsed(route(logitsOf(gl[1]!, normed, 16), cfg, gl[1]!.bias!));
      const predicted = p.predict(0, h).get(1)!;
      expect([...predicted].sort((a, b) => a - b)).toEqual([...actual]);
      p.observe(1, actual);
    }
    expect(p.stats().nextLayer.precision).toBe(1);
  });

  it('works as the engine layer observer', async () => {
    const gl = gates(3, 8, 10, { shared: true });
    const { p, target } = make({ gateList: gl, statsWeight: 0 });
    const h = Float32Array.from({ length: H }, (_, i) => i / H - 0.5);
    const r0 = route(logitsOf(gl[0]!, h, 8), moe());
    await p.routed(0, r0, async () => h);
    expect(target.prefetches.map((x) => x.hashes[0])).toEqual([...expertsUsed(r0)].map((e) => hashOf(1, e)));
    await p.routed(1, route(logitsOf(gl[1]!, h, 8), moe()), async () => h);
    await p.routed(2, route(logitsOf(gl[2]!, h, 8), moe()), () => Promise.reject(new Error('last layer: no prediction')));
    expect(p.stats().nextLayer).toMatchObject({ layers: 2, precision: 1, recall: 1 });
  });

  it('rejects malformed input', () => {
    const { p } = make({ gateList: gates(2, 8, 11) });
    expect(() => p.predict(0, new Float32Array(H + 1))).toThrow(RouterError);
    expect(() => p.observe(1, [8])).toThrow(/expert 8 of 8/);
    const bad = make({ gateList: [null, { weight: new Float32Array(3) }] }).p;
    expect(() => bad.predict(0, new Float32Array(H))).toThrow(/gate has 3 floats/);
  });
});
