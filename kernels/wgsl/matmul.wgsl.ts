/**
 * out[M, N] = x[M, K] · w[N, K]ᵀ, optionally per head (grid z / y) and accumulating.
 *
 * Two shapes of kernel:
 * - gemm: 64×64 output tiles, 16-deep K steps through workgroup memory, each thread a 4×4 block;
 *   weights decoded element-wise into the tile. Any M, N, K, any layout: prefill and fallback.
 * - gemv: decode (small M) is a stream over the weight bytes, so it is built around one 16-byte
 *   load per thread per step: TPR threads walk one row's 16-byte units side by side (a warp reads
 *   512 contiguous bytes per load, for every layout, quants and f16 alike), each thread owns RPT
 *   rows so that the x values it loads serve several rows, and partial sums meet in a tree
 *   reduction in workgroup memory. Block formats decode with the float-magic trick
 *   (bits | 0x4B000000 is 2^23 + bits as a float), avoiding slow int→float conversions.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import { paramsStruct, weightAccess, WEIGHT_PARAMS, type KernelSource } from './common.wgsl.ts';

export const GEMM_TILE = 64;

const HEAD_PARAMS = [
  ['M', 'u32'],
  ['N', 'u32'],
  ['xStride', 'u32'],
  ['xHead', 'u32'],
  ['outStride', 'u32'],
  ['outHead', 'u32'],
  ['accumulate', 'u32'],
] as const;

export function gemmSource(dtype: WeightDtype): KernelSource {
  const params = [...HEAD_PARAMS, ...WEIGHT_PARAMS] as const;
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<f32>;
${weightAccess(dtype, 'w')}
fn store(m: u32, n: u32, z: u32, value: f32) {
  if (m < p.M && n < p.N) {
    let at = m * p.outStride + z * p.outHead + n;
    var v = value;
    if (p.accumulate != 0u) { v += o[at]; }
    o[at] = v;
  }
}
const BM = 64u;
const BN = 64u;
const BK = 16u;
var<workgroup> xs: array<f32, 1024>;
var<workgroup> ws: array<f32, 1024>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let m0 = wg.y * BM;
  let n0 = wg.x * BN;
  let z = wg.z;
  let tm = li / 16u;
  let tn = li % 16u;
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  var acc${i}${j} = 0.0;`)).join('\n')}
  for (var k0 = 0u; k0 < p.wK; k0 += BK) {
    for (var r = 0u; r < 4u; r++) {
      let e = li + r * 256u;
      let kk = e % BK;
      let rr = e / BK;
      let gk = k0 + kk;
      var xv = 0.0;
      if (m0 + rr < p.M && gk < p.wK) { xv = x[(m0 + rr) * p.xStride + z * p.xHead + gk]; }
      xs[kk * BM + rr] = xv;
      var wv = 0.0;
      if (n0 + rr < p.N && gk < p.wK) { wv = wAt(z * p.N + n0 + rr, gk); }
      ws[kk * BN + rr] = wv;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
${[0, 1, 2, 3].map((i) => `      let a${i} = xs[k * BM + tm + ${16 * i}u];\n      let b${i} = ws[k * BN + tn + ${16 * i}u];`).join('\n')}
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `      acc${i}${j} = fma(a${i}, b${j}, acc${i}${j});`)).join('\n')}
    }
    workgroupBarrier();
  }
${[0, 1, 2, 3].flatMap((i) => [0, 1, 2, 3].map((j) => `  store(m0 + tm + ${16 * i}u, n0 + tn + ${16 * j}u, z, acc${i}${j});`)).join('\n')}
}\n`;
  return { params, code };
}

export interface GemvShape {
  dtype: WeightDtype;
  /** Rows of x (compile-time: one accumulator per row). */
  m: number;
  /** Threads per weight row (power of two, ≤ 256). */
  tpr: number;
  /** Weight rows per thread. */
  rpt: number;
  /** Stage x through workgroup memory (M = 1, f16 and block formats only; see gemvCanStageX). */
  stageX: boolean;
  /**
   * The device's fixed subgroup size when the `subgroups` feature is on: partial sums are first
   * combined by subgroupShuffleXor within runs of that many lanes, leaving fewer tree steps
   * through workgroup memory (none when it is ≥ TPR). Assumes subgroups are consecutive runs of
   * local_invocation_index, as they are for 1-D workgroups on every driver we run.
   */
  subgroup?: number;
}

