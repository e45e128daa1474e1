/**
 * FP8 as checkpoints store it (safetensors F8_E4M3 / F8_E5M2), decoded by table: 256 values each.
 * - e4m3fn (what DeepSeek-V3 ships): bias 7, 3 mantissa bits, no infinities; 0x7f and 0xff are
 *   NaN, the largest finite value is 448, the smallest subnormal 2^-9.
 * - e5m2: IEEE-like, bias 15, 2 mantissa bits; exponent 31 is ±Inf (mantissa 0) or NaN; largest
 *   finite 57344, smallest subnormal 2^-16.
 */

function table(expBits: number, mantBits: number, special: (e: number, m: number, sign: number) => number | null): Float32Array {
  const bias = 2 ** (expBits - 1) - 1;
  const t = new Float32Array(256);
  for (let b = 0; b < 256; b++) {
    const sign = b & 0x80 ? -1 : 1;
    const e = (b >>> mantBits) & ((1 << expBits) - 1);
    const m = b & ((1 << mantBits) - 1);
    const s = special(e, m, sign);
    if (s !== null) t[b] = s;
    else if (e === 0) t[b] = sign * (m / 2 ** mantBits) * 2 ** (1 - bias);
    else t[b] = sign * (1 + m / 2 ** mantBits) * 2 ** (e - bias);
  }
  return t;
}

export const F8_E4M3: Float32Array = table(4, 3, (e, m) => (e === 15 && m === 7 ? NaN : null));
export const F8_E5M2: Float32Array = table(5, 2, (e, m, sign) => (e === 31 ? (m === 0 ? sign * Infinity : NaN) : null));

/** The decode table of an FP8 safetensors dtype, or null for any other dtype. */
export function fp8Table(dtype: string): Float32Array | null {
  return dtype === 'F8_E4M3' ? F8_E4M3 : dtype === 'F8_E5M2' ? F8_E5M2 : null;
}
