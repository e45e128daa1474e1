import { ManifestError } from './errors.ts';
import { f16Table, f32ArrayToF16Bytes, f32ToF16Bits } from './f16.ts';
import { QUANT_BLOCK, type TensorEntry, type WeightDtype } from './types.ts';

const align4 = (n: number): number => (n + 3) & ~3;

/** Rows and columns of a tensor as stored: 1-D tensors are one row. */
export function matrixDims(shape: readonly number[]): { rows: number; cols: number } {
  if (shape.length === 1) return { rows: 1, cols: shape[0]! };
  if (shape.length === 2) return { rows: shape[0]!, cols: shape[1]! };
  throw new ManifestError(`tensor shape [${shape.join(', ')}] is neither 1-D nor 2-D`);
}

export function isBlockDtype(dtype: WeightDtype): dtype is 'q8_0' | 'q4_0' {
  return dtype === 'q8_0' || dtype === 'q4_0';
}

/** Bytes one stored block of 32 weights takes in the quants array. */
const BLOCK_QUANT_BYTES = { q8_0: 32, q4_0: 16 } as const;

/** Exact stored byte length of a rows×cols tensor in `dtype` (types.ts gives the layouts). */
export function tensorByteLength(dtype: WeightDtype, rows: number, cols: number): number {
  const n = rows * cols;
  switch (dtype) {
    case 'f32':
      return n * 4;
    case 'f16':
      return align4(n * 2);
    case 'q8_0':
    case 'q4_0': {
      const nb = n / QUANT_BLOCK;
      return nb * BLOCK_QUANT_BYTES[dtype] + align4(nb * 2);
    }
  }
}

/**
 * The two byte arrays a run of whole rows encodes to, unpadded: `main` (f32/f16 values or block
 * quants) and `scales` (block formats only). A tensor is every row run's `main` in order, padded to
 * 4 bytes, then every run's `scales`, padded to 4 bytes — which is what lets the converter stream
 * quants out while only the small scales wait in memory.
 */
export function encodeRows(data: Float32Array, dtype: WeightDtype): { main: Uint8Array; scales: Uint8Array | null } {
  switch (dtype) {
    case 'f32':
      return { main: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(), scales: null };
    case 'f16':
      return { main: f32ArrayToF16Bytes(data), scales: null };
    case 'q8_0':
      return encodeQ8(data);
    case 'q4_0':
      return encodeQ4(data);
  }
}

function blockCount(n: number): number {
  if (n % QUANT_BLOCK !== 0) throw new ManifestError(`${n} weights are not a whole number of ${QUANT_BLOCK}-weight blocks`);
  return n / QUANT_BLOCK;
}

// Quants are computed against the stored (f16-rounded) scale, not the exact one, so the error
// bound holds for the scale a reader actually sees.
function encodeQ8(data: Float32Array): { main: Uint8Array; scales: Uint8Array } {
  const nb = blockCount(data.length);
  const quants = new Int8Array(nb * 32);
  const scales = new Uint16Array(nb);
  const table = f16Table();
  for (let b = 0; b < nb; b++) {
    const base = b * 32;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(data[base + j]!));
    const bits = f32ToF16Bits(amax / 127);
    scales[b] = bits;
    const d = table[bits]!;
    const id = d === 0 ? 0 : 1 / d;
    for (let j = 0; j < 32; j++) {
      const x = data[base + j]! * id;
      // Round half away from zero (roundf); Math.round on negatives is far slower in V8.
      const q = Math.trunc(x < 0 ? x - 0.5 : x + 0.5);
      quants[base + j] = q > 127 ? 127 : q < -127 ? -127 : q;
    }
  }
  return { main: new Uint8Array(quants.buffer), scales: new Uint8Array(scales.buffer) };
}

function encodeQ4(data: Float32Array): { main: Uint8Array; scales: Uint8Array } {
  const nb = blockCount(data.length);
  const quants = new Uint8Array(nb * 16);
  const scales = new Uint16Array(nb);
  const table = f16Table();
  for (let b = 0; b < nb; b++) {
    const base = b * 32;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = data[base + j]!;
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const bits = f32ToF16Bits(max / -8);
    scales[b] = bits;
    const d = table[bits]!;
    const id = d === 0 ? 0 : 1 / d;
    for (let j = 0; j < 16; j++) {
      // llama.cpp: nibble = min(15, trunc(w/d + 8.5)); w/d + 8.5 is never negative here.
      const lo = Math.min(15, Math.trunc(data[base + j]! * id + 8.5));
      const hi = Math.min(15, Math.trunc(data[base + j + 16]! * id + 8.5));
      quants[b * 16 + j] = lo | (hi << 4);
    }
  }
  return { main: quants, scales: new Uint8Array(scales.buffer) };
}

/** Bytes of a rows×cols tensor in `dtype`, laid out exactly as types.ts states. */
export function quantize(data: Float32Array, rows: number, cols: number, dtype: WeightDtype): Uint8Array {
  if (data.length !== rows * cols) throw new ManifestError(`quantize: ${data.length} values for a ${rows}×${cols} tensor`);
  const { main, scales } = encodeRows(data, dtype);
  const out = new Uint8Array(tensorByteLength(dtype, rows, cols));
  out.set(main, 0);
  if (scales) out.set(scales, main.length);
  return out;
}

/** Reference dequantizer: the tensor's bytes (entry.length of them) back to f32, row-major. */
export function dequantize(entry: TensorEntry, bytes: Uint8Array): Float32Array {
  const { rows, cols } = matrixDims(entry.shape);
  const n = rows * cols;
  const expected = tensorByteLength(entry.dtype, rows, cols);
  if (bytes.length < expected) {
    throw new ManifestError(`tensor ${entry.name}: ${bytes.length} bytes, its ${entry.dtype} layout needs ${expected}`);
  }
  // A fresh, 0-based copy: the input may be a view (a Node Buffer's slice() is one) at any offset.
  const copy = new Uint8Array(expected);
  copy.set(bytes.subarray(0, expected));
  const out = new Float32Array(n);
  const table = f16Table();
  switch (entry.dtype) {
    case 'f32':
      out.set(new Float32Array(copy.buffer, 0, n));
      return out;
    case 'f16': {
      const h = new Uint16Array(copy.buffer, 0, n);
      for (let i = 0; i < n; i++) out[i] = table[h[i]!]!;
      return out;
    }
    case 'q8_0': {
      const nb = n / 32;
      const q = new Int8Array(copy.buffer, 0, nb * 32);
      const s = new Uint16Array(copy.buffer, nb * 32, nb);
      for (let b = 0; b < nb; b++) {
        const d = table[s[b]!]!;
        for (let j = 0; j < 32; j++) out[b * 32 + j] = q[b * 32 + j]! * d;
      }
      return out;
    }
    case 'q4_0': {
      const nb = n / 32;
      const s = new Uint16Array(copy.buffer, nb * 16, nb);
      for (let b = 0; b < nb; b++) {
        const d = table[s[b]!]!;
        for (let j = 0; j < 16; j++) {
          const byte = copy[b * 16 + j]!;
          out[b * 32 + j] = ((byte & 15) - 8) * d;
          out[b * 32 + j + 16] = ((byte >>> 4) - 8) * d;
        }
      }
      return out;
    }
  }
}
