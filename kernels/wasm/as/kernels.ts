// AssemblyScript source of the WASM SIMD128 kernels (compiled by kernels/wasm/build.ts; not part
// of the TypeScript project). Every export works on a range of output rows so that worker threads
// can split one op between them; the op and its arguments sit in an argument block in linear
// memory written by the host (kernels/wasm/pool.ts), so one `run(lo, hi, thread)` serves every op.
// Accumulation is f32 (as the WGSL kernels), with four-lane partial sums.

const ARGS: usize = 64;

const OP_MATMUL: i32 = 1;
const OP_ATTENTION: i32 = 2;
const OP_READ: i32 = 3;

const DT_F32: i32 = 0;
const DT_F16: i32 = 1;
const DT_Q8: i32 = 2;
const DT_Q4: i32 = 3;

@inline function arg(i: i32): i32 {
  return load<i32>(ARGS + (<usize>i << 2));
}

@inline function argf(i: i32): f32 {
  return load<f32>(ARGS + (<usize>i << 2));
}

@inline function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** IEEE half bits (low 16 of each lane) to f32: exponent rebias by a multiply, which also handles subnormals. */
@inline function halves(h: v128): v128 {
  const e = v128.and(h, i32x4.splat(0x7fff));
  let f = f32x4.mul(i32x4.shl(e, 13), f32x4.splat(5.192296858534828e33)); // 2^112
  const infnan = v128.and(i32x4.gt_s(e, i32x4.splat(0x7bff)), i32x4.splat(0x7f800000));
  f = v128.or(f, infnan);
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

@inline function half(h: u32): f32 {
  return f32x4.extract_lane(halves(i32x4.splat(h)), 0);
}

@inline function cvt8(q: v128, lo: bool): v128 {
  // 16 signed bytes -> the low or high 8 as two f32x4 is done by the callers through these helpers
  return lo ? i16x8.extend_low_i8x16_s(q) : i16x8.extend_high_i8x16_s(q);
}

@inline function f4lo(h: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(h));
}

@inline function f4hi(h: v128): v128 {
  return f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(h));
}

/** Sum of 16 products of signed bytes q with 16 floats at x. */
@inline function dot16(q: v128, x: usize): v128 {
  const a = cvt8(q, true);
  const b = cvt8(q, false);
  const p0 = f32x4.mul(f4lo(a), v128.load(x));
  const p1 = f32x4.mul(f4hi(a), v128.load(x, 16));
  const p2 = f32x4.mul(f4lo(b), v128.load(x, 32));
  const p3 = f32x4.mul(f4hi(b), v128.load(x, 48));
  return f32x4.add(f32x4.add(p0, p1), f32x4.add(p2, p3));
}

function dotF32(x: usize, w: usize, k: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let a2 = f32x4.splat(0);
  let a3 = f32x4.splat(0);
  let i = 0;
  for (; i + 16 <= k; i += 16) {
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(x + o), v128.load(w + o)));
    a1 = f32x4.add(a1, f32x4.mul(v128.load(x + o, 16), v128.load(w + o, 16)));
    a2 = f32x4.add(a2, f32x4.mul(v128.load(x + o, 32), v128.load(w + o, 32)));
    a3 = f32x4.add(a3, f32x4.mul(v128.load(x + o, 48), v128.load(w + o, 48)));
  }
  for (; i + 4 <= k; i += 4) {
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(v128.load(x + o), v128.load(w + o)));
  }
  let s = hsum(f32x4.add(f32x4.add(a0, a1), f32x4.add(a2, a3)));
  for (; i < k; i++) s += load<f32>(x + (<usize>i << 2)) * load<f32>(w + (<usize>i << 2));
  return s;
}

function dotF16(x: usize, w: usize, k: i32): f32 {
  let a0 = f32x4.splat(0);
  let a1 = f32x4.splat(0);
  let i = 0;
  for (; i + 8 <= k; i += 8) {
    const h = v128.load(w + (<usize>i << 1));
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(halves(i32x4.extend_low_i16x8_u(h)), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(halves(i32x4.extend_high_i16x8_u(h)), v128.load(x + o, 16)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; i < k; i++) s += half(load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2));
  return s;
}

function dotQ8(x: usize, q: usize, s: usize, blocks: i32): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < blocks; b++) {
    const qb = q + (<usize>b << 5);
    const xb = x + (<usize>b << 7);
    const sum = f32x4.add(dot16(v128.load(qb), xb), dot16(v128.load(qb, 16), xb + 64));
    acc = f32x4.add(acc, f32x4.mul(sum, f32x4.splat(half(load<u16>(s + (<usize>b << 1))))));
  }
  return hsum(acc);
}

