// AssemblyScript source of the WASM SIMD128 kernels (compiled by kernels/wasm/build.ts; not part
// of the TypeScript project). Every export works on a range of output rows so that worker threads
// can split one op between them; the op and its arguments sit in an argument block in linear
// memory written by the host (kernels/wasm/pool.ts), so one `run(lo, hi, thread)` serves every op.
// Accumulation is f32 (as the WGSL kernels), with four-lane partial sums. q8_0/q4_0 products are
// integer dot products of the quants with the activation in 16-bit fixed point per 32-block
// (quantizeRows): exact products, the activation rounded to 2^-16 of its block's largest value;
// this halves the instructions per weight, which is what bounds a core's GEMV throughput.

const ARGS: usize = 64;

const OP_MATMUL: i32 = 1;
const OP_ATTENTION: i32 = 2;
const OP_READ: i32 = 3;
const OP_QUANTIZE: i32 = 4;

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

/**
 * Constants of the hot loops, read from memory into locals before each loop: as v128.const in the
 * loop body (what binaryen makes of a hoisted splat) V8 rebuilds them on every use.
 */
const KC: usize = memory.data<u32>([
  0x000f000f, 0x000f000f, 0x000f000f, 0x000f000f, // 0: low nibble of each u16 lane
  0x7fff, 0x7fff, 0x7fff, 0x7fff, // 16: half without its sign
  0x77800000, 0x77800000, 0x77800000, 0x77800000, // 32: 2^112
  0x7bff, 0x7bff, 0x7bff, 0x7bff, // 48: largest finite half
  0x7f800000, 0x7f800000, 0x7f800000, 0x7f800000, // 64: f32 infinity exponent
  0x8000, 0x8000, 0x8000, 0x8000, // 80: half sign
], 16);

/** IEEE half bits (low 16 of each lane) to f32: exponent rebias by a multiply, which also handles subnormals. */
@inline function halves(h: v128, abs: v128, magic: v128, maxFinite: v128, inf: v128, sign: v128): v128 {
  const e = v128.and(h, abs);
  let f = f32x4.mul(i32x4.shl(e, 13), magic);
  f = v128.or(f, v128.and(i32x4.gt_s(e, maxFinite), inf));
  return v128.or(f, i32x4.shl(v128.and(h, sign), 16));
}

@inline function half(h: u32): f32 {
  return f32x4.extract_lane(halves(i32x4.splat(h), v128.load(KC, 16), v128.load(KC, 32), v128.load(KC, 48), v128.load(KC, 64), v128.load(KC, 80)), 0);
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
  const abs = v128.load(KC, 16);
  const magic = v128.load(KC, 32);
  const maxFinite = v128.load(KC, 48);
  const inf = v128.load(KC, 64);
  const sign = v128.load(KC, 80);
  let i = 0;
  for (; i + 8 <= k; i += 8) {
    const h = v128.load(w + (<usize>i << 1));
    const o = <usize>i << 2;
    a0 = f32x4.add(a0, f32x4.mul(halves(i32x4.extend_low_i16x8_u(h), abs, magic, maxFinite, inf, sign), v128.load(x + o)));
    a1 = f32x4.add(a1, f32x4.mul(halves(i32x4.extend_high_i16x8_u(h), abs, magic, maxFinite, inf, sign), v128.load(x + o, 16)));
  }
  let s = hsum(f32x4.add(a0, a1));
  for (; i < k; i++) s += half(load<u16>(w + (<usize>i << 1))) * load<f32>(x + (<usize>i << 2));
  return s;
}

/** i32x4 partial sums of one q8_0 block's 32 products with 32 i16 activations at x. */
@inline function q8block(q: usize, x: usize): v128 {
  const a = v128.load(q);
  const b = v128.load(q, 16);
  const d0 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(a), v128.load(x));
  const d1 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(a), v128.load(x, 16));
  const d2 = i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(b), v128.load(x, 32));
  const d3 = i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(b), v128.load(x, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

/**
 * The same for a q4_0 block, without its zero point (quantizeRows supplies that term): read as
 * eight u16 lanes, lane i holds bytes 2i and 2i + 1, whose nibbles are weights 2i, 2i + 16 and
 * 2i + 1, 2i + 17. Shifts and masks of 16-bit lanes take them apart with no byte shifts or
 * widening, so quantizeRows stores a q4_0 activation in that order: positions 0, 2, …, 14, then
 * 1, 3, …, 15, then 16, 18, …, 30, then 17, 19, …, 31.
 */
@inline function q4block(q: usize, x: usize, nib: v128): v128 {
  const v = v128.load(q);
  const d0 = i32x4.dot_i16x8_s(v128.and(v, nib), v128.load(x));
  const d1 = i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 8), nib), v128.load(x, 16));
  const d2 = i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v, 4), nib), v128.load(x, 32));
  const d3 = i32x4.dot_i16x8_s(i16x8.shr_u(v, 12), v128.load(x, 48));
  return i32x4.add(i32x4.add(d0, d1), i32x4.add(d2, d3));
}

