/** Element-parallel kernels: fill, add, swiglu (plain and clamped), bias add, region copy, gather, scatter-add, embedding lookup. */
import type { WeightDtype } from '../../manifests/index.ts';
import { LINEAR_ENTRY_ARGS, LINEAR_WGID, paramsStruct, weightAccess, WEIGHT_PARAMS, type KernelSource } from './common.wgsl.ts';

export const ELEMENTWISE_WG = 256;

const head = (fields: KernelSource['params']): string => paramsStruct(fields);
const entry = (body: string): string => `@compute @workgroup_size(${ELEMENTWISE_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  let e = wgid * ${ELEMENTWISE_WG}u + li;
  if (e >= p.count) { return; }
${body}
}\n`;

export function fillSource(): KernelSource {
  const params = [['count', 'u32'], ['value', 'f32']] as const;
  return {
    params,
    code: `${head(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n${entry('  o[e] = p.value;')}`,
  };
}

/**
 * o = f(a, b) elementwise. `alias` says which input is the output buffer itself (bound once, as
 * read_write), since WebGPU forbids binding one buffer both read-only and writable in a dispatch.
 */
export function binarySource(op: 'add' | 'swiglu' | 'swigluClamped', alias: 'none' | 'a' | 'b' | 'ab'): KernelSource {
  const params = op === 'swigluClamped' ? ([['count', 'u32'], ['alpha', 'f32'], ['limit', 'f32']] as const) : ([['count', 'u32']] as const);
  const aName = alias === 'a' || alias === 'ab' ? 'o' : 'a';
  const bName = alias === 'b' || alias === 'ab' ? 'o' : 'b';
  let bindings = '@group(0) @binding(1) var<storage, read_write> o: array<f32>;\n';
  if (aName === 'a') bindings += '@group(0) @binding(2) var<storage, read> a: array<f32>;\n';
  if (bName === 'b') bindings += `@group(0) @binding(${aName === 'a' ? 3 : 2}) var<storage, read> b: array<f32>;\n`;
  const expr = { add: `${aName}[e] + ${bName}[e]`, swiglu: `silu(${aName}[e]) * ${bName}[e]`, swigluClamped: `clampedSwiglu(${aName}[e], ${bName}[e])` }[op];
  // gpt-oss: g = min(gate, limit), u = clamp(up, ±limit), (u + 1) · g · σ(alpha · g)
  const fns = `fn silu(g: f32) -> f32 { return g / (1.0 + exp(-g)); }
${op === 'swigluClamped' ? 'fn clampedSwiglu(gate: f32, up: f32) -> f32 { let g = min(gate, p.limit); let u = clamp(up, -p.limit, p.limit); return (u + 1.0) * (g / (1.0 + exp(-p.alpha * g))); }\n' : ''}`;
  return { params, code: `${head(params)}${bindings}${fns}${entry(`  o[e] = ${expr};`)}` };
}

/** o[r, c] = x[r, c] + bias[c]; bias is an f32 vector inside a weight binding (word p.wB on). `inPlace`: x is o. */
export function addBiasSource(inPlace: boolean): KernelSource {
  const params = [['count', 'u32'], ['cols', 'u32'], ['wB', 'u32']] as const;
  const bindings = `@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
${inPlace ? '' : '@group(0) @binding(3) var<storage, read> x: array<f32>;\n'}`;
  return { params, code: `${head(params)}${bindings}${entry(`  o[e] = ${inPlace ? 'o' : 'x'}[e] + bitcast<f32>(w[p.wB + e % p.cols]);`)}` };
}

/** dst[dstRow + i, dstCol + j] = src[srcRow + i, srcCol + j]; `same` when both are one buffer. */
export function copySource(same: boolean): KernelSource {
  const params = [
    ['count', 'u32'],
    ['cols', 'u32'],
    ['srcStride', 'u32'],
    ['srcBase', 'u32'],
    ['dstStride', 'u32'],
    ['dstBase', 'u32'],
  ] as const;
  const bindings = same
    ? '@group(0) @binding(1) var<storage, read_write> d: array<f32>;\n'
    : '@group(0) @binding(1) var<storage, read_write> d: array<f32>;\n@group(0) @binding(2) var<storage, read> s: array<f32>;\n';
  const body = `  let i = e / p.cols;
  let j = e % p.cols;
  d[p.dstBase + i * p.dstStride + j] = ${same ? 'd' : 's'}[p.srcBase + i * p.srcStride + j];`;
  return { params, code: `${head(params)}${bindings}${entry(body)}` };
}

/** o[i, :] = x[rows[i], :]. */
export function gatherSource(): KernelSource {
  const params = [['count', 'u32'], ['cols', 'u32'], ['rowsOff', 'u32']] as const;
  const code = `${head(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
${entry(`  let i = e / p.cols;
  o[e] = x[rows[p.rowsOff + i] * p.cols + e % p.cols];`)}`;
  return { params, code };
}

/** o[rows[i], :] += scale[i] * y[i, :]; rows are distinct, so threads never collide. */
export function scatterAddSource(): KernelSource {
  const params = [['count', 'u32'], ['cols', 'u32'], ['rowsOff', 'u32'], ['scaleOff', 'u32']] as const;
  const code = `${head(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> sm: array<u32>;
${entry(`  let i = e / p.cols;
  let c = e % p.cols;
  let at = sm[p.rowsOff + i] * p.cols + c;
  o[at] = o[at] + bitcast<f32>(sm[p.scaleOff + i]) * y[e];`)}`;
  return { params, code };
}

/** o[e] = scale · y[e], the scale read as f32 bits at sm[scaleOff]: a scatter-add's first term without the zeroed output. */
export function scaledCopySource(): KernelSource {
  const params = [['count', 'u32'], ['scaleOff', 'u32']] as const;
  const code = `${head(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> sm: array<u32>;
${entry('  o[e] = bitcast<f32>(sm[p.scaleOff]) * y[e];')}`;
  return { params, code };
}

/** o[i, c] = table[ids[i], c], dequantized. */
export function embedSource(dtype: WeightDtype): KernelSource {
  const params = [['count', 'u32'], ...WEIGHT_PARAMS, ['idsOff', 'u32']] as const;
  const code = `${head(params)}@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
${weightAccess(dtype, 'w')}${entry(`  let i = e / p.wK;
  o[e] = wAt(ids[p.idsOff + i], e % p.wK);`)}`;
  return { params, code };
}
