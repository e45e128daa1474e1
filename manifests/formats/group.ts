/**
 * Asymmetric group quantisers with 2- or 3-bit codes (the q3_g64 and q2_g32 formats), made for
 * routed experts: w = (q − z)·d per group of G weights, q ∈ [0, 2^bits − 1].
 *
 * Layout of a group (one block): the low 2 bits of every code, 16 codes per word (weight 16i + j
 * at bits 2j of word i), then for 3-bit codes the high bit of every code, 32 per word (weight
 * 32h + j at bit j of word G/16 + h) — so a GPU reads whole little-endian words and a 16-weight
 * unit needs one low word and half a high word. The scales array holds 3 bytes per group: d as
 * an f16, then the zero point z as a byte zb with z = zb / 2^(8 − bits) (exact in f32; z ∈ [0, 2^bits)).
 *
 * The scale and minimum of each group come from llama.cpp's `make_qkx2_quants` (the search its
 * q2_K/q4_K use): start from the group's range, try scales around nmax/(max − min), solve the
 * least-squares scale and minimum for each candidate's codes and keep the best weighted error.
 * Weights are a + |w| (a = the group's RMS), as q4_K does. The stored (f16-rounded) d and the
 * byte z are then fixed and every code is re-rounded against them, so the tested bound holds for
 * what a reader sees: |w − (q − z)·d| ≤ d/2 unless w lies outside the group's grid
 * [−z·d, (nmax − z)·d], where it is clipped to the nearest end (the search clips outliers on purpose).
 * Groups are searched with min ≤ 0 ≤ max, so z never needs to leave [0, nmax].
 */
import { f16Table, f32ToF16Bits } from '../f16.ts';
import type { WeightDtype } from '../types.ts';
import { tensorLayout, type WeightFormat } from './format.ts';

/** Candidate scales tried per group (llama.cpp's q4_K: rmin −1, rdelta 0.1, 20 steps). */
const SEARCH = { rmin: -1, rdelta: 0.1, steps: 20 };

/** Scratch for one group's weights: groups are at most 256 weights (a preallocated buffer keeps the search allocation-free). */
const WEIGHTS = new Float64Array(256);

/** Weighted squared error of w ≈ scale·q + mn with codes re-rounded against (scale, mn). */
function fitError(x: Float32Array, wt: Float64Array, nmax: number, scale: number, mn: number): number {
  const inv = 1 / scale;
  let e = 0;
  for (let i = 0; i < x.length; i++) {
    let q = Math.round((x[i]! - mn) * inv);
    q = q < 0 ? 0 : q > nmax ? nmax : q;
    const diff = scale * q + mn - x[i]!;
    e += wt[i]! * diff * diff;
  }
  return e;
}

