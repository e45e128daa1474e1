/**
 * Pieces every kernel family shares: the uniform-parameter struct, linear workgroup ids for grids
 * wider than one dispatch dimension, and scalar access to a weight in any RDRR layout.
 */
import type { WeightDtype } from '../../manifests/index.ts';
import { GPU_FORMATS } from './formats/index.ts';

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

/** `fn wAt(n, k) -> f32`: element (n, k) of a weight bound as `array<u32>` named `wname`, in the layout of `dtype` (see formats/). */
export function weightAccess(dtype: WeightDtype, wname: string): string {
  return GPU_FORMATS[dtype].access(wname);
}

/** Weight parameters used by weightAccess. */
export const WEIGHT_PARAMS = [
  ['wK', 'u32'],
  ['wB', 'u32'],
  ['wS', 'u32'],
] as const;
