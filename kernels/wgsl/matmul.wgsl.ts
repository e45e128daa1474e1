/**
 * out[M, N] = x[M, K] · w[N, K]ᵀ, optionally per head (grid z / y) and accumulating.
 *
 * Two shapes of kernel:
 * - gemm: 64×64 output tiles, 16-deep K steps through workgroup memory, each thread a 4×4 block;
 *   weights decoded element-wise into the tile. Any M, N, K, any layout: prefill and fallback.
 * - gemv: decode (small M) is a stream over the weight bytes. TPR threads walk one row's units side
 *   by side, each thread owns RPT rows so that the x values it loads serve several rows, UNROLL
 *   units per thread are loaded before any is used (bytes in flight), and partial sums meet in
 *   subgroup shuffles and a tree reduction in workgroup memory. Units are 16 bytes (wide) or, for
 *   f16 and block formats, narrow so that x loads stay coalesced (see gemvUnit). Each format's
 *   decode (bit tricks that avoid slow int→float conversions) is in formats/.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import { paramsStruct, weightAccess, WEIGHT_PARAMS, type KernelSource } from './common.wgsl.ts';
import { GPU_FORMATS, type GemvUnit } from './formats/index.ts';

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
  /** Stage x through workgroup memory (M = 1, wide units of f16 and block formats only; see gemvCanStageX). */
  stageX: boolean;
  /** Narrow units (see gemvUnit); f32 units are always 16 bytes. */
  narrow?: boolean;
  /** Units each lane loads per loop step, all loads issued before any is used (1, 2 or 4). */
  unroll?: number;
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
  return GPU_FORMATS[dtype].unit(false).weights;
}

/** Whether the gemv kernel can run: whole units per row, x and the tensor 16-byte aligned. */
export function gemvFits(dtype: WeightDtype, k: number, xCols: number, wordBase: number): boolean {
  return k % unitWeights(dtype) === 0 && xCols % 4 === 0 && wordBase % 4 === 0;
}

/**
 * What one lane loads per row per step (formats/ defines each format's units). Wide units are 16
 * bytes (a q4_0 unit is a whole block), so a lane's x values lie 32-128 bytes from its neighbours'
 * and each warp-wide x load touches up to 32 cache lines. Narrow units keep x loads coalesced as in
 * f32, so consecutive lanes read consecutive x.
 */
export function gemvUnit(dtype: WeightDtype, narrow: boolean): GemvUnit {
  return GPU_FORMATS[dtype].unit(narrow);
}

/** Units per weight row in the layout the shape reads. */
export function gemvUnits(dtype: WeightDtype, narrow: boolean, k: number): number {
  return k / gemvUnit(dtype, narrow).weights;
}

/** 4-byte words per unit: the weight binding's base word index divides by this. */
export function gemvUnitWords(dtype: WeightDtype, narrow: boolean): number {
  return { 'vec4<u32>': 4, 'vec2<u32>': 2, u32: 1 }[gemvUnit(dtype, narrow).load]!;
}

/**
 * Single-row decode of wide f16 and block-format units can stage x through workgroup memory: in
 * workgroup memory, one vec4 of padding every 8 makes each quarter-warp's 16-byte reads hit
 * distinct banks, and every row of the workgroup reuses the staged x. K is staged in chunks so
 * the buffer fits 32 KiB with the reduction. Each workgroup pays a pass over x for it, which only
 * pays off when a workgroup covers many rows.
 */
export function gemvCanStageX(dtype: WeightDtype, m: number): boolean {
  return m === 1 && dtype !== 'f32';
}

/** Units of x staged per chunk: 6144 floats (27 KiB with padding). */
const X_STAGE_UNITS = (w4: number): number => 6144 / 4 / w4;