@inline function blockSum(q4: bool, q: usize, x: usize, nib: v128): v128 {
  return f32x4.convert_i32x4_s(q4 ? q4block(q, x, nib) : q8block(q, x));
}

/**
 * A q8_0 or q4_0 weight row (quants q, f16 scales s) against an activation row quantized by
 * quantizeRows (i16 values xq, f32 block scales xs; for q4_0 also xc, each block's 8 · Σ x, the
 * zero point's share). Four blocks share one vector of combined scales.
 */
@inline function dotQuant(q4: bool, xq: usize, xs: usize, xc: usize, q: usize, s: usize, blocks: i32): f32 {
  const qShift: usize = q4 ? 4 : 5;
  let acc = f32x4.splat(0);
  let zero = f32x4.splat(0);
  const nib = v128.load(KC);
  const abs = v128.load(KC, 16);
  const magic = v128.load(KC, 32);
  const maxFinite = v128.load(KC, 48);
  const inf = v128.load(KC, 64);
  const sign = v128.load(KC, 80);
  let b = 0;
  for (; b + 4 <= blocks; b += 4) {
    const dw = halves(v128.load16x4_u(s + (<usize>b << 1)), abs, magic, maxFinite, inf, sign);
    const sc = f32x4.mul(dw, v128.load(xs + (<usize>b << 2)));
    if (q4) zero = f32x4.add(zero, f32x4.mul(dw, v128.load(xc + (<usize>b << 2))));
    const qb = q + (<usize>b << qShift);
    const xb = xq + (<usize>b << 6);
    const p0 = f32x4.mul(blockSum(q4, qb, xb, nib), f32x4.splat(f32x4.extract_lane(sc, 0)));
    const p1 = f32x4.mul(blockSum(q4, qb + (1 << qShift), xb + 64, nib), f32x4.splat(f32x4.extract_lane(sc, 1)));
    const p2 = f32x4.mul(blockSum(q4, qb + (2 << qShift), xb + 128, nib), f32x4.splat(f32x4.extract_lane(sc, 2)));
    const p3 = f32x4.mul(blockSum(q4, qb + (3 << qShift), xb + 192, nib), f32x4.splat(f32x4.extract_lane(sc, 3)));
    acc = f32x4.add(acc, f32x4.add(f32x4.add(p0, p1), f32x4.add(p2, p3)));
  }
  let tail: f32 = 0;
  for (; b < blocks; b++) {
    const dw = half(load<u16>(s + (<usize>b << 1)));
    acc = f32x4.add(acc, f32x4.mul(blockSum(q4, q + (<usize>b << qShift), xq + (<usize>b << 6), nib), f32x4.splat(dw * load<f32>(xs + (<usize>b << 2)))));
    if (q4) tail += dw * load<f32>(xc + (<usize>b << 2));
  }
  return q4 ? hsum(f32x4.sub(acc, zero)) - tail : hsum(acc);
}

/** Row n of an f16 weight as k floats at out (for products with several activation rows). */
function decodeF16Row(w: usize, n: i32, k: i32, out: usize): void {
  const r = w + (<usize>n * <usize>k << 1);
  const abs = v128.load(KC, 16);
  const magic = v128.load(KC, 32);
  const maxFinite = v128.load(KC, 48);
  const inf = v128.load(KC, 64);
  const sign = v128.load(KC, 80);
  let i = 0;
  for (; i + 8 <= k; i += 8) {
    const h = v128.load(r + (<usize>i << 1));
    v128.store(out + (<usize>i << 2), halves(i32x4.extend_low_i16x8_u(h), abs, magic, maxFinite, inf, sign));
    v128.store(out + (<usize>i << 2), halves(i32x4.extend_high_i16x8_u(h), abs, magic, maxFinite, inf, sign), 16);
  }
  for (; i < k; i++) store<f32>(out + (<usize>i << 2), half(load<u16>(r + (<usize>i << 1))));
}

/**
 * Activation rows [lo, hi) to 16-bit fixed point per 32-wide block, for the integer dot products
 * of the q8_0/q4_0 kernels: q = round(x / d), d = max |x| / 32767 (error ≤ 2^-16 of the block's
 * largest value). A non-finite value makes its block's d non-finite, so the product is too.
 * Args: x, xStride (bytes), K, xq (K i16 per row), xs (K/32 f32 per row), and for q4_0 (nonzero
 * xc) the order q4block reads plus xc (K/32 f32 per row): 8 · d · Σ q, the zero point's share.
 */
