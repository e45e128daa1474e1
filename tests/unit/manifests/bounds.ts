import { dequantize, f16BitsToF32, FORMATS, matrixDims, scalesOffset, type TensorEntry } from '../../../manifests/index.ts';

/**
 * Checks a stored tensor against its f32 source within the stated bounds and returns the largest
 * error as a fraction of its bound (≤ 1 passes; tests also check it is not trivially 0).
 *   f32: exact.
 *   f16: |err| ≤ 2^-11·|w| (round to nearest even; |w| ≥ 2^-14), ≤ 2^-25 absolute for subnormals.
 *   q8_0: |err| ≤ d/2 with d the block's stored scale (q = round(w/d), |q| ≤ 127 because d ≥ max|w|/127 up to f16 rounding).
 *   q4_0: d = (block max by magnitude)/-8; nibble = min(15, trunc(w/d + 8.5)) ⇒ |err| ≤ |d|/2 when w/d ≤ 7.5;
 *         the clamp at 15 means weights of the opposite sign to the max with w/d ∈ (7.5, 8] get 7: |err| = (w/d − 7)·|d| ≤ |d|.
 *   mxfp4: X = 2^(e−127) the block's scale, r = |w|/X; the FP4 grid has steps 0.5 up to 2, 1 up to 4, 2 up to 6
 *         ⇒ |err| ≤ X/4, X/2, X for r ≤ 2, 4, 6; above 6 the code saturates: |err| = (r − 6)·X (< 2X, as r < 8).
 *   q3_g64, q2_g32 (groups of G, codes 0…nmax, d the stored f16 scale, z = zb/2^(8−bits)): t = w/d + z;
 *         |err| ≤ d/2 when t ∈ [−½, nmax + ½]; outside, the code clips to the nearest end: |err| = d·(distance of t from [0, nmax]).
 * Slack of 1e-5 relative covers the f32 product q·d.
 */
export function errorVersusBound(entry: TensorEntry, bytes: Uint8Array, src: Float32Array): number {
  const got = dequantize(entry, bytes);
  if (got.length !== src.length) throw new Error(`${entry.name}: ${got.length} values, source has ${src.length}`);
  let worst = 0;
  const n = src.length;
  if (entry.dtype === 'f32') {
    for (let i = 0; i < n; i++) if (!Object.is(got[i], src[i])) throw new Error(`${entry.name}[${i}]: ${got[i]} != ${src[i]} at f32`);
    return 0;
  }
  if (entry.dtype === 'f16') {
    for (let i = 0; i < n; i++) {
      const w = src[i]!;
      const bound = Math.abs(w) >= 2 ** -14 ? Math.abs(w) * 2 ** -11 : 2 ** -25;
      worst = Math.max(worst, Math.abs(got[i]! - w) / bound);
    }
    return worst;
  }
  const { rows, cols } = matrixDims(entry.shape);
  const scaleOffset = scalesOffset(entry.dtype, rows, cols);
  const format = FORMATS[entry.dtype];
  if (format.scaleBytes === 3) return groupWorst(entry, format.block, (format.blockBytes * 8) / format.block, got, bytes.subarray(scaleOffset), src);
  const nb = (rows * cols) / 32;
  if (entry.dtype === 'mxfp4') {
    for (let b = 0; b < nb; b++) {
      const x = 2 ** (bytes[scaleOffset + b]! - 127);
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        const r = Math.abs(src[i]!) / x;
        const bound = (r <= 2 ? 0.25 : r <= 4 ? 0.5 : r <= 6 ? 1 : r - 6) * x;
        worst = Math.max(worst, Math.abs(got[i]! - src[i]!) / (bound * (1 + 1e-5) + 1e-30));
      }
    }
    return worst;
  }
  const scales = new DataView(bytes.buffer, bytes.byteOffset + scaleOffset, nb * 2);
  for (let b = 0; b < nb; b++) {
    const d = f16BitsToF32(scales.getUint16(b * 2, true));
    for (let j = 0; j < 32; j++) {
      const i = b * 32 + j;
      const w = src[i]!;
      const err = Math.abs(got[i]! - w);
      if (d === 0) {
        if (err !== 0) throw new Error(`${entry.name}[${i}]: zero block decoded to ${got[i]}`);
        continue;
      }
      const ratio = w / d;
      const bound = entry.dtype === 'q4_0' && ratio > 7.5 ? (ratio - 7) * Math.abs(d) : Math.abs(d) / 2;
      worst = Math.max(worst, err / (bound * (1 + 1e-5) + 1e-30));
    }
  }
  return worst;
}

/** The group formats' bound (see errorVersusBound), per element. */
function groupWorst(entry: TensorEntry, group: number, bits: number, got: Float32Array, scales: Uint8Array, src: Float32Array): number {
  const nmax = 2 ** bits - 1;
  let worst = 0;
  for (let b = 0; b < src.length / group; b++) {
    const d = f16BitsToF32(scales[3 * b]! | (scales[3 * b + 1]! << 8));
    const z = scales[3 * b + 2]! / 2 ** (8 - bits);
    for (let j = 0; j < group; j++) {
      const i = b * group + j;
      const err = Math.abs(got[i]! - src[i]!);
      if (d === 0) {
        if (got[i] !== 0) throw new Error(`${entry.name}[${i}]: zero group decoded to ${got[i]}`);
        continue;
      }
      const t = src[i]! / d + z;
      const bound = t < -0.5 ? -t * d : t > nmax + 0.5 ? (t - nmax) * d : d / 2;
      worst = Math.max(worst, err / (bound * (1 + 1e-5) + 1e-30));
    }
  }
  return worst;
}