export function gemvSource(s: GemvShape): KernelSource {
  const { dtype, m: M, tpr: TPR, rpt: RPT } = s;
  const staged = s.stageX && gemvCanStageX(dtype, M);
  const narrow = (s.narrow ?? false) && !staged;
  const U = staged ? 1 : (s.unroll ?? 1);
  const G = 256 / TPR;
  const unit = gemvUnit(dtype, narrow);
  const W4 = unitWeights(dtype) / 4;
  const params = [...HEAD_PARAMS, ['units', 'u32'], ['wBase', 'u32'], ['wS', 'u32'], ['xStride4', 'u32'], ['xHead4', 'u32']] as const;
  const xAt = (m: number, i: string): string => (staged ? `xs[${i} + ${i} / 8u]` : `x[xb${m} + ${i}]`);
  /** One loop step over units u + j·TPR (j < U): every load first, then the arithmetic. */
  const step = (u: string, uStaged: string, U: number): string => {
    const lines: string[] = [];
    for (let j = 0; j < U; j++) {
      lines.push(`    let u${j} = ${u} + ${j * TPR}u;`);
      for (let r = 0; r < RPT; r++) {
        lines.push(`    let gu${j}_${r} = row${r} * p.units + u${j};`);
        lines.push(`    let q${j}_${r} = ${unit.fetch ? unit.fetch(`gu${j}_${r}`) : `wq[p.wBase + gu${j}_${r}]`};`);
        if (unit.block) lines.push(`    let d${j}_${r} = scale(${unit.block(`gu${j}_${r}`)});`);
      }
    }
    for (let j = 0; j < U; j++) {
      const parts = unit.parts(`q${j}_0`, staged ? uStaged : `u${j}`);
      for (let m = 0; m < M; m++) parts.forEach(([, at], i) => lines.push(`    let x${j}_${i}_${m} = ${xAt(m, at)};`));
      for (let r = 0; r < RPT; r++) {
        const ws = unit.parts(`q${j}_${r}`, `u${j}`);
        ws.forEach(([e], i) => lines.push(`    let w${j}_${r}_${i} = ${e};`));
        for (let m = 0; m < M; m++) {
          const a = `acc[${r * M + m}]`;
          const terms = ws.map((_, i) => `dot(w${j}_${r}_${i}, x${j}_${i}_${m})`).join(' + ');
          lines.push(unit.block ? `    ${a} = fma(d${j}_${r}, ${terms}, ${a});` : `    ${a} += ${terms};`);
        }
      }
    }
    return lines.join('\n');
  };
  const xBases = staged ? '' : Array.from({ length: M }, (_, m) => `  let xb${m} = z * p.xHead4 + ${m}u * p.xStride4;`).join('\n') + '\n';
  const loop = staged
    ? `  for (var kc = 0u; kc < p.units; kc += ${X_STAGE_UNITS(W4)}u) {
    let kcEnd = min(kc + ${X_STAGE_UNITS(W4)}u, p.units);
    workgroupBarrier();
    for (var e = li; e < (kcEnd - kc) * ${W4}u; e += 256u) { xs[e + e / 8u] = x[z * p.xHead4 + kc * ${W4}u + e]; }
    workgroupBarrier();
    for (var u = kc + lane; u < kcEnd; u += TPR) {
${step('u', '(u - kc)', 1)}
    }
  }`
    : U > 1
      ? `  var u = lane;
  for (; u + ${(U - 1) * TPR}u < p.units; u += ${U * TPR}u) {
${step('u', '', U)}
  }
  for (; u < p.units; u += TPR) {
${step('u', '', 1)}
  }`
      : `  for (var u = lane; u < p.units; u += TPR) {
${step('u', '', U)}
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
@group(0) @binding(2) var<storage, read> wq: array<${unit.load}>;
@group(0) @binding(3) var<storage, read> ws: array<u32>;
@group(0) @binding(4) var<storage, read> x: array<vec4<f32>>;
${GPU_FORMATS[dtype].gemvPrelude}const TPR = ${TPR}u;
const NACC = ${RPT * M}u;
var<workgroup> red: array<f32, ${256 * RPT * M}>;
${staged ? `var<workgroup> xs: array<vec4<f32>, ${(X_STAGE_UNITS(W4) * W4 * 9) / 8}>;` : ''}
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let lane = li % TPR;
  let z = wg.y;
  let rowBase = (wg.x * ${G}u + li / TPR) * ${RPT}u;
${rowDecl}
${xBases}  var acc: array<f32, NACC>;
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