function dotQ4(x: usize, q: usize, s: usize, blocks: i32): f32 {
  let acc = f32x4.splat(0);
  const mask = i8x16.splat(15);
  const eight = i8x16.splat(8);
  for (let b = 0; b < blocks; b++) {
    const v = v128.load(q + (<usize>b << 4));
    const lo = i8x16.sub(v128.and(v, mask), eight);
    const hi = i8x16.sub(i8x16.shr_u(v, 4), eight);
    const xb = x + (<usize>b << 7);
    const sum = f32x4.add(dot16(lo, xb), dot16(hi, xb + 64));
    acc = f32x4.add(acc, f32x4.mul(sum, f32x4.splat(half(load<u16>(s + (<usize>b << 1))))));
  }
  return hsum(acc);
}

/** Row n of a weight as k floats at out (for products with several activation rows). */
function decodeRow(dtype: i32, w: usize, s: usize, n: i32, k: i32, out: usize): void {
  if (dtype == DT_F16) {
    const r = w + (<usize>n * <usize>k << 1);
    let i = 0;
    for (; i + 8 <= k; i += 8) {
      const h = v128.load(r + (<usize>i << 1));
      v128.store(out + (<usize>i << 2), halves(i32x4.extend_low_i16x8_u(h)));
      v128.store(out + (<usize>i << 2), halves(i32x4.extend_high_i16x8_u(h)), 16);
    }
    for (; i < k; i++) store<f32>(out + (<usize>i << 2), half(load<u16>(r + (<usize>i << 1))));
    return;
  }
  const blocks = k >> 5;
  const b0 = <usize>n * <usize>blocks;
  for (let b = 0; b < blocks; b++) {
    let lo: v128;
    let hi: v128;
    if (dtype == DT_Q8) {
      lo = v128.load(w + ((b0 + b) << 5));
      hi = v128.load(w + ((b0 + b) << 5), 16);
    } else {
      const v = v128.load(w + ((b0 + b) << 4));
      lo = i8x16.sub(v128.and(v, i8x16.splat(15)), i8x16.splat(8));
      hi = i8x16.sub(i8x16.shr_u(v, 4), i8x16.splat(8));
    }
    const d = f32x4.splat(half(load<u16>(s + ((b0 + b) << 1))));
    const o = out + (<usize>b << 7);
    const a = cvt8(lo, true);
    const c = cvt8(lo, false);
    const e = cvt8(hi, true);
    const f = cvt8(hi, false);
    v128.store(o, f32x4.mul(f4lo(a), d));
    v128.store(o, f32x4.mul(f4hi(a), d), 16);
    v128.store(o, f32x4.mul(f4lo(c), d), 32);
    v128.store(o, f32x4.mul(f4hi(c), d), 48);
    v128.store(o, f32x4.mul(f4lo(e), d), 64);
    v128.store(o, f32x4.mul(f4hi(e), d), 80);
    v128.store(o, f32x4.mul(f4lo(f), d), 96);
    v128.store(o, f32x4.mul(f4hi(f), d), 112);
  }
}

/** One weight row against one activation row, straight from the stored format. */
@inline function dotRow(dtype: i32, x: usize, w: usize, s: usize, n: i32, k: i32): f32 {
  if (dtype == DT_F32) return dotF32(x, w + (<usize>n * <usize>k << 2), k);
  if (dtype == DT_F16) return dotF16(x, w + (<usize>n * <usize>k << 1), k);
  const blocks = k >> 5;
  const b0 = <usize>n * <usize>blocks;
  if (dtype == DT_Q8) return dotQ8(x, w + (b0 << 5), s + (b0 << 1), blocks);
  return dotQ4(x, w + (b0 << 4), s + (b0 << 1), blocks);
}

/**
 * out[m, n] (+)= x[m, :] · w[n, :] for rows n in [lo, hi). Args: dtype, x, xStride (bytes), M, K,
 * w (quants or values of row 0), scales, out, outStride (bytes), accumulate, scratch base, scratch
 * bytes per thread.
 */
function matmul(lo: i32, hi: i32, thread: i32): void {
  const dtype = arg(1);
  const x = <usize>arg(2);
  const xStride = <usize>arg(3);
  const m = arg(4);
  const k = arg(5);
  const w = <usize>arg(6);
  const s = <usize>arg(7);
  const out = <usize>arg(8);
  const outStride = <usize>arg(9);
  const acc = arg(10) != 0;
  const scratch = <usize>arg(11) + <usize>thread * <usize>arg(12);
  const direct = m == 1 || dtype == DT_F32;
  for (let n = lo; n < hi; n++) {
    if (!direct) decodeRow(dtype, w, s, n, k, scratch);
    for (let r = 0; r < m; r++) {
      const xr = x + <usize>r * xStride;
      const v = direct ? dotRow(dtype, xr, w, s, n, k) : dotF32(xr, scratch, k);
      const o = out + <usize>r * outStride + (<usize>n << 2);
      store<f32>(o, acc ? load<f32>(o) + v : v);
    }
  }
}

