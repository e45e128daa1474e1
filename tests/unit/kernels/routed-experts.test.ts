/**
 * Backend.routedExperts (experts picked on the device from `route`'s output, weights selected by
 * slab slot) against the same token run the CPU-routed way: per picked expert, in ascending id,
 * matmul gate/up, swiglu, matmul down and scatterAdd of its weight. On each backend the two must
 * agree bit for bit (the GPU records the very same kernels, only with patched offsets), for every
 * weight format and for picks in any order; the GPU must also match the CPU within matmul tolerance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuBackend, createWebGpuBackend, KernelError, type Backend, type ExpertSlabs, type RouteParams, type WebGpuBackend } from '../../../kernels/index.ts';
import { weightByteLength } from '../../../kernels/index.ts';
import type { WeightDtype } from '../../../manifests/index.ts';
import { maxAbs, maxAbsDiff, randomF32, randomWeightBytes, rng } from './helpers.ts';

let gpu: WebGpuBackend;
beforeAll(async () => {
  gpu = await createWebGpuBackend();
});
afterAll(() => gpu.destroy());

const E = 6;
const HIDDEN = 64;
const INTER = 96;
const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** E random experts' matrices of one kind packed into one slab at a 256-byte stride. */
function slabBytes(rand: () => number, dtype: WeightDtype, rows: number, cols: number): { bytes: Uint8Array; stride: number } {
  const len = weightByteLength(dtype, rows, cols);
  const stride = roundUp(len, 256);
  const bytes = new Uint8Array(stride * E);
  for (let e = 0; e < E; e++) bytes.set(randomWeightBytes(rand, dtype, rows, cols).subarray(0, len), e * stride);
  return { bytes, stride };
}

function upload(b: Backend, dtype: WeightDtype, kinds: Record<'gate' | 'up' | 'down', { bytes: Uint8Array; stride: number }>): ExpertSlabs {
  const slots = (kind: 'gate' | 'up' | 'down', rows: number, cols: number) => {
    const d = b.upload(kinds[kind].bytes);
    return Array.from({ length: E }, (_, e) => b.weight(d, e * kinds[kind].stride, dtype, rows, cols));
  };
  return { gate: slots('gate', INTER, HIDDEN), up: slots('up', INTER, HIDDEN), down: slots('down', HIDDEN, INTER) };
}

/** out0 + the picked experts run one by one, as the engine's CPU-routed path does. */
async function composed(b: Backend, slabs: ExpertSlabs, x: Float32Array, out0: Float32Array, routing: Float32Array, k: number): Promise<Float32Array> {
  const xa = b.act(1, HIDDEN);
  b.write(xa, x);
  const out = b.act(1, HIDDEN);
  b.write(out, out0);
  const picks = Array.from({ length: k }, (_, j) => ({ id: routing[j]!, w: routing[k + j]! })).sort((p, q) => p.id - q.id);
  for (const { id, w } of picks) {
    const g = b.act(1, INTER);
    const u = b.act(1, INTER);
    const a = b.act(1, INTER);
    const y = b.act(1, HIDDEN);
    b.matmul(xa, slabs.gate[id]!, g);
    b.matmul(xa, slabs.up[id]!, u);
    b.swiglu(g, u, a);
    b.matmul(a, slabs.down[id]!, y);
    b.scatterAdd(y, Uint32Array.of(0), Float32Array.of(w), out);
  }
  return b.read(out);
}

async function onDevice(b: Backend, slabs: ExpertSlabs, x: Float32Array, out0: Float32Array, logits: Float32Array, p: RouteParams, accumulate = true): Promise<{ out: Float32Array; routing: Float32Array }> {
  const xa = b.act(1, HIDDEN);
  b.write(xa, x);
  const la = b.act(1, E);
  b.write(la, logits);
  const r = b.act(1, 2 * p.topK, false);
  b.route(la, p, null, r);
  const out = b.act(1, HIDDEN);
  b.write(out, out0);
  b.routedExperts(xa, r, slabs, out, accumulate);
  const [o, routing] = await b.readMany([out, r]);
  return { out: o!, routing: routing! };
}

const DTYPES: WeightDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];

