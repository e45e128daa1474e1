/**
 * Where the parts of a weight live inside its bytes (manifests/types.ts defines the layouts). Both
 * backends need this: the CPU one to decode rows, the WebGPU one to size bindings and find scales.
 */
import { QUANT_BLOCK, tensorByteLength, type WeightDtype } from '../manifests/index.ts';

export class KernelError extends Error {
  override name = 'KernelError';
}

/** Bytes of the quants array of a block-format tensor (where its scales begin). */
export function quantBytes(dtype: 'q8_0' | 'q4_0', rows: number, cols: number): number {
  return ((rows * cols) / QUANT_BLOCK) * (dtype === 'q8_0' ? 32 : 16);
}

/** Stored byte length of a rows×cols tensor (the format's own definition). */
export const weightByteLength = tensorByteLength;

/** Throws unless a rows×cols `dtype` tensor at byteOffset fits the region and its layout rules. */
export function checkWeight(regionBytes: number, byteOffset: number, dtype: WeightDtype, rows: number, cols: number): void {
  if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows > 0 && cols > 0)) {
    throw new KernelError(`weight shape ${rows}×${cols} is not a positive integer shape`);
  }
  if (byteOffset % 4 !== 0) throw new KernelError(`weight byteOffset ${byteOffset} is not 4-byte aligned`);
  if ((dtype === 'q8_0' || dtype === 'q4_0') && cols % QUANT_BLOCK !== 0) {
    throw new KernelError(`${dtype} weight ${rows}×${cols}: cols must be a multiple of ${QUANT_BLOCK}`);
  }
  const len = weightByteLength(dtype, rows, cols);
  if (byteOffset + len > regionBytes) {
    throw new KernelError(`${dtype} weight ${rows}×${cols} at byte ${byteOffset} needs ${len} bytes; the region has ${regionBytes}`);
  }
}
