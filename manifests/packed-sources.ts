/**
 * Row sources over quantized checkpoint tensors, read with bounded memory like plain ones:
 * FP8 weights with their block scales (DeepSeek-V3's release) and MXFP4 packed experts (gpt-oss's).
 */
import { CheckpointError } from './errors.ts';
import { fp8Table } from './fp8.ts';
import { e8m0ToF32, FP4_VALUES } from './formats/mxfp4.ts';
import type { RowSource } from './hf-source.ts';
import type { Checkpoint, SafetensorsTensor } from './safetensors.ts';
import type { SourceQuantization } from './source-quant.ts';

const dims = (t: SafetensorsTensor): string => `[${t.shape.join(', ')}]`;

/**
 * A rows×cols FP8 weight `t` dequantized with its `<name>_scale_inv` block scales: w = fp8 · s, s
 * the scale of the (row / bm, col / bn) block; edge blocks may be partial (ceil in both directions).
 */
export function fp8Rows(ckpt: Checkpoint, t: SafetensorsTensor, q: SourceQuantization, rows: number, cols: number): RowSource {
  const table = fp8Table(t.dtype)!;
  if (q?.method !== 'fp8') {
    throw new CheckpointError(`${t.file}: tensor ${t.name} is ${t.dtype}, but config.json has no quantization_config with quant_method "fp8" and weight_block_size`);
  }
  const scaleName = `${t.name}_scale_inv`;
  const scale = ckpt.tensors.get(scaleName);
  if (!scale) throw new CheckpointError(`${t.file}: FP8 tensor ${t.name} has no block scales (${scaleName} is missing)`);
  const { blockRows: bm, blockCols: bn } = q;
  const sr = Math.ceil(rows / bm);
  const sc = Math.ceil(cols / bn);
  if (scale.shape.length !== 2 || scale.shape[0] !== sr || scale.shape[1] !== sc) {
    throw new CheckpointError(`${scale.file}: scale ${scaleName} has shape ${dims(scale)}; FP8 tensor ${t.name} ${dims(t)} in ${bm}×${bn} blocks needs [${sr}, ${sc}]`);
  }
  return {
    rows,
    cols,
    sourceDtype: t.dtype,
    read: async (first, count) => {
      const raw = await ckpt.readBytes(t, first * cols, count * cols);
      const s0 = Math.floor(first / bm);
      const s = await ckpt.readRows(scale, s0, Math.floor((first + count - 1) / bm) - s0 + 1, sc);
      const out = new Float32Array(count * cols);
      for (let r = 0; r < count; r++) {
        const srow = (Math.floor((first + r) / bm) - s0) * sc;
        const o = r * cols;
        for (let cb = 0; cb < sc; cb++) {
          const d = s[srow + cb]!;
          const end = o + Math.min(cols, (cb + 1) * bn);
          for (let i = o + cb * bn; i < end; i++) out[i] = table[raw[i]!]! * d;
        }
      }
      return out;
    },
  };
}

/**
 * Rows of one expert of a packed MXFP4 pair (gpt-oss: `<name>_blocks` U8 [E, R, in/32, 16] and
 * `<name>_scales` U8 [E, R, in/32]): source row `start + step·r` of expert `e` is our row r. gpt-oss
 * fuses gate and up with their rows interleaved (gate = even rows, up = odd: step 2, start 0 or 1);
 * down is step 1. Read as f32, or (`native`) copied byte for byte as our mxfp4 layout, which is the
 * release's: per row, its blocks' 16 code bytes in order, then its scale bytes.
 */
export function mxfp4ExpertRows(ckpt: Checkpoint, blocks: SafetensorsTensor, e: number, start: number, step: number, rows: number, cols: number): RowSource {
  const scaleName = `${blocks.name.slice(0, -'_blocks'.length)}_scales`;
  const scales = ckpt.tensors.get(scaleName);
  const [E, R, G, B] = blocks.shape as [number, number, number, number];
  const sourceRows = step * rows;
  if (blocks.dtype !== 'U8' || blocks.shape.length !== 4 || B !== 16 || G * 32 !== cols || R !== sourceRows || e >= E) {
    throw new CheckpointError(`${blocks.file}: MXFP4 blocks ${blocks.name} are ${blocks.dtype} ${dims(blocks)}; config.json implies U8 [≥ ${e + 1}, ${sourceRows}, ${cols / 32}, 16]`);
  }
  if (!scales) throw new CheckpointError(`${blocks.file}: MXFP4 blocks ${blocks.name} have no scales (${scaleName} is missing)`);
  if (scales.dtype !== 'U8' || scales.shape.length !== 3 || scales.shape[0] !== E || scales.shape[1] !== R || scales.shape[2] !== G) {
    throw new CheckpointError(`${scales.file}: MXFP4 scales ${scaleName} are ${scales.dtype} ${dims(scales)}; blocks ${blocks.name} ${dims(blocks)} need U8 [${E}, ${R}, ${G}]`);
  }
  /** Code bytes and scale bytes of rows [first, first + count), each row's G blocks contiguous. */
  const readPacked = async (first: number, count: number): Promise<{ main: Uint8Array; scales: Uint8Array }> => {
    const s0 = e * R + start + first * step;
    const span = (count - 1) * step + 1;
    const codes = await ckpt.readBytes(blocks, s0 * G * 16, span * G * 16);
    const sc = await ckpt.readBytes(scales, s0 * G, span * G);
    if (step === 1) return { main: codes, scales: sc };
    const main = new Uint8Array(count * G * 16);
    const out = new Uint8Array(count * G);
    for (let r = 0; r < count; r++) {
      main.set(codes.subarray(r * step * G * 16, (r * step + 1) * G * 16), r * G * 16);
      out.set(sc.subarray(r * step * G, (r * step + 1) * G), r * G);
    }
    return { main, scales: out };
  };
  return {
    rows,
    cols,
    sourceDtype: 'MXFP4',
    read: async (first, count) => {
      const { main, scales: sc } = await readPacked(first, count);
      const out = new Float32Array(count * cols);
      for (let b = 0; b < count * G; b++) {
        const d = e8m0ToF32(sc[b]!);
        for (let j = 0; j < 16; j++) {
          const byte = main[b * 16 + j]!;
          out[b * 32 + 2 * j] = FP4_VALUES[byte & 15]! * d;
          out[b * 32 + 2 * j + 1] = FP4_VALUES[byte >>> 4]! * d;
        }
      }
      return out;
    },
    native: { dtype: 'mxfp4', read: readPacked },
  };
}
