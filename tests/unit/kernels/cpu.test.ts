import { describe, expect, it } from 'vitest';
import { createCpuBackend, KernelError } from '../../../kernels/index.ts';
import { dequantize, quantize, WEIGHT_DTYPES } from '../../../manifests/index.ts';
import { randomF32, randomWeightBytes, rng } from './helpers.ts';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6): void => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol);
};

function halfBits(x: number): number {
  // exact for the small dyadic values used below
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0]!;
  const exp = ((u >>> 23) & 0xff) - 127 + 15;
  return ((u >>> 16) & 0x8000) | (exp << 10) | ((u & 0x7fffff) >>> 13);
}

describe('CPU reference backend', () => {
  it('decodes every layout: f32, f16, q8_0, q4_0, mxfp4 rows', async () => {
    const be = createCpuBackend();
    const x = be.act(1, 32);
    const xv = new Float32Array(32);
    xv[0] = 1;
    xv[17] = 2;
    be.write(x, xv);
    // q4_0, one row of one block: byte j = lo (weight j) | hi (weight j+16), w = (nibble - 8) * d
    const q4 = new Uint8Array(16 + 4);
    q4[0] = 0x3c; // w0 = (12-8)*d, w16 = (3-8)*d
    q4[1] = 0xa0; // w1 = -8d, w17 = (10-8)*d
    new DataView(q4.buffer).setUint16(16, halfBits(0.5), true);
    const out = be.act(1, 1);
    be.matmul(x, be.weight(be.upload(q4), 0, 'q4_0', 1, 32), out);
    // 1 * w0 + 2 * w17 = 1 * 2 + 2 * 1
    close(await be.read(out), [4]);
    // q8_0: w = q * d
    const q8 = new Uint8Array(32 + 4);
    q8[0] = 0xfe; // -2
    q8[17] = 5;
    new DataView(q8.buffer).setUint16(32, halfBits(0.25), true);
    be.matmul(x, be.weight(be.upload(q8), 0, 'q8_0', 1, 32), out);
    close(await be.read(out), [-0.5 + 2 * 1.25]);
    // f16 at a 256-byte offset
    const f16 = new Uint8Array(256 + 64);
    const dv = new DataView(f16.buffer);
    dv.setUint16(256, halfBits(-1.5), true);
    dv.setUint16(256 + 34, halfBits(0.125), true);
    be.matmul(x, be.weight(be.upload(f16), 256, 'f16', 1, 32), out);
    close(await be.read(out), [-1.5 + 0.25]);
    // mxfp4: byte j = code of weight 2j (low nibble) | code of weight 2j+1 (high nibble), e8m0 scale 2^(e-127)
    const mx = new Uint8Array(16 + 4);
    mx[0] = 0x0f; // w0 = -6 (code 15), w1 = 0
    mx[8] = 0xb0; // w16 = 0, w17 = -1.5 (code 11)
    mx[16] = 126; // 2^-1
    be.matmul(x, be.weight(be.upload(mx), 0, 'mxfp4', 1, 32), out);
    close(await be.read(out), [1 * -6 * 0.5 + 2 * -1.5 * 0.5]);
  });

  it('decodes rows exactly as the format reference dequantizes (quantized and random bytes)', async () => {
    const rand = rng(3);
    const be = createCpuBackend();
    const [rows, cols] = [7, 192];
    for (const dtype of WEIGHT_DTYPES) {
      for (const bytes of [quantize(randomF32(rand, rows * cols), rows, cols, dtype), randomWeightBytes(rand, dtype, rows, cols)]) {
        const entry = { name: 'w', shape: [rows, cols], dtype, shard: 0, offset: 0, length: bytes.length };
        const want = dequantize(entry, bytes);
        const ids = Uint32Array.from({ length: rows }, (_, i) => i);
        const out = be.act(rows, cols);
        be.embed(ids, be.weight(be.upload(bytes), 0, dtype, rows, cols), out);
        expect(Array.from(await be.read(out)), dtype).toEqual(Array.from(want));
      }
    }
  });

  it('computes matmul, matmulHeads and accumulate as x·wᵀ', async () => {
    const be = createCpuBackend();
    const w = new Float32Array([1, 2, 3, 4, 5, 6]); // [3, 2]
    const x = be.act(2, 2);
    be.write(x, new Float32Array([1, 0, 0, 1]));
    const out = be.act(2, 3);
    const wt = be.weight(be.upload(new Uint8Array(w.buffer)), 0, 'f32', 3, 2);
    be.matmul(x, wt, out);
    close(await be.read(out), [1, 3, 5, 2, 4, 6]);
    be.matmul(x, wt, out, true);
    close(await be.read(out), [2, 6, 10, 4, 8, 12]);
    // two heads of N=1 (rows 0 and 1 of a [2, 2] weight) over x [1, 4]
    const xh = be.act(1, 4);
    be.write(xh, new Float32Array([1, 1, 2, 3]));
    const oh = be.act(1, 2);
    be.matmulHeads(xh, be.weight(be.upload(new Uint8Array(w.buffer)), 0, 'f32', 2, 2), oh, 2);
    close(await be.read(oh), [1 + 2, 3 * 2 + 4 * 3]);
  });

  it('rotates with both RoPE pairings and leaves position 0 and non-rope columns alone', async () => {
    const be = createCpuBackend();
    const x = be.act(2, 6);
    const data = new Float32Array([1, 2, 3, 4, 5, 6, 1, 0, 0, 0, 7, 0]);
    be.write(x, data);
    // one head, rotate columns [1, 5) half-split: pairs (1,3), (2,4); row 1 is position 1
    be.rope(x, { heads: 1, headStride: 6, ropeOffset: 1, ropeDim: 4, startPos: 0, theta: 10000, interleaved: false });
    const r = await be.read(x);
    close(r.subarray(0, 6), data.subarray(0, 6));
    expect(r[6]).toBe(1);
    expect(r[11]).toBe(0);
    // pair j=0 (cols 1,3): angle 1 rad on (0, 0) stays 0; pair j=1 (cols 2,4) angle 0.01 on (0, 7)
    close([r[7]!, r[9]!], [0, 0]);
    close([r[8]!, r[10]!], [-7 * Math.sin(0.01), 7 * Math.cos(0.01)], 1e-6);
    const y = be.act(1, 4);
    be.write(y, new Float32Array([1, 0, 1, 0]));
    be.rope(y, { heads: 2, headStride: 2, ropeOffset: 0, ropeDim: 2, startPos: 3, theta: 10000, interleaved: true });
    close(await be.read(y), [Math.cos(3), Math.sin(3), Math.cos(3), Math.sin(3)], 1e-6);
  });

  it('attends causally with grouped kv heads and an MLA-style value offset', async () => {
    const be = createCpuBackend();
    // one query head per kv head, dk = 2; scores are equal so the output is the mean of seen values
    const q = be.act(2, 2);
    const k = be.act(3, 2);
    be.write(k, new Float32Array([1, 1, 1, 1, 1, 1]));
    const vc = be.act(3, 3);
    be.write(vc, new Float32Array([9, 1, 2, 9, 3, 4, 9, 100, 100]));
    const out = be.act(2, 2);
    be.attention(q, k, vc, out, { heads: 1, kvHeads: 1, dk: 2, dv: 2, startPos: 0, scale: 1, vColOffset: 1 });
    close(await be.read(out), [1, 2, 2, 3]);
    // startPos 1: row 0 sees rows 0..1, row 1 sees 0..2
    be.attention(q, k, vc, out, { heads: 1, kvHeads: 1, dk: 2, dv: 2, startPos: 1, scale: 1, vColOffset: 1 });
    close(await be.read(out), [2, 3, 104 / 3, 106 / 3], 1e-5);
    // a dominant key takes the softmax
    const q2 = be.act(1, 4);
    be.write(q2, new Float32Array([0, 0, 50, 0]));
    const k2 = be.act(2, 2);
    be.write(k2, new Float32Array([-1, 0, 1, 0]));
    const v2 = be.act(2, 1);
    be.write(v2, new Float32Array([5, 7]));
    const o2 = be.act(1, 2);
    be.attention(q2, k2, v2, o2, { heads: 2, kvHeads: 1, dk: 2, dv: 1, startPos: 1, scale: 1 });
    close(await be.read(o2), [6, 7], 1e-6);
    expect(() => be.attention(q2, k2, v2, o2, { heads: 2, kvHeads: 1, dk: 2, dv: 1, startPos: 2, scale: 1 })).toThrow(KernelError);
  });

  it('attends over a sliding window: itself and the window - 1 positions before it, also from a ring buffer', async () => {
    const be = createCpuBackend();
    // equal scores: each output is the mean of the values its window sees
    const values = [10, 20, 30, 40, 50, 60];
    const k = be.act(6, 1);
    be.write(k, new Float32Array(6).fill(1));
    const vc = be.act(6, 1);
    be.write(vc, Float32Array.from(values));
    const q = be.act(6, 1);
    const out = be.act(6, 1);
    be.attention(q, k, vc, out, { heads: 1, kvHeads: 1, dk: 1, dv: 1, startPos: 0, scale: 1, window: 3 });
    const mean = (from: number, to: number) => values.slice(from, to + 1).reduce((a, b) => a + b, 0) / (to - from + 1);
    close(await be.read(out), [mean(0, 0), mean(0, 1), mean(0, 2), mean(1, 3), mean(2, 4), mean(3, 5)], 1e-6);
    // positions 4 and 5 decoded over a 4-row ring: position t sits in row t % 4
    const ringK = be.act(4, 1);
    be.write(ringK, new Float32Array(4).fill(1));
    const ringV = be.act(4, 1);
    be.write(ringV, Float32Array.from([50, 60, 30, 40]));
    const q2 = be.act(2, 1);
    const o2 = be.act(2, 1);
    be.attention(q2, ringK, ringV, o2, { heads: 1, kvHeads: 1, dk: 1, dv: 1, startPos: 4, scale: 1, window: 3, cacheRows: 4 });
    close(await be.read(o2), [mean(2, 4), mean(3, 5)], 1e-6);
    // a ring too short for window - 1 + M rows would have lost keys the queries need
    expect(() => be.attention(q2, ringK, ringV, o2, { heads: 1, kvHeads: 1, dk: 1, dv: 1, startPos: 4, scale: 1, window: 4, cacheRows: 4 })).toThrow(KernelError);
    expect(() => be.attention(q2, ringK, ringV, o2, { heads: 1, kvHeads: 1, dk: 1, dv: 1, startPos: 4, scale: 1, window: 0 })).toThrow(KernelError);
  });

  it('normalises, gates, adds, copies, gathers, scatters, and finds argmax and non-finite rows', async () => {
    const be = createCpuBackend();
    const x = be.act(2, 2);
    be.write(x, new Float32Array([3, 4, 0, 2]));
    const w = be.weight(be.upload(new Uint8Array(new Float32Array([1, 2]).buffer)), 0, 'f32', 1, 2);
    const n = be.act(2, 2);
    be.rmsnorm(x, w, n, 0);
    const inv = 1 / Math.sqrt(12.5);
    close(await be.read(n), [3 * inv, 8 * inv, 0, 2 * Math.SQRT2 * 2 / 2], 1e-6);
    const s = be.act(2, 2);
    be.swiglu(x, x, s);
    close((await be.read(s)).subarray(0, 1), [(3 / (1 + Math.exp(-3))) * 3], 1e-5);
    be.add(x, x, x);
    close(await be.read(x), [6, 8, 0, 4]);
    const c = be.act(3, 3);
    be.copy(x, 0, 1, c, 1, 2, 2, 1);
    close(await be.read(c), [0, 0, 0, 0, 0, 8, 0, 0, 4]);
    const g = be.act(2, 2);
    be.gather(x, new Uint32Array([1, 0]), g);
    close(await be.read(g), [0, 4, 6, 8]);
    be.scatterAdd(g, new Uint32Array([0, 1]), new Float32Array([2, -1]), x);
    close(await be.read(x), [6, 16, -6, -4]);
    expect(Array.from(await be.argmax(x))).toEqual([1, 1]);
    be.write(x, new Float32Array([NaN, 1]), 1);
    expect(await be.finiteRows(x)).toEqual([true, false]);
    expect(Array.from(await be.argmax(x))).toEqual([1, 1]);
    expect(() => be.scatterAdd(g, new Uint32Array([0, 0]), new Float32Array([1, 1]), x)).toThrow(KernelError);
  });
});
