/** One workgroup per row: RMSNorm, argmax and the finiteness check, reduced in workgroup memory. */
import type { WeightDtype } from '../../manifests/index.ts';
import { LINEAR_ENTRY_ARGS, LINEAR_WGID, paramsStruct, weightAccess, WEIGHT_PARAMS, type KernelSource } from './common.wgsl.ts';

export const ROW_WG = 256;

/** Tree reduction of `red` (ROW_WG entries) with `op`, leaving the result in red[0]. */
function treeReduce(op: (a: string, b: string) => string): string {
  return `  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { red[li] = ${op('red[li]', 'red[li + s]')}; }
    workgroupBarrier();
  }\n`;
}

/** out = x * rsqrt(mean(x²) + eps) * w over rows of width p.wK; `inPlace` when out is x. */
export function rmsnormSource(dtype: WeightDtype, inPlace: boolean): KernelSource {
  const params = [['rows', 'u32'], ...WEIGHT_PARAMS, ['eps', 'f32']] as const;
  const xName = inPlace ? 'o' : 'x';
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
${inPlace ? '' : '@group(0) @binding(3) var<storage, read> x: array<f32>;\n'}${weightAccess(dtype, 'w')}
var<workgroup> red: array<f32, ${ROW_WG}>;
@compute @workgroup_size(${ROW_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  if (wgid >= p.rows) { return; }
  let base = wgid * p.wK;
  var ss = 0.0;
  for (var c = li; c < p.wK; c += ${ROW_WG}u) { let v = ${xName}[base + c]; ss = fma(v, v, ss); }
  red[li] = ss;
  workgroupBarrier();
${treeReduce((a, b) => `${a} + ${b}`)}  let inv = 1.0 / sqrt(red[0] / f32(p.wK) + p.eps);
  for (var c = li; c < p.wK; c += ${ROW_WG}u) { o[base + c] = ${xName}[base + c] * inv * wAt(0u, c); }
}\n`;
  return { params, code };
}

/** Where a per-row result goes: its own u32 array (read back), or an f32 column of an activation (`into`). */
const rowResult = (into: boolean) => ({
  params: into ? ([['rows', 'u32'], ['cols', 'u32'], ['outStride', 'u32'], ['outCol', 'u32']] as const) : ([['rows', 'u32'], ['cols', 'u32']] as const),
  out: into ? 'array<f32>' : 'array<u32>',
  store: (v: string) => (into ? `o[wgid * p.outStride + p.outCol] = f32(${v});` : `o[wgid] = ${v};`),
});

/** Per row: index of the largest value, first on ties, NaN skipped (by its bits: no fast-math surprises). */
export function argmaxSource(into = false): KernelSource {
  const { params, out, store } = rowResult(into);
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: ${out};
@group(0) @binding(2) var<storage, read> x: array<f32>;
var<workgroup> red: array<f32, ${ROW_WG}>;
var<workgroup> idx: array<u32, ${ROW_WG}>;
fn isNan(v: f32) -> bool { let b = bitcast<u32>(v); return (b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu) != 0u; }
@compute @workgroup_size(${ROW_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  if (wgid >= p.rows) { return; }
  var best = -3.0e38;
  var bi = 0xffffffffu;
  for (var c = li; c < p.cols; c += ${ROW_WG}u) {
    let v = x[wgid * p.cols + c];
    if (!isNan(v) && (bi == 0xffffffffu || v > best)) { best = v; bi = c; }
  }
  red[li] = best;
  idx[li] = bi;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) {
      let oi = idx[li + s];
      let ov = red[li + s];
      if (oi != 0xffffffffu && (idx[li] == 0xffffffffu || ov > red[li] || (ov == red[li] && oi < idx[li]))) {
        red[li] = ov;
        idx[li] = oi;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) { ${store('select(idx[0], 0u, idx[0] == 0xffffffffu)')} }
}\n`;
  return { params, code };
}

/** Per row: 1 when every value is finite (exponent bits not all ones), else 0. */
export function finiteRowsSource(into = false): KernelSource {
  const { params, out, store } = rowResult(into);
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> o: ${out};
@group(0) @binding(2) var<storage, read> x: array<f32>;
var<workgroup> bad: atomic<u32>;
@compute @workgroup_size(${ROW_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  if (wgid >= p.rows) { return; }
  if (li == 0u) { atomicStore(&bad, 0u); }
  workgroupBarrier();
  var found = 0u;
  for (var c = li; c < p.cols; c += ${ROW_WG}u) {
    if ((bitcast<u32>(x[wgid * p.cols + c]) & 0x7f800000u) == 0x7f800000u) { found = 1u; }
  }
  if (found != 0u) { atomicStore(&bad, 1u); }
  workgroupBarrier();
  if (li == 0u) { ${store('1u - atomicLoad(&bad)')} }
}\n`;
  return { params, code };
}
