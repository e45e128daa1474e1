import { f16Table, f32ArrayToF16Bytes } from '../f16.ts';
import { patchBits16, type WeightFormat } from './format.ts';

/** IEEE halves, round to nearest even; a GPU reads them as packed u32 pairs (`unpack2x16float`). */
export const f16: WeightFormat = {
  name: 'f16',
  block: 1,
  blockBytes: 2,
  scaleBytes: 0,
  encode: (data) => ({ main: f32ArrayToF16Bytes(data), scales: null }),
  decoder(buf, base, rows, cols) {
    const v = new Uint16Array(buf, base, rows * cols);
    const table = f16Table();
    return (r, out) => {
      const o = r * cols;
      for (let c = 0; c < cols; c++) out[c] = table[v[o + c]!]!;
    };
  },
  // exponent 8: |w| in [2^-7, 2^-6)
  synth: { main: (c) => patchBits16(c, 0x83ff, 0x2000) },
};
