/**
 * Every WebGPU kernel against the CPU reference on seeded random inputs of awkward sizes (runs on
 * SwiftShader in CI). Tolerances: matmul-like ops (matmul, matmulHeads, attention, rmsnorm)
 * max |gpu - cpu| ≤ 1e-5 · sqrt(K) · max(1, max |cpu|), K the reduction length; elementwise ops and
 * lookups ≤ 1e-6 relative (exact ops such as copy, gather and embed must match exactly); RoPE
 * ≤ 2e-6 · max |x| (cos/sin of the reduced angle).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FORMATS, WEIGHT_DTYPES, type WeightDtype } from '../../../manifests/index.ts';
import { createCpuBackend, createWebGpuBackend, type Act, type Backend, type WebGpuBackend } from '../../../kernels/index.ts';
import { attentionSplits } from '../../../kernels/webgpu/backend.ts';
import { againstCpu, maxAbs, randomF32, rng, type BackendPair } from './helpers.ts';

const cpu = createCpuBackend();
let gpu: WebGpuBackend;

beforeAll(async () => {
  gpu = await createWebGpuBackend();
});
afterAll(() => gpu.destroy());

type Pair = BackendPair<'g'>;
const { pair, weights, diff, expectClose } = againstCpu(cpu, () => gpu, 'g');

const DTYPES = WEIGHT_DTYPES;
/** `k` rounded up to whole blocks of the format (the group formats' 64-weight groups). */
const whole = (dtype: WeightDtype, k: number): number => Math.ceil(k / FORMATS[dtype].block) * FORMATS[dtype].block;

