/**
 * MXFP4 packed experts (gpt-oss's release format) through convert: split per expert with gate =
 * even rows and up = odd rows of the fused gate_up, dequantised exactly as transformers does, kept
 * byte for byte as our mxfp4 format when asked (--expert-quant mxfp4), re-quantised to others, and
 * packed tensors whose shape disagrees with the config refused by name.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dequantize, MODEL_FILES, type Manifest, type TensorEntry } from '../../../manifests/index.ts';
import { convert, readModelDir, readShardFile, verifyModelDir } from '../../../manifests/node.ts';
import { errorVersusBound } from './bounds.ts';
import { dequantPacked, writePackedCheckpoint, type Packed } from './mxfp4-fixture.ts';

const ROOT = join(import.meta.dirname, '../../..');
const doppler = (...args: string[]) => spawnSync(join(ROOT, 'node_modules/.bin/node'), [join(ROOT, 'bin/doppler.mjs'), ...args], { encoding: 'utf8' });
const work = mkdtempSync(join(tmpdir(), 'rdrr-mxfp4-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const src = join(work, 'src');
let layers: { gateUp: Packed; down: Packed }[];
beforeAll(() => {
  layers = writePackedCheckpoint(src);
});

async function tensorBytes(dir: string, m: Manifest, t: TensorEntry): Promise<Uint8Array> {
  return new Uint8Array((await readShardFile(dir, m.shards[t.shard]!.hash)).subarray(t.offset, t.offset + t.length));
}

/** Reference weights of expert e of layer l as Linear matrices [out, in]. */
function reference(l: number, e: number, part: 'gate' | 'up' | 'down'): Float32Array {
  if (part === 'down') return dequantPacked(layers[l]!.down, e);
  const gu = dequantPacked(layers[l]!.gateUp, e); // [2I, H]
  const [rows, cols] = [layers[l]!.gateUp.rows / 2, layers[l]!.gateUp.groups * 32];
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out.set(gu.subarray((2 * r + (part === 'up' ? 1 : 0)) * cols, (2 * r + (part === 'up' ? 1 : 0) + 1) * cols), r * cols);
  return out;
}

const expertParts = (name: string): [number, number, 'gate' | 'up' | 'down'] | null => {
  const m = /^layers\.(\d+)\.moe\.experts\.(\d+)\.(gate|up|down)$/.exec(name);
  return m ? [Number(m[1]), Number(m[2]), m[3] as 'gate' | 'up' | 'down'] : null;
};

describe('convert of MXFP4 packed experts', () => {
  it('at f32: each expert is its gate (even rows), up (odd rows) and down, dequantised as transformers does', async () => {
    const out = join(work, 'f32');
    const { manifest } = await convert({ source: src, out, quant: 'f32' });
    expect(manifest.source).toEqual({ dtypes: ['F32', 'MXFP4'], quantization: 'mxfp4' });
    expect(manifest.config.architecture).toBe('gpt_oss');
    let n = 0;
    for (const t of manifest.tensors) {
      const at = expertParts(t.name);
      if (!at) continue;
      expect(Array.from(dequantize(t, await tensorBytes(out, manifest, t))), t.name).toEqual(Array.from(reference(...at)));
      n++;
    }
    expect(n).toBe(4 * 8 * 3);
  });

  it('--expert-quant mxfp4 keeps the released bytes: codes and scales copied, same weights as f32', async () => {
    const out = join(work, 'kept');
    const r = doppler('convert', src, '--out', out, '--quant', 'f16', '--expert-quant', 'mxfp4');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('f16 (experts mxfp4)');
    const { manifest } = await readModelDir(out);
    expect(manifest.expertQuant).toBe('mxfp4');
    expect((await verifyModelDir(out)).ok).toBe(true);
    for (const t of manifest.tensors) {
      const at = expertParts(t.name);
      if (!at) {
        if (/attn\.[qkvo]$/.test(t.name)) expect(t.dtype).toBe('f16');
        continue;
      }
      expect(t.dtype).toBe('mxfp4');
      const [l, e, part] = at;
      const p = part === 'down' ? layers[l]!.down : layers[l]!.gateUp;
      const [step, start] = part === 'down' ? [1, 0] : [2, part === 'up' ? 1 : 0];
      const rows = p.rows / step;
      const bytes = await tensorBytes(out, manifest, t);
      for (let r = 0; r < rows; r++) {
        const src = (e * p.rows + start + r * step) * p.groups;
        expect(bytes.subarray(r * p.groups * 16, (r + 1) * p.groups * 16)).toEqual(p.blocks.subarray(src * 16, (src + p.groups) * 16));
        const so = rows * p.groups * 16 + r * p.groups;
        expect(bytes.subarray(so, so + p.groups)).toEqual(p.scales.subarray(src, src + p.groups));
      }
      expect(Array.from(dequantize(t, bytes))).toEqual(Array.from(reference(l, e, part)));
    }
    const shown = doppler('inspect', out);
    expect(shown.stdout).toMatch(/quantization +f16 \(routed experts mxfp4\)/);
    expect(shown.stdout).toMatch(/source +F32, MXFP4; mxfp4/);
  });

  it('re-quantises MXFP4 experts to q8_0 within its bound', async () => {
    const out = join(work, 'q8');
    const { manifest } = await convert({ source: src, out, quant: 'q8_0' });
    const t = manifest.tensors.find((x) => x.name === 'layers.3.moe.experts.5.up')!;
    expect(t.dtype).toBe('q8_0');
    expect(errorVersusBound(t, await tensorBytes(out, manifest, t), reference(3, 5, 'up'))).toBeLessThanOrEqual(1);
  });

  const bad: [string, (t: Record<string, { dtype: string; shape: number[]; data: Uint8Array }>) => void, RegExp][] = [
    ['blocks whose shape disagrees with the config', (t) => {
      const b = t['model.layers.1.mlp.experts.down_proj_blocks']!;
      t['model.layers.1.mlp.experts.down_proj_blocks'] = { ...b, shape: [8, 32, 4, 16] };
    }, /MXFP4 blocks model\.layers\.1\.mlp\.experts\.down_proj_blocks are U8 \[8, 32, 4, 16\]; config\.json implies U8 \[≥ 1, 64, 2, 16\]/],
    ['blocks without their scales', (t) => {
      delete t['model.layers.0.mlp.experts.gate_up_proj_scales'];
    }, /MXFP4 blocks model\.layers\.0\.mlp\.experts\.gate_up_proj_blocks have no scales/],
    ['scales of the wrong shape', (t) => {
      const s = t['model.layers.2.mlp.experts.gate_up_proj_scales']!;
      t['model.layers.2.mlp.experts.gate_up_proj_scales'] = { ...s, shape: [8, 256] };
    }, /MXFP4 scales model\.layers\.2\.mlp\.experts\.gate_up_proj_scales are U8 \[8, 256\]/],
  ];
  it.each(bad)('%s: one clear error naming the tensor, and no manifest written', (name, edit, message) => {
    const dir = join(work, `bad-${name.replace(/\W/g, '')}`);
    writePackedCheckpoint(dir, edit);
    const out = join(dir, 'out');
    const r = doppler('convert', dir, '--out', out, '--expert-quant', 'mxfp4');
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(existsSync(join(out, MODEL_FILES.manifest))).toBe(false);
  });
});
