/**
 * MXFP4 on the GPU. Codes of a block are in weight order (byte j: weights 2j, 2j + 1), so a word
 * holds 8 consecutive weights: nibbles 0-3 meet one x vec4, nibbles 4-7 the next. An e2m1 code
 * decodes without a table: magnitude m = code & 7 placed at bit 22 plus the exponent of 0.5 gives
 * 2^(e-1)·(1 + mantissa/2) for m ≥ 2; m < 2 (0 and 0.5) is m·0.5; the sign is bit 3 moved to bit 31.
 * The e8m0 scale byte e becomes the float with exponent field e, 2^(e-127) (e = 0, 2^-127, reads
 * as 0: it only scales weights below 2^-124).
 */
import { unitAt, type GpuFormat } from './format.ts';

const FP4 = `fn fp4x4(w: u32, s: vec4<u32>) -> vec4<f32> {
  let n = (vec4<u32>(w) >> s) & vec4<u32>(15u);
  let m = n & vec4<u32>(7u);
  let bits = select((m << vec4<u32>(22u)) + vec4<u32>(0x3F000000u), m * 0x3F000000u, m < vec4<u32>(2u));
  return bitcast<vec4<f32>>(bits | ((n & vec4<u32>(8u)) << vec4<u32>(28u)));
}
`;
const e8m0 = (name: string, binding: string): string =>
  `fn ${name}(b: u32) -> f32 { return bitcast<f32>(((${binding}[p.wS + (b >> 2u)] >> (8u * (b & 3u))) & 255u) << 23u); }\n`;
const LO = 'vec4<u32>(0u, 4u, 8u, 12u)';
const HI = 'vec4<u32>(16u, 20u, 24u, 28u)';
const cs = ['x', 'y', 'z', 'w'];

export const mxfp4: GpuFormat = {
  access: (w) => `${e8m0('wScale', w)}fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let b = i >> 5u;
  let byteIdx = b * 16u + ((i & 31u) >> 1u);
  let c = (${w}[p.wB + (byteIdx >> 2u)] >> (8u * (byteIdx & 3u) + 4u * (i & 1u))) & 15u;
  let m = c & 7u;
  let mag = bitcast<f32>(select((m << 22u) + 0x3F000000u, m * 0x3F000000u, m < 2u) | ((c & 8u) << 28u));
  return mag * wScale(b);
}\n`,
  gemvPrelude: `${e8m0('scale', 'ws')}${FP4}`,
  unit: (narrow) =>
    narrow
      ? { load: 'u32', weights: 8, parts: (q, u) => [[`fp4x4(${q}, ${LO})`, `(2u * ${u})`], [`fp4x4(${q}, ${HI})`, `(2u * ${u} + 1u)`]], block: (gu) => `(${gu} >> 2u)` }
      : {
          load: 'vec4<u32>',
          weights: 32,
          parts: (q, u) => cs.flatMap((c, i): Array<[string, string]> => [[`fp4x4(${q}.${c}, ${LO})`, unitAt(u, 8, 2 * i)], [`fp4x4(${q}.${c}, ${HI})`, unitAt(u, 8, 2 * i + 1)]]),
          block: (gu) => gu,
        },
  gemvRows: 4,
};
