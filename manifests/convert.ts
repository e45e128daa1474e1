import { readFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { normaliseConfig } from './config.ts';
import { CheckpointError, ConfigError } from './errors.ts';
import { sourceOf, type RowSource } from './hf-source.ts';
import { commitManifest, prepareModelDir, writeShards, type Progress } from './model-writer.ts';
import { manifestOfPlan, planModel } from './plan.ts';
import { Checkpoint } from './safetensors.ts';
import { storeBlob } from './shard-sink.ts';
import { encodeTensor } from './tensor-encoder.ts';
import type { Manifest, WeightDtype } from './types.ts';

export const DEFAULT_SHARD_MIB = 64;

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
  quant?: WeightDtype;
  shardMiB?: number;
  /** Manifest name; defaults to the source directory's name. */
  name?: string;
  onProgress?: (p: Progress) => void;
}

export interface ConvertResult {
  manifest: Manifest;
  id: string;
  manifestBytes: Uint8Array;
}

export async function convert(opts: ConvertOptions): Promise<ConvertResult> {
  const quant = opts.quant ?? 'f16';
  const shardBytes = Math.floor((opts.shardMiB ?? DEFAULT_SHARD_MIB) * 1024 * 1024);
  if (!(shardBytes > 0)) throw new ConfigError(`shard size must be positive, got ${opts.shardMiB} MiB`);
  const configPath = join(opts.source, 'config.json');
  let rawConfig: unknown;
  try {
    rawConfig = JSON.parse(await readFile(configPath, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${configPath}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : `not valid JSON (${(err as Error).message})`}`, { cause: err });
  }
  const config = normaliseConfig(rawConfig, configPath);
  const plan = planModel(config, quant, shardBytes);
  const ckpt = await Checkpoint.open(opts.source);
  try {
    // Resolve every source before writing anything, so a missing or misshapen tensor fails fast and leaves the output alone.
    const sources = new Map<string, RowSource>();
    for (const t of plan.tensors) sources.set(t.spec.name, sourceOf(ckpt, config.architecture, t.spec, opts.source));
    const tokenizerBytes = new Map<string, Uint8Array>();
    for (const f of TOKENIZER_FILES) {
      try {
        tokenizerBytes.set(f, await readFile(join(opts.source, f)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new CheckpointError(`${join(opts.source, f)}: unreadable (${(err as Error).message})`, { cause: err });
      }
    }
    const shardsDir = await prepareModelDir(opts.out);
    const hashes = await writeShards(plan, shardsDir, (sink, t) => encodeTensor(sink, t, sources.get(t.spec.name)!), opts.onProgress);
    const tokenizer: Record<string, string> = {};
    for (const [f, bytes] of tokenizerBytes) tokenizer[f] = await storeBlob(shardsDir, bytes);
    const manifest = manifestOfPlan(plan, opts.name ?? basename(resolve(opts.source)), hashes, tokenizer);
    const { id, manifestBytes } = await commitManifest(opts.out, manifest);
    return { manifest, id, manifestBytes };
  } finally {
    await ckpt.close();
  }
}