/** Best (scale, min) for one group: w ≈ scale·q + min, q ∈ [0, nmax] (make_qkx2_quants, squared error). */
export function searchScaleMin(x: Float32Array, nmax: number): { scale: number; min: number } {
  const n = x.length;
  let min = 0;
  let max = 0;
  let sumSq = 0;
  for (let i = 0; i < n; i++) {
    const v = x[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sumSq += v * v;
  }
  if (max === min) return { scale: 0, min: 0 };
  const av = Math.sqrt(sumSq / n);
  const wt = WEIGHTS;
  let sumW = 0;
  let sumX = 0;
  for (let i = 0; i < n; i++) {
    const w = av + Math.abs(x[i]!);
    wt[i] = w;
    sumW += w;
    sumX += w * x[i]!;
  }
  let bestScale = (max - min) / nmax;
  let bestMin = min;
  let bestErr = fitError(x, wt, nmax, bestScale, bestMin);
  for (let s = 0; s <= SEARCH.steps; s++) {
    const iscale = (SEARCH.rmin + SEARCH.rdelta * s + nmax) / (max - min);
    let sl = 0;
    let sl2 = 0;
    let sxl = 0;
    for (let i = 0; i < n; i++) {
      let q = Math.round(iscale * (x[i]! - min));
      q = q < 0 ? 0 : q > nmax ? nmax : q;
      const w = wt[i]!;
      sl += w * q;
      sl2 += w * q * q;
      sxl += w * q * x[i]!;
    }
    const det = sumW * sl2 - sl * sl;
    if (!(det > 0)) continue;
    let scale = (sumW * sxl - sumX * sl) / det;
    let mn = (sl2 * sumX - sl * sxl) / det;
    if (mn > 0) {
      mn = 0;
      scale = sxl / sl2;
    }
    if (!(scale > 0)) continue;
    const e = fitError(x, wt, nmax, scale, mn);
    if (e < bestErr) {
      bestErr = e;
      bestScale = scale;
      bestMin = mn;
    }
  }
  return { scale: bestScale, min: bestMin };
}

/** The record of a `bits`-bit group format over groups of `group` weights (a multiple of 32). */
export function groupFormat(name: WeightDtype, bits: 2 | 3, group: number): WeightFormat {
  if (group % 32 !== 0 || group > WEIGHTS.length) throw new Error(`group ${group}: a multiple of 32 up to ${WEIGHTS.length}`);
  const nmax = (1 << bits) - 1;
  const lowWords = group / 16;
  const words = lowWords + (bits === 3 ? group / 32 : 0);
  const zStep = 2 ** (bits - 8);
  const self: WeightFormat = {
    name,
    block: group,
    blockBytes: words * 4,
    scaleBytes: 3,
    encode(data) {
      const nb = data.length / group;
      const main = new Uint32Array(nb * words);
      const scales = new Uint8Array(nb * 3);
      const table = f16Table();
      for (let b = 0; b < nb; b++) {
        const x = data.subarray(b * group, (b + 1) * group);
        const { scale, min } = searchScaleMin(x, nmax);
        const dBits = f32ToF16Bits(scale);
        const d = table[dBits]!;
        const zb = d > 0 ? Math.max(0, Math.min(255, Math.round(-min / d / zStep))) : 0;
        const z = zb * zStep;
        scales[b * 3] = dBits & 0xff;
        scales[b * 3 + 1] = dBits >>> 8;
        scales[b * 3 + 2] = zb;
        if (!(d > 0)) continue; // a constant-zero group: every code 0, d = 0
        const w0 = b * words;
        for (let j = 0; j < group; j++) {
          const q = Math.max(0, Math.min(nmax, Math.round(x[j]! / d + z)));
          main[w0 + (j >> 4)]! |= (q & 3) << (2 * (j & 15));
          if (bits === 3) main[w0 + lowWords + (j >> 5)]! |= (q >> 2) << (j & 31);
        }
      }
      return { main: new Uint8Array(main.buffer), scales };
    },
    decoder(buf, base, rows, cols) {
      const { blocks, scalesOffset } = tensorLayout(self, rows, cols);
      const q = new Uint32Array(buf, base, blocks * words);
      const s = new Uint8Array(buf, base + scalesOffset, blocks * 3);
      const table = f16Table();
      return (r, out) => {
        const b0 = (r * cols) / group;
        for (let b = 0; b < cols / group; b++) {
          const so = (b0 + b) * 3;
          const d = table[s[so]! | (s[so + 1]! << 8)]!;
          const z = s[so + 2]! * zStep;
          const w0 = (b0 + b) * words;
          for (let j = 0; j < group; j++) {
            let code = (q[w0 + (j >> 4)]! >>> (2 * (j & 15))) & 3;
            if (bits === 3) code |= ((q[w0 + lowWords + (j >> 5)]! >>> (j & 31)) & 1) << 2;
            out[b * group + j] = (code - z) * d;
          }
        }
      };
    },
    // Every scale byte in 0x90…0x9F, whatever a chunk's alignment to the 3-byte records: d = −2^(4…7 − 15)·(1 + m), z ≈ 2^(bits−1) + ¼ of the range, |w| < 0.04.
    synth: {
      main: () => undefined,
      scales: (c) => {
        for (let i = 0; i < c.length; i++) c[i] = 0x90 | (c[i]! & 0x0f);
      },
    },
  };
  return self;
}
