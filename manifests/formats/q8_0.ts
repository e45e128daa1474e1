import { f16Table, f32ToF16Bits } from '../f16.ts';
import { patchBits16, tensorLayout, type WeightFormat } from './format.ts';

/** llama.cpp's q8_0: 32 int8 quants per block, then one f16 scale d = max|w|/127 per block; w = q·d. */
export const q8_0: WeightFormat = {
  name: 'q8_0',
  block: 32,
  blockBytes: 32,
  scaleBytes: 2,
  // Quants are computed against the stored (f16-rounded) scale, so the error bound holds for the scale a reader sees.
  encode(data) {
    const nb = data.length / 32;
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
  },
  decoder(buf, base, rows, cols) {
    const { blocks, scalesOffset } = tensorLayout(q8_0, rows, cols);
    const q = new Int8Array(buf, base, blocks * 32);
    const s = new Uint16Array(buf, base + scalesOffset, blocks);
    const table = f16Table();
    return (r, out) => {
      const b0 = (r * cols) / 32;
      for (let b = 0; b < cols / 32; b++) {
        const d = table[s[b0 + b]!]!;
        const qo = (b0 + b) * 32;
        for (let j = 0; j < 32; j++) out[b * 32 + j] = q[qo + j]! * d;
      }
    };
  },
  // Scales with exponent 4: d ≈ 2^-11, |w| ≤ ~0.12.
  synth: { main: () => undefined, scales: (c) => patchBits16(c, 0x83ff, 0x1000) },
};
