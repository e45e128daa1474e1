/**
 * The weight formats, one record each (format.ts says what a record holds). Adding a format is one
 * entry here (its record in a file of its own) plus its kernels file in kernels/wgsl/formats/.
 * WEIGHT_DTYPES' order is part of the manifest encoding (tensor dtypes are stored as indices into
 * it): append, never reorder.
 */
import { ManifestError } from '../errors.ts';
import type { WeightDtype } from '../types.ts';
import { f16 } from './f16.ts';
import { f32 } from './f32.ts';
import { tensorLayout, type EncodedRows, type WeightFormat } from './format.ts';
import { mxfp4 } from './mxfp4.ts';
import { q2_g32 } from './q2_g32.ts';
import { q3_g64 } from './q3_g64.ts';
import { q4_0 } from './q4_0.ts';
import { q8_0 } from './q8_0.ts';

/**
 * @example
 * const f = FORMATS.mxfp4; // block 32, 16 code bytes + 1 scale byte per block: 4.25 bits per weight
 * const bytes = quantize(weights, rows, cols, 'mxfp4'); // manifests/quant.ts, through f.encode
 */
export const FORMATS: { readonly [K in WeightDtype]: WeightFormat } = { f32, f16, q8_0, q4_0, mxfp4, q3_g64, q2_g32 };

export const WEIGHT_DTYPES: readonly WeightDtype[] = ['f32', 'f16', 'q8_0', 'q4_0', 'mxfp4', 'q3_g64', 'q2_g32'];

export function isWeightDtype(name: unknown): name is WeightDtype {
  return typeof name === 'string' && Object.hasOwn(FORMATS, name);
}

/** The record of a format, or a ManifestError naming the unknown one. */
export function formatOf(dtype: string): WeightFormat {
  if (!isWeightDtype(dtype)) throw new ManifestError(`unknown weight format ${JSON.stringify(dtype)} (known: ${WEIGHT_DTYPES.join(', ')})`);
  return FORMATS[dtype];
}

/** Whether a row of `cols` weights is whole blocks of the format. */
export function fitsRow(dtype: WeightDtype, cols: number): boolean {
  return cols % FORMATS[dtype].block === 0;
}

/** Exact stored byte length of a rows×cols tensor. */
export function tensorByteLength(dtype: WeightDtype, rows: number, cols: number): number {
  return tensorLayout(FORMATS[dtype], rows, cols).byteLength;
}

/** Byte offset of the scales array inside a rows×cols tensor (block formats; the end of the main array otherwise). */
export function scalesOffset(dtype: WeightDtype, rows: number, cols: number): number {
  return tensorLayout(FORMATS[dtype], rows, cols).scalesOffset;
}

/**
 * The bytes a run of whole rows encodes to, unpadded. A tensor is every row run's `main` in order,
 * padded to 4 bytes, then every run's `scales`, padded to 4 bytes — which lets the converter stream
 * quants out while only the small scales wait in memory.
 */
export function encodeRows(data: Float32Array, dtype: WeightDtype): EncodedRows {
  const f = FORMATS[dtype];
  if (data.length % f.block !== 0) throw new ManifestError(`${data.length} weights are not a whole number of ${f.block}-weight ${dtype} blocks`);
  return f.encode(data);
}

export { tensorLayout, type EncodedRows, type RowDecode, type WeightFormat } from './format.ts';
