/**
 * How `generate` (and friends) find a model: a converted directory read whole, or — with any
 * storage flag — a tiered shard store over a remote source (HTTP origin, directory, or the
 * swarm), with an optional persistent cache directory that makes restarts local.
 */
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, ModelLoadError, backendUploader, type ModelSource } from '../engine/index.ts';
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import { MODEL_FILES, blake3Hex, decodeManifest, isHash, type Manifest } from '../manifests/index.ts';
import { readRegularFile } from '../manifests/node.ts';
import type { ShardStore, ShardSource } from '../storage/index.ts';
import { DirSource, openNodeStore, sourceFromSpec } from '../storage/node.ts';
import { UsageError, intFlag, numFlag, numberOption } from './command.ts';
import { createBackend, openEngine } from './engine-setup.ts';

export const storeOptions = {
  'vram-mib': numFlag(0),
  'ram-mib': numFlag(0),
  'cache-dir': { type: 'string' },
  'cache-mib': numFlag(0),
  source: { type: 'string' },
  signal: { type: 'string', multiple: true },
  'prefetch-depth': intFlag(0, 1024),
} as const;

export const STORE_HELP = `storage (any of these pages experts through the tiered store instead of loading them all):
  --vram-mib N           GPU budget for routed experts (dense weights stay resident besides)
  --ram-mib N            RAM tier budget (default 256)
  --cache-dir D          persistent tier: verified shards (and the manifest) kept in D across runs
  --cache-mib N          persistent tier budget (default: unlimited)
  --source S             where missing shards come from: an http(s) URL of a model directory, a
                         directory, or "swarm" (with --signal MULTIADDR); <model> may then be the model id;
                         without --cache-dir, swarm shards are kept in $XDG_CACHE_HOME/doppler/<id> (~/.cache)
  --prefetch-depth N     MoE layers predicted ahead (default 1; 0 turns prefetch off)`;

interface StoreValues {
  'vram-mib'?: string;
  'ram-mib'?: string;
  'cache-dir'?: string;
  'cache-mib'?: string;
  source?: string;
  signal?: string[];
  'prefetch-depth'?: string;
}

export interface OpenedModel {
  engine: Engine;
  close(): Promise<void>;
}

const MIB = 2 ** 20;

export async function openModel(model: string, backendName: string, v: StoreValues): Promise<OpenedModel> {
  const paged = v['vram-mib'] !== undefined || v['ram-mib'] !== undefined || v['cache-dir'] !== undefined || v.source !== undefined;
  if (!paged) return { engine: await openEngine(model, backendName), close: async () => {} };
  const backend = await createBackend(backendName);
  const closers: Array<() => Promise<void>> = [];
  try {
    const remote = await remoteSource(model, v, closers);
    const { manifest, id } = await resolveManifest(model, v['cache-dir'], remote);
    const store = await openStore(manifest, backend, v, remote);
    closers.push(() => store.close());
    const source: ModelSource = { manifest, id, shard: (hash) => store.get(hash) };
    const depth = numberOption(v['prefetch-depth'], '--prefetch-depth') ?? 1;
    const engine = await Engine.load({ backend, source, store, prefetchDepth: depth });
    return { engine, close: async () => { for (const c of closers.reverse()) await c(); } };
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

type Remote = (ShardSource & { getManifest(): Promise<Uint8Array> }) | null;

async function remoteSource(model: string, v: StoreValues, closers: Array<() => Promise<void>>): Promise<Remote> {
  const s = v.source;
  if (s === undefined) return existsSync(join(model, MODEL_FILES.manifest)) ? new DirSource(model) : null;
  if (s === 'swarm') {
    if (!v.signal?.length) throw new UsageError('--source swarm needs --signal MULTIADDR');
    if (!isHash(model)) throw new UsageError('with --source swarm, <model> is the model id (64 hex digits)');
    const { checkSignalAddr } = await import('./commands/swarm-options.ts');
    for (const s of v.signal) checkSignalAddr(s);
    const { startNodePeer } = await import('../swarm/node.ts');
    const dir = join(v['cache-dir'] ?? userCacheDir(model), 'swarm');
    const peer = await startNodePeer({ signal: v.signal, dir, modelId: model });
    closers.push(() => peer.stop());
    return { name: 'swarm', get: (h, signal) => peer.get(h, signal), getManifest: async () => {
      await peer.getManifest();
      return peer.manifestBytes()!;
    } };
  }
  if (!/^https?:\/\//i.test(s)) {
    const st = await stat(s).catch(() => null);
    if (!st?.isDirectory()) throw new UsageError(`--source ${s}: ${st ? 'not a directory' : 'no such directory'} (give a model directory, an http(s) URL, or "swarm")`);
  }
  return sourceFromSpec(s);
}

/**
 * Where `--source swarm` keeps what it fetches when no --cache-dir is given: the user's cache
 * directory ($XDG_CACHE_HOME, else ~/.cache) under doppler/<model id>, never the working directory.
 */
export function userCacheDir(modelId: string): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'doppler', modelId);
}