function quantizeRows(lo: i32, hi: i32): void {
  const x = <usize>arg(1);
  const xStride = <usize>arg(2);
  const blocks = arg(3) >> 5;
  const xq = <usize>arg(4);
  const xs = <usize>arg(5);
  const xc = <usize>arg(6);
  for (let r = lo; r < hi; r++) {
    const xr = x + <usize>r * xStride;
    const qr = xq + <usize>r * (<usize>blocks << 6);
    const sr = xs + <usize>r * (<usize>blocks << 2);
    const cr = xc + <usize>r * (<usize>blocks << 2);
    for (let b = 0; b < blocks; b++) {
      const p = xr + (<usize>b << 7);
      let m = f32x4.max(f32x4.max(f32x4.abs(v128.load(p)), f32x4.abs(v128.load(p, 16))), f32x4.max(f32x4.abs(v128.load(p, 32)), f32x4.abs(v128.load(p, 48))));
      m = f32x4.max(m, f32x4.max(f32x4.max(f32x4.abs(v128.load(p, 64)), f32x4.abs(v128.load(p, 80))), f32x4.max(f32x4.abs(v128.load(p, 96)), f32x4.abs(v128.load(p, 112)))));
      const amax = Mathf.max(Mathf.max(f32x4.extract_lane(m, 0), f32x4.extract_lane(m, 1)), Mathf.max(f32x4.extract_lane(m, 2), f32x4.extract_lane(m, 3)));
      const d: f32 = amax / 32767;
      const inv = f32x4.splat(amax > 0 ? <f32>32767 / amax : 0);
      store<f32>(sr + (<usize>b << 2), d);
      const o = qr + (<usize>b << 6);
      for (let j: usize = 0; j < 4; j++) {
        const a = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p + (j << 5)), inv)));
        const c = i32x4.trunc_sat_f32x4_s(f32x4.nearest(f32x4.mul(v128.load(p + (j << 5), 16), inv)));
        v128.store(o + (j << 4), i16x8.narrow_i32x4_s(a, c));
      }
      if (xc) q4Order(o, cr + (<usize>b << 2), d);
    }
  }
}

/** Puts a quantized block in q4block's order and stores 8 · d · Σ q at c. */
@inline function q4Order(o: usize, c: usize, d: f32): void {
  const a = v128.load(o);
  const b = v128.load(o, 16);
  const e = v128.load(o, 32);
  const f = v128.load(o, 48);
  const sum = i32x4.add(i32x4.add(i32x4.extadd_pairwise_i16x8_s(a), i32x4.extadd_pairwise_i16x8_s(b)), i32x4.add(i32x4.extadd_pairwise_i16x8_s(e), i32x4.extadd_pairwise_i16x8_s(f)));
  const total = i32x4.extract_lane(sum, 0) + i32x4.extract_lane(sum, 1) + i32x4.extract_lane(sum, 2) + i32x4.extract_lane(sum, 3);
  store<f32>(c, <f32>(total * 8) * d);
  v128.store(o, i16x8.shuffle(a, b, 0, 2, 4, 6, 8, 10, 12, 14));
  v128.store(o, i16x8.shuffle(a, b, 1, 3, 5, 7, 9, 11, 13, 15), 16);
  v128.store(o, i16x8.shuffle(e, f, 0, 2, 4, 6, 8, 10, 12, 14), 32);
  v128.store(o, i16x8.shuffle(e, f, 1, 3, 5, 7, 9, 11, 13, 15), 48);
}

/** One weight row against one activation row (quantized for q8_0/q4_0), straight from the stored format. */
@inline function dotRow(dtype: i32, x: usize, xq: usize, xs: usize, xc: usize, w: usize, s: usize, n: i32, k: i32): f32 {
  if (dtype == DT_F32) return dotF32(x, w + (<usize>n * <usize>k << 2), k);
  if (dtype == DT_F16) return dotF16(x, w + (<usize>n * <usize>k << 1), k);
  const blocks = k >> 5;
  const b0 = <usize>n * <usize>blocks;
  if (dtype == DT_Q8) return dotQuant(false, xq, xs, 0, w + (b0 << 5), s + (b0 << 1), blocks);
  return dotQuant(true, xq, xs, xc, w + (b0 << 4), s + (b0 << 1), blocks);
}

