/** Node-only ways to feed the engine. */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL_FILES, isHash } from '../manifests/index.ts';
import { readModelDir, readRegularFile, readShardFile } from '../manifests/node.ts';
import type { ShardSource } from '../storage/index.ts';
import { DirBackend, DirSource, sourceFromSpec } from '../storage/node.ts';
import { ModelLoadError } from './errors.ts';
import { openModel, type ManifestPlace, type ManifestSource, type OpenModelOptions, type OpenedModel } from './open.ts';
import type { ModelSource } from './source.ts';

/** A converted model directory on disk; every shard is verified against its name as it is read. */
export async function modelDirSource(dir: string): Promise<ModelSource> {
  const { manifest, id } = await readModelDir(dir);
  return { manifest, id, shard: (hash) => readShardFile(dir, hash) };
}

export interface OpenModelAtOptions extends Omit<OpenModelOptions, 'manifestFrom' | 'keepManifest' | 'modelId' | 'sources' | 'persistent'> {
  /** A converted model directory, or a model id (64 hex digits) when `source` or `cacheDir` can supply it. */
  model: string;
  /**
   * Where missing shards (and the manifest) come from: an http(s) URL or a directory of a served
   * model, or a source the caller built (a swarm peer). Default: the model directory itself.
   */
  source?: string | ManifestSource;
  /** The persistent tier: verified shards and the manifest kept in this directory across runs. */
  cacheDir?: string;
  /** With cacheDir: that directory's shard store as the caller already opened it (a swarm peer serving it too). */
  persistent?: OpenModelOptions['persistent'];
}

/**
 * `openModel` from the places a Node caller names: a model directory, a URL, a directory or a
 * swarm source, with an optional cache directory. The manifest is read from the model directory,
 * then the cache directory, then the source, and kept in the cache directory.
 *
 * @example
 * const { engine, close } = await openModelAt({ model: 'models/tiny-moe-text-q8_0', backend: createCpuBackend() });
 * for await (const t of engine.generate(engine.encode('In the beginning'), { maxNewTokens: 8 })) process.stdout.write(t.text);
 * await close();
 */
export async function openModelAt(opts: OpenModelAtOptions): Promise<OpenedModel> {
  const { model, source, cacheDir, ...rest } = opts;
  const byId = isHash(model);
  const remote: ManifestSource | null = typeof source === 'string' ? sourceFromSpec(source)
    : source ?? (!byId && existsSync(join(model, MODEL_FILES.manifest)) ? new DirSource(model) : null);
  const manifestFrom: ManifestPlace[] = [];
  if (!byId) manifestFrom.push(fileManifest(join(model, MODEL_FILES.manifest), false));
  if (cacheDir) manifestFrom.push(fileManifest(join(cacheDir, MODEL_FILES.manifest), true));
  if (remote && source !== undefined) manifestFrom.push({ name: remote.name ?? 'the source', getManifest: () => remote.getManifest() });
  if (manifestFrom.length === 0) throw new ModelLoadError(`no manifest for "${model}": give a model directory, a source or a cache directory`);
  return openModel({
    ...rest,
    manifestFrom,
    ...(byId ? { modelId: model } : {}),
    ...(cacheDir ? { keepManifest: (bytes) => keepManifest(cacheDir, bytes), persistent: rest.persistent ?? await DirBackend.open(cacheDir) } : {}),
    sources: remote ? [remote as ShardSource] : [],
  });
}

function fileManifest(path: string, isCache: boolean): ManifestPlace {
  return { name: path, isCache, getManifest: () => readRegularFile(path) };
}

async function keepManifest(dir: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.tmp-${MODEL_FILES.manifest}-${process.pid}`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(dir, MODEL_FILES.manifest));
}
