import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const FIXTURES = join(import.meta.dirname, '../../../../shared/fixtures');
export const FIXTURE_DIRS = ['hf-moe/mixtral-tiny', 'hf-moe/qwen3moe-tiny', 'hf-moe/deepseekv3-tiny', 'tiny-moe-text'];

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** Independent of manifests/safetensors.ts on purpose: the tests check the converter against this reader. */
export function readSafetensors(file: string): Map<string, RawTensor> {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out = new Map<string, RawTensor>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    out.set(name, { dtype: e.dtype, shape: e.shape, bytes: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])) });
  }
  return out;
}

/** Every tensor of a fixture directory (one file or an index). */
export function readFixture(dir: string): Map<string, RawTensor> {
  const all = new Map<string, RawTensor>();
  let files = ['model.safetensors'];
  try {
    const idx = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    files = [...new Set(Object.values(idx.weight_map))];
  } catch {
    // single-file checkpoint
  }
  for (const f of files) for (const [k, v] of readSafetensors(join(dir, f))) all.set(k, v);
  return all;
}

export function toF32(t: RawTensor): Float32Array {
  const copy = t.bytes.slice();
  if (t.dtype === 'F32') return new Float32Array(copy.buffer);
  if (t.dtype === 'BF16') {
    const h = new Uint16Array(copy.buffer);
    const out = new Uint32Array(h.length);
    for (let i = 0; i < h.length; i++) out[i] = h[i]! << 16;
    return new Float32Array(out.buffer);
  }
  throw new Error(`test reader: dtype ${t.dtype}`);
}

/** Writes a safetensors file (F32 data given as Float32Array, or raw bytes with any dtype name). */
export function writeSafetensors(file: string, tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>): void {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...Object.values(tensors).map((t) => Buffer.from(t.data))]));
}

/** The HF name of a canonical tensor in the fixtures (per-expert layout, as transformers saves it). */
export function hfName(arch: string, canonical: string): string {
  const fixed: Record<string, string> = { embed: 'model.embed_tokens.weight', final_norm: 'model.norm.weight', lm_head: 'lm_head.weight' };
  if (fixed[canonical]) return fixed[canonical]!;
  const m = canonical.match(/^layers\.(\d+)\.(.+)$/)!;
  const L = `model.layers.${m[1]}`;
  const r = m[2]!;
  const moe = arch === 'mixtral' ? 'block_sparse_moe' : 'mlp';
  const attn: Record<string, string> = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj', q_norm: 'q_norm', k_norm: 'k_norm', q_a: 'q_a_proj', q_a_norm: 'q_a_layernorm', q_b: 'q_b_proj', kv_a: 'kv_a_proj_with_mqa', kv_a_norm: 'kv_a_layernorm', kv_b: 'kv_b_proj' };
  let x: RegExpMatchArray | null;
  if (r === 'attn_norm') return `${L}.input_layernorm.weight`;
  if (r === 'ffn_norm') return `${L}.post_attention_layernorm.weight`;
  if ((x = r.match(/^attn\.(.+)$/))) return `${L}.self_attn.${attn[x[1]!]}.weight`;
  if ((x = r.match(/^mlp\.(.+)$/))) return `${L}.mlp.${x[1]}_proj.weight`;
  if (r === 'moe.router') return `${L}.${moe}.gate.weight`;
  if (r === 'moe.router_bias') return `${L}.mlp.gate.e_score_correction_bias`;
  if ((x = r.match(/^moe\.shared\.(.+)$/))) return `${L}.mlp.shared_experts.${x[1]}_proj.weight`;
  if ((x = r.match(/^moe\.experts\.(\d+)\.(.+)$/))) {
    if (arch === 'mixtral') return `${L}.block_sparse_moe.experts.${x[1]}.${({ gate: 'w1', down: 'w2', up: 'w3' } as Record<string, string>)[x[2]!]}.weight`;
    return `${L}.mlp.experts.${x[1]}.${x[2]}_proj.weight`;
  }
  throw new Error(`no HF name for ${canonical}`);
}
