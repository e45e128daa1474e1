/** Node-only parts of storage: a directory as the persistent tier, and a model directory as a source. */
import { mkdir, readdir, rename, stat, unlink, open } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MODEL_FILES, isHash, type Manifest } from '../manifests/index.ts';
import { readRegularFile } from '../manifests/node.ts';
import { SourceError, StorageError } from './errors.ts';
import { HttpSource } from './http.ts';
import { shardMeta } from './meta.ts';
import type { PolicyName } from './policy.ts';
import { ShardStore, type ShardStoreOptions } from './store.ts';
import type { DeviceUploader, PersistentBackend, ShardSource } from './types.ts';

const TMP_PREFIX = '.tmp-';

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The persistent tier in Node: `<dir>/shards/<hash>`, the same layout as a model directory.
 * Writes go to a temporary file that is fsynced and renamed into place.
 */
export class DirBackend implements PersistentBackend {
  readonly name: string;
  private readonly shards: string;

  private constructor(dir: string) {
    this.name = dir;
    this.shards = join(dir, MODEL_FILES.shards);
  }

  static async open(dir: string): Promise<DirBackend> {
    const b = new DirBackend(dir);
    try {
      await mkdir(b.shards, { recursive: true });
    } catch (err) {
      throw new StorageError(`cannot create the cache directory ${b.shards}`, { cause: err });
    }
    return b;
  }

  async list(): Promise<{ hash: string; size: number }[]> {
    const out: { hash: string; size: number }[] = [];
    for (const name of await readdir(this.shards)) {
      const path = join(this.shards, name);
      if (name.startsWith(TMP_PREFIX)) {
        // left by a write that never finished: never visible under a shard name
        await unlink(path).catch(() => undefined);
        continue;
      }
      if (!isHash(name)) continue;
      try {
        const s = await stat(path);
        if (s.isFile()) out.push({ hash: name, size: s.size });
      } catch (err) {
        if (code(err) !== 'ENOENT') throw err;
      }
    }
    return out;
  }

  async read(hash: string): Promise<Uint8Array | null> {
    if (!isHash(hash)) throw new StorageError(`"${hash}" is not a shard hash`);
    try {
      return await readRegularFile(join(this.shards, hash));
    } catch (err) {
      if (code(err) === 'ENOENT') return null;
      throw new StorageError(`${this.shards}: reading shard ${hash} failed`, { cause: err });
    }
  }

  async write(hash: string, bytes: Uint8Array): Promise<void> {
    if (!isHash(hash)) throw new StorageError(`refusing to write "${hash}": not a shard hash`);
    const tmp = join(this.shards, `${TMP_PREFIX}${hash}-${randomBytes(6).toString('hex')}`);
    try {
      const fh = await open(tmp, 'wx');
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, join(this.shards, hash));
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw new StorageError(`${this.shards}: writing shard ${hash} failed`, { cause: err });
    }
  }

  async delete(hash: string): Promise<void> {
    if (!isHash(hash)) return;
    await unlink(join(this.shards, hash)).catch((err: unknown) => {
      if (code(err) !== 'ENOENT') throw err;
    });
  }
}

/** A converted model directory as a shard source (bytes are verified by the store, not here). */
export class DirSource implements ShardSource {
  readonly name: string;
  private readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    this.name = `dir:${dir}`;
  }

  async get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (!isHash(hash)) throw new StorageError(`"${hash}" is not a shard hash`);
    const path = join(this.dir, MODEL_FILES.shards, hash);
    try {
      return await readRegularFile(path, signal);
    } catch (err) {
      if (code(err) === 'ABORT_ERR') throw err;
      throw new SourceError(`${path}: ${code(err) === 'ENOENT' ? 'no such shard file' : (err as Error).message}`, { cause: err });
    }
  }

  /** The encoded manifest (decode and check it with manifests' decodeManifest). */
  async getManifest(): Promise<Uint8Array> {
    const path = join(this.dir, MODEL_FILES.manifest);
    try {
      return await readRegularFile(path);
    } catch (err) {
      throw new SourceError(`${path}: ${(err as Error).message}`, { cause: err });
    }
  }
}

/** `--source` as the CLI takes it: an http(s) URL of a served model directory, or a local model directory. */
export function sourceFromSpec(spec: string): HttpSource | DirSource {
  return /^https?:\/\//i.test(spec) ? new HttpSource(spec) : new DirSource(spec);
}

export interface NodeStoreOptions<H> {
  /** Where shards come from when no tier holds them (URLs or model directories, tried in order). */
  sources: (string | ShardSource)[];
  ramBytes: number;
  vram?: { bytes: number; uploader: DeviceUploader<H> };
  /** A directory for the persistent tier (created if missing) and its byte budget. */
  cacheDir?: string;
  cacheBytes?: number;
  /** The model's manifest: shard sizes and expert layers for the eviction policy. */
  manifest?: Manifest;
  policy?: PolicyName;
}

/** A ShardStore wired the way `doppler generate --vram-mib --ram-mib --cache-dir --source` describes. */
export async function openNodeStore<H>(opts: NodeStoreOptions<H>): Promise<ShardStore<H>> {
  const store: ShardStoreOptions<H> = {
    sources: opts.sources.map((s) => (typeof s === 'string' ? sourceFromSpec(s) : s)),
    ramBytes: opts.ramBytes,
  };
  if (opts.vram) store.vram = opts.vram;
  if (opts.cacheDir !== undefined) {
    store.persistent = { backend: await DirBackend.open(opts.cacheDir), bytes: opts.cacheBytes ?? Number.MAX_SAFE_INTEGER };
  }
  if (opts.manifest) {
    store.meta = shardMeta(opts.manifest);
    store.numLayers = opts.manifest.config.numLayers;
  }
  if (opts.policy) store.policy = opts.policy;
  return ShardStore.open(store);
}
