import { availableParallelism } from 'node:os';
import { normaliseConfig } from './config.ts';
import { ConfigError } from './errors.ts';
import { commitManifest, prepareModelDir, writeShards, type Progress } from './model-writer.ts';
import { manifestOfPlan, planModel } from './plan.ts';
import { PRESETS } from './presets.ts';
import { writeSynthTensor } from './synth-bytes.ts';
import { runShardWorkers } from './shard-workers.ts';
import { encodeManifest } from './codec.ts';
import { splitLayerLists } from './layer-lists.ts';
import { blake3Hex } from './hash.ts';
import type { Architecture, Manifest, WeightDtype } from './types.ts';

export { PRESETS };

export interface SynthOptions {
  arch: Architecture;
  preset: string;
  quant: WeightDtype;
  /** Routed experts' format (default: quant); mxfp4 gives gpt-oss's released expert layout. */
  expertQuant?: WeightDtype;
  /** Model directory to write; with manifestOnly only the manifest files are written there. */
  out: string;
  /** Hash every shard's bytes without writing them (for models that do not fit on disk). */
  manifestOnly?: boolean;
  seed?: number;
  shardMiB?: number;
  /** Override the preset's layer count (a smaller model of the same per-layer shape). */
  layers?: number;
  /** Worker threads generating and hashing shards in parallel (default: available cores). */
  workers?: number;
  /** Two-level manifest or not; default: two-level from TWO_LEVEL_MIN_EXPERT_SHARDS routed-expert shards. */
  twoLevel?: boolean;
  onProgress?: (p: Progress) => void;
}

export interface SynthResult {
  manifest: Manifest;
  id: string;
  manifestBytes: Uint8Array;
}

/** A random-weight model of a real model's shape, its bytes generated deterministically from the seed. */
export async function synth(opts: SynthOptions): Promise<SynthResult> {
  const preset = PRESETS[opts.preset];
  if (!preset) throw new ConfigError(`unknown preset "${opts.preset}" (known: ${Object.keys(PRESETS).join(', ')})`);
  if (preset.arch !== opts.arch) throw new ConfigError(`preset ${opts.preset} is ${preset.arch}, not ${opts.arch}`);
  const rawConfig = { ...preset.config, ...(opts.layers !== undefined ? fewerLayers(preset.config, opts.layers) : {}) };
  const config = normaliseConfig(rawConfig, `preset ${opts.preset}`);
  const shardBytes = Math.floor((opts.shardMiB ?? 64) * 1024 * 1024);
  const seed = opts.seed ?? 0;
  const expertQuant = opts.expertQuant ?? opts.quant;
  const plan = planModel(config, opts.quant, shardBytes, expertQuant);
  const shardsDir = await prepareModelDir(opts.out);
  const target = opts.manifestOnly ? null : shardsDir;
  const workers = Math.max(1, Math.min(opts.workers ?? availableParallelism(), plan.shards.length));
  const hashes =
    workers === 1
      ? await writeShards(plan, target, (sink, t) => writeSynthTensor(sink, t, seed), opts.onProgress)
      : await runShardWorkers(new URL('./synth-worker.ts', import.meta.url), { rawConfig, quant: opts.quant, expertQuant, shardBytes, shardsDir: target, seed }, plan.shards.map((s) => s.size), workers, opts.onProgress);
  const formats = expertQuant === opts.quant ? opts.quant : `${opts.quant}-experts-${expertQuant}`;
  const single = manifestOfPlan(plan, `synth-${opts.preset}${opts.layers !== undefined ? `-${opts.layers}l` : ''}-${formats}-seed${seed}`, hashes, {});
  const { manifest, blobs } = await splitLayerLists(single, opts.twoLevel);
  const { id, manifestBytes } = await commitManifest(opts.out, manifest, blobs);
  return { manifest, id, manifestBytes };
}

/**
 * Size of the encoded manifest a synth would produce, without generating bytes: hashes are
 * fixed-width, so placeholders give the exact size. `bytes` is the top level (what names the model);
 * `listBytes` the layer lists of a two-level manifest, fetched with the model (0 for single-level).
 */
export async function plannedManifestSize(preset: string, quant: WeightDtype, shardMiB = 64, expertQuant: WeightDtype = quant, twoLevel?: boolean): Promise<{ bytes: number; listBytes: number; shards: number; experts: number; id: string; modelBytes: number }> {
  const p = PRESETS[preset];
  if (!p) throw new ConfigError(`unknown preset "${preset}"`);
  const plan = planModel(normaliseConfig(p.config, `preset ${preset}`), quant, Math.floor(shardMiB * 1024 * 1024), expertQuant);
  const hashes = plan.shards.map((_, i) => (i + 1).toString(16).padStart(64, '0'));
  const { manifest, blobs } = await splitLayerLists(manifestOfPlan(plan, `synth-${preset}-${quant}-seed0`, hashes, {}), twoLevel);
  const bytes = encodeManifest(manifest);
  const modelBytes = plan.shards.reduce((sum, s) => sum + s.size, 0);
  const listBytes = [...blobs.values()].reduce((sum, b) => sum + b.length, 0);
  return { bytes: bytes.length, listBytes, shards: plan.shards.length, experts: plan.experts.length, id: await blake3Hex(bytes), modelBytes };
}

/** The first `layers` layers of a preset: per-layer lists (gpt-oss's layer_types) are cut to match. */
function fewerLayers(config: Record<string, unknown>, layers: number): Record<string, unknown> {
  const types = config['layer_types'];
  return { num_hidden_layers: layers, ...(Array.isArray(types) ? { layer_types: types.slice(0, layers) } : {}) };
}
