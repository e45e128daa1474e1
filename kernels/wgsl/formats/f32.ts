import { unitAt, type GpuFormat } from './format.ts';

export const f32: GpuFormat = {
  access: (w) => `fn wAt(n: u32, k: u32) -> f32 { return bitcast<f32>(${w}[p.wB + n * p.wK + k]); }\n`,
  gemvPrelude: '',
  // f32 has no narrow unit: a float per lane is already as coalesced as x.
  unit: () => ({ load: 'vec4<u32>', weights: 4, parts: (q, u) => [[`bitcast<vec4<f32>>(${q})`, unitAt(u, 1, 0)]], block: null }),
  gemvRows: 1,
};
