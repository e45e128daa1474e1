import { describe, expect, it } from 'vitest';
import { dequantize, f16BitsToF32, f32ToF16Bits, quantize, tensorByteLength, type TensorEntry, type WeightDtype } from '../../../manifests/index.ts';
import { seededRandom as rng } from '../../../engine/sampling.ts';
import { errorVersusBound } from './bounds.ts';


function gaussian(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) * scale;
  return out;
}

const entry = (dtype: WeightDtype, rows: number, cols: number): TensorEntry => ({ name: 't', shape: [rows, cols], dtype, shard: 0, offset: 0, length: tensorByteLength(dtype, rows, cols) });

describe('f16 conversion', () => {
  it('rounds to nearest even exactly like Float16Array, including subnormals, ties, overflow and NaN', () => {
    const r = rng(1);
    const values: number[] = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e6, -1e6, 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -25, 2 ** -14, 1 + 2 ** -11, 1 + 3 * 2 ** -11, Infinity, -Infinity];
    for (let i = 0; i < 200_000; i++) {
      const f32 = new Float32Array([(r() - 0.5) * 2 ** Math.floor(r() * 50 - 30)]);
      values.push(f32[0]!);
    }
    // Node 24's Float16Array is the reference (TypeScript's ES2023 lib does not declare it yet).
    const F16 = (globalThis as unknown as { Float16Array: new (n: number) => { [i: number]: number; buffer: ArrayBuffer } }).Float16Array;
    const ref = new F16(1);
    const refBits = new Uint16Array(ref.buffer);
    for (const v of values) {
      ref[0] = Math.fround(v);
      expect(f32ToF16Bits(v), `value ${v}`).toBe(refBits[0]);
    }
    expect(f32ToF16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(NaN) & 0x3ff).not.toBe(0);
  });
});

