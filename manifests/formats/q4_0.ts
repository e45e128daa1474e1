import { f16Table, f32ToF16Bits } from '../f16.ts';
import { patchBits16, tensorLayout, type WeightFormat } from './format.ts';

/**
 * llama.cpp's q4_0: 16 bytes per block, byte j holding weight j in its low nibble and weight j + 16
 * in its high nibble, then one f16 scale d = m/−8 per block (m the block's largest-magnitude
 * weight); w = (nibble − 8)·d.
 */
export const q4_0: WeightFormat = {
  name: 'q4_0',
  block: 32,
  blockBytes: 16,
  scaleBytes: 2,
  encode(data) {
    const nb = data.length / 32;
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
  },
  decoder(buf, base, rows, cols) {
    const { blocks, scalesOffset } = tensorLayout(q4_0, rows, cols);
    const q = new Uint8Array(buf, base, blocks * 16);
    const s = new Uint16Array(buf, base + scalesOffset, blocks);
    const table = f16Table();
    return (r, out) => {
      const b0 = (r * cols) / 32;
      for (let b = 0; b < cols / 32; b++) {
        const d = table[s[b0 + b]!]!;
        const qo = (b0 + b) * 16;
        for (let j = 0; j < 16; j++) {
          const byte = q[qo + j]!;
          out[b * 32 + j] = ((byte & 15) - 8) * d;
          out[b * 32 + j + 16] = ((byte >>> 4) - 8) * d;
        }
      }
    };
  },
  // Scales with exponent 6: d ≈ 2^-9, |w| ≤ ~0.03.
  synth: { main: () => undefined, scales: (c) => patchBits16(c, 0x83ff, 0x1800) },
};
