/**
 * How `generate` (and friends) find a model: a converted directory, an HTTP origin, a directory
 * or the swarm as the source, an optional persistent cache directory that makes restarts local,
 * and budgets for the tiered store.
 */
import { stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { LoadProgress, ManifestSource, OpenedModel } from '../engine/index.ts';
import { openModelAt } from '../engine/node.ts';
import { isHash } from '../manifests/index.ts';
import type { PersistentBackend } from '../storage/index.ts';
import { DirBackend } from '../storage/node.ts';
import { DurableShardStorage, type SwarmPeer } from '../swarm/index.ts';
import { UsageError, intFlag, numFlag, numberOption } from './command.ts';
import { createBackend } from './engine-setup.ts';

export const storeOptions = {
  'vram-mib': numFlag(0),
  'ram-mib': numFlag(0),
  'cache-dir': { type: 'string' },
  'cache-mib': numFlag(0),
  source: { type: 'string' },
  signal: { type: 'string', multiple: true },
  'prefetch-depth': intFlag(0, 1024),
} as const;

export const STORE_HELP = `storage:
  --vram-mib N           page routed experts through the tiered store under this GPU budget
                         (dense weights stay resident besides); without it all experts load at once
  --ram-mib N            RAM tier budget (default 256 when paging, else 0)
  --cache-dir D          persistent tier: verified shards (and the manifest) kept in D across runs
  --cache-mib N          persistent tier budget (default: unlimited)
  --source S             where missing shards come from: an http(s) URL of a model directory, a
                         directory, or "swarm" (with --signal MULTIADDR); <model> may then be the model id;
                         without --cache-dir, swarm shards are kept in $XDG_CACHE_HOME/doppler/<id> (~/.cache)
  --prefetch-depth N     with --vram-mib: MoE layers predicted ahead (default 1; 0 turns prefetch off)`;

interface StoreValues {
  'vram-mib'?: string;
  'ram-mib'?: string;
  'cache-dir'?: string;
  'cache-mib'?: string;
  source?: string;
  signal?: string[];
  'prefetch-depth'?: string;
}

const MIB = 2 ** 20;

/** The one model a command takes: a directory, or a model id with --source. */
export function oneModel(positionals: readonly string[]): string {
  if (positionals.length !== 1) throw new UsageError('expected exactly one model (a directory, or a model id with --source)');
  return positionals[0]!;
}

/**
 * Opens <model> the way the storage flags say, through the engine's one entry point: all experts
 * resident unless --vram-mib pages them; shards from the model directory, --source, or the swarm.
 */
export async function openCliModel(model: string, backendName: string, v: StoreValues, onProgress?: (p: LoadProgress) => void): Promise<OpenedModel> {
  const backend = await createBackend(backendName);
  const closers: Array<() => Promise<void>> = [];
  try {
    const shared: { persistent?: PersistentBackend } = {};
    const source = await remoteSource(model, v, closers, shared);
    const vram = numberOption(v['vram-mib'], '--vram-mib');
    const ram = numberOption(v['ram-mib'], '--ram-mib');
    const cache = numberOption(v['cache-mib'], '--cache-mib');
    const depth = numberOption(v['prefetch-depth'], '--prefetch-depth');
    if (depth !== undefined && vram === undefined) throw new UsageError('--prefetch-depth applies to paged experts: give --vram-mib too');
    const opened = await openModelAt({
      model,
      backend,
      ...(source ? { source } : {}),
      ...(v['cache-dir'] ? { cacheDir: v['cache-dir'] } : {}),
      ...(shared.persistent ? { persistent: shared.persistent } : {}),
      budgets: {
        ...(vram !== undefined ? { vramBytes: vram * MIB } : {}),
        ...(ram !== undefined ? { ramBytes: ram * MIB } : {}),
        ...(cache !== undefined ? { persistentBytes: cache * MIB } : {}),
      },
      ...(depth !== undefined ? { prefetchDepth: depth } : {}),
      ...(onProgress ? { onProgress } : {}),
    });
    closers.push(opened.close);
    return { ...opened, close: async () => { for (const c of closers.reverse()) await c(); } };
  } catch (err) {
    for (const c of closers.reverse()) await c().catch(() => undefined);
    throw err;
  }
}

/** --source as given; the swarm needs a peer, which the CLI (not the engine) starts. */
async function remoteSource(model: string, v: StoreValues, closers: Array<() => Promise<void>>, shared: { persistent?: PersistentBackend }): Promise<string | ManifestSource | undefined> {
  const s = v.source;
  if (s === undefined) return undefined;
  if (s !== 'swarm') {
    if (!/^https?:\/\//i.test(s)) {
      const st = await stat(s).catch(() => null);
      if (!st?.isDirectory()) throw new UsageError(`--source ${s}: ${st ? 'not a directory' : 'no such directory'} (give a model directory, an http(s) URL, or "swarm")`);
    }
    return s;
  }
  if (!v.signal?.length) throw new UsageError('--source swarm needs --signal MULTIADDR');
  if (!isHash(model)) throw new UsageError('with --source swarm, <model> is the model id (64 hex digits)');
  const { checkSignalAddr } = await import('./commands/swarm-options.ts');
  for (const addr of v.signal) checkSignalAddr(addr);
  const { startNodePeer } = await import('../swarm/node.ts');
  const cacheDir = v['cache-dir'] ?? userCacheDir(model);
  // One store on disk: the peer serves the cache directory the engine's persistent tier fills, and
  // keeps nothing itself, so a shard is fetched and written once.
  const storage = await DurableShardStorage.open(await DirBackend.open(cacheDir));
  const peer: SwarmPeer = await startNodePeer({ signal: v.signal, dir: cacheDir, storage, modelId: model, keepFetched: false });
  shared.persistent = storage.shared();
  closers.push(() => peer.stop());
  return { name: 'swarm', get: (h, signal) => peer.get(h, signal), getManifest: async () => {
    await peer.getManifest();
    return peer.manifestBytes()!;
  } };
}

/**
 * Where `--source swarm` keeps what it fetches when no --cache-dir is given: the user's cache
 * directory ($XDG_CACHE_HOME, else ~/.cache) under doppler/<model id>, never the working directory.
 */
export function userCacheDir(modelId: string): string {
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, 'doppler', modelId);
}
