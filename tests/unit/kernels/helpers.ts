/** Seeded inputs for kernel tests: random activations and random weights in every RDRR layout. */
import { expect } from 'vitest';
import { FORMATS, tensorLayout, type WeightDtype } from '../../../manifests/index.ts';
import { weightByteLength, type Act, type Backend } from '../../../kernels/index.ts';

export { seededRandom as rng } from '../../../engine/sampling.ts';

export function randomF32(rand: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}

/** Half bits of a finite value in ±[2^-6, 2^2): exponent 9..16. */
function randomHalf(rand: () => number, minExp = 9, maxExp = 16): number {
  const sign = rand() < 0.5 ? 0x8000 : 0;
  const exp = minExp + Math.floor(rand() * (maxExp - minExp + 1));
  return sign | (exp << 10) | Math.floor(rand() * 1024);
}

/**
 * Random bytes of a rows×cols weight at `pad` bytes into a buffer (so offsets are exercised):
 * uniform quants, f16 scales around 2^-5 (group formats: any zero point) (keeps dot products O(1)), small random f16/f32 values.
 */
export function randomWeightBytes(rand: () => number, dtype: WeightDtype, rows: number, cols: number, pad = 0): Uint8Array {
  const len = weightByteLength(dtype, rows, cols);
  const out = new Uint8Array(pad + len + 4);
  for (let i = 0; i < pad; i++) out[i] = Math.floor(rand() * 256);
  const body = out.subarray(pad, pad + len);
  const n = rows * cols;
  const dv = new DataView(out.buffer, pad);
  switch (dtype) {
    case 'f32':
      for (let i = 0; i < n; i++) dv.setFloat32(i * 4, (rand() * 2 - 1) * 0.5, true);
      break;
    case 'f16':
      for (let i = 0; i < n; i++) dv.setUint16(i * 2, randomHalf(rand, 9, 14), true);
      break;
    default: {
      // block formats: uniform quants; f16 scales around 2^-5, e8m0 scales 2^-9 … 2^-6 (FP4 values reach 6)
      const { blocks, mainBytes, scalesOffset } = tensorLayout(FORMATS[dtype], rows, cols);
      for (let i = 0; i < mainBytes; i++) body[i] = Math.floor(rand() * 256);
      for (let b = 0; b < blocks; b++) {
        const sb = FORMATS[dtype].scaleBytes;
        if (sb === 2) dv.setUint16(scalesOffset + b * 2, randomHalf(rand, 7, 10), true);
        else if (sb === 3) {
          // group formats: f16 d, then any zero-point byte
          dv.setUint16(scalesOffset + b * 3, randomHalf(rand, 7, 10), true);
          body[scalesOffset + b * 3 + 2] = Math.floor(rand() * 256);
        } else body[scalesOffset + b] = 118 + Math.floor(rand() * 4);
      }
    }
  }
  return out;
}

/** Max |a - b| over all elements. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

export function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

/** An activation made on the CPU reference (`c`) and on the backend under test (under its key, e.g. `w`, `g`). */
export type BackendPair<K extends string> = { c: Act } & { [P in K]: Act };

/**
 * Helpers for checking a backend against the CPU reference: every activation and weight is made on
 * both, from the same data, and compared after the op ran on each. `tested` is called when a helper
 * runs (the backend is created in a beforeAll). Matmul-like ops are close when
 * max |tested - cpu| ≤ 1e-5 · sqrt(K) · max(1, max |cpu|).
 */
export function againstCpu<K extends string>(cpu: Backend, tested: () => Backend, key: K) {
  type Pair = BackendPair<K>;
  const pair = (rows: number, cols: number, data?: Float32Array): Pair => {
    const p = { c: cpu.act(rows, cols), [key]: tested().act(rows, cols) } as Pair;
    if (data) {
      cpu.write(p.c, data);
      tested().write(p[key], data);
    }
    return p;
  };
  const weights = (rand: () => number, dtype: WeightDtype, rows: number, cols: number, pad = 0) => {
    const bytes = randomWeightBytes(rand, dtype, rows, cols, pad);
    const t = tested();
    return { c: cpu.weight(cpu.upload(bytes), pad, dtype, rows, cols), [key]: t.weight(t.upload(bytes), pad, dtype, rows, cols) } as { c: ReturnType<Backend['weight']> } & { [P in K]: ReturnType<Backend['weight']> };
  };
  const diff = async (p: Pair): Promise<{ err: number; scale: number; ref: Float32Array; got: Float32Array }> => {
    const ref = await cpu.read(p.c);
    const got = await tested().read(p[key]);
    return { err: maxAbsDiff(ref, got), scale: Math.max(1, maxAbs(ref)), ref, got };
  };
  const expectClose = async (p: Pair, k: number, what: string): Promise<void> => {
    const { err, scale } = await diff(p);
    expect(err, `${what}: max err ${err} at scale ${scale}`).toBeLessThanOrEqual(1e-5 * Math.sqrt(k) * scale);
  };
  return { pair, weights, diff, expectClose };
}
