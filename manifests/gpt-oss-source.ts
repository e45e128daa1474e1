/**
 * Where gpt-oss keeps its routed experts: fused per layer, input-major, as transformers'
 * GptOssExperts holds them and save_pretrained writes them (float checkpoints):
 *   mlp.experts.gate_up_proj [E, H, 2I]  gate and up interleaved along the last axis:
 *                                        gate = [..., 0::2], up = [..., 1::2]
 *   mlp.experts.gate_up_proj_bias [E, 2I] (same interleaving), mlp.experts.down_proj [E, I, H],
 *   mlp.experts.down_proj_bias [E, H].
 * As released (quant_method mxfp4) the two matrices are packed output-major instead,
 * `gate_up_proj_blocks` [E, 2I, H/32, 16] + `_scales` (gate = even rows, up = odd rows) and
 * `down_proj_blocks` [E, H, I/32, 16] + `_scales` (packed-sources.ts reads them).
 * Each expert becomes its own canonical gate/up/down [out, in] plus gate_bias/up_bias/down_bias.
 * The layout is fixed, never guessed from the shape: gpt-oss has I = H, where [E, I, H] and
 * [E, H, I] cannot be told apart.
 */
import { CheckpointError } from './errors.ts';
import { transposedSlice, type RowSource } from './hf-source.ts';
import { mxfp4ExpertRows } from './packed-sources.ts';
import type { Checkpoint, SafetensorsTensor } from './safetensors.ts';

export type ExpertPart = 'gate' | 'up' | 'down';

/**
 * Canonical `moe.experts.{e}.{part}` (bias: `{part}_bias`) of one gpt-oss layer (`prefix` is
 * `model.layers.{l}.mlp`). `rows`/`cols` are the canonical shape ([1, n] for a bias); `canonical`
 * names it in errors.
 */
export function gptOssExpert(ckpt: Checkpoint, prefix: string, e: number, part: ExpertPart, bias: boolean, rows: number, cols: number, ckptName: string, canonical: string): RowSource {
  const fused = part === 'down' ? 'down_proj' : 'gate_up_proj';
  const name = `${prefix}.experts.${fused}${bias ? '_bias' : ''}`;
  const parity = part === 'up' ? 1 : 0;
  // As released, the matrices are packed MXFP4 (`_blocks` / `_scales`, [E, out, in/32, 16]); biases stay floats.
  const blocks = bias ? undefined : ckpt.tensors.get(`${prefix}.experts.${fused}_blocks`);
  if (blocks) return part === 'down' ? mxfp4ExpertRows(ckpt, blocks, e, 0, 1, rows, cols) : mxfp4ExpertRows(ckpt, blocks, e, parity, 2, rows, cols);
  const t = ckpt.tensors.get(name);
  if (!t) throw new CheckpointError(`${ckptName}: tensor ${name} (canonical ${canonical}) is missing for architecture gpt_oss`);
  if (bias) {
    // [E, 2I] interleaved, or [E, H] for down
    const width = part === 'down' ? cols : 2 * cols;
    expectShape(t, [null, width], e);
    if (part === 'down') return { rows: 1, cols, sourceDtype: t.dtype, read: () => ckpt.readRows(t, e, 1, cols) };
    return {
      rows: 1,
      cols,
      sourceDtype: t.dtype,
      read: async () => {
        const row = await ckpt.readRows(t, e, 1, width);
        return Float32Array.from({ length: cols }, (_, i) => row[2 * i + parity]!);
      },
    };
  }
  if (part === 'down') {
    // canonical down [H, I] from [E, I, H]: its rows are the slice's columns
    expectShape(t, [null, cols, rows], e);
    return transposedSlice(ckpt, t, e, cols, rows, 0, rows);
  }
  // canonical gate/up [I, H] from [E, H, 2I]: rows are every other column of the slice
  expectShape(t, [null, cols, 2 * rows], e);
  return transposedSlice(ckpt, t, e, cols, 2 * rows, parity, rows, 2);
}

/** Checks a fused tensor's shape (null: any size, which must cover expert e). */
function expectShape(t: SafetensorsTensor, want: (number | null)[], e: number): void {
  const ok = t.shape.length === want.length && want.every((w, i) => w === null || t.shape[i] === w) && t.shape[0]! > e;
  if (!ok) {
    const spelled = want.map((w, i) => (w === null ? (i === 0 ? 'E' : '·') : String(w))).join(', ');
    throw new CheckpointError(`${t.file}: tensor ${t.name} has shape [${t.shape.join(', ')}], config.json implies [${spelled}] covering expert ${e}`);
  }
}
