import { unitAt, type GpuFormat } from './format.ts';

const half4 = (a: string, b: string): string => `vec4<f32>(unpack2x16float(${a}), unpack2x16float(${b}))`;

export const f16: GpuFormat = {
  access: (w) => `fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let h = unpack2x16float(${w}[p.wB + (i >> 1u)]);
  return select(h.x, h.y, (i & 1u) == 1u);
}\n`,
  gemvPrelude: '',
  unit: (narrow) =>
    narrow
      ? { load: 'vec2<u32>', weights: 4, parts: (q, u) => [[half4(`${q}.x`, `${q}.y`), u]], block: null }
      : { load: 'vec4<u32>', weights: 8, parts: (q, u) => [[half4(`${q}.x`, `${q}.y`), unitAt(u, 2, 0)], [half4(`${q}.z`, `${q}.w`), unitAt(u, 2, 1)]], block: null },
  gemvRows: 2,
};
