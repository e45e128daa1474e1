/** Node-only side of the swarm: TCP + WebSockets libp2p nodes, shards on disk, model directories. */
import { createLibp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { webSockets } from '@libp2p/websockets';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { swarmPubsub } from './gossip.ts';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import { mkdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MODEL_FILES, blake3Hex } from '../manifests/index.ts';
import { readRegularFile } from '../manifests/node.ts';
import { FsShardStorage } from './fs-storage.ts';
import { SwarmPeer, type SwarmPeerOptions } from './peer.ts';
import type { ShardStorage } from './storage.ts';
import { SwarmError, SwarmIntegrityError } from './errors.ts';
import { shardListOf } from './model.ts';

export { FsShardStorage } from './fs-storage.ts';
export { loadOrCreateKey } from './key-file.ts';

export interface NodeLibp2pOptions {
  /** Listen addresses; default TCP and WebSockets on 127.0.0.1 with OS-chosen ports. */
  listen?: string[];
  privateKey?: PrivateKey;
}

/** A Node libp2p node as swarm peers use it: TCP + WebSockets, noise, yamux, identify, ping, gossipsub (shard-map announcements). */
export async function createNodeLibp2p(opts: NodeLibp2pOptions = {}): Promise<Libp2p> {
  return createLibp2p({
    ...(opts.privateKey ? { privateKey: opts.privateKey } : {}),
    addresses: { listen: opts.listen ?? ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws'] },
    transports: [tcp(), webSockets()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping(), pubsub: swarmPubsub() },
  });
}

export type NodePeerOptions = Omit<SwarmPeerOptions, 'node' | 'storage' | 'modelId'> & NodeLibp2pOptions & {
  /** Re-hash shard files already in `dir` before serving or counting them (default true; a seeder that just verified skips it). */
  verifyExisting?: boolean;
  /** Model id; read from `<dir>/manifest.msgpack` when omitted and the directory has one. */
  modelId?: string;
  /** Model directory whose shards/ this peer serves and fills (created if absent). */
  dir: string;
  /** Keep shards here instead of `<dir>/shards` (a store shared with the engine's persistent tier). */
  storage?: ShardStorage;
};

/**
 * A swarm peer whose shards live in a model directory. A directory that already holds
 * manifest.msgpack (a converted model, or an earlier fetch) is served as it is, and none of its
 * shards are dropped as surplus replicas unless `evict` is set.
 */
export async function startNodePeer(opts: NodePeerOptions): Promise<SwarmPeer> {
  const storage = opts.storage ?? await FsShardStorage.open(opts.dir, { verify: opts.verifyExisting ?? true });
  if (storage instanceof FsShardStorage) for (const r of storage.refused) opts.log?.(`not using ${r.hash.slice(0, 12)}: ${r.reason}`);
  let onDisk: Uint8Array | undefined;
  try {
    onDisk = await readRegularFile(join(opts.dir, MODEL_FILES.manifest));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const manifestBytes = opts.manifestBytes ?? onDisk;
  const modelId = opts.modelId ?? (manifestBytes ? await blake3Hex(manifestBytes) : undefined);
  if (!modelId) throw new SwarmError(`${opts.dir} has no ${MODEL_FILES.manifest}: give the model id`);
  const { listen, privateKey, dir: _dir, verifyExisting: _verify, storage: _storage, ...rest } = opts;
  const node = await createNodeLibp2p({ ...(listen ? { listen } : {}), ...(privateKey ? { privateKey } : {}) });
  try {
    // A directory with a manifest is a model someone converted or fetched: never drop its shards unasked.
    const evict = opts.evict ?? onDisk === undefined;
    return await SwarmPeer.start({ ...rest, ...(manifestBytes ? { manifestBytes } : {}), node, storage, modelId, evict });
  } catch (err) {
    await node.stop();
    throw err;
  }
}

/** Writes manifest.msgpack and manifest.json into `dir` (the layout `doppler convert` writes). */
export async function writeManifestFiles(dir: string, peer: SwarmPeer, signal?: AbortSignal): Promise<void> {
  const manifest = await peer.getManifest(signal);
  const bytes = peer.manifestBytes()!;
  await mkdir(dir, { recursive: true });
  // The same two files, in the same order and JSON shape, that the converter commits.
  for (const [name, data] of [[MODEL_FILES.manifest, bytes], [MODEL_FILES.json, JSON.stringify({ id: peer.modelId, ...manifest }, null, 1)]] as const) {
    const tmp = join(dir, `${name}.tmp-${process.pid}`);
    await writeFile(tmp, data);
    await rename(tmp, join(dir, name));
  }
}

/**
 * Downloads a whole model into `dir` through a swarm peer whose storage is that directory: every
 * shard and tokenizer blob verified, then the manifest, written last so that a directory with a
 * manifest is always complete.
 */
export async function fetchModel(peer: SwarmPeer, dir: string, opts: { concurrency?: number; signal?: AbortSignal; onShard?: (done: number, total: number) => void } = {}): Promise<void> {
  await peer.fetchAll(opts);
  // the manifest marks a complete model: never write it over a set with a gap or a wrong-sized file
  const manifest = await peer.getManifest(opts.signal);
  const bad: string[] = [];
  for (const s of shardListOf(manifest)) {
    const st = await stat(join(dir, MODEL_FILES.shards, s.hash)).catch(() => null);
    if (!st?.isFile() || (s.size > 0 && st.size !== s.size)) bad.push(s.hash);
  }
  if (bad.length > 0) throw new SwarmIntegrityError(`${dir}: ${bad.length} shard file(s) missing or of the wrong size after the fetch (first: ${bad[0]}); the manifest was not written`);
  await writeManifestFiles(dir, peer, opts.signal);
}
