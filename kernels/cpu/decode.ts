/**
 * Row-at-a-time decoding of RDRR weights to f32, for the CPU backend (manifests' `dequantize`
 * decodes whole tensors; matmul and embedding lookups want one row at a time without a copy).
 */
import { f16BitsToF32, type WeightDtype } from '../../manifests/index.ts';
import { quantBytes } from '../layout.ts';

/** Decodes rows of one weight matrix; holds typed views over its bytes. */
export class RowDecoder {
  readonly rows: number;
  readonly cols: number;
  readonly decode: (row: number, out: Float32Array) => void;

  constructor(bytes: Uint8Array, byteOffset: number, dtype: WeightDtype, rows: number, cols: number) {
    this.rows = rows;
    this.cols = cols;
    const buf = bytes.buffer;
    const base = bytes.byteOffset + byteOffset;
    const n = rows * cols;
    switch (dtype) {
      case 'f32': {
        const v = new Float32Array(buf, base, n);
        this.decode = (r, out) => out.set(v.subarray(r * cols, (r + 1) * cols));
        break;
      }
      case 'f16': {
        const v = new Uint16Array(buf, base, n);
        this.decode = (r, out) => {
          const o = r * cols;
          for (let c = 0; c < cols; c++) out[c] = f16BitsToF32(v[o + c]!);
        };
        break;
      }
      case 'q8_0': {
        const q = new Int8Array(buf, base, n);
        const s = new Uint16Array(buf, base + quantBytes(dtype, rows, cols), n / 32);
        this.decode = (r, out) => {
          const b0 = (r * cols) / 32;
          for (let b = 0; b < cols / 32; b++) {
            const d = f16BitsToF32(s[b0 + b]!);
            const qo = (b0 + b) * 32;
            for (let j = 0; j < 32; j++) out[b * 32 + j] = q[qo + j]! * d;
          }
        };
        break;
      }
      case 'q4_0': {
        const q = new Uint8Array(buf, base, n / 2);
        const s = new Uint16Array(buf, base + quantBytes(dtype, rows, cols), n / 32);
        this.decode = (r, out) => {
          const b0 = (r * cols) / 32;
          for (let b = 0; b < cols / 32; b++) {
            const d = f16BitsToF32(s[b0 + b]!);
            const qo = (b0 + b) * 16;
            for (let j = 0; j < 16; j++) {
              const byte = q[qo + j]!;
              out[b * 32 + j] = ((byte & 15) - 8) * d;
              out[b * 32 + j + 16] = ((byte >>> 4) - 8) * d;
            }
          }
        };
        break;
      }
    }
  }
}
