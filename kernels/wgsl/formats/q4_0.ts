/**
 * q4_0 on the GPU. A narrow unit is one word: its low nibbles meet x vec4 j of the block, its high
 * nibbles vec4 j + 4. Nibbles decode with the float-magic trick: a field at bit s ≤ 19 is masked
 * in place and given the exponent 23 - s, so the float is 2^(23-s) + field exactly.
 */
import { f16Scale, U4, unitAt, type GpuFormat } from './format.ts';

const q4Vec = (word: string, s: number[]): string =>
  `(bitcast<vec4<f32>>(((vec4<u32>(${word}) >> ${U4(s[0]!, s[1]!, s[2]!, s[3]!)}) & vec4<u32>(15u)) | vec4<u32>(0x4B000000u)) - vec4<f32>(8388616.0))`;
const q4WordLo = (w: string): string =>
  `(bitcast<vec4<f32>>((vec4<u32>(${w}, ${w}, ${w}, ${w} >> 16u) & ${U4(0xf, 0xf00, 0xf0000, 0xf00)}) | vec4<u32>(0x4B000000u, 0x47000000u, 0x43000000u, 0x47000000u)) - vec4<f32>(8388616.0, 32776.0, 136.0, 32776.0))`;
const q4WordHi = (w: string): string =>
  `(bitcast<vec4<f32>>((vec4<u32>(${w}, ${w}, ${w} >> 16u, ${w} >> 16u) & ${U4(0xf0, 0xf000, 0xf0, 0xf000)}) | vec4<u32>(0x49000000u, 0x45000000u, 0x49000000u, 0x45000000u)) - vec4<f32>(524296.0, 2056.0, 524296.0, 2056.0))`;
const LO = [0, 8, 16, 24];
const HI = [4, 12, 20, 28];
const cs = ['x', 'y', 'z', 'w'];

export const q4_0: GpuFormat = {
  access: (w) => `${f16Scale('wScale', w)}fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let b = i >> 5u;
  let j = i & 31u;
  let byteIdx = b * 16u + (j & 15u);
  let nib = (${w}[p.wB + (byteIdx >> 2u)] >> (8u * (byteIdx & 3u) + select(0u, 4u, j >= 16u))) & 15u;
  return (f32(nib) - 8.0) * wScale(b);
}\n`,
  gemvPrelude: f16Scale('scale', 'ws'),
  unit: (narrow) =>
    narrow
      ? {
          load: 'u32',
          weights: 8,
          parts: (q, u) => [
            [q4WordLo(q), `(${u} + (${u} & 0xFFFFFFFCu))`],
            [q4WordHi(q), `(${u} + (${u} & 0xFFFFFFFCu) + 4u)`],
          ],
          block: (gu) => `(${gu} >> 2u)`,
        }
      : {
          load: 'vec4<u32>',
          weights: 32,
          parts: (q, u) => [...cs.map((c, i): [string, string] => [q4Vec(`${q}.${c}`, LO), unitAt(u, 8, i)]), ...cs.map((c, i): [string, string] => [q4Vec(`${q}.${c}`, HI), unitAt(u, 8, i + 4)])],
          block: (gu) => gu,
        },
  gemvRows: 4,
};
