/**
 * The ops gpt-oss adds: attention sinks (non-split and split-keys paths), the clamped SwiGLU and
 * the bias add. The CPU reference is checked against formulas written out here, then WebGPU
 * (SwiftShader) against the CPU reference at the tolerances of webgpu.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCpuBackend, createWebGpuBackend, type Act, type Backend, type Weight, type WebGpuBackend } from '../../../kernels/index.ts';
import { attentionSplits } from '../../../kernels/webgpu/backend.ts';
import { maxAbs, maxAbsDiff, randomF32, rng } from './helpers.ts';

const cpu = createCpuBackend();
let gpu: WebGpuBackend;
beforeAll(async () => {
  gpu = await createWebGpuBackend();
});
afterAll(() => gpu.destroy());

/** An f32 vector weight `pad` bytes into its buffer. */
function vector(be: Backend, values: number[] | Float32Array, pad = 0): Weight {
  const bytes = new Uint8Array(pad + values.length * 4);
  new Float32Array(bytes.buffer, pad, values.length).set(values);
  return be.weight(be.upload(bytes), pad, 'f32', 1, values.length);
}

function act(be: Backend, rows: number, cols: number, data: Float32Array | number[]): Act {
  const a = be.act(rows, cols);
  be.write(a, Float32Array.from(data));
  return a;
}

describe('CPU reference', () => {
  it('attention with sinks is softmax over [scores, sink] with the sink column dropped', async () => {
    // 2 query rows, 2 heads sharing one kv head, dk = dv = 2, cache of 3 rows, startPos 1
    const q = [0.5, -1, 2, 0.25, 1, 1, -0.5, 3];
    const k = [1, 0, 0, 1, 0.5, -0.5];
    const v = [1, 2, -3, 0.5, 4, -1];
    const sinks = [0.7, -2.5];
    const scale = 0.8;
    const p = { heads: 2, kvHeads: 1, dk: 2, dv: 2, startPos: 1, scale, sinks: vector(cpu, sinks) };
    const out = cpu.act(2, 4);
    cpu.attention(act(cpu, 2, 4, q), act(cpu, 3, 2, k), act(cpu, 3, 2, v), out, p);
    const want: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let h = 0; h < 2; h++) {
        const logits = [];
        for (let t = 0; t <= 1 + i; t++) logits.push((q[i * 4 + h * 2]! * k[t * 2]! + q[i * 4 + h * 2 + 1]! * k[t * 2 + 1]!) * scale);
        const den = logits.reduce((s, l) => s + Math.exp(l), Math.exp(sinks[h]!));
        for (let c = 0; c < 2; c++) want.push(logits.reduce((s, l, t) => s + (Math.exp(l) / den) * v[t * 2 + c]!, 0));
      }
    }
    expect(maxAbsDiff(await cpu.read(out), Float32Array.from(want))).toBeLessThan(1e-6);
  });

  it('clamped SwiGLU clamps gate above only, up on both sides, and adds 1 to up', async () => {
    const gate = [-9, -1, 0, 2, 7, 9.5];
    const up = [-8, 0.5, 3, -7.5, 1, 12];
    const out = cpu.act(1, 6);
    cpu.swigluClamped(act(cpu, 1, 6, gate), act(cpu, 1, 6, up), out, 1.702, 7);
    const want = gate.map((g0, i) => {
      const g = Math.min(g0, 7);
      const u = Math.min(Math.max(up[i]!, -7), 7);
      return (u + 1) * g * (1 / (1 + Math.exp(-1.702 * g)));
    });
    // f32 rounding of outputs up to 56; gate -9 (not clamped from below) is 2.7e-4 away from gate -7's value
    expect(maxAbsDiff(await cpu.read(out), Float32Array.from(want))).toBeLessThan(1e-6 * maxAbs(Float32Array.from(want)));
  });

  it('addBias adds the vector to every row; a bias of the wrong width or dtype is refused', async () => {
    const x = act(cpu, 2, 3, [1, 2, 3, 4, 5, 6]);
    cpu.addBias(x, vector(cpu, [0.5, -1, 10], 8), x);
    expect(Array.from(await cpu.read(x))).toEqual([1.5, 1, 13, 4.5, 4, 16]);
    expect(() => cpu.addBias(x, vector(cpu, [1, 2]), x)).toThrow(/addBias: expected an f32 vector of 3/);
    const q = cpu.act(1, 4);
    expect(() => cpu.attention(q, cpu.act(1, 2), cpu.act(1, 2), cpu.act(1, 4), { heads: 2, kvHeads: 1, dk: 2, dv: 2, startPos: 0, scale: 1, sinks: vector(cpu, [1, 2, 3]) }))
      .toThrow(/attention sinks: expected an f32 vector of 2/);
  });
});

