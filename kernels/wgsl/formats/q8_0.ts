/** q8_0 on the GPU: int8 quants decoded with the float-magic trick (bits | 0x4B000000 is 2^23 + bits as a float). */
import { f16Scale, U4, unitAt, type GpuFormat } from './format.ts';

const q8Vec = (word: string): string =>
  `(bitcast<vec4<f32>>(((vec4<u32>(${word}) >> ${U4(0, 8, 16, 24)}) & vec4<u32>(255u)) ^ vec4<u32>(0x4B000080u)) - vec4<f32>(8388736.0))`;
/**
 * Narrow-unit decode of one word without a shift per value: a byte at bit s ≤ 15 is masked in place
 * and given the exponent 23 - s, so the float is 2^(23-s) + field exactly; the upper bytes come from
 * the word shifted down 16 bits once. Two integer ops per value instead of three.
 */
const q8Word = (w: string): string =>
  `(bitcast<vec4<f32>>((vec4<u32>(${w}, ${w}, ${w} >> 16u, ${w} >> 16u) & ${U4(0xff, 0xff00, 0xff, 0xff00)}) ^ vec4<u32>(0x4B000080u, 0x47008000u, 0x4B000080u, 0x47008000u)) - vec4<f32>(8388736.0, 32896.0, 8388736.0, 32896.0))`;
const cs = ['x', 'y', 'z', 'w'];

export const q8_0: GpuFormat = {
  access: (w) => `${f16Scale('wScale', w)}fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let q = i32(${w}[p.wB + (i >> 2u)] << (24u - 8u * (i & 3u))) >> 24u;
  return f32(q) * wScale(i >> 5u);
}\n`,
  gemvPrelude: f16Scale('scale', 'ws'),
  unit: (narrow) =>
    narrow
      ? { load: 'u32', weights: 4, parts: (q, u) => [[q8Word(q), u]], block: (gu) => `(${gu} >> 3u)` }
      : { load: 'vec4<u32>', weights: 16, parts: (q, u) => cs.map((c, i) => [q8Vec(`${q}.${c}`), unitAt(u, 4, i)]), block: (gu) => `(${gu} >> 1u)` },
  gemvRows: 4,
};