/**
 * out[m, n] (+)= x[m, :] · w[n, :] for rows n in [lo, hi). Args: dtype, x, xStride (bytes), M, K,
 * w (quants or values of row 0), scales, out, outStride (bytes), accumulate, scratch base, scratch
 * bytes per thread, and for q8_0/q4_0 the activation as quantizeRows left it (xq, xs, xc).
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
  const xq = <usize>arg(13);
  const xs = <usize>arg(14);
  const xc = <usize>arg(15);
  // f16 rows are decoded once for several activation rows; every other layout is read in place
  const decoded = m > 1 && dtype == DT_F16;
  for (let n = lo; n < hi; n++) {
    if (decoded) decodeF16Row(w, n, k, scratch);
    for (let r = 0; r < m; r++) {
      const xr = x + <usize>r * xStride;
      const xqr = xq + <usize>r * (<usize>k << 1);
      const xsr = xs + <usize>r * (<usize>(k >> 5) << 2);
      const xcr = xc + <usize>r * (<usize>(k >> 5) << 2);
      const v = decoded ? dotF32(xr, scratch, k) : dotRow(dtype, xr, xqr, xsr, xcr, w, s, n, k);
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
  else if (op == OP_QUANTIZE) quantizeRows(lo, hi);
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
 * Causal attention. A work item p in [lo, hi) is one query row and `sub` consecutive heads of one
 * kv head's group, so each key and value row is read once for those heads (GQA and MLA share one
 * kv head between many query heads; reading it per head multiplies the cache traffic). Args: q,
 * qStride, k, kStride, v (already offset by vColOffset), vStride, out, outStride (strides in
 * bytes), heads, group (heads per kv head), dk, dv, startPos, scale (f32), scratch base, scratch
 * bytes per thread (sub · (T + 1) floats), sub.
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
  const scratch = <usize>arg(15) + <usize>thread * <usize>arg(16);
  const sub = arg(17);
  const chunks = (group + sub - 1) / sub;
  const perRow = (heads / group) * chunks;
  for (let p = lo; p < hi; p++) {
    const i = p / perRow;
    const g = (p % perRow) / chunks;
    const h0 = g * group + ((p % perRow) % chunks) * sub;
    const cnt = min(sub, (g + 1) * group - h0);
    const n = startPos + i + 1;
    // scores[j * n + t] for head h0 + j, then each head's max and 1 / sum after them
    const stats = scratch + (<usize>(cnt * n) << 2);
    for (let j = 0; j < cnt; j++) store<f32>(stats + (<usize>j << 2), -Infinity);
    const qr = q + <usize>i * qStride + (<usize>(h0 * dk) << 2);
    for (let t = 0; t < n; t++) {
      const kr = kc + <usize>t * kStride + (<usize>(g * dk) << 2);
      for (let j = 0; j < cnt; j++) {
        const sc = dotF32(qr + (<usize>(j * dk) << 2), kr, dk) * scale;
        store<f32>(scratch + (<usize>(j * n + t) << 2), sc);
        if (sc > load<f32>(stats + (<usize>j << 2))) store<f32>(stats + (<usize>j << 2), sc);
      }
    }
    for (let j = 0; j < cnt; j++) {
      const row = scratch + (<usize>(j * n) << 2);
      const max = load<f32>(stats + (<usize>j << 2));
      let sum: f32 = 0;
      for (let t = 0; t < n; t++) {
        const e = Mathf.exp(load<f32>(row + (<usize>t << 2)) - max);
        store<f32>(row + (<usize>t << 2), e);
        sum += e;
      }
      store<f32>(stats + (<usize>j << 2), <f32>1 / sum);
    }
    const or = out + <usize>i * outStride + (<usize>(h0 * dv) << 2);
    for (let j = 0; j < cnt; j++) memory.fill(or + (<usize>(j * dv) << 2), 0, <usize>dv << 2);
    // value rows in order (contiguous reads), the heads' output rows accumulating in L1
    for (let t = 0; t < n; t++) {
      const vr = vc + <usize>t * vStride + (<usize>(g * dv) << 2);
      for (let j = 0; j < cnt; j++) {
        const pt = load<f32>(scratch + (<usize>(j * n + t) << 2)) * load<f32>(stats + (<usize>j << 2));
        const pv = f32x4.splat(pt);
        const oj = or + (<usize>(j * dv) << 2);
        let c = 0;
        for (; c + 4 <= dv; c += 4) {
          const o = oj + (<usize>c << 2);
          v128.store(o, f32x4.add(v128.load(o), f32x4.mul(pv, v128.load(vr + (<usize>c << 2)))));
        }
        for (; c < dv; c++) {
          const o = oj + (<usize>c << 2);
          store<f32>(o, load<f32>(o) + pt * load<f32>(vr + (<usize>c << 2)));
        }
      }
    }
  }
}
