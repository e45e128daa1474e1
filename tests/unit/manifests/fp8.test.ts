/**
 * FP8 block-scaled checkpoints (DeepSeek-V3's release format): the e4m3/e5m2 decode tables, convert
 * of a checkpoint whose Linear weights are FP8 with `<name>_scale_inv` block scales (partial edge
 * blocks included) into exactly the dequantised weights, `inspect` naming the source format, and
 * bad input refused with the tensor or key named and no manifest written.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize, f16BitsToF32, MODEL_FILES, tensorByName } from '../../../manifests/index.ts';
import { convert, readShardFile } from '../../../manifests/node.ts';
import { F8_E4M3, F8_E5M2 } from '../../../manifests/fp8.ts';
import { FIXTURES, hfName, readFixture, toF32, writeSafetensors, type RawTensor } from './helpers.ts';

const ROOT = join(import.meta.dirname, '../../..');
const doppler = (...args: string[]) => spawnSync(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/doppler.mjs'), ...args], { encoding: 'utf8' });
const work = mkdtempSync(join(tmpdir(), 'rdrr-fp8-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Independent decoders: e4m3fn by its definition, e5m2 as the top byte of an IEEE half. */
const e4m3 = (b: number): number => {
  const s = b & 0x80 ? -1 : 1;
  const e = (b >>> 3) & 15;
  const m = b & 7;
  if (e === 15 && m === 7) return NaN;
  return e === 0 ? s * m * 2 ** -9 : s * (8 + m) * 2 ** (e - 10);
};
const e5m2 = (b: number): number => f16BitsToF32(b << 8);

describe('FP8 decode tables', () => {
  it('e4m3fn: no infinities, 0x7f and 0xff are NaN, max 448, subnormals down to 2^-9', () => {
    const known: [number, number][] = [[0x00, 0], [0x01, 2 ** -9], [0x07, 7 * 2 ** -9], [0x08, 2 ** -6], [0x38, 1], [0x40, 2], [0x3c, 1.5], [0x7e, 448], [0xfe, -448], [0xb8, -1]];
    for (const [b, v] of known) expect(F8_E4M3[b], `0x${b.toString(16)}`).toBe(v);
    expect(Object.is(F8_E4M3[0x80], -0)).toBe(true);
    for (let b = 0; b < 256; b++) {
      if (b === 0x7f || b === 0xff) expect(F8_E4M3[b]).toBeNaN();
      else expect(F8_E4M3[b]).toBe(e4m3(b));
    }
    expect(Math.max(...Array.from(F8_E4M3).filter((v) => !Number.isNaN(v)))).toBe(448);
  });

  it('e5m2: IEEE-like (the top byte of a half): ±Inf at 0x7c/0xfc, NaN above, max 57344', () => {
    for (let b = 0; b < 256; b++) {
      if (Number.isNaN(e5m2(b))) expect(F8_E5M2[b]).toBeNaN();
      else expect(F8_E5M2[b], `0x${b.toString(16)}`).toBe(e5m2(b));
    }
    expect(F8_E5M2[0x7c]).toBe(Infinity);
    expect(F8_E5M2[0xfc]).toBe(-Infinity);
    expect(F8_E5M2[0x7d]).toBeNaN();
    expect(F8_E5M2[0x7b]).toBe(57344);
    expect(F8_E5M2[0x01]).toBe(2 ** -16);
  });
});

type Tensors = Record<string, { dtype: string; shape: number[]; data: Uint8Array }>;
const SRC = join(FIXTURES, 'hf-moe/deepseekv3-tiny');
const BLOCK: [number, number] = [48, 40]; // neither divides the 64/128/32-wide fixture matrices: partial edge blocks

/** Nearest FP8 code of each value of a sorted table of the finite codes. */
function encoder(decode: (b: number) => number): (x: number) => number {
  const codes = Array.from({ length: 256 }, (_, b) => b).filter((b) => Number.isFinite(decode(b)));
  return (x) => codes.reduce((best, b) => (Math.abs(decode(b) - x) < Math.abs(decode(best) - x) ? b : best), 0);
}

/**
 * The fixture with every Linear weight of the decoder layers stored as FP8 in BLOCK blocks with
 * per-block scales (as DeepSeek's release: embeddings, norms, router gates and lm_head stay as they
 * are). Returns the checkpoint and the dequantised value of each FP8 tensor, by HF name.
 */
const built = new Map<string, { tensors: Tensors; expected: Map<string, Float32Array> }>();
function fp8Checkpoint(dtype: 'F8_E4M3' | 'F8_E5M2'): { tensors: Tensors; expected: Map<string, Float32Array> } {
  if (!built.has(dtype)) built.set(dtype, buildFp8Checkpoint(dtype));
  const b = built.get(dtype)!;
  return { tensors: { ...b.tensors }, expected: b.expected };
}

