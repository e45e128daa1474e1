/**
 * The WASM SIMD backend against the CPU reference on seeded random inputs of awkward sizes, on one
 * thread and split across worker threads. Tolerances as for WebGPU (tests/unit/kernels/webgpu.test.ts):
 * matmul-like ops max |wasm - cpu| ≤ 1e-5 · sqrt(K) · max(1, max |cpu|); the ops the reference
 * runs on the WASM memory must match it exactly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightDtype } from '../../../manifests/index.ts';
import { createCpuBackend, createWasmBackend, type Act, type Backend, type WasmBackend } from '../../../kernels/index.ts';
import { createWasmBackendNode } from '../../../kernels/node.ts';
import { WasmHeap } from '../../../kernels/wasm/heap.ts';
import { againstCpu, randomF32, rng, type BackendPair } from './helpers.ts';

const cpu = createCpuBackend();
const DTYPES: WeightDtype[] = ['f32', 'f16', 'q8_0', 'q4_0'];

describe.each([1, 3])('WASM backend on %i thread(s) vs CPU reference', (threads) => {
  let wasm: WasmBackend;
  beforeAll(async () => {
    wasm = await createWasmBackendNode({ threads });
  });
  afterAll(() => wasm.destroy());

  type Pair = BackendPair<'w'>;
  const { pair, weights, diff, expectClose } = againstCpu(cpu, () => wasm, 'w');

  it('reports its threads', () => {
    expect(wasm.threading).toEqual({ threads, shared: threads > 1, note: null });
  });

  it('matmul: every layout at random shapes (odd N, K not a multiple of 8 for f32/f16), gemv and gemm, accumulate, offsets', async () => {
    const rand = rng(21);
    for (const dtype of DTYPES) {
      const quant = dtype === 'q8_0' || dtype === 'q4_0';
      for (let trial = 0; trial < 6; trial++) {
        const m = trial < 3 ? 1 : 1 + Math.floor(rand() * 9);
        const n = 1 + Math.floor(rand() * 300);
        const k = quant ? 32 * (1 + Math.floor(rand() * 12)) : 1 + Math.floor(rand() * 400);
        const pad = 4 * Math.floor(rand() * 64);
        const x = pair(m, k, randomF32(rand, m * k));
        const w = weights(rand, dtype, n, k, pad);
        const out = pair(m, n);
        cpu.matmul(x.c, w.c, out.c);
        wasm.matmul(x.w, w.w, out.w);
        await expectClose(out, k, `${dtype} ${m}×${n}×${k} pad ${pad}`);
        cpu.matmul(x.c, w.c, out.c, true);
        wasm.matmul(x.w, w.w, out.w, true);
        await expectClose(out, k, `${dtype} ${m}×${n}×${k} accumulate`);
      }
    }
  });

  it('matmul: a large GEMV that every thread takes part in', async () => {
    const rand = rng(22);
    for (const dtype of DTYPES) {
      const [n, k] = [3100, 1024];
      const x = pair(1, k, randomF32(rand, k));
      const w = weights(rand, dtype, n, k);
      const out = pair(1, n);
      cpu.matmul(x.c, w.c, out.c);
      wasm.matmul(x.w, w.w, out.w);
      await expectClose(out, k, `${dtype} ${n}×${k}`);
    }
  });

  it('matmulHeads: per-head products, gemv and gemm', async () => {
    const rand = rng(23);
    for (const dtype of DTYPES) {
      for (const m of [1, 4, 13]) {
        const [heads, n, k] = [3, 5, 64];
        const x = pair(m, heads * k, randomF32(rand, m * heads * k));
        const w = weights(rand, dtype, heads * n, k);
        const out = pair(m, heads * n);
        cpu.matmulHeads(x.c, w.c, out.c, heads);
        wasm.matmulHeads(x.w, w.w, out.w, heads);
        await expectClose(out, k, `${dtype} heads m=${m}`);
      }
    }
  });

  it('attention: causal GQA over a cache, startPos > 0, MLA value offset, odd widths', async () => {
    const rand = rng(24);
    const cases = [
      { m: 7, t: 7, heads: 6, kvHeads: 2, dk: 40, dv: 24, startPos: 0, kCols: 80, vCols: 48, vColOffset: 0 },
      { m: 1, t: 150, heads: 4, kvHeads: 4, dk: 33, dv: 70, startPos: 149, kCols: 140, vCols: 290, vColOffset: 5 },
      { m: 3, t: 200, heads: 8, kvHeads: 2, dk: 64, dv: 63, startPos: 120, kCols: 128, vCols: 128, vColOffset: 0 },
      { m: 2, t: 80, heads: 3, kvHeads: 1, dk: 576, dv: 512, startPos: 70, kCols: 576, vCols: 576, vColOffset: 0, mla: true },
      // enough work to split across threads; the second splits one kv head's 10 heads 3 + 3 + 3 + 1
      { m: 4, t: 1000, heads: 8, kvHeads: 2, dk: 64, dv: 64, startPos: 996, kCols: 128, vCols: 128, vColOffset: 0 },
      { m: 1, t: 2000, heads: 10, kvHeads: 1, dk: 64, dv: 42, startPos: 1999, kCols: 64, vCols: 50, vColOffset: 3 },
    ];
    for (const cs of cases) {
      const q = pair(cs.m, cs.heads * cs.dk, randomF32(rand, cs.m * cs.heads * cs.dk));
      const k = pair(cs.t + 4, cs.kCols, randomF32(rand, (cs.t + 4) * cs.kCols));
      const v = cs.mla ? k : pair(cs.t + 4, cs.vCols, randomF32(rand, (cs.t + 4) * cs.vCols));
      const out = pair(cs.m, cs.heads * cs.dv);
      const p = { heads: cs.heads, kvHeads: cs.kvHeads, dk: cs.dk, dv: cs.dv, startPos: cs.startPos, scale: (1 / Math.sqrt(cs.dk)) * 3, vColOffset: cs.vColOffset };
      cpu.attention(q.c, k.c, v.c, out.c, p);
      wasm.attention(q.w, k.w, v.w, out.w, p);
      await expectClose(out, cs.t, JSON.stringify(cs));
    }
  });

  it('matmul: a non-finite activation makes its output row non-finite in every layout', async () => {
    const rand = rng(27);
    for (const dtype of DTYPES) {
      for (const bad of [NaN, Infinity]) {
        const data = randomF32(rand, 2 * 64);
        data[64 + 5] = bad;
        const x = wasm.act(2, 64);
        wasm.write(x, data);
        const w = weights(rand, dtype, 8, 64).w;
        const out = wasm.act(2, 8);
        wasm.matmul(x, w, out);
        expect(await wasm.finiteRows(out), `${dtype} ${bad}`).toEqual([true, false]);
      }
    }
  });

  it('the reference ops on WASM memory: embed, rmsnorm, rope, swiglu, add, copy, gather, scatterAdd, argmax, finiteRows', async () => {
    const rand = rng(25);
    const [r, c] = [7, 333];
    const a = pair(r, c, randomF32(rand, r * c, 4));
    const b = pair(r, c, randomF32(rand, r * c, 4));
    const out = pair(r, c);
    const normW = new Uint8Array(randomF32(rand, c).buffer);
    const nc = cpu.weight(cpu.upload(normW), 0, 'f32', 1, c);
    const nw = wasm.weight(wasm.upload(normW), 0, 'f32', 1, c);
    const table = weights(rand, 'q4_0', 50, 96, 128);
    const emb = pair(3, 96);
    const ops: Array<[string, (be: Backend, p: (x: Pair) => Act, w: boolean) => void, Pair]> = [
      ['embed', (be, p, w) => be.embed(new Uint32Array([4, 49, 4]), w ? table.w : table.c, p(emb)), emb],
      ['rmsnorm', (be, p, w) => be.rmsnorm(p(a), w ? nw : nc, p(out), 1e-6), out],
      ['rope', (be, p) => be.rope(p(a), { heads: 3, headStride: 100, ropeOffset: 4, ropeDim: 64, startPos: 9, theta: 10000, interleaved: false }), a],
      ['swiglu', (be, p) => be.swiglu(p(a), p(b), p(out)), out],
      ['add', (be, p) => be.add(p(a), p(b), p(a)), a],
      ['copy', (be, p) => be.copy(p(a), 2, 100, p(b), 3, 7, 4, 40), b],
      ['scatterAdd', (be, p) => be.scatterAdd(p(a), new Uint32Array([1, 5, 2, 0, 3, 4, 6]), Float32Array.from({ length: 7 }, (_, i) => i - 3), p(b)), b],
    ];
    for (const [name, op, res] of ops) {
      op(cpu, (x) => x.c, false);
      op(wasm, (x) => x.w, true);
      expect((await diff(res)).err, name).toBe(0);
    }
    const g = pair(3, c);
    cpu.gather(a.c, new Uint32Array([6, 0, 6]), g.c);
    wasm.gather(a.w, new Uint32Array([6, 0, 6]), g.w);
    expect((await diff(g)).err, 'gather').toBe(0);
    const data = randomF32(rand, 3 * 100);
    data[100 + 3] = NaN;
    const f = pair(3, 100, data);
    expect(Array.from(await wasm.argmax(f.w))).toEqual(Array.from(await cpu.argmax(f.c)));
    expect(await wasm.finiteRows(f.w)).toEqual([true, false, true]);
  });

  it('keeps activations and weights intact while its memory grows; bytesInUse follows uploads', async () => {
    const rand = rng(26);
    const x = pair(2, 64, randomF32(rand, 128));
    const w = weights(rand, 'q8_0', 40, 64);
    const before = wasm.bytesInUse();
    const big = wasm.upload(new Uint8Array(24 << 20));
    expect(wasm.bytesInUse()).toBe(before + (24 << 20));
    const out = pair(2, 40);
    cpu.matmul(x.c, w.c, out.c);
    wasm.matmul(x.w, w.w, out.w);
    await expectClose(out, 64, 'after growth');
    wasm.releaseBytes(big);
    expect(wasm.bytesInUse()).toBe(before + 2 * 40 * 4);
  });
});

describe('WASM backend fallbacks', () => {
  it('runs single-threaded and says why without a way to start workers or without SharedArrayBuffer', async () => {
    const noSpawn = await createWasmBackend({ threads: 4 });
    expect(noSpawn.threading).toMatchObject({ threads: 1, shared: false });
    expect(noSpawn.threading.note).toMatch(/single-threaded/);
    const g = globalThis as { crossOriginIsolated?: boolean };
    g.crossOriginIsolated = false;
    try {
      const isolated = await createWasmBackendNode({ threads: 4 });
      expect(isolated.threading).toMatchObject({ threads: 1, shared: false });
      expect(isolated.threading.note).toMatch(/SharedArrayBuffer/);
      const x = isolated.act(1, 32);
      isolated.write(x, new Float32Array(32).fill(1));
      const w = isolated.weight(isolated.upload(new Uint8Array(new Float32Array(64).fill(0.5).buffer)), 0, 'f32', 2, 32);
      const out = isolated.act(1, 2);
      isolated.matmul(x, w, out);
      expect(Array.from(await isolated.read(out))).toEqual([16, 16]);
    } finally {
      delete g.crossOriginIsolated;
    }
  });

  it('its heap reuses and merges freed blocks and grows the memory when nothing fits', () => {
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 100 });
    const heap = new WasmHeap(memory);
    const a = heap.alloc(100);
    const b = heap.alloc(1000);
    const c = heap.alloc(10);
    a.bytes().fill(7);
    heap.free(a);
    heap.free(b);
    const d = heap.alloc(1100);
    expect(d.bytes().byteOffset).toBe(a.bytes().byteOffset);
    expect(Array.from(d.bytes().subarray(0, 4))).toEqual([0, 0, 0, 0]);
    const e = heap.alloc(200_000);
    expect(memory.buffer.byteLength).toBeGreaterThanOrEqual(65536 + 200_000);
    expect(e.bytes().byteOffset).toBeGreaterThan(c.bytes().byteOffset);
    expect(() => heap.alloc(100 * 65536)).toThrow(/could not grow/);
  });
});