/** Weights per 16-byte unit of the main array. */
export function unitWeights(dtype: WeightDtype): number {
  return { f32: 4, f16: 8, q8_0: 16, q4_0: 32 }[dtype];
}

/** Whether the gemv kernel can run: whole units per row, x and the tensor 16-byte aligned. */
export function gemvFits(dtype: WeightDtype, k: number, xCols: number, wordBase: number): boolean {
  return k % unitWeights(dtype) === 0 && xCols % 4 === 0 && wordBase % 4 === 0;
}

const U4 = (a: number, b: number, c: number, d: number): string => `vec4<u32>(${a}u, ${b}u, ${c}u, ${d}u)`;

/** WGSL expressions for the unit's weights as vec4<f32>s, in the order of x's vec4s. */
function decodeUnit(dtype: WeightDtype, q: string): string[] {
  switch (dtype) {
    case 'f32':
      return [`bitcast<vec4<f32>>(${q})`];
    case 'f16':
      return [
        `vec4<f32>(unpack2x16float(${q}.x), unpack2x16float(${q}.y))`,
        `vec4<f32>(unpack2x16float(${q}.z), unpack2x16float(${q}.w))`,
      ];
    case 'q8_0':
      return ['x', 'y', 'z', 'w'].map(
        (c) => `(bitcast<vec4<f32>>(((vec4<u32>(${q}.${c}) >> ${U4(0, 8, 16, 24)}) & vec4<u32>(255u)) ^ vec4<u32>(0x4B000080u)) - vec4<f32>(8388736.0))`,
      );
    case 'q4_0': {
      const nib = (c: string, s: number[]): string =>
        `(bitcast<vec4<f32>>(((vec4<u32>(${q}.${c}) >> ${U4(s[0]!, s[1]!, s[2]!, s[3]!)}) & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - vec4<f32>(8388616.0))`;
      const cs = ['x', 'y', 'z', 'w'];
      return [...cs.map((c) => nib(c, [0, 8, 16, 24])), ...cs.map((c) => nib(c, [4, 12, 20, 28]))];
    }
  }
}

/**
 * Single-row decode of f16 and block formats stages x through workgroup memory. Read straight
 * from global memory, the x values of one thread's unit (8 vec4s for q4_0) sit 32-128 bytes from
 * its neighbours', so each warp load touches up to 32 cache lines: x traffic through L1 would be
 * 8× the weight bytes at a fraction of L1's rate. In workgroup memory, one vec4 of padding every
 * 8 makes each quarter-warp's 16-byte reads hit distinct banks, and every row of the workgroup
 * reuses the staged x. K is staged in chunks so the buffer fits 32 KiB with the reduction.
 */
export function gemvCanStageX(dtype: WeightDtype, m: number): boolean {
  return m === 1 && dtype !== 'f32';
}

/** Units of x staged per chunk: 6144 floats (27 KiB with padding). */
const X_STAGE_UNITS = (w4: number): number => 6144 / 4 / w4;