/**
 * The manifest from the model directory, the cache directory, or the remote source — in that
 * order — checked against the model id when <model> is one, and kept in the cache directory.
 */
async function resolveManifest(model: string, cacheDir: string | undefined, remote: Remote): Promise<{ manifest: Manifest; id: string }> {
  const wanted = isHash(model) ? model : null;
  const candidates: Array<{ where: string; read: () => Promise<Uint8Array> }> = [];
  if (!wanted) candidates.push({ where: join(model, MODEL_FILES.manifest), read: () => readRegularFile(join(model, MODEL_FILES.manifest)) });
  if (cacheDir) candidates.push({ where: join(cacheDir, MODEL_FILES.manifest), read: () => readRegularFile(join(cacheDir, MODEL_FILES.manifest)) });
  if (remote) candidates.push({ where: remote.name ?? 'the source', read: () => remote.getManifest() });
  const problems: string[] = [];
  for (const c of candidates) {
    let bytes: Uint8Array;
    try {
      bytes = await c.read();
    } catch (err) {
      problems.push(`${c.where}: ${(err as Error).message}`);
      continue;
    }
    const id = await blake3Hex(bytes);
    if (wanted && id !== wanted) {
      problems.push(`${c.where}: manifest hashes to ${id}, not the model id`);
      continue;
    }
    const manifest = decodeManifest(bytes, c.where);
    if (cacheDir && c.where !== join(cacheDir, MODEL_FILES.manifest)) await keepManifest(cacheDir, bytes);
    return { manifest, id };
  }
  throw new ModelLoadError(`no manifest for "${model}"${problems.length ? `:\n  ${problems.join('\n  ')}` : ' (give a model directory, or --source)'}`);
}

async function keepManifest(dir: string, bytes: Uint8Array): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.tmp-${MODEL_FILES.manifest}-${process.pid}`);
  await writeFile(tmp, bytes);
  await rename(tmp, join(dir, MODEL_FILES.manifest));
}

async function openStore(m: Manifest, backend: Backend, v: StoreValues, remote: Remote): Promise<ShardStore<DeviceBytes>> {
  const vramMiB = numberOption(v['vram-mib'], '--vram-mib');
  const cacheMiB = numberOption(v['cache-mib'], '--cache-mib');
  return openNodeStore<DeviceBytes>({
    sources: remote ? [remote] : [],
    ramBytes: (numberOption(v['ram-mib'], '--ram-mib') ?? 256) * MIB,
    vram: { bytes: vramMiB === undefined ? m.totals.expertBytes : vramMiB * MIB, uploader: backendUploader(backend) },
    ...(v['cache-dir'] ? { cacheDir: v['cache-dir'] } : {}),
    ...(cacheMiB !== undefined ? { cacheBytes: cacheMiB * MIB } : {}),
    manifest: m,
  });
}