function buildFp8Checkpoint(dtype: 'F8_E4M3' | 'F8_E5M2'): { tensors: Tensors; expected: Map<string, Float32Array> } {
  const decode = dtype === 'F8_E4M3' ? e4m3 : e5m2;
  const encode = encoder(decode);
  const max = dtype === 'F8_E4M3' ? 448 : 57344;
  const tensors: Tensors = {};
  const expected = new Map<string, Float32Array>();
  for (const [name, t] of readFixture(SRC)) {
    const fp8 = t.shape.length === 2 && /layers\.\d+\..*(proj|experts).*\.weight$/.test(name);
    if (!fp8) {
      tensors[name] = { dtype: t.dtype, shape: t.shape, data: t.bytes };
      continue;
    }
    const [rows, cols] = t.shape as [number, number];
    const w = toF32(t as RawTensor);
    const [sr, sc] = [Math.ceil(rows / BLOCK[0]), Math.ceil(cols / BLOCK[1])];
    const scales = new Float32Array(sr * sc);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const s = Math.floor(r / BLOCK[0]) * sc + Math.floor(c / BLOCK[1]);
      scales[s] = Math.max(scales[s]!, Math.abs(w[r * cols + c]!) / max);
    }
    const bytes = new Uint8Array(rows * cols);
    const deq = new Float32Array(rows * cols);
    for (let i = 0; i < rows * cols; i++) {
      const s = scales[Math.floor(Math.floor(i / cols) / BLOCK[0]) * sc + Math.floor((i % cols) / BLOCK[1])]!;
      bytes[i] = encode(s === 0 ? 0 : w[i]! / s);
      deq[i] = decode(bytes[i]!) * s;
    }
    tensors[name] = { dtype, shape: t.shape, data: bytes };
    tensors[`${name}_scale_inv`] = { dtype: 'F32', shape: [sr, sc], data: new Uint8Array(scales.buffer) };
    expected.set(name, deq);
  }
  return { tensors, expected };
}

function writeSource(name: string, tensors: Tensors, config: (c: Record<string, unknown>) => void): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const cfg = JSON.parse(readFileSync(join(SRC, 'config.json'), 'utf8')) as Record<string, unknown>;
  config(cfg);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(cfg));
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  return dir;
}

const fp8Config = (fmt: string) => (c: Record<string, unknown>): void => {
  c['quantization_config'] = { quant_method: 'fp8', fmt, activation_scheme: 'dynamic', weight_block_size: BLOCK };
};

describe('convert of FP8 block-scaled checkpoints', () => {
  it.each([['F8_E4M3', 'e4m3'], ['F8_E5M2', 'e5m2']] as const)('%s: every FP8 tensor converts to exactly its dequantised weights; inspect names the source', async (dtype, fmt) => {
    const { tensors, expected } = fp8Checkpoint(dtype);
    expect(expected.size).toBeGreaterThan(20);
    const src = writeSource(`src-${fmt}`, tensors, fp8Config(fmt));
    const out = join(work, `out-${fmt}`);
    const { manifest } = await convert({ source: src, out, quant: 'f32' });
    expect(manifest.source).toEqual({ dtypes: ['F32', dtype].sort(), quantization: `fp8 block-scaled ${BLOCK[0]}×${BLOCK[1]}` });
    const byName = tensorByName(manifest);
    let checked = 0;
    for (const t of manifest.tensors) {
      const hf = hfName('deepseek_v3', t.name);
      const want = expected.get(hf);
      if (!want) continue;
      const shard = await readShardFile(out, manifest.shards[t.shard]!.hash);
      expect(Array.from(dequantize(byName.get(t.name)!, shard.subarray(t.offset, t.offset + t.length))), t.name).toEqual(Array.from(want));
      checked++;
    }
    expect(checked).toBe(expected.size);
    const shown = doppler('inspect', out);
    expect(shown.status).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`source +F32, ${dtype}; fp8 block-scaled 48×40`));
  });

  it('streams an FP8 source into q4_0 too (any of our formats)', async () => {
    const src = join(work, 'src-e4m3');
    const r = await convert({ source: src, out: join(work, 'out-q4'), quant: 'q4_0' });
    expect(r.manifest.tensors.find((t) => t.name === 'layers.1.moe.experts.0.gate')!.dtype).toBe('q4_0');
  });

  const bad: [string, () => string, RegExp][] = [
    ['an FP8 tensor without its scale', () => {
      const { tensors } = fp8Checkpoint('F8_E4M3');
      delete tensors['model.layers.1.mlp.experts.3.down_proj.weight_scale_inv'];
      return writeSource('bad-noscale', tensors, fp8Config('e4m3'));
    }, /FP8 tensor model\.layers\.1\.mlp\.experts\.3\.down_proj\.weight has no block scales/],
    ['a scale of the wrong shape', () => {
      const { tensors } = fp8Checkpoint('F8_E4M3');
      const s = tensors['model.layers.0.self_attn.kv_b_proj.weight_scale_inv']!;
      tensors['model.layers.0.self_attn.kv_b_proj.weight_scale_inv'] = { ...s, shape: [s.shape[1]!, s.shape[0]!] };
      return writeSource('bad-shape', tensors, fp8Config('e4m3'));
    }, /scale model\.layers\.0\.self_attn\.kv_b_proj\.weight_scale_inv has shape \[\d+, \d+\]; FP8 tensor .* needs \[\d+, \d+\]/],
    ['FP8 tensors without quantization_config', () => writeSource('bad-noconfig', fp8Checkpoint('F8_E4M3').tensors, () => undefined), /is F8_E4M3, but config\.json has no quantization_config/],
    ['an unsupported quant_method', () => writeSource('bad-method', fp8Checkpoint('F8_E4M3').tensors, (c) => (c['quantization_config'] = { quant_method: 'gptq', bits: 4 })), /quantization_config\.quant_method "gptq" is not supported/],
    ['an unknown dtype', () => {
      const { tensors } = fp8Checkpoint('F8_E4M3');
      tensors['model.norm.weight'] = { ...tensors['model.norm.weight']!, dtype: 'F4_E2M1' };
      return writeSource('bad-dtype', tensors, fp8Config('e4m3'));
    }, /tensor model\.norm\.weight: unknown dtype "F4_E2M1"/],
  ];

  it.each(bad)('%s: one clear error naming it, and no manifest written', (_, make, message) => {
    const out = join(work, `bad-out-${_.replace(/\W/g, '')}`);
    const r = doppler('convert', make(), '--out', out, '--quant', 'q8_0');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });
});
