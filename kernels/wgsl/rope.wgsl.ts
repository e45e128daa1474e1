/** Rotary position embedding, in place, for interleaved and half-split pairings. */
import { LINEAR_ENTRY_ARGS, LINEAR_WGID, paramsStruct, type KernelSource } from './common.wgsl.ts';

export const ROPE_WG = 256;

/**
 * (cos a, sin a) to about 1 ulp: WGSL's builtins promise only 2^-11 absolute error (SwiftShader
 * is that coarse), so reduce by π/2 in three Cody–Waite steps and use Cephes' single-precision
 * polynomials on [-π/4, π/4].
 */
const COS_SIN = `fn cosSin(a: f32) -> vec2<f32> {
  let k = round(a * 0.63661977236758134);
  var r = fma(-k, 1.5703125, a);
  r = fma(-k, 4.837512969970703125e-4, r);
  r = fma(-k, 7.54978995489188216e-8, r);
  let z = r * r;
  let sn = fma(fma(fma(-1.9515295891e-4, z, 8.3321608736e-3), z, -1.6666654611e-1), z * r, r);
  let cn = fma(fma(fma(2.443315711809948e-5, z, -1.388731625493765e-3), z, 4.166664568298827e-2), z * z, fma(-0.5, z, 1.0));
  let q = u32(i32(k) & 3);
  if (q == 0u) { return vec2<f32>(cn, sn); }
  if (q == 1u) { return vec2<f32>(-sn, cn); }
  if (q == 2u) { return vec2<f32>(-cn, -sn); }
  return vec2<f32>(sn, -cn);
}`;

/**
 * One thread per (row, head, pair). The angle is f32(pos) * invFreq, rounded as transformers rounds it.
 */
export function ropeSource(): KernelSource {
  const params = [
    ['count', 'u32'],
    ['heads', 'u32'],
    ['half', 'u32'],
    ['cols', 'u32'],
    ['headStride', 'u32'],
    ['ropeOffset', 'u32'],
    ['startPos', 'u32'],
    ['interleaved', 'u32'],
    ['freqOff', 'u32'],
    ['scaling', 'f32'],
  ] as const;
  const code = `${paramsStruct(params)}@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> freq: array<f32>;
${COS_SIN}
@compute @workgroup_size(${ROPE_WG})
fn main(${LINEAR_ENTRY_ARGS}) {
  ${LINEAR_WGID}
  let e = wgid * ${ROPE_WG}u + li;
  if (e >= p.count) { return; }
  let j = e % p.half;
  let h = (e / p.half) % p.heads;
  let r = e / (p.half * p.heads);
  let angle = f32(p.startPos + r) * freq[p.freqOff + j];
  let cs = cosSin(angle);
  let c = cs.x * p.scaling;
  let s = cs.y * p.scaling;
  let base = r * p.cols + h * p.headStride + p.ropeOffset;
  let i0 = base + select(j, 2u * j, p.interleaved != 0u);
  let i1 = base + select(j + p.half, 2u * j + 1u, p.interleaved != 0u);
  let x0 = x[i0];
  let x1 = x[i1];
  x[i0] = x0 * c - x1 * s;
  x[i1] = x1 * c + x0 * s;
}\n`;
  return { params, code };
}
