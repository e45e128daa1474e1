/**
 * The 2/3-bit asymmetric group formats on the GPU (manifests/formats/group.ts has the layout). A
 * gemv unit is 16 weights: one word of low 2-bit fields, and for 3-bit codes the matching half
 * word of high bits, fetched together with the group's zero-point byte as a vec3<u32>. Each part
 * decodes 4 codes to floats and subtracts the zero point, so the kernel's fma with the group's d gives (q − z)·d·x.
 * A group's 3 scale bytes (f16 d, byte zb) may straddle words; they are read byte by byte.
 */
import { unitAt, type GpuFormat } from './format.ts';

const scaleFns = (binding: string, suffix: string): string => `fn sByte${suffix}(o: u32) -> u32 { return (${binding}[p.wS + (o >> 2u)] >> (8u * (o & 3u))) & 255u; }
fn scale${suffix}(b: u32) -> f32 { return unpack2x16float(sByte${suffix}(3u * b) | (sByte${suffix}(3u * b + 1u) << 8u)).x; }
`;

/** GPU side of `groupFormat(bits, group)`. */
export function groupGpuFormat(bits: 2 | 3, group: number): GpuFormat {
  const lowWords = group / 16;
  const words = lowWords + (bits === 3 ? group / 32 : 0);
  const ubShift = Math.log2(lowWords);
  // codes 4p … 4p + 3 of a unit whose low word is `lo` and (3-bit) high 16 bits are `hi`
  const codes = (lo: string, hi: string, p: number): string => {
    const low = `((vec4<u32>(${lo}) >> vec4<u32>(${[0, 1, 2, 3].map((c) => `${2 * (4 * p + c)}u`).join(', ')})) & vec4<u32>(3u))`;
    if (bits === 2) return low;
    return `(${low} | (((vec4<u32>(${hi}) >> vec4<u32>(${[0, 1, 2, 3].map((c) => `${4 * p + c}u`).join(', ')})) & vec4<u32>(1u)) << vec4<u32>(2u)))`;
  };
  /** vec2(low word, high bits in the low 16) of global unit gu, from binding `w` at word `base`. */
  const fetch = (w: string, base: string, g: string): string => {
    const gu = `(${g})`;
    if (bits === 2) return `vec2<u32>(${w}[${base} + ${gu}], 0u)`;
    const b = `(${gu} >> ${ubShift}u)`;
    const i = `(${gu} & ${lowWords - 1}u)`;
    return `vec2<u32>(${w}[${base} + ${b} * ${words}u + ${i}], ${w}[${base} + ${b} * ${words}u + ${lowWords}u + (${i} >> 1u)] >> (16u * (${i} & 1u)))`;
  };
  const unit = {
    load: 'u32',
    weights: 16,
    // the group's zero-point byte rides along as .z, read once per unit rather than once per part
    fetch: (gu: string) => `vec3<u32>(${fetch('wq', 'p.wBase', gu)}, sByte(3u * ((${gu}) >> ${ubShift}u) + 2u))`,
    parts: (q: string, u: string): Array<[string, string]> =>
      [0, 1, 2, 3].map((p) => [`(vec4<f32>(${codes(`${q}.x`, `${q}.y`, p)}) - vec4<f32>(f32(${q}.z) * ${2 ** (bits - 8)}))`, unitAt(u, 4, p)]),
    block: (gu: string) => `(${gu} >> ${ubShift}u)`,
  };
  return {
    access: (w) => `${scaleFns(w, 'W')}fn wAt(n: u32, k: u32) -> f32 {
  let i = n * p.wK + k;
  let u = ${fetch(w, 'p.wB', 'i >> 4u')};
  let j = i & 15u;
  var code = (u.x >> (2u * j)) & 3u;
  ${bits === 3 ? 'code |= ((u.y >> j) & 1u) << 2u;' : ''}
  let b = i / ${group}u;
  return (f32(code) - f32(sByteW(3u * b + 2u)) * ${2 ** (bits - 8)}) * scaleW(b);
}\n`,
    gemvPrelude: scaleFns('ws', ''),
    unit: () => unit,
    gemvRows: 4,
  };
}
