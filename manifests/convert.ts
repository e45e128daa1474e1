import { availableParallelism } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { normaliseConfig } from './config.ts';
import { CheckpointError, ConfigError } from './errors.ts';
import { refuseUnhonoured, sourceOf, type RowSource } from './hf-source.ts';
import { commitManifest, prepareModelDir, writeShards, type Progress } from './model-writer.ts';
import { manifestOfPlan, planModel, type ModelPlan } from './plan.ts';
import { Checkpoint } from './safetensors.ts';
import { storeBlob } from './shard-sink.ts';
import { splitLayerLists } from './layer-lists.ts';
import { readRegularFile } from './regular-file.ts';
import { runShardWorkers } from './shard-workers.ts';
import { encodeTensor } from './tensor-encoder.ts';
import { describeSourceQuantization, sourceQuantization } from './source-quant.ts';
import type { Manifest, SourceInfo, WeightDtype } from './types.ts';

export const DEFAULT_SHARD_MIB = 64;
const PARALLEL_MIN_BYTES = 256 * 1024 * 1024;

/** Files copied as tokenizer blobs when the source has them. */
export const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'tokenizer.model',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
  'chat_template.jinja',
  'generation_config.json',
];

export interface ConvertOptions {
  /** Hugging Face model directory. */
  source: string;
  /** RDRR model directory to write (created if needed; an existing complete model in it stays intact until the new manifest replaces it). */
  out: string;
  /** Storage of the large matrices (default f16). */
  quant?: WeightDtype;
  /** Storage of the routed experts' matrices (default: `quant`); e.g. mxfp4 keeps gpt-oss's experts as released. */
  expertQuant?: WeightDtype;
  shardMiB?: number;
  /** Manifest name; defaults to the source directory's name. */
  name?: string;
  /** Worker threads encoding shards in parallel (default: 1 below 256 MB of output, else all cores). */
  workers?: number;
  onProgress?: (p: Progress) => void;
}

export interface ConvertResult {
  manifest: Manifest;
  id: string;
  manifestBytes: Uint8Array;
}

/** What the encoding threads need to rebuild the same sources and plan. */
export interface SourceJob {
  source: string;
  quant: WeightDtype;
  expertQuant: WeightDtype;
  shardBytes: number;
}

/** Config, plan and a row source for every planned tensor; fails (naming the file) before anything is written. */
export async function openSources(job: SourceJob): Promise<{ plan: ModelPlan; sources: Map<string, RowSource>; ckpt: Checkpoint; sourceInfo: SourceInfo }> {
  const configPath = join(job.source, 'config.json');
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(new TextDecoder().decode(await readRegularFile(configPath)));
  } catch (err) {
    throw new ConfigError(`${configPath}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : err instanceof SyntaxError ? `not valid JSON (${err.message})` : (err as Error).message}`, { cause: err });
  }
  const config = normaliseConfig(rawConfig, configPath);
  const sourceQuant = sourceQuantization(rawConfig, configPath);
  const plan = planModel(config, job.quant, job.shardBytes, job.expertQuant);
  const ckpt = await Checkpoint.open(job.source);
  try {
    refuseUnhonoured(ckpt, config.architecture);
    const sources = new Map<string, RowSource>();
    for (const t of plan.tensors) sources.set(t.spec.name, sourceOf(ckpt, config.architecture, t.spec, job.source, sourceQuant));
    const dtypes = [...new Set([...sources.values()].map((s) => s.sourceDtype))].sort();
    return { plan, sources, ckpt, sourceInfo: { dtypes, quantization: describeSourceQuantization(sourceQuant) } };
  } catch (err) {
    await ckpt.close();
    throw err;
  }
}

export async function convert(opts: ConvertOptions): Promise<ConvertResult> {
  const quant = opts.quant ?? 'f16';
  const shardBytes = Math.floor((opts.shardMiB ?? DEFAULT_SHARD_MIB) * 1024 * 1024);
  if (!(shardBytes > 0)) throw new ConfigError(`shard size must be positive, got ${opts.shardMiB} MiB`);
  const job: SourceJob = { source: opts.source, quant, expertQuant: opts.expertQuant ?? quant, shardBytes };
  const { plan, sources, ckpt, sourceInfo } = await openSources(job);
  try {
    const tokenizerBytes = new Map<string, Uint8Array>();
    for (const f of TOKENIZER_FILES) {
      try {
        tokenizerBytes.set(f, await readRegularFile(join(opts.source, f)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError(`${join(opts.source, f)}: unreadable (${(err as Error).message})`, { cause: err });
      }
    }
    const shardsDir = await prepareModelDir(opts.out);
    const sizes = plan.shards.map((s) => s.size);
    const total = sizes.reduce((a, b) => a + b, 0);
    // Worker start-up costs more than it saves on small models.
    const workers = Math.max(1, Math.min(opts.workers ?? (total < PARALLEL_MIN_BYTES ? 1 : availableParallelism()), plan.shards.length));
    const hashes =
      workers === 1
        ? await writeShards(plan, shardsDir, (sink, t) => encodeTensor(sink, t, sources.get(t.spec.name)!), opts.onProgress)
        : await runShardWorkers(new URL('./convert-worker.ts', import.meta.url), { ...job, shardsDir }, sizes, workers, opts.onProgress);
    const tokenizer: Record<string, string> = {};
    for (const [f, bytes] of tokenizerBytes) tokenizer[f] = await storeBlob(shardsDir, bytes);
    const { manifest, blobs } = await splitLayerLists(manifestOfPlan(plan, opts.name ?? basename(resolve(opts.source)), hashes, tokenizer, sourceInfo));
    const { id, manifestBytes } = await commitManifest(opts.out, manifest, blobs);
    return { manifest, id, manifestBytes };
  } finally {
    await ckpt.close();
  }
}
