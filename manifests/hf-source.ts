import { CheckpointError } from './errors.ts';
import { gptOssExpert, type ExpertPart } from './gpt-oss-source.ts';
import type { TensorSpec } from './layout.ts';
import { matrixDims } from './quant.ts';
import type { Checkpoint, SafetensorsTensor } from './safetensors.ts';
import type { EncodedRows } from './formats/index.ts';
import { fp8Table } from './fp8.ts';
import { fp8Rows } from './packed-sources.ts';
import type { SourceQuantization } from './source-quant.ts';
import type { Architecture, WeightDtype } from './types.ts';

/** Rows of one canonical tensor, as f32, read on demand so memory stays bounded. */
export interface RowSource {
  rows: number;
  cols: number;
  /** How the checkpoint stores it (a safetensors dtype, or MXFP4): recorded in the manifest. */
  sourceDtype: string;
  read(first: number, count: number): Promise<Float32Array>;
  /** Set when the checkpoint already stores the rows in one of our formats: they are copied as they are, not re-quantized. */
  native?: { dtype: WeightDtype; read(first: number, count: number): Promise<EncodedRows> };
}

const ATTN: Record<string, string> = {
  q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', q_norm: 'q_norm', k_norm: 'k_norm',
  q_a: 'q_a_proj', q_a_norm: 'q_a_layernorm', q_b: 'q_b_proj', kv_a: 'kv_a_proj_with_mqa', kv_a_norm: 'kv_a_layernorm', kv_b: 'kv_b_proj',
};
const MIXTRAL_EXPERT: Record<string, string> = { gate: 'w1', down: 'w2', up: 'w3' };

/** Architectures whose forward pass has no attention sinks and no Linear biases. */
const NO_SINKS_OR_BIASES: ReadonlySet<string> = new Set<Architecture>(['mixtral', 'qwen3_moe', 'deepseek_v3']);

/**
 * Attention sinks (`*.sinks`) and Linear biases (`*.bias`) change the math, and these
 * architectures have no place for them: converting without them would give a model that runs
 * silently wrong, so a checkpoint carrying one is refused, naming the tensor.
 */
export function refuseUnhonoured(ckpt: Checkpoint, arch: Architecture): void {
  if (!NO_SINKS_OR_BIASES.has(arch)) return;
  for (const [name, t] of ckpt.tensors) {
    if (/\.(sinks|bias)$/.test(name)) {
      throw new CheckpointError(`${t.file}: tensor ${name} (${name.endsWith('.sinks') ? 'attention sinks' : 'a bias'}) is not supported for architecture ${arch}`);
    }
  }
}

/**
 * Where a canonical tensor lives in a Hugging Face checkpoint. Routed experts come either one
 * tensor per expert (what transformers saves: `experts.{e}.w1` / `experts.{e}.gate_proj`) or fused
 * (transformers 5 in-memory layout: `experts.gate_up_proj` [E, 2I, H] with gate rows first, and
 * `experts.down_proj` [E, H, I]; the older [E, H, 2I] / [E, I, H] layouts are transposed); gpt-oss
 * has its own (gpt-oss-source.ts, MXFP4 packed included). FP8 tensors are read with their block
 * scales (`quant` says their block size).
 */
