/**
 * Pieces every kernel family shares: the uniform-parameter struct, linear workgroup ids for grids
 * wider than one dispatch dimension, and scalar access to a weight in any RDRR layout.
 */
import type { WeightDtype } from '../../manifests/index.ts';

export type ParamType = 'u32' | 'f32';
export type ParamFields = ReadonlyArray<readonly [string, ParamType]>;

/** A generated kernel: WGSL source plus the order of its uniform fields (binding 0). */
export interface KernelSource {
  code: string;
  params: ParamFields;
}

/** `struct P` with one 4-byte field each, bound as uniform `p` at binding 0. */
export function paramsStruct(fields: ParamFields): string {
  return `struct P {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}\n@group(0) @binding(0) var<uniform> p: P;\n`;
}

/** Entry-point arguments and a `wgid` (linear workgroup index) for 2-D dispatched grids. */
export const LINEAR_ENTRY_ARGS =
  '@builtin(workgroup_id) wgId3: vec3<u32>, @builtin(num_workgroups) nwg3: vec3<u32>, @builtin(local_invocation_index) li: u32';
export const LINEAR_WGID = 'let wgid = wgId3.x + wgId3.y * nwg3.x;';

/**
 * `fn wAt(n, k) -> f32`: element (n, k) of a weight bound as `array<u32>` named `wname`, in the
 * layout of `dtype`. Uses p.wK (columns), p.wB (word index where the tensor starts in the binding)
 * and, for block formats, p.wS (word index of the scales).
 */
export function weightAccess(dtype: WeightDtype, wname: string): string {
  switch (dtype) {
    case 'f32':
      return `fn wAt(n: u32, k: u32) -> f32 { return bitcast<f32>(${wname}[p.wB + n * p.wK + k]); }\n`;
    case 'f16':
      return `fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let h = unpack2x16float(${wname}[p.wB + (i >> 1u)]);
  return select(h.x, h.y, (i & 1u) == 1u);
}\n`;
    case 'q8_0':
      return `fn wScale(b: u32) -> f32 { let h = unpack2x16float(${wname}[p.wS + (b >> 1u)]); return select(h.x, h.y, (b & 1u) == 1u); }
fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let q = i32(${wname}[p.wB + (i >> 2u)] << (24u - 8u * (i & 3u))) >> 24u;
  return f32(q) * wScale(i >> 5u);
}\n`;
    case 'q4_0':
      return `fn wScale(b: u32) -> f32 { let h = unpack2x16float(${wname}[p.wS + (b >> 1u)]); return select(h.x, h.y, (b & 1u) == 1u); }
fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let b = i >> 5u;
  let j = i & 31u;
  let byteIdx = b * 16u + (j & 15u);
  let nib = (${wname}[p.wB + (byteIdx >> 2u)] >> (8u * (byteIdx & 3u) + select(0u, 4u, j >= 16u))) & 15u;
  return (f32(nib) - 8.0) * wScale(b);
}\n`;
  }
}

/** Weight parameters used by weightAccess. */
export const WEIGHT_PARAMS = [
  ['wK', 'u32'],
  ['wB', 'u32'],
  ['wS', 'u32'],
] as const;
