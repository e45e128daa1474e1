/**
 * One entry point that opens a model from any source, under budgets, reporting progress (in the
 * spirit of WebLLM's `CreateMLCEngine(model, { initProgressCallback })`). The CLI, the benches, the
 * server and the browser app all open models through it, so source, tiered store, prefetcher and
 * backend are composed in one place.
 */
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import { blake3Hex, loadManifest, type Manifest } from '../manifests/index.ts';
import { ShardStore, shardMeta, type PersistentBackend, type PolicyName, type ShardSource } from '../storage/index.ts';
import { Engine } from './engine.ts';
import { EngineError, ModelLoadError } from './errors.ts';
import type { LayerObserver } from './forward.ts';
import type { ModelSource } from './source.ts';
import { backendUploader } from './stored-experts.ts';
import { TOKENIZER_FILES_READ } from './tokenizer.ts';

export interface ModelBudgets {
  /** GPU bytes for routed experts. Given: experts are paged through the store under it. Absent: all are uploaded at load. */
  vramBytes?: number;
  /** RAM tier bytes (default 256 MiB when paging; otherwise 0, so shards pass through on their way to the GPU). */
  ramBytes?: number;
  /** Persistent tier bytes (default: unlimited). */
  persistentBytes?: number;
}

/** Somewhere a model's encoded manifest can be read: a cache, an HTTP origin, the swarm. */
export interface ManifestPlace {
  readonly name: string;
  getManifest(): Promise<Uint8Array>;
  /** A local cache: a manifest read from any other place is handed to `keepManifest`. */
  readonly isCache?: boolean;
}

/** A shard source that also serves the manifest (an HTTP origin, a directory, a swarm peer). */
export type ManifestSource = ShardSource & { getManifest(): Promise<Uint8Array> };

export type LoadProgress =
  | { stage: 'manifest'; modelId: string; name: string; from: string; shards: number; bytes: number }
  /** One shard or blob the load needed; `from` is the remote source that served it, or 'local' (a tier of the store). */
  | { stage: 'shard'; kind: 'dense' | 'expert' | 'tokenizer'; hash: string; bytes: number; from: string; done: number; total: number; doneBytes: number; totalBytes: number }
  /** A warm-up forward pass compiles the backend's pipelines (with `warmup`). */
  | { stage: 'pipelines' }
  | { stage: 'ready'; loadMs: number };

export interface OpenModelOptions {
  backend: Backend;
  /** Where the manifest may be read, in order; the first that reads (and hashes to `modelId`, when given) wins. */
  manifestFrom: ManifestPlace[];
  /** Keeps manifest bytes read from a place that is not a cache (in the persistent cache, say). */
  keepManifest?: (bytes: Uint8Array) => Promise<void>;
  /** The model id (BLAKE3 of the encoded manifest) to insist on. */
  modelId?: string;
  /** Where shards no tier holds come from, tried in order. */
  sources: ShardSource[];
  /** The persistent tier: OPFS in a browser, a directory in Node. */
  persistent?: PersistentBackend;
  budgets?: ModelBudgets;
  /** With paging: MoE layers predicted and prefetched ahead (default 1; 0: off). */
  prefetchDepth?: number;
  policy?: PolicyName;
  observer?: LayerObserver;
  /** Run one throwaway token so the backend compiles its pipelines before the first request. */
  warmup?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: LoadProgress) => void;
}

export interface OpenedModel {
  engine: Engine;
  store: ShardStore<DeviceBytes>;
  /** Closes the store (and with it any pending persistent writes). */
  close(): Promise<void>;
}

const MIB = 2 ** 20;

/**
 * Opens a model: reads and checks the manifest, opens the tiered store under the budgets, loads
 * the engine through it.
 *
 * @example
 * const { engine, close } = await openModel({
 *   backend: createCpuBackend(),
 *   manifestFrom: [new HttpSource('https://example.org/models/tiny')],
 *   sources: [new HttpSource('https://example.org/models/tiny')],
 *   budgets: { vramBytes: 64 * 2 ** 20 },
 *   onProgress: (p) => console.log(p.stage),
 * });
 */