export function sourceOf(ckpt: Checkpoint, arch: Architecture, spec: TensorSpec, ckptName: string, quant: SourceQuantization = null): RowSource {
  const { rows, cols } = matrixDims(spec.shape);
  const direct = (names: string[]): RowSource | null => {
    for (const n of names) {
      const t = ckpt.tensors.get(n);
      if (!t) continue;
      const flat = t.shape.length === 1 ? [1, t.shape[0]] : t.shape;
      if (flat.length !== 2 || flat[0] !== rows || flat[1] !== cols) {
        throw new CheckpointError(`${t.file}: tensor ${n} has shape [${t.shape.join(', ')}], config.json implies [${spec.shape.join(', ')}]`);
      }
      return fp8Table(t.dtype) ? fp8Rows(ckpt, t, quant, rows, cols) : rowsOf(ckpt, t, 0, rows, cols);
    }
    return null;
  };
  const missing = (names: string[]): never => {
    throw new CheckpointError(`${ckptName}: tensor ${names[0]} (canonical ${spec.name}) is missing for architecture ${arch}`);
  };
  const n = spec.name;
  let m: RegExpMatchArray | null;
  if (n === 'embed') return direct(['model.embed_tokens.weight']) ?? missing(['model.embed_tokens.weight']);
  if (n === 'final_norm') return direct(['model.norm.weight']) ?? missing(['model.norm.weight']);
  if (n === 'lm_head') return direct(['lm_head.weight']) ?? missing(['lm_head.weight']);
  if (!(m = n.match(/^layers\.(\d+)\.(.+)$/))) throw new CheckpointError(`no source rule for ${n}`);
  const L = `model.layers.${m[1]}`;
  const rest = m[2]!;
  const moePrefixes = arch === 'mixtral' ? [`${L}.block_sparse_moe`, `${L}.mlp`] : [`${L}.mlp`];
  let names: string[];
  let mm: RegExpMatchArray | null;
  if (rest === 'attn_norm') names = [`${L}.input_layernorm.weight`];
  else if (rest === 'ffn_norm') names = [`${L}.post_attention_layernorm.weight`];
  else if ((mm = rest.match(/^attn\.(\w+)$/)) && ATTN[mm[1]!]) names = [`${L}.self_attn.${ATTN[mm[1]!]}.weight`];
  else if ((mm = rest.match(/^mlp\.(gate|up|down)$/))) names = [`${L}.mlp.${mm[1]}_proj.weight`];
  else if ((mm = rest.match(/^attn\.(q|k|v|o)_bias$/))) names = [`${L}.self_attn.${ATTN[mm[1]!]}.bias`];
  else if (rest === 'attn.sinks') names = [`${L}.self_attn.sinks`];
  else if (rest === 'moe.router') names = arch === 'gpt_oss' ? [`${L}.mlp.router.weight`] : moePrefixes.map((p) => `${p}.gate.weight`);
  else if (rest === 'moe.router_bias') names = [arch === 'gpt_oss' ? `${L}.mlp.router.bias` : `${L}.mlp.gate.e_score_correction_bias`];
  else if (arch === 'gpt_oss' && (mm = rest.match(/^moe\.experts\.(\d+)\.(gate|up|down)(_bias)?$/))) {
    return gptOssExpert(ckpt, `${L}.mlp`, Number(mm[1]), mm[2] as ExpertPart, mm[3] !== undefined, rows, cols, ckptName, spec.name);
  }
  else if ((mm = rest.match(/^moe\.shared\.(gate|up|down)$/))) names = [`${L}.mlp.shared_experts.${mm[1]}_proj.weight`];
  else if ((mm = rest.match(/^moe\.experts\.(\d+)\.(gate|up|down)$/))) {
    const e = Number(mm[1]);
    const part = mm[2] as 'gate' | 'up' | 'down';
    names = moePrefixes.flatMap((p) => [...(arch === 'mixtral' ? [`${p}.experts.${e}.${MIXTRAL_EXPERT[part]}.weight`] : []), `${p}.experts.${e}.${part}_proj.weight`]);
    return direct(names) ?? fusedExpert(ckpt, moePrefixes, e, part, rows, cols) ?? missing(names);
  } else throw new CheckpointError(`no source rule for ${n}`);
  return direct(names) ?? missing(names);
}

function rowsOf(ckpt: Checkpoint, t: SafetensorsTensor, base: number, rows: number, cols: number): RowSource {
  return { rows, cols, sourceDtype: t.dtype, read: (first, count) => ckpt.readRows(t, base + first, count, cols) };
}

function fusedExpert(ckpt: Checkpoint, prefixes: string[], e: number, part: 'gate' | 'up' | 'down', rows: number, cols: number): RowSource | null {
  for (const p of prefixes) {
    const name = part === 'down' ? `${p}.experts.down_proj` : `${p}.experts.gate_up_proj`;
    const t = ckpt.tensors.get(name);
    if (!t) continue;
    if (t.shape.length !== 3 || e >= t.shape[0]!) throw new CheckpointError(`${t.file}: fused tensor ${name} has shape [${t.shape.join(', ')}], expected [experts, ·, ·] covering expert ${e}`);
    const [, a, b] = t.shape as [number, number, number];
    // Output-major ([.., out, in], what F.linear takes): rows are contiguous.
    const outRows = part === 'down' ? rows : 2 * rows;
    if (a === outRows && b === cols) return rowsOf(ckpt, t, e * outRows + (part === 'up' ? rows : 0), rows, cols);
    if (a === cols && b === outRows) return transposedSlice(ckpt, t, e, a, b, part === 'up' ? rows : 0, rows);
    throw new CheckpointError(`${t.file}: fused tensor ${name} has shape [${t.shape.join(', ')}], which fits neither [E, ${outRows}, ${cols}] nor [E, ${cols}, ${outRows}]`);
  }
  return null;
}

/**
 * Expert e of an input-major fused tensor [E, in, out]: reads the expert's slice once, serves rows
 * of its transpose. Row r is column colStart + r · colStep of the slice.
 */
export function transposedSlice(ckpt: Checkpoint, t: SafetensorsTensor, e: number, inDim: number, outDim: number, colStart: number, rows: number, colStep = 1): RowSource {
  let slice: Promise<Float32Array> | null = null;
  return {
    rows,
    cols: inDim,
    sourceDtype: t.dtype,
    read: async (first, count) => {
      slice ??= ckpt.readRows(t, e * inDim, inDim, outDim);
      const src = await slice;
      const out = new Float32Array(count * inDim);
      for (let r = 0; r < count; r++) {
        const c = colStart + (first + r) * colStep;
        for (let i = 0; i < inDim; i++) out[r * inDim + i] = src[i * outDim + c]!;
      }
      return out;
    },
  };
}
