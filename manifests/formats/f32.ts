import { patchBits32, type WeightFormat } from './format.ts';

/** IEEE floats, as they are. */
export const f32: WeightFormat = {
  name: 'f32',
  block: 1,
  blockBytes: 4,
  scaleBytes: 0,
  encode: (data) => ({ main: new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice(), scales: null }),
  decoder(buf, base, rows, cols) {
    const v = new Float32Array(buf, base, rows * cols);
    return (r, out) => out.set(v.subarray(r * cols, (r + 1) * cols));
  },
  // exponent 120: |w| in [2^-7, 2^-6)
  synth: { main: (c) => patchBits32(c, 0x807fffff, 0x3c000000) },
};
