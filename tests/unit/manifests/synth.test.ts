import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { dequantize, manifestOfPlan, normaliseConfig, planModel, summarize, tensorByName } from '../../../manifests/index.ts';
import { plannedManifestSize, PRESETS, readShardFile, synth, verifyModelDir } from '../../../manifests/node.ts';

const ROOT = join(import.meta.dirname, '../../..');
const work = mkdtempSync(join(tmpdir(), 'rdrr-synth-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('synth', () => {
  it.each([['mixtral', 'mixtral-tiny'], ['qwen3_moe', 'qwen3moe-tiny'], ['deepseek_v3', 'deepseekv3-tiny']] as const)(
    '%s %s: written model verifies; manifest-only and 2 workers give the same id; weights are finite and small',
    async (arch, preset) => {
      const full = await synth({ arch, preset, quant: 'q4_0', out: join(work, `${preset}-full`), seed: 3, workers: 1 });
      expect((await verifyModelDir(join(work, `${preset}-full`))).ok).toBe(true);
      const only = await synth({ arch, preset, quant: 'q4_0', out: join(work, `${preset}-only`), seed: 3, manifestOnly: true, workers: 2 });
      expect(only.id).toBe(full.id);
      expect(readdirSync(join(work, `${preset}-only`, 'shards'))).toEqual([]);
      const other = await synth({ arch, preset, quant: 'q4_0', out: join(work, `${preset}-seed4`), seed: 4, manifestOnly: true, workers: 1 });
      expect(other.id).not.toBe(full.id);

      const t = tensorByName(full.manifest).get('layers.1.moe.experts.0.up')!;
      const shard = await readShardFile(join(work, `${preset}-full`), full.manifest.shards[t.shard]!.hash);
      const w = dequantize(t, shard.subarray(t.offset, t.offset + t.length));
      let maxAbs = 0;
      for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
      expect(Number.isFinite(maxAbs) && maxAbs > 0 && maxAbs < 0.05).toBe(true);
    },
  );

  it('f32, f16 and q8_0 synth weights are finite and small', async () => {
    for (const quant of ['f32', 'f16', 'q8_0'] as const) {
      const out = join(work, `mix-${quant}`);
      const r = await synth({ arch: 'mixtral', preset: 'mixtral-tiny', quant, out, workers: 1 });
      for (const name of ['embed', 'layers.0.attn.q', 'layers.2.moe.router', 'layers.0.attn_norm']) {
        const t = tensorByName(r.manifest).get(name)!;
        const shard = await readShardFile(out, r.manifest.shards[t.shard]!.hash);
        const w = dequantize(t, shard.subarray(t.offset, t.offset + t.length));
        expect(w.every((v) => Number.isFinite(v) && Math.abs(v) <= 1)).toBe(true);
      }
    }
  });

  it('the CLI checks arch against preset and reports the model', () => {
    const node = join(ROOT, 'node_modules/.bin/node');
    const cli = join(ROOT, 'bin/doppler.mjs');
    const bad = spawnSync(node, [cli, 'synth', '--arch', 'mixtral', '--preset', 'qwen3moe-tiny', '--quant', 'q4_0', '--out', join(work, 'x')], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/preset qwen3moe-tiny is qwen3_moe/);
    expect(existsSync(join(work, 'x'))).toBe(false);
    const ok = spawnSync(node, [cli, 'synth', '--arch', 'qwen3_moe', '--preset', 'qwen3moe-tiny', '--quant', 'q8_0', '--out', join(work, 'y'), '--manifest-only'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    const inspect = spawnSync(node, [cli, 'inspect', join(work, 'y'), '--json'], { encoding: 'utf8' });
    const s = JSON.parse(inspect.stdout) as ReturnType<typeof summarize> & { id: string };
    expect(s.experts).toEqual({ perLayer: 16, topK: 4, shared: 0 });
    expect(s.shards.expert).toBe(48);
    expect(s.bytesPerToken).toBe(s.bytes.dense + (3 * 4 * s.bytes.experts) / 48);
  });

  it('experts kept mxfp4: written and manifest-only agree, weights finite and small', async () => {
    const opts = { arch: 'qwen3_moe', preset: 'qwen3moe-tiny', quant: 'f16', expertQuant: 'mxfp4', seed: 1 } as const;
    const full = await synth({ ...opts, out: join(work, 'mx-full'), workers: 1 });
    expect((await verifyModelDir(join(work, 'mx-full'))).ok).toBe(true);
    const only = await synth({ ...opts, out: join(work, 'mx-only'), manifestOnly: true, workers: 2 });
    expect(only.id).toBe(full.id);
    expect(full.manifest.expertQuant).toBe('mxfp4');
    expect(full.manifest.name).toBe('synth-qwen3moe-tiny-f16-experts-mxfp4-seed1');
    const t = tensorByName(full.manifest).get('layers.2.moe.experts.15.down')!;
    expect(t.dtype).toBe('mxfp4');
    const shard = await readShardFile(join(work, 'mx-full'), full.manifest.shards[t.shard]!.hash);
    const w = dequantize(t, shard.subarray(t.offset, t.offset + t.length));
    let maxAbs = 0;
    for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
    expect(Number.isFinite(maxAbs) && maxAbs > 0 && maxAbs < 0.05).toBe(true);
  });

  it.each(['q3_g64', 'q2_g32'] as const)('experts at %s (q4_0 elsewhere): written and manifest-only agree, weights finite and small', async (expertQuant) => {
    const opts = { arch: 'mixtral', preset: 'mixtral-tiny', quant: 'q4_0', expertQuant, seed: 2 } as const;
    const full = await synth({ ...opts, out: join(work, `${expertQuant}-full`), workers: 1 });
    expect((await verifyModelDir(join(work, `${expertQuant}-full`))).ok).toBe(true);
    const only = await synth({ ...opts, out: join(work, `${expertQuant}-only`), manifestOnly: true, workers: 2 });
    expect(only.id).toBe(full.id);
    expect(tensorByName(full.manifest).get('layers.0.attn.q')!.dtype).toBe('q4_0');
    for (const name of ['layers.0.moe.experts.0.gate', 'layers.2.moe.experts.7.down']) {
      const t = tensorByName(full.manifest).get(name)!;
      expect(t.dtype).toBe(expertQuant);
      const shard = await readShardFile(join(work, `${expertQuant}-full`), full.manifest.shards[t.shard]!.hash);
      const w = dequantize(t, shard.subarray(t.offset, t.offset + t.length));
      let maxAbs = 0;
      for (const v of w) maxAbs = Math.max(maxAbs, Math.abs(v));
      expect(Number.isFinite(maxAbs) && maxAbs > 0 && maxAbs < 0.05, `${name}: max |w| ${maxAbs}`).toBe(true);
    }
  });

  it('mixtral-8x7b: an expert at q3_g64 is at most 75 MB (3.375 bits per weight), against 99.1 MB at q4_0', () => {
    const perExpert = (expertQuant: 'q4_0' | 'q3_g64' | 'q2_g32'): number => {
      const plan = planModel(normaliseConfig(PRESETS['mixtral-8x7b']!.config, 'mixtral-8x7b'), 'q4_0', 64 << 20, expertQuant);
      const m = manifestOfPlan(plan, 'm', plan.shards.map(() => '0'.repeat(64)), {});
      return m.totals.expertBytes / plan.experts.length;
    };
    const weights = 3 * 4096 * 14336;
    expect(perExpert('q4_0')).toBe((weights * 4.5) / 8);
    expect(perExpert('q3_g64')).toBe((weights * 3.375) / 8);
    expect(perExpert('q3_g64')).toBeLessThanOrEqual(75e6);
    expect(perExpert('q2_g32')).toBe((weights * 2.75) / 8);
  });

  it('gpt-oss-20b as released (f16, experts mxfp4), one layer, --manifest-only', async () => {
    const r = await synth({ arch: 'gpt_oss', preset: 'gpt-oss-20b', quant: 'f16', expertQuant: 'mxfp4', layers: 1, out: join(work, 'oss'), manifestOnly: true, workers: 2 });
    expect(readdirSync(join(work, 'oss', 'shards'))).toEqual([]);
    const t = tensorByName(r.manifest).get('layers.0.moe.experts.31.down')!;
    expect(t.dtype).toBe('mxfp4');
    expect(t.length).toBe((2880 * 2880 * 17) / 32); // 4.25 bits per weight
    expect(tensorByName(r.manifest).get('layers.0.attn.q')!.dtype).toBe('f16');
  });

  it('real-model presets plan to the expected sizes', async () => {
    // gpt-oss as released: routed experts 4.25 bits per weight (about 61 GB of the 120b), the rest 16
    const oss = await plannedManifestSize('gpt-oss-120b', 'f16', 64, 'mxfp4');
    expect(oss.experts).toBe(36 * 128);
    expect(oss.modelBytes).toBeGreaterThan(36 * 128 * 3 * ((2880 * 2880 * 17) / 32));
    expect(oss.modelBytes).toBeLessThan(66e9);
    const ds = await plannedManifestSize('deepseek-v3-671b', 'q4_0');
    expect(ds.experts).toBe(58 * 256);
    // Two-level: the top level holds the dense shards' hashes and one per MoE layer; the lists hold 32 B per expert shard.
    expect(ds.bytes).toBeLessThan((ds.shards - ds.experts + 58) * 32 + 4096);
    expect(ds.listBytes).toBeGreaterThan(ds.experts * 32);
    expect(ds.listBytes).toBeLessThan(ds.experts * 32 + 58 * 64);
  });
});
