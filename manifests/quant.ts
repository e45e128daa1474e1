import { ManifestError } from './errors.ts';
import { encodeRows, formatOf, tensorByteLength } from './formats/index.ts';
import type { TensorEntry, WeightDtype } from './types.ts';

export { encodeRows, tensorByteLength };

/** Rows and columns of a tensor as stored: 1-D tensors are one row. */
export function matrixDims(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 1) return { rows: 1, cols: shape[0]! };
  if (shape.length === 2) return { rows: shape[0]!, cols: shape[1]! };
  throw new ManifestError(`tensor shape [${shape.join(', ')}] is neither 1-D nor 2-D`);
}

/** Bytes of a rows×cols tensor in `dtype`, laid out exactly as types.ts states. */
export function quantize(data: Float32Array, rows: number, cols: number, dtype: WeightDtype): Uint8Array {
  if (data.length !== rows * cols) throw new ManifestError(`quantize: ${data.length} values for a ${rows}×${cols} tensor`);
  const { main, scales } = encodeRows(data, dtype);
  const out = new Uint8Array(tensorByteLength(dtype, rows, cols));
  out.set(main, 0);
  if (scales) out.set(scales, (main.length + 3) & ~3);
  return out;
}

/** Reference dequantizer: the tensor's bytes (entry.length of them) back to f32, row-major. */
export function dequantize(entry: TensorEntry, bytes: Uint8Array): Float32Array {
  const { rows, cols } = matrixDims(entry.shape);
  const format = formatOf(entry.dtype);
  const expected = tensorByteLength(format.name, rows, cols);
  if (bytes.length < expected) {
    throw new ManifestError(`tensor ${entry.name}: ${bytes.length} bytes, its ${entry.dtype} layout needs ${expected}`);
  }
  // A fresh, 0-based copy: the input may be a view (a Node Buffer's slice() is one) at any offset.
  const copy = new Uint8Array(expected);
  copy.set(bytes.subarray(0, expected));
  const out = new Float32Array(rows * cols);
  const decode = format.decoder(copy.buffer, 0, rows, cols);
  for (let r = 0; r < rows; r++) decode(r, out.subarray(r * cols, (r + 1) * cols));
  return out;
}
