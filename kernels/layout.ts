/**
 * Where the parts of a weight live inside its bytes (manifests/formats/ defines the layouts). Both
 * backends need this: the CPU one to decode rows, the WebGPU one to size bindings and find scales.
 */
import { FORMATS, scalesOffset, tensorByteLength, type WeightDtype } from '../manifests/index.ts';

export class KernelError extends Error {
  override name = 'KernelError';
}

/** Byte offset of a tensor's scales array (where its block scales begin). */
export const scaleByteOffset = scalesOffset;

/** Stored byte length of a rows×cols tensor (the format's own definition). */
export const weightByteLength = tensorByteLength;

/** Throws unless a rows×cols `dtype` tensor at byteOffset fits the region and its layout rules. */
export function checkWeight(regionBytes: number, byteOffset: number, dtype: WeightDtype, rows: number, cols: number): void {
  if (!(Number.isInteger(rows) && Number.isInteger(cols) && rows > 0 && cols > 0)) {
    throw new KernelError(`weight shape ${rows}×${cols} is not a positive integer shape`);
  }
  if (byteOffset % 4 !== 0) throw new KernelError(`weight byteOffset ${byteOffset} is not 4-byte aligned`);
  const format = FORMATS[dtype];
  if (!format) throw new KernelError(`unknown weight format ${JSON.stringify(dtype)}`);
  if (cols % format.block !== 0) {
    throw new KernelError(`${dtype} weight ${rows}×${cols}: cols must be a multiple of ${format.block}`);
  }
  const len = weightByteLength(dtype, rows, cols);
  if (byteOffset + len > regionBytes) {
    throw new KernelError(`${dtype} weight ${rows}×${cols} at byte ${byteOffset} needs ${len} bytes; the region has ${regionBytes}`);
  }
}