export function run(lo: i32, hi: i32, thread: i32): void {
  const op = arg(0);
  if (op == OP_MATMUL) matmul(lo, hi, thread);
  else if (op == OP_ATTENTION) attention(lo, hi, thread);
  else if (op == OP_READ) readSum(lo, hi, thread);
}

/**
 * The memory read-bandwidth probe: sums 64-byte chunks [lo, hi) from address arg 1 as i32 lanes
 * and stores each thread's sum at arg 2 + 4 * thread (so the loads cannot be dropped).
 */
function readSum(lo: i32, hi: i32, thread: i32): void {
  const base = <usize>arg(1);
  let a0 = i32x4.splat(0);
  let a1 = i32x4.splat(0);
  for (let c = lo; c < hi; c++) {
    const p = base + (<usize>c << 6);
    a0 = i32x4.add(a0, i32x4.add(v128.load(p), v128.load(p, 16)));
    a1 = i32x4.add(a1, i32x4.add(v128.load(p, 32), v128.load(p, 48)));
  }
  const a = i32x4.add(a0, a1);
  store<i32>(<usize>arg(2) + (<usize>thread << 2), i32x4.extract_lane(a, 0) + i32x4.extract_lane(a, 1) + i32x4.extract_lane(a, 2) + i32x4.extract_lane(a, 3));
}

/**
 * Causal attention for (row, head) pairs p in [lo, hi), p = row * heads + head. Args: q, qStride,
 * k, kStride, v (already offset by vColOffset), vStride, out, outStride (all strides in bytes),
 * heads, group (heads per kv head), dk, dv, startPos, scale (f32), scratch base, scratch bytes per thread.
 */
function attention(lo: i32, hi: i32, thread: i32): void {
  const q = <usize>arg(1);
  const qStride = <usize>arg(2);
  const kc = <usize>arg(3);
  const kStride = <usize>arg(4);
  const vc = <usize>arg(5);
  const vStride = <usize>arg(6);
  const out = <usize>arg(7);
  const outStride = <usize>arg(8);
  const heads = arg(9);
  const group = arg(10);
  const dk = arg(11);
  const dv = arg(12);
  const startPos = arg(13);
  const scale = argf(14);
  const scores = <usize>arg(15) + <usize>thread * <usize>arg(16);
  for (let p = lo; p < hi; p++) {
    const i = p / heads;
    const h = p % heads;
    const g = h / group;
    const n = startPos + i + 1;
    const qr = q + <usize>i * qStride + (<usize>(h * dk) << 2);
    let max = -Infinity;
    for (let t = 0; t < n; t++) {
      const sc = dotF32(qr, kc + <usize>t * kStride + (<usize>(g * dk) << 2), dk) * scale;
      store<f32>(scores + (<usize>t << 2), sc);
      if (sc > max) max = <f32>sc;
    }
    let sum: f32 = 0;
    for (let t = 0; t < n; t++) {
      const e = Mathf.exp(load<f32>(scores + (<usize>t << 2)) - <f32>max);
      store<f32>(scores + (<usize>t << 2), e);
      sum += e;
    }
    const or = out + <usize>i * outStride + (<usize>(h * dv) << 2);
    const inv = f32x4.splat(<f32>1 / sum);
    let c = 0;
    // four columns at a time over the value rows, then the tail one by one
    for (; c + 4 <= dv; c += 4) {
      let a = f32x4.splat(0);
      const vcol = vc + (<usize>(g * dv + c) << 2);
      for (let t = 0; t < n; t++) {
        a = f32x4.add(a, f32x4.mul(f32x4.splat(load<f32>(scores + (<usize>t << 2))), v128.load(vcol + <usize>t * vStride)));
      }
      v128.store(or + (<usize>c << 2), f32x4.mul(a, inv));
    }
    for (; c < dv; c++) {
      let a: f32 = 0;
      const vcol = vc + (<usize>(g * dv + c) << 2);
      for (let t = 0; t < n; t++) a += load<f32>(scores + (<usize>t << 2)) * load<f32>(vcol + <usize>t * vStride);
      store<f32>(or + (<usize>c << 2), a / sum);
    }
  }
}
