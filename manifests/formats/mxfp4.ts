import { tensorLayout, type WeightFormat } from './format.ts';

/** FP4 e2m1 values by code: sign bit 3, two exponent bits, one mantissa bit (OCP MX v1.0). */
export const FP4_VALUES = Float32Array.of(0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6);
/** Midpoints between consecutive non-negative FP4 values, for round-to-nearest. */
const MIDPOINTS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5];

const E8M0 = Float32Array.from({ length: 256 }, (_, e) => (e === 255 ? NaN : 2 ** (e - 127)));
/** e8m0 scale byte → 2^(e − 127) (255 is NaN in the OCP spec). */
export const e8m0ToF32 = (e: number): number => E8M0[e & 255]!;

const f = new Float32Array(1);
const u = new Uint32Array(f.buffer);

/** FP4 code of |x| (x ≥ 0 in units of the block scale): nearest value, ties to the even code, saturating at 6. */
function magnitudeCode(x: number): number {
  for (let i = 0; i < MIDPOINTS.length; i++) {
    const m = MIDPOINTS[i]!;
    if (x < m) return i;
    if (x === m) return i % 2 === 0 ? i : i + 1;
  }
  return 7;
}

/** Bit 3 of the code when x is negative, −0 included (so a −0 source stays −0). */
const signBit = (x: number): number => (x < 0 || (x === 0 && 1 / x < 0) ? 8 : 0);

/**
 * MXFP4 (OCP Microscaling, as gpt-oss ships its experts): blocks of 32 weights, 16 bytes of FP4
 * e2m1 codes (byte j holds weight 2j in its low nibble and weight 2j + 1 in its high nibble), then
 * one e8m0 scale byte per block; w = FP4_VALUES[code]·2^(e − 127). Released MXFP4 tensors are
 * copied byte for byte; `encode` (for other sources) takes the OCP rule: shared exponent
 * floor(log2(max|w|)) − 2, codes rounded to nearest even, saturating at ±6.
 */
export const mxfp4: WeightFormat = {
  name: 'mxfp4',
  block: 32,
  blockBytes: 16,
  scaleBytes: 1,
  encode(data) {
    const nb = data.length / 32;
    const quants = new Uint8Array(nb * 16);
    const scales = new Uint8Array(nb);
    for (let b = 0; b < nb; b++) {
      const base = b * 32;
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(data[base + j]!));
      f[0] = amax;
      // floor(log2(amax)) from the float's exponent bits (exact at powers of two, unlike Math.log2).
      const e = amax === 0 ? 0 : Math.min(254, Math.max(0, ((u[0]! >>> 23) & 255) - 2));
      scales[b] = e;
      const inv = 1 / E8M0[e]!;
      for (let j = 0; j < 16; j++) {
        const lo = data[base + 2 * j]!;
        const hi = data[base + 2 * j + 1]!;
        const cl = magnitudeCode(Math.abs(lo) * inv) | signBit(lo);
        const ch = magnitudeCode(Math.abs(hi) * inv) | signBit(hi);
        quants[b * 16 + j] = cl | (ch << 4);
      }
    }
    return { main: quants, scales };
  },
  decoder(buf, base, rows, cols) {
    const { blocks, scalesOffset } = tensorLayout(mxfp4, rows, cols);
    const q = new Uint8Array(buf, base, blocks * 16);
    const s = new Uint8Array(buf, base + scalesOffset, blocks);
    return (r, out) => {
      const b0 = (r * cols) / 32;
      for (let b = 0; b < cols / 32; b++) {
        const d = E8M0[s[b0 + b]!]!;
        const qo = (b0 + b) * 16;
        for (let j = 0; j < 16; j++) {
          const byte = q[qo + j]!;
          out[b * 32 + 2 * j] = FP4_VALUES[byte & 15]! * d;
          out[b * 32 + 2 * j + 1] = FP4_VALUES[byte >>> 4]! * d;
        }
      }
    };
  },
  // Scales 2^-10 … 2^-7: |w| ≤ 6·2^-7 ≈ 0.047.
  synth: {
    main: () => undefined,
    scales: (c) => {
      for (let i = 0; i < c.length; i++) c[i] = 117 + (c[i]! & 3);
    },
  },
};
