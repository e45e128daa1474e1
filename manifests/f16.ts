const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits of a float, rounded to nearest even (overflow → ±Inf, NaN stays NaN). */
export function f32ToF16Bits(value: number): number {
  f32[0] = value;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half: the value in units of 2^-24 is m * 2^(exp - 126 - 24 + 24) = m >> (126 - exp).
    const shift = 126 - exp;
    if (shift > 24) return sign;
    const m = mant | 0x800000;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (r & 1) === 1)) r++;
    return sign | r;
  }
  let r = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (r & 1) === 1)) r++;
  return sign | r;
}

let table: Float32Array | null = null;

/** All 65536 half values as floats: dequantizing by lookup is far faster than decoding bits per weight. */
export function f16Table(): Float32Array {
  if (table) return table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) t[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) t[h] = mant ? NaN : sign * Infinity;
    else t[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  table = t;
  return t;
}

export function f16BitsToF32(h: number): number {
  return f16Table()[h & 0xffff]!;
}

/** bfloat16 is the top half of a float32. */
export function bf16ToF32Into(src: Uint16Array, dst: Float32Array): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

type F16ArrayCtor = new (src: Float32Array) => { buffer: ArrayBuffer };
const NativeF16 = (globalThis as unknown as { Float16Array?: F16ArrayCtor }).Float16Array;

/** Halves of many floats: the runtime's Float16Array (same rounding, native speed) where it exists. */
export function f32ArrayToF16Bytes(data: Float32Array): Uint8Array {
  if (NativeF16) return new Uint8Array(new NativeF16(data).buffer);
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToF16Bits(data[i]!);
  return new Uint8Array(out.buffer);
}