describe.each(DTYPES)('routedExperts at %s', (dtype) => {
  it.each([1, 2, 4])('top-%i equals the CPU-routed composition on both backends, and the GPU the CPU', async (k) => {
    const rand = rng(100 + k * 7 + DTYPES.indexOf(dtype));
    const kinds = { gate: slabBytes(rand, dtype, INTER, HIDDEN), up: slabBytes(rand, dtype, INTER, HIDDEN), down: slabBytes(rand, dtype, HIDDEN, INTER) };
    const p: RouteParams = { router: 'softmax_topk', numExperts: E, topK: k, normTopkProb: true, nGroup: 1, topkGroup: 1, routedScalingFactor: 1 };
    const results: Float32Array[] = [];
    for (const b of [createCpuBackend(), gpu] as Backend[]) {
      const slabs = upload(b, dtype, kinds);
      for (let trial = 0; trial < 3; trial++) {
        const x = randomF32(rng(trial), HIDDEN);
        const out0 = randomF32(rng(trial + 50), HIDDEN);
        const logits = randomF32(rng(trial + 99 + k), E, 3);
        const { out, routing } = await onDevice(b, slabs, x, out0, logits, p);
        const ref = await composed(b, slabs, x, out0, routing, k);
        expect(maxAbsDiff(out, ref), `${b.name} trial ${trial}`).toBe(0);
        // without accumulate, whatever out held (NaN here) is ignored: the sum starts from zero
        const fresh = await onDevice(b, slabs, x, new Float32Array(HIDDEN).fill(NaN), logits, p, false);
        expect(maxAbsDiff(fresh.out, await composed(b, slabs, x, new Float32Array(HIDDEN), routing, k)), `${b.name} trial ${trial}, overwrite`).toBe(0);
        if (trial === 0) results.push(out);
      }
    }
    const [c, g] = results as [Float32Array, Float32Array];
    expect(maxAbsDiff(c, g)).toBeLessThanOrEqual(1e-5 * Math.sqrt(INTER) * Math.max(1, maxAbs(c)) * 4);
  });
});

describe('routedExperts refuses', () => {
  it('slots that are not at one 256-byte stride of one slab, more picks than slots, and more than one token', () => {
    for (const b of [createCpuBackend(), gpu] as Backend[]) {
      const d = b.upload(new Uint8Array(4 * 4 * 3 * 256));
      const w = (off: number, rows: number, cols: number) => b.weight(d, off, 'f32', rows, cols);
      const slabs: ExpertSlabs = { gate: [w(0, 4, 4), w(256, 4, 4)], up: [w(512, 4, 4), w(768, 4, 4)], down: [w(1024, 4, 4), w(1536, 4, 4)] };
      const r = b.act(1, 2);
      expect(() => b.routedExperts(b.act(2, 4), r, slabs, b.act(2, 4))).toThrow(/one token/);
      const uneven = { ...slabs, gate: [w(0, 4, 4), w(256, 4, 4), w(768, 4, 4)], up: [...slabs.up, w(1024, 4, 4)], down: [...slabs.down, w(0, 4, 4)] };
      expect(() => b.routedExperts(b.act(1, 4), r, uneven, b.act(1, 4))).toThrow(/gate slot 2/);
      const unaligned = { ...slabs, gate: [w(0, 4, 4), w(320, 4, 4)] };
      expect(() => b.routedExperts(b.act(1, 4), r, unaligned, b.act(1, 4))).toThrow(/multiples of 256/);
      expect(() => b.routedExperts(b.act(1, 4), b.act(1, 6), slabs, b.act(1, 4))).toThrow(KernelError);
      b.routedExperts(b.act(1, 4), r, slabs, b.act(1, 4));
    }
  });
});

describe('argmaxTo and finiteTo', () => {
  it('write what argmax and finiteRows read back into a column of an activation, on both backends', async () => {
    const rand = rng(5);
    const data = randomF32(rand, 3 * 300);
    data[1 * 300 + 7] = NaN;
    data[2 * 300 + 10] = 5;
    data[2 * 300 + 20] = 5;
    data[2 * 300 + 30] = Infinity;
    for (const b of [createCpuBackend(), gpu] as Backend[]) {
      const x = b.act(3, 300);
      b.write(x, data);
      const rec = b.act(3, 4);
      b.argmaxTo(x, rec, 1);
      b.finiteTo(x, rec, 3);
      const got = await b.read(rec);
      const ids = await b.argmax(x);
      const ok = await b.finiteRows(x);
      for (let r = 0; r < 3; r++) {
        expect([got[r * 4 + 1], got[r * 4 + 3]], `${b.name} row ${r}`).toEqual([ids[r], ok[r] ? 1 : 0]);
        expect([got[r * 4], got[r * 4 + 2]]).toEqual([0, 0]);
      }
      expect(Array.from(ok)).toEqual([true, false, false]);
      expect(() => b.argmaxTo(x, rec, 4)).toThrow(KernelError);
    }
  });
});