describe('WebGPU vs CPU reference', () => {
  it('attention with sinks: one workgroup per head and split keys, sinks large and small, windows over ring buffers', async () => {
    const rand = rng(41);
    const cases = [
      { m: 5, t: 9, heads: 4, kvHeads: 2, dk: 16, dv: 16, startPos: 4, sinks: [0.3, -4, 6, 1.5] },
      { m: 1, t: 600, heads: 4, kvHeads: 2, dk: 64, dv: 48, startPos: 599, sinks: [2, -30, 12, 0] },
      { m: 3, t: 1302, heads: 2, kvHeads: 1, dk: 32, dv: 40, startPos: 1299, sinks: [40, -1] },
      // gpt-oss's sliding layers: a window over a ring-buffer cache (positions 0..20 in 12 rows)
      { m: 3, t: 12, heads: 4, kvHeads: 2, dk: 16, dv: 16, startPos: 18, sinks: [1, -3, 2, 0.5], window: 8, cacheRows: 12 },
      // a long window over a long cache: split keys within the window
      { m: 1, t: 1400, heads: 2, kvHeads: 1, dk: 32, dv: 32, startPos: 1399, sinks: [9, 6], window: 1024 },
    ];
    expect(cases.map((c) => attentionSplits(c.m * c.heads, c.window ?? c.t))).toEqual([1, 2, 5, 1, 4]);
    for (const cs of cases) {
      const q = randomF32(rand, cs.m * cs.heads * cs.dk);
      const k = randomF32(rand, cs.t * cs.kvHeads * cs.dk);
      const v = randomF32(rand, cs.t * cs.kvHeads * cs.dv);
      const outs: Float32Array[] = [];
      for (const be of [cpu, gpu] as Backend[]) {
        const out = be.act(cs.m, cs.heads * cs.dv);
        be.attention(act(be, cs.m, cs.heads * cs.dk, q), act(be, cs.t, cs.kvHeads * cs.dk, k), act(be, cs.t, cs.kvHeads * cs.dv, v), out, {
          heads: cs.heads, kvHeads: cs.kvHeads, dk: cs.dk, dv: cs.dv, startPos: cs.startPos, scale: 2 / Math.sqrt(cs.dk), sinks: vector(be, cs.sinks, 256),
          ...(cs.window ? { window: cs.window } : {}), ...(cs.cacheRows ? { cacheRows: cs.cacheRows } : {}),
        });
        outs.push(await be.read(out));
      }
      const [ref, got] = outs as [Float32Array, Float32Array];
      expect(maxAbsDiff(ref, got), JSON.stringify(cs)).toBeLessThanOrEqual(1e-5 * Math.sqrt(cs.t) * Math.max(1, maxAbs(ref)));
      // the sinks change the result: the same call without them differs
      const plain = cpu.act(cs.m, cs.heads * cs.dv);
      cpu.attention(act(cpu, cs.m, cs.heads * cs.dk, q), act(cpu, cs.t, cs.kvHeads * cs.dk, k), act(cpu, cs.t, cs.kvHeads * cs.dv, v), plain, {
        heads: cs.heads, kvHeads: cs.kvHeads, dk: cs.dk, dv: cs.dv, startPos: cs.startPos, scale: 2 / Math.sqrt(cs.dk),
        ...(cs.window ? { window: cs.window } : {}), ...(cs.cacheRows ? { cacheRows: cs.cacheRows } : {}),
      });
      expect(maxAbsDiff(await cpu.read(plain), ref)).toBeGreaterThan(1e-3);
    }
  });

  it('clamped SwiGLU (with aliasing) and addBias (in place and not, at an offset)', async () => {
    const rand = rng(42);
    const [r, c] = [5, 301];
    const g = randomF32(rand, r * c, 12);
    const u = randomF32(rand, r * c, 12);
    const b = randomF32(rand, c, 3);
    const results: Float32Array[][] = [];
    for (const be of [cpu, gpu] as Backend[]) {
      const ga = act(be, r, c, g);
      const ua = act(be, r, c, u);
      const out = be.act(r, c);
      be.swigluClamped(ga, ua, out, 1.702, 7);
      const first = await be.read(out);
      be.swigluClamped(ga, ua, ga, 1.702, 7);
      const aliased = await be.read(ga);
      const bias = vector(be, b, 512);
      const x = act(be, r, c, u);
      const y = be.act(r, c);
      be.addBias(x, bias, y);
      be.addBias(x, bias, x);
      results.push([first, aliased, await be.read(y), await be.read(x)]);
    }
    results[0]!.forEach((ref, i) => {
      expect(maxAbsDiff(ref, results[1]![i]!), `output ${i}`).toBeLessThanOrEqual(1e-6 * Math.max(1, maxAbs(ref)));
    });
    expect(maxAbsDiff(results[0]![0]!, results[0]![1]!)).toBe(0);
  });
});
