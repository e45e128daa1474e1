/**
 * What a weight format is, as one record (ggml's `type_traits` is the model): its block shape, how
 * many bytes a block takes, how it is encoded from and decoded to f32, and how `synth` makes sane
 * random bytes of it. Every format lays a tensor out the same way — the main array (values, or
 * each block's quants) padded to 4 bytes, then the scales array (one scale per block) padded to 4
 * bytes — so a GPU can bind both 4-byte aligned. The kernels' side of each format (WGSL decode,
 * gemv units) lives in kernels/wgsl/formats/.
 */
import type { WeightDtype } from '../types.ts';

/** A run of whole rows encoded: the main bytes and the scales (block formats), both unpadded. */
export interface EncodedRows {
  main: Uint8Array;
  scales: Uint8Array | null;
}

/** Decodes one row of a tensor into `out` (cols floats). */
export type RowDecode = (row: number, out: Float32Array) => void;

export interface WeightFormat {
  readonly name: WeightDtype;
  /** Weights per block along a row; rows must be whole blocks (1: any width). */
  readonly block: number;
  /** Bytes one block takes in the main array. */
  readonly blockBytes: number;
  /** Bytes one block's scale takes in the scales array; 0 for formats without scales. */
  readonly scaleBytes: number;
  /** Encodes values (a multiple of `block` of them, whole rows) into the format. */
  encode(data: Float32Array): EncodedRows;
  /**
   * A row decoder over a rows×cols tensor whose bytes start at `base` (a multiple of 4) in `buf`;
   * it keeps typed views, not copies, so the CPU backend can decode rows in place.
   */
  decoder(buf: ArrayBuffer, base: number, rows: number, cols: number): RowDecode;
  /** Turns random bytes into plausible weights in place (synth): no NaN, Inf or huge values. */
  readonly synth: { main(chunk: Uint8Array): void; scales?(chunk: Uint8Array): void };
}

export const align4 = (n: number): number => (n + 3) & ~3;

/** Byte positions inside a rows×cols tensor of `f`. */
export function tensorLayout(f: WeightFormat, rows: number, cols: number): { blocks: number; mainBytes: number; scalesOffset: number; byteLength: number } {
  const blocks = (rows * cols) / f.block;
  const mainBytes = blocks * f.blockBytes;
  const scalesOffset = align4(mainBytes);
  return { blocks, mainBytes, scalesOffset, byteLength: scalesOffset + align4(blocks * f.scaleBytes) };
}

/** Sets bits: every little-endian u16 of `c` becomes (v & keep) | set. */
export function patchBits16(c: Uint8Array, keep: number, set: number): void {
  if (c.byteOffset % 2 === 0) {
    const u = new Uint16Array(c.buffer, c.byteOffset, c.length >> 1);
    for (let i = 0; i < u.length; i++) u[i] = (u[i]! & keep) | set;
    return;
  }
  for (let i = 0; i + 1 < c.length; i += 2) {
    const v = ((c[i]! | (c[i + 1]! << 8)) & keep) | set;
    c[i] = v & 0xff;
    c[i + 1] = v >>> 8;
  }
}

/** Sets bits: every little-endian u32 of `c` becomes (v & keep) | set. */
export function patchBits32(c: Uint8Array, keep: number, set: number): void {
  const copy = c.byteOffset % 4 === 0 ? c : c.slice();
  const u = new Uint32Array(copy.buffer, copy.byteOffset, copy.length >> 2);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i]! & keep) | set) >>> 0;
  if (copy !== c) c.set(copy);
}
