/**
 * Row-at-a-time decoding of RDRR weights to f32, for the CPU backend (manifests' `dequantize`
 * decodes whole tensors; matmul and embedding lookups want one row at a time without a copy). The
 * decoding itself is the format's own (manifests/formats/).
 */
import { FORMATS, type WeightDtype } from '../../manifests/index.ts';

/** Decodes rows of one weight matrix; holds typed views over its bytes. */
export class RowDecoder {
  readonly rows: number;
  readonly cols: number;
  readonly decode: (row: number, out: Float32Array) => void;

  constructor(bytes: Uint8Array, byteOffset: number, dtype: WeightDtype, rows: number, cols: number) {
    this.rows = rows;
    this.cols = cols;
    this.decode = FORMATS[dtype].decoder(bytes.buffer as ArrayBuffer, bytes.byteOffset + byteOffset, rows, cols);
  }
}