describe('quantize / dequantize', () => {
  const rows = 64;
  const cols = 256;
  const data = gaussian(rows * cols, 7, 0.05);
  // Make a few blocks extreme: all-zero, one huge outlier, constant, and opposite-sign near-max values (q4_0 clamp case).
  data.fill(0, 0, 32);
  data[40] = 30;
  data.fill(0.25, 64, 96);
  data[96] = 1;
  data[97] = -0.99;
  data[98] = -1;

  it('f32 is exact', () => {
    const bytes = quantize(data, rows, cols, 'f32');
    expect(bytes.length).toBe(rows * cols * 4);
    expect(errorVersusBound(entry('f32', rows, cols), bytes, data)).toBe(0);
  });

  for (const dtype of ['f16', 'q8_0', 'q4_0', 'mxfp4', 'q3_g64', 'q2_g32'] as const) {
    it(`${dtype} stays within its stated bound, and the bound is tight`, () => {
      const bytes = quantize(data, rows, cols, dtype);
      expect(bytes.length).toBe(tensorByteLength(dtype, rows, cols));
      const worst = errorVersusBound(entry(dtype, rows, cols), bytes, data);
      expect(worst).toBeLessThanOrEqual(1);
      // The bound is attained up to rounding luck: a bound 2× too loose would fail this.
      expect(worst).toBeGreaterThan(0.5);
    });
  }

  it('q4_0 follows the llama.cpp layout: low nibble = weight j, high nibble = weight j+16, then f16 scales', () => {
    const block = new Float32Array(32);
    for (let j = 0; j < 32; j++) block[j] = (j - 16) / 2; // max by magnitude is -8 at j = 0 → d = 1
    const bytes = quantize(block, 1, 32, 'q4_0');
    expect(bytes.length).toBe(16 + 4);
    expect(bytes[16] | (bytes[17]! << 8)).toBe(0x3c00); // d = 1.0
    for (let j = 0; j < 16; j++) {
      expect(bytes[j]! & 15).toBe(Math.min(15, Math.trunc(block[j]! + 8.5)));
      expect(bytes[j]! >>> 4).toBe(Math.min(15, Math.trunc(block[j + 16]! + 8.5)));
    }
    const back = dequantize(entry('q4_0', 1, 32), bytes);
    expect(back[0]).toBe(-8);
    expect(back[31]).toBe(7); // 7.5 would need nibble 15.5: clamped
  });

  it('q3_g64 layout: low 2 bits 16 per word, high bits 32 per word, then f16 d and byte z per group', () => {
    // codes 0…7 repeating, d = 0.5, z = 3.5 (zb = 112): w = (q − 3.5)/2, every weight exactly on the grid
    const block = new Float32Array(64).map((_, j) => ((j % 8) - 3.5) / 2);
    const bytes = quantize(block, 1, 64, 'q3_g64');
    expect(bytes.length).toBe(24 + 4);
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, 6);
    for (let j = 0; j < 64; j++) {
      expect((words[j >> 4]! >>> (2 * (j & 15))) & 3, `low bits of ${j}`).toBe(j % 8 & 3);
      expect((words[4 + (j >> 5)]! >>> (j & 31)) & 1, `high bit of ${j}`).toBe(j % 8 >> 2);
    }
    expect(bytes[24]! | (bytes[25]! << 8)).toBe(f32ToF16Bits(0.5));
    expect(bytes[26]).toBe(112);
    expect(Array.from(dequantize(entry('q3_g64', 1, 64), bytes))).toEqual(Array.from(block));
  });

  it('q2_g32 packs 3 bytes of scale per group back to back (groups straddle words) and round-trips a grid exactly', () => {
    const rows = 3;
    const data = new Float32Array(rows * 64).map((_, i) => ((i % 4) - 1) * 0.25 * (1 + (i >> 5))); // group g: d = (g+1)/4, z = 1
    const bytes = quantize(data, rows, 64, 'q2_g32');
    expect(bytes.length).toBe(6 * 8 + 20); // 18 scale bytes padded to 20
    for (let g = 0; g < 6; g++) {
      expect(f16BitsToF32(bytes[48 + 3 * g]! | (bytes[49 + 3 * g]! << 8)), `d of group ${g}`).toBe((g + 1) / 4);
      expect(bytes[50 + 3 * g], `zb of group ${g}`).toBe(64);
    }
    expect(Array.from(dequantize(entry('q2_g32', rows, 64), bytes))).toEqual(Array.from(data));
  });

  it('the group formats refuse rows that are not whole groups', () => {
    expect(() => quantize(new Float32Array(96), 1, 96, 'q3_g64')).toThrow(/64-weight q3_g64 blocks|whole/);
  });

  it('q8_0 stores quants then scales; scale = max|w|/127', () => {
    const block = new Float32Array(32).map((_, j) => (j - 15) * 0.01);
    block[3] = -1.27;
    const bytes = quantize(block, 1, 32, 'q8_0');
    expect(bytes.length).toBe(32 + 4);
    const q = new Int8Array(bytes.buffer, 0, 32);
    expect(q[3]).toBe(-127);
    expect(bytes[32] | (bytes[33]! << 8)).toBe(f32ToF16Bits(0.01));
  });

  it('mxfp4 follows the released layout: byte j = weight 2j (low nibble) | weight 2j+1 (high nibble), then e8m0 scales', () => {
    // transformers' convert_moe_packed_tensors: out[0::2] = FP4[lo], out[1::2] = FP4[hi], then ldexp(·, e − 127)
    const fp4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];
    const bytes = new Uint8Array(16 + 4);
    for (let j = 0; j < 16; j++) bytes[j] = j | ((15 - j) << 4);
    bytes[16] = 127 - 3; // 2^-3
    const got = dequantize(entry('mxfp4', 1, 32), bytes);
    for (let j = 0; j < 16; j++) {
      expect(got[2 * j]).toBe(fp4[j]! / 8);
      expect(got[2 * j + 1]).toBe(fp4[15 - j]! / 8);
    }
    // values on the grid times a power of two come back exactly, with the OCP shared exponent floor(log2 max) − 2
    const exact = Float32Array.from({ length: 64 }, (_, i) => fp4[i % 16]! * 2 ** (i < 32 ? -5 : 3));
    const q = quantize(exact, 2, 32, 'mxfp4');
    expect(q.length).toBe(32 + 4);
    expect([q[32], q[33]]).toEqual([127 - 5, 127 + 3]); // max 6 = 1.5·2^2 → exponent 2 − 2 = 0 (+ the block's power)
    expect(Array.from(dequantize(entry('mxfp4', 2, 32), q))).toEqual(Array.from(exact));
    // round to nearest, ties to the even code; above 6 saturates
    const ties = new Float32Array(32);
    ties.set([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5, 7.9, -0.3, 6]);
    expect(Array.from(dequantize(entry('mxfp4', 1, 32), quantize(ties, 1, 32, 'mxfp4'))).slice(0, 10)).toEqual([0, 1, 1, 2, 2, 4, 4, 6, -0.5, 6]);
  });

  it('f16 pads odd element counts to 4 bytes', () => {
    expect(tensorByteLength('f16', 1, 3)).toBe(8);
    expect(quantize(new Float32Array([1, 2, 3]), 1, 3, 'f16').length).toBe(8);
  });

  it('refuses block formats for rows that are not whole blocks', () => {
    expect(() => quantize(new Float32Array(48), 1, 48, 'q8_0')).toThrow(/blocks/);
  });
});