export function gemvSource(s: GemvShape): KernelSource {
  const { dtype, m: M, tpr: TPR, rpt: RPT } = s;
  const G = 256 / TPR;
  const W4 = unitWeights(dtype) / 4;
  const block = dtype === 'q4_0' ? 'gu' : dtype === 'q8_0' ? '(gu >> 1u)' : null;
  const params = [...HEAD_PARAMS, ['units', 'u32'], ['wB4', 'u32'], ['wS', 'u32'], ['xStride4', 'u32'], ['xHead4', 'u32']] as const;
  const lines: string[] = [];
  const idx = (r: number, m: number): number => r * M + m;
  for (let r = 0; r < RPT; r++) {
    lines.push(`    let gu${r} = row${r} * p.units + u;`);
    lines.push(`    let q${r} = wq[p.wB4 + gu${r}];`);
  }
  for (let r = 0; r < RPT; r++) {
    const ws = decodeUnit(dtype, `q${r}`);
    ws.forEach((e, i) => lines.push(`    let w${r}_${i} = ${e};`));
    if (block) lines.push(`    let d${r} = scale(${block.replace('gu', `gu${r}`)});`);
    for (let m = 0; m < M; m++) {
      const terms = ws.map((_, i) => `dot(w${r}_${i}, ${M === 1 ? `x${i}` : `x[xb + ${m}u * p.xStride4 + ${i}u]`})`).join(' + ');
      lines.push(block ? `    acc[${idx(r, m)}] = fma(d${r}, ${terms}, acc[${idx(r, m)}]);` : `    acc[${idx(r, m)}] += ${terms};`);
    }
  }
  const staged = s.stageX && gemvCanStageX(dtype, M);
  const xPre =
    M === 1
      ? Array.from({ length: W4 }, (_, i) => (staged ? `    let x${i} = xs[sb + ${i}u + (sb + ${i}u) / 8u];` : `    let x${i} = x[xb + ${i}u];`)).join('\n') + '\n'
      : '';
  const loop = staged
    ? `  for (var kc = 0u; kc < p.units; kc += ${X_STAGE_UNITS(W4)}u) {
    let kcEnd = min(kc + ${X_STAGE_UNITS(W4)}u, p.units);
    workgroupBarrier();
    for (var e = li; e < (kcEnd - kc) * ${W4}u; e += 256u) { xs[e + e / 8u] = x[z * p.xHead4 + kc * ${W4}u + e]; }
    workgroupBarrier();
    for (var u = kc + lane; u < kcEnd; u += TPR) {
      let sb = (u - kc) * ${W4}u;
${xPre}${lines.join('\n')}
    }
  }`
    : `  for (var u = lane; u < p.units; u += TPR) {
    let xb = z * p.xHead4 + u * ${W4}u;
${xPre}${lines.join('\n')}
  }`;
  const rowDecl = Array.from({ length: RPT }, (_, r) => `  let row${r} = z * p.N + min(rowBase + ${r}u, p.N - 1u);`).join('\n');
  // lanes already summed by subgroup shuffles: groups of sgRun consecutive lanes
  const sgRun = Math.min(s.subgroup ?? 1, TPR);
  const shuffle =
    sgRun > 1
      ? `  for (var a = 0u; a < NACC; a++) {
    var t = acc[a];
${Array.from({ length: Math.log2(sgRun) }, (_, i) => `    t += subgroupShuffleXor(t, ${2 ** i}u);`).join('\n')}
    acc[a] = t;
  }\n`
      : '';
  const code = `${sgRun > 1 ? 'enable subgroups;\n' : ''}${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> wq: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> ws: array<u32>;
@group(0) @binding(4) var<storage, read> x: array<vec4<f32>>;
fn scale(b: u32) -> f32 { let h = unpack2x16float(ws[p.wS + (b >> 1u)]); return select(h.x, h.y, (b & 1u) == 1u); }
const TPR = ${TPR}u;
const NACC = ${RPT * M}u;
var<workgroup> red: array<f32, ${256 * RPT * M}>;
${staged ? `var<workgroup> xs: array<vec4<f32>, ${(X_STAGE_UNITS(W4) * W4 * 9) / 8}>;` : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let lane = li % TPR;
  let z = wg.y;
  let rowBase = (wg.x * ${G}u + li / TPR) * ${RPT}u;
${rowDecl}
  var acc: array<f32, NACC>;
${loop}
${shuffle}  for (var a = 0u; a < NACC; a++) { red[a * 256u + li] = acc[a]; }
  workgroupBarrier();
  for (var s = TPR / 2u; s >= ${sgRun}u; s = s >> 1u) {
    if (lane < s) {
      for (var a = 0u; a < NACC; a++) { red[a * 256u + li] += red[a * 256u + li + s]; }
    }
    workgroupBarrier();
  }
  if (lane == 0u) {
    for (var r = 0u; r < ${RPT}u; r++) {
      let n = rowBase + r;
      if (n < p.N) {
        for (var m = 0u; m < ${M}u; m++) {
          let at = m * p.outStride + z * p.outHead + n;
          var v = red[(r * ${M}u + m) * 256u + li];
          if (p.accumulate != 0u) { v += o[at]; }
          o[at] = v;
        }
      }
    }
  }
}\n`;
  return { params, code };
}
