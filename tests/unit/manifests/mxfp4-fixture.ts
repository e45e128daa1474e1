/**
 * A checkpoint whose routed experts are packed MXFP4 the way gpt-oss ships them (transformers'
 * Mxfp4GptOssExperts: `experts.gate_up_proj_blocks` U8 [E, 2I, H/32, 16] with gate and up rows
 * interleaved, `_scales` U8 [E, 2I, H/32], `down_proj_blocks` [E, H, I/32, 16]), built on the
 * gptoss-plain fixture (its float experts replaced, biases kept) with seeded random codes. Also
 * the reference dequantisation, written from transformers' convert_moe_packed_tensors.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { seededRandom } from '../../../engine/sampling.ts';
import { readFixture, writeSafetensors } from './helpers.ts';

export const PACKED_BASE = join(import.meta.dirname, '../../fixtures/hf-moe-ext/gptoss-plain');
const [E, H, I, LAYERS] = [8, 64, 64, 4];
const FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

export interface Packed {
  blocks: Uint8Array;
  scales: Uint8Array;
  rows: number;
  groups: number;
}

/** convert_moe_packed_tensors for one expert: out[r, 32g + 2j] = FP4[lo]·2^(s − 127), out[r, 32g + 2j + 1] = FP4[hi]·… */
export function dequantPacked(p: Packed, e: number): Float32Array {
  const cols = p.groups * 32;
  const out = new Float32Array(p.rows * cols);
  for (let r = 0; r < p.rows; r++) for (let g = 0; g < p.groups; g++) {
    const at = (e * p.rows + r) * p.groups + g;
    const scale = 2 ** (p.scales[at]! - 127);
    for (let j = 0; j < 16; j++) {
      const byte = p.blocks[at * 16 + j]!;
      out[r * cols + g * 32 + 2 * j] = FP4[byte & 15]! * scale;
      out[r * cols + g * 32 + 2 * j + 1] = FP4[byte >> 4]! * scale;
    }
  }
  return out;
}

function packed(rand: () => number, rows: number, cols: number): Packed {
  const groups = cols / 32;
  const blocks = new Uint8Array(E * rows * groups * 16).map(() => Math.floor(rand() * 256));
  // scales 2^-9 … 2^-6: weights up to ~0.09, like a trained model's
  const scales = new Uint8Array(E * rows * groups).map(() => 118 + Math.floor(rand() * 4));
  return { blocks, scales, rows, groups };
}

/** Writes the checkpoint into `dir` (config edited by `edit`) and returns its packed tensors by layer. */
export function writePackedCheckpoint(dir: string, edit?: (tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>) => void): { gateUp: Packed; down: Packed }[] {
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(PACKED_BASE, 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg['quantization_config'] = { quant_method: 'mxfp4', modules_to_not_convert: ['model.layers.*.self_attn', 'model.layers.*.mlp.router', 'model.embed_tokens', 'lm_head'] };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  const rand = seededRandom(42);
  const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {};
  for (const [name, t] of readFixture(PACKED_BASE)) if (!/\.experts\.(gate_up|down)_proj$/.test(name)) tensors[name] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
  const layers = [];
  for (let l = 0; l < LAYERS; l++) {
    const gateUp = packed(rand, 2 * I, H);
    const down = packed(rand, H, I);
    const p = `model.layers.${l}.mlp.experts`;
    tensors[`${p}.gate_up_proj_blocks`] = { dtype: 'U8', shape: [E, 2 * I, H / 32, 16], data: gateUp.blocks };
    tensors[`${p}.gate_up_proj_scales`] = { dtype: 'U8', shape: [E, 2 * I, H / 32], data: gateUp.scales };
    tensors[`${p}.down_proj_blocks`] = { dtype: 'U8', shape: [E, H, I / 32, 16], data: down.blocks };
    tensors[`${p}.down_proj_scales`] = { dtype: 'U8', shape: [E, H, I / 32], data: down.scales };
    layers.push({ gateUp, down });
  }
  edit?.(tensors);
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return layers;
}