describe('WebGPU backend vs CPU reference', () => {
  // One test per layout: each takes about a minute on SwiftShader.
  it.each(DTYPES)('matmul %s: gemv (M ≤ 8) and gemm paths, awkward N, accumulate, offsets', async (dtype) => {
    const rand = rng(11);
    for (const [m, n, k0, pad] of [
      [1, 37, 96, 0],
      [3, 129, 160, 256],
      [8, 70, 64, 0],
      [9, 37, 96, 512],
      [70, 67, 128, 0],
      [1, 5, 32, 4],
    ] as const) {
      const k = whole(dtype, k0);
      const x = pair(m, k, randomF32(rand, m * k));
      const w = weights(rand, dtype, n, k, pad);
      const out = pair(m, n);
      cpu.matmul(x.c, w.c, out.c);
      gpu.matmul(x.g, w.g, out.g);
      await expectClose(out, k, `${dtype} ${m}×${n}×${k}`);
      cpu.matmul(x.c, w.c, out.c, true);
      gpu.matmul(x.g, w.g, out.g, true);
      await expectClose(out, k, `${dtype} ${m}×${n}×${k} accumulate`);
    }
    // f32/f16 widths that are not whole 16-byte units take the generic kernel
    if (dtype === 'f32' || dtype === 'f16') {
      const x = pair(2, 101, randomF32(rand, 202));
      const w = weights(rand, dtype, 19, 101);
      const out = pair(2, 19);
      cpu.matmul(x.c, w.c, out.c);
      gpu.matmul(x.g, w.g, out.g);
      await expectClose(out, 101, `${dtype} odd K`);
    }
  });

  it.each(DTYPES)('gemv %s: every threads-per-row / rows-per-thread shape gives the same result', async (dtype) => {
    const rand = rng(12);
    const [n, k] = [300, 256];
    const w = weights(rand, dtype, n, k);
    for (const [m, shapes] of [
      [1, [[8, 2, false, false, 1], [64, 3, true, false, 1], [256, 1, false, false, 1], [8, 3, false, true, 2], [32, 2, false, true, 4], [16, 1, false, false, 4]]],
      [3, [[4, 2, false, false, 1], [8, 1, false, true, 2]]],
    ] as const) {
      const x = pair(m, k, randomF32(rand, m * k));
      const out = pair(m, n);
      cpu.matmul(x.c, w.c, out.c);
      // narrow units and unrolled loops, with and without a remainder loop after the unrolled one
      for (const [tpr, rpt, stageX, narrow, unroll] of shapes) {
        gpu.setGemvChooser(() => ({ tpr, rpt, stageX, narrow, unroll }));
        // subgroup shuffles then a tree (SwiftShader's subgroups have 4 lanes; without the feature,
        // true is a no-op) and, for one shape, the plain tree
        for (const sg of tpr === 8 ? [true, false] : [true]) {
          gpu.setSubgroupReduction(sg);
          gpu.matmul(x.g, w.g, out.g);
          await expectClose(out, k, `${dtype} m=${m} tpr=${tpr} rpt=${rpt} stageX=${stageX} narrow=${narrow} unroll=${unroll} subgroups=${sg}`);
        }
        gpu.setSubgroupReduction(true);
      }
    }
    gpu.setGemvChooser(null);
  });

  it('matmulHeads: per-head products, gemv and gemm', async () => {
    const rand = rng(13);
    for (const dtype of DTYPES) {
      for (const m of [1, 4, 20]) {
        const [heads, n, k] = [3, 5, 64];
        const x = pair(m, heads * k, randomF32(rand, m * heads * k));
        const w = weights(rand, dtype, heads * n, k);
        const out = pair(m, heads * n);
        cpu.matmulHeads(x.c, w.c, out.c, heads);
        gpu.matmulHeads(x.g, w.g, out.g, heads);
        await expectClose(out, k, `${dtype} heads m=${m}`);
      }
    }
  });

  it('embed: rows of every layout, exactly', async () => {
    const rand = rng(14);
    for (const dtype of DTYPES) {
      const cols = whole(dtype, 96);
      const w = weights(rand, dtype, 50, cols, 256);
      const ids = new Uint32Array([0, 49, 7, 7, 23]);
      const out = pair(5, cols);
      cpu.embed(ids, w.c, out.c);
      gpu.embed(ids, w.g, out.g);
      expect((await diff(out)).err, dtype).toBe(0);
    }
  });

  it('rmsnorm: rows of a reshaped activation, separate and in place', async () => {
    const rand = rng(15);
    const d = 300;
    const wBytes = new Uint8Array(randomF32(rand, d, 2).buffer);
    const wc = cpu.weight(cpu.upload(wBytes), 0, 'f32', 1, d);
    const wg = gpu.weight(gpu.upload(wBytes), 0, 'f32', 1, d);
    const data = randomF32(rand, 5 * 2 * d, 3);
    const x = pair(5, 2 * d, data);
    const out = pair(10, d);
    cpu.rmsnorm(x.c, wc, out.c, 1e-6);
    gpu.rmsnorm(x.g, wg, out.g, 1e-6);
    await expectClose(out, d, 'rmsnorm');
    cpu.rmsnorm(x.c, wc, x.c, 1e-6);
    gpu.rmsnorm(x.g, wg, x.g, 1e-6);
    await expectClose(x, d, 'rmsnorm in place');
  });

  it('rope: half-split and interleaved, partial dims, offsets, large positions, custom frequencies', async () => {
    const rand = rng(16);
    const cases = [
      { heads: 3, headStride: 40, ropeOffset: 8, ropeDim: 24, startPos: 0, theta: 10000, interleaved: false },
      { heads: 3, headStride: 40, ropeOffset: 8, ropeDim: 24, startPos: 37, theta: 1e6, interleaved: true },
      { heads: 2, headStride: 64, ropeOffset: 0, ropeDim: 64, startPos: 30000, theta: 10000, interleaved: false },
      { heads: 1, headStride: 20, ropeOffset: 4, ropeDim: 16, startPos: 5, theta: 0, interleaved: true, invFreq: randomF32(rand, 8), scaling: 1.3 },
    ];
    for (const p of cases) {
      const x = pair(5, p.heads * p.headStride + 3, randomF32(rand, 5 * (p.heads * p.headStride + 3)));
      cpu.rope(x.c, p);
      gpu.rope(x.g, p);
      const { err, scale } = await diff(x);
      expect(err, JSON.stringify({ ...p, invFreq: undefined })).toBeLessThanOrEqual(2e-6 * scale);
    }
  });

  it('swiglu, add (with aliasing), copy, gather, scatterAdd', async () => {
    const rand = rng(17);
    const [r, c] = [7, 333];
    const a = pair(r, c, randomF32(rand, r * c, 4));
    const b = pair(r, c, randomF32(rand, r * c, 4));
    const out = pair(r, c);
    const ops: Array<[string, (be: Backend, p: (x: Pair) => Act) => void, Pair]> = [
      ['swiglu', (be, p) => be.swiglu(p(a), p(b), p(out)), out],
      ['swiglu into gate', (be, p) => be.swiglu(p(out), p(b), p(out)), out],
      ['add', (be, p) => be.add(p(a), p(b), p(out)), out],
      ['add into a', (be, p) => be.add(p(a), p(b), p(a)), a],
      ['add into b', (be, p) => be.add(p(a), p(b), p(b)), b],
      ['add self', (be, p) => be.add(p(b), p(b), p(b)), b],
    ];
    for (const [name, op, res] of ops) {
      op(cpu, (x) => x.c);
      op(gpu, (x) => x.g);
      const { err, scale } = await diff(res);
      expect(err, name).toBeLessThanOrEqual(1e-6 * scale);
    }
    const dst = pair(9, 50, randomF32(rand, 450));
    cpu.copy(a.c, 2, 100, dst.c, 3, 7, 4, 40);
    gpu.copy(a.g, 2, 100, dst.g, 3, 7, 4, 40);
    cpu.copy(dst.c, 0, 0, dst.c, 5, 10, 3, 20);
    gpu.copy(dst.g, 0, 0, dst.g, 5, 10, 3, 20);
    expect((await diff(dst)).err, 'copy').toBe(0);
    const rows = new Uint32Array([6, 0, 3]);
    const gat = pair(3, c);
    cpu.gather(a.c, rows, gat.c);
    gpu.gather(a.g, rows, gat.g);
    expect((await diff(gat)).err, 'gather').toBe(0);
    const scale = new Float32Array([0.5, -2, 3]);
    cpu.scatterAdd(gat.c, new Uint32Array([1, 5, 2]), scale, a.c);
    gpu.scatterAdd(gat.g, new Uint32Array([1, 5, 2]), scale, a.g);
    const s = await diff(a);
    expect(s.err, 'scatterAdd').toBeLessThanOrEqual(1e-6 * s.scale);
  });

  it('attention: causal GQA over a cache, tiles of keys, startPos > 0, MLA value offset, wide heads, split keys', async () => {
    const rand = rng(18);
    const cases = [
      { m: 7, t: 7, heads: 6, kvHeads: 2, dk: 40, dv: 24, startPos: 0, kCols: 80, vCols: 48, vColOffset: 0 },
      { m: 1, t: 150, heads: 4, kvHeads: 4, dk: 33, dv: 70, startPos: 149, kCols: 140, vCols: 290, vColOffset: 5 },
      { m: 3, t: 200, heads: 8, kvHeads: 2, dk: 64, dv: 64, startPos: 120, kCols: 128, vCols: 128, vColOffset: 0 },
      { m: 2, t: 80, heads: 3, kvHeads: 1, dk: 576, dv: 512, startPos: 70, kCols: 576, vCols: 576, vColOffset: 0, mla: true },
      // long caches with few (row, head) pairs take the split-keys path (5 and 2 splits)
      { m: 2, t: 1302, heads: 4, kvHeads: 2, dk: 64, dv: 48, startPos: 1300, kCols: 128, vCols: 100, vColOffset: 4 },
      { m: 1, t: 600, heads: 2, kvHeads: 1, dk: 576, dv: 512, startPos: 599, kCols: 576, vCols: 576, vColOffset: 0, mla: true },
    ];
    expect([attentionSplits(8, 1302), attentionSplits(2, 600), attentionSplits(24, 200)]).toEqual([5, 2, 1]);
    for (const cs of cases) {
      const q = pair(cs.m, cs.heads * cs.dk, randomF32(rand, cs.m * cs.heads * cs.dk));
      const k = pair(cs.t + 4, cs.kCols, randomF32(rand, (cs.t + 4) * cs.kCols));
      const v = cs.mla ? k : pair(cs.t + 4, cs.vCols, randomF32(rand, (cs.t + 4) * cs.vCols));
      const out = pair(cs.m, cs.heads * cs.dv);
      const p = { heads: cs.heads, kvHeads: cs.kvHeads, dk: cs.dk, dv: cs.dv, startPos: cs.startPos, scale: 1 / Math.sqrt(cs.dk) * 3, vColOffset: cs.vColOffset };
      cpu.attention(q.c, k.c, v.c, out.c, p);
      gpu.attention(q.g, k.g, v.g, out.g, p);
      await expectClose(out, cs.t, JSON.stringify(cs));
    }
  });

  it('attention with a sliding window: prefill, decode, ring-buffer caches, split keys', async () => {
    const rand = rng(23);
    const cases = [
      // prefill of 12 over a window of 5: most queries see only part of the cache
      { m: 12, rows: 12, heads: 4, kvHeads: 2, dk: 16, dv: 16, startPos: 0, window: 5 },
      // decode at position 40 over a 9-row ring (window 8 + one new key): rows wrap mid-window
      { m: 1, rows: 9, heads: 4, kvHeads: 2, dk: 16, dv: 16, startPos: 40, window: 8, ring: true },
      // three new tokens into a ring of window - 1 + 3 rows
      { m: 3, rows: 10, heads: 2, kvHeads: 1, dk: 8, dv: 12, startPos: 29, window: 8, ring: true },
      // a long window over a long cache takes the split-keys path; keys before the window are skipped
      { m: 1, rows: 1400, heads: 2, kvHeads: 1, dk: 64, dv: 48, startPos: 1399, window: 900 },
      { m: 2, rows: 1000, heads: 2, kvHeads: 2, dk: 32, dv: 32, startPos: 1700, window: 999, ring: true },
    ];
    for (const cs of cases) {
      const q = pair(cs.m, cs.heads * cs.dk, randomF32(rand, cs.m * cs.heads * cs.dk));
      const k = pair(cs.rows, cs.kvHeads * cs.dk, randomF32(rand, cs.rows * cs.kvHeads * cs.dk));
      const v = pair(cs.rows, cs.kvHeads * cs.dv, randomF32(rand, cs.rows * cs.kvHeads * cs.dv));
      const out = pair(cs.m, cs.heads * cs.dv);
      const p = { heads: cs.heads, kvHeads: cs.kvHeads, dk: cs.dk, dv: cs.dv, startPos: cs.startPos, scale: 2 / Math.sqrt(cs.dk), window: cs.window, ...(cs.ring ? { cacheRows: cs.rows } : {}) };
      cpu.attention(q.c, k.c, v.c, out.c, p);
      gpu.attention(q.g, k.g, v.g, out.g, p);
      await expectClose(out, cs.window, JSON.stringify(cs));
    }
    expect(attentionSplits(2, 900)).toBeGreaterThan(1);
  });

  it('argmax and finiteRows; acts come back zeroed from the pool; bytesInUse tracks buffers', async () => {
    const rand = rng(19);
    const data = randomF32(rand, 4 * 1000);
    data[1000 + 777] = 5;
    data[2000 + 3] = NaN;
    data[2000 + 4] = 9;
    data[3000 + 999] = -Infinity;
    const x = pair(4, 1000, data);
    expect(Array.from(await gpu.argmax(x.g))).toEqual(Array.from(await cpu.argmax(x.c)));
    expect(await gpu.finiteRows(x.g)).toEqual([true, true, false, false]);
    expect(await cpu.finiteRows(x.c)).toEqual([true, true, false, false]);
    const before = gpu.bytesInUse();
    const a = gpu.act(100, 100);
    gpu.write(a, randomF32(rand, 10000));
    expect(gpu.bytesInUse()).toBeGreaterThanOrEqual(before + 40000);
    gpu.freeAct(a);
    const b = gpu.act(100, 100);
    expect(maxAbs(await gpu.read(gpu.view(b, 10000, 1)))).toBe(0);
    const bytes = gpu.upload(new Uint8Array(3 << 20));
    expect(gpu.bytesInUse()).toBeGreaterThanOrEqual(before + (3 << 20));
    gpu.releaseBytes(bytes);
  });
});
