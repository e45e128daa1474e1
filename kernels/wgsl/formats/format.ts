/**
 * The GPU side of a weight format (manifests/formats/ has the storage side): WGSL that reads one
 * weight (gemm, embeddings, norms), how the gemv kernels load and decode it in units, and how its
 * block scales are read.
 */

/**
 * What one gemv lane loads per row per step and how it maps onto x. Wide units are 16 bytes;
 * narrow units are smaller so that x loads stay coalesced (see matmul.wgsl.ts).
 */
export interface GemvUnit {
  /** WGSL type of one unit in the weight binding. */
  load: string;
  /** Weights per unit. */
  weights: number;
  /** Decoded vec4<f32>s of unit `q` with the index (in x vec4s from the row start) each meets, for unit index `u`. */
  parts(q: string, u: string): Array<[string, string]>;
  /** WGSL loading global unit `gu` (default `wq[p.wBase + gu]`): for layouts whose unit is not one element of `wq`. */
  fetch?: (gu: string) => string;
  /** Block index of global unit `gu` (block formats). */
  block: ((gu: string) => string) | null;
}

export interface GpuFormat {
  /**
   * `fn wAt(n, k) -> f32`: element (n, k) of a weight bound as `array<u32>` named `wname`. Uses
   * p.wK (columns), p.wB (word index where the tensor starts in the binding) and, for block
   * formats, p.wS (word index of the scales).
   */
  access(wname: string): string;
  /** WGSL declared before a gemv kernel's entry point: `fn scale(b) -> f32` over binding `ws` at p.wS, and helpers its units use. */
  gemvPrelude: string;
  /** The gemv unit, wide (16 bytes) or narrow. */
  unit(narrow: boolean): GemvUnit;
  /** Weight rows per thread for single-row decode (from the H100 sweep of bench/kernels.ts). */
  gemvRows: number;
}

export const U4 = (a: number, b: number, c: number, d: number): string => `vec4<u32>(${a}u, ${b}u, ${c}u, ${d}u)`;

/** Index of x vec4 `i` of wide unit `u` holding `w4` x vec4s. */
export const unitAt = (u: string, w4: number, i: number): string => `(${u} * ${w4}u + ${i}u)`;

/** `fn <name>(b) -> f32`: the f16 scale of block b, from halves packed in binding `binding` at p.wS. */
export const f16Scale = (name: string, binding: string): string =>
  `fn ${name}(b: u32) -> f32 { let h = unpack2x16float(${binding}[p.wS + (b >> 1u)]); return select(h.x, h.y, (b & 1u) == 1u); }\n`;