export async function openModel(opts: OpenModelOptions): Promise<OpenedModel> {
  const t0 = performance.now();
  const { manifest, id, from } = await resolveManifest(opts);
  const progress = opts.onProgress ?? (() => {});
  progress({ stage: 'manifest', modelId: id, name: manifest.name, from, shards: manifest.shards.length, bytes: manifest.totals.bytes });
  opts.signal?.throwIfAborted();

  const budgets = opts.budgets ?? {};
  const paged = budgets.vramBytes !== undefined;
  if (!paged && opts.prefetchDepth !== undefined) throw new EngineError('prefetchDepth applies to paged experts: give budgets.vramBytes too');
  const ramBytes = budgets.ramBytes ?? (paged ? 256 * MIB : 0);
  const vramBytes = budgets.vramBytes ?? manifest.totals.expertBytes;
  const servedBy = new Map<string, string>();
  const store = await ShardStore.open<DeviceBytes>({
    sources: opts.sources.map((s) => recordingSource(s, servedBy)),
    ramBytes,
    // resident experts are uploaded once by the engine; only paged ones live in the VRAM tier
    ...(paged ? { vram: { bytes: vramBytes, uploader: backendUploader(opts.backend) } } : {}),
    ...(opts.persistent ? { persistent: { backend: opts.persistent, bytes: budgets.persistentBytes ?? Number.MAX_SAFE_INTEGER } } : {}),
    meta: shardMeta(manifest),
    numLayers: manifest.config.numLayers,
    ...(opts.policy ? { policy: opts.policy } : {}),
  });
  try {
    const source = progressSource(manifest, id, store, paged, servedBy, progress, opts.signal);
    const engine = await Engine.load({
      backend: opts.backend,
      source,
      ...(paged ? { store, storeBudgets: { vramBytes, ramBytes }, prefetchDepth: opts.prefetchDepth ?? 1 } : {}),
      ...(opts.observer ? { observer: opts.observer } : {}),
    });
    opts.signal?.throwIfAborted();
    if (opts.warmup) {
      progress({ stage: 'pipelines' });
      await engine.warmup();
    }
    progress({ stage: 'ready', loadMs: performance.now() - t0 });
    return { engine, store, close: () => store.close() };
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}

async function resolveManifest(opts: OpenModelOptions): Promise<{ manifest: Manifest; id: string; from: string }> {
  const problems: string[] = [];
  for (const place of opts.manifestFrom) {
    opts.signal?.throwIfAborted();
    let bytes: Uint8Array;
    try {
      bytes = await place.getManifest();
    } catch (err) {
      problems.push(`${place.name}: ${(err as Error).message}`);
      continue;
    }
    const id = await blake3Hex(bytes);
    if (opts.modelId !== undefined && id !== opts.modelId) {
      problems.push(`${place.name}: manifest hashes to ${id}, not the model id`);
      continue;
    }
    const fetched = new Map<string, Uint8Array>();
    const manifest = await loadManifest(bytes, place.name, (hash) => fetchLayerList(opts, hash, fetched));
    // kept like the manifest, so the next load finds the lists without asking a source
    if (opts.persistent) for (const [hash, blob] of fetched) await opts.persistent.write(hash, blob);
    if (!place.isCache && opts.keepManifest) await opts.keepManifest(bytes);
    return { manifest, id, from: place.name };
  }
  const what = opts.modelId ?? 'the model';
  throw new ModelLoadError(`no manifest for ${what}${problems.length ? `:\n  ${problems.join('\n  ')}` : ' (no place to read it from was given)'}`);
}

/**
 * A two-level manifest's layer list, before any store exists (the store is sized from the
 * manifest): the persistent tier first, then each source in order. All lists are fetched at open,
 * because the store's metadata and the engine's expert index are built from every shard's hash.
 * loadManifest verifies what this returns; `fetched` collects what came from a source.
 */
async function fetchLayerList(opts: OpenModelOptions, hash: string, fetched: Map<string, Uint8Array>): Promise<Uint8Array> {
  const local = await opts.persistent?.read(hash).catch(() => null);
  if (local && (await blake3Hex(local)) === hash) return local;
  const problems: string[] = [];
  for (const s of opts.sources) {
    try {
      const bytes = await s.get(hash, opts.signal);
      const actual = await blake3Hex(bytes);
      if (actual !== hash) throw new ModelLoadError(`served bytes hashing to ${actual}`);
      fetched.set(hash, bytes);
      return bytes;
    } catch (err) {
      problems.push(`${s.name ?? 'source'}: ${(err as Error).message}`);
    }
  }
  throw new ModelLoadError(`no place holds it${problems.length ? ` (${problems.join('; ')})` : ''}`);
}

/** Notes which remote source served each hash, for progress reports. */
function recordingSource(s: ShardSource, servedBy: Map<string, string>): ShardSource {
  const name = s.name ?? 'source';
  return {
    name,
    get: async (hash, signal) => {
      const bytes = await s.get(hash, signal);
      servedBy.set(hash, name);
      return bytes;
    },
  };
}

/** The engine's view of the store, reporting each shard the load reads. */
function progressSource(m: Manifest, id: string, store: ShardStore<DeviceBytes>, paged: boolean, servedBy: Map<string, string>,
  progress: (p: LoadProgress) => void, signal: AbortSignal | undefined): ModelSource {
  const kinds = new Map<string, 'dense' | 'expert' | 'tokenizer'>();
  for (const s of m.shards) if (!paged || s.kind !== 'expert') kinds.set(s.hash, s.kind === 'expert' ? 'expert' : 'dense');
  for (const f of TOKENIZER_FILES_READ) if (m.tokenizer[f]) kinds.set(m.tokenizer[f], 'tokenizer');
  const sizes = new Map(m.shards.map((s) => [s.hash, s.size]));
  // tokenizer blob sizes are not in the manifest: the total counts them as they arrive
  let totalBytes = [...kinds.keys()].reduce((sum, h) => sum + (sizes.get(h) ?? 0), 0);
  let done = 0;
  let doneBytes = 0;
  return {
    manifest: m,
    id,
    shard: async (hash) => {
      signal?.throwIfAborted();
      const bytes = await store.get(hash, signal);
      const kind = kinds.get(hash);
      if (kind) {
        kinds.delete(hash);
        done++;
        doneBytes += bytes.byteLength;
        if (!sizes.has(hash)) totalBytes += bytes.byteLength;
        const from = servedBy.get(hash) ?? 'local';
        progress({ stage: 'shard', kind, hash, bytes: bytes.byteLength, from, done, total: done + kinds.size, doneBytes, totalBytes });
      }
      return bytes;
    },
  };
}
