import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { FsShardStorage, createNodeLibp2p, startNodePeer } from '../../swarm/node.ts';
import { MemoryShardStorage, SwarmPeer, type ShardStorage } from '../../swarm/index.ts';
import { blake3Hex } from '../../manifests/index.ts';
import { Cleanup, makeModel, waitFor } from './swarm-helpers.ts';

/** Serves the model's real shards with one byte of every answer flipped. */
class CorruptStorage implements ShardStorage {
  private readonly inner: FsShardStorage;
  constructor(inner: FsShardStorage) {
    this.inner = inner;
  }
  has(h: string) { return this.inner.has(h); }
  sizeOf(h: string) { return this.inner.sizeOf(h); }
  async read(h: string, offset: number, length: number) {
    const b = await this.inner.read(h, offset, length);
    b[0] = b[0]! ^ 0xff;
    return b;
  }
  write(h: string, b: Uint8Array) { return this.inner.write(h, b); }
  delete(h: string) { return this.inner.delete(h); }
  list() { return this.inner.list(); }
  usedBytes() { return this.inner.usedBytes(); }
}

const FAST = { heartbeatMs: 300, discoveryMs: 500 };

describe('bad peers: corrupt or slow', () => {
  const cleanup = new Cleanup();
  const peers: SwarmPeer[] = [];
  let server: SignalServer;
  let model: { dir: string; id: string };
  let manifestBytes: Uint8Array;
  let corrupt: SwarmPeer;

  const client = async (opts: { pieceBytes?: number; requestGraceMs?: number; minPeerBytesPerSec?: number } = {}) => {
    const storage = new MemoryShardStorage();
    const p = await SwarmPeer.start({ node: await createNodeLibp2p(), modelId: model.id, signal: server.addrs, storage, unavailableAfterMs: 20_000, ...FAST, ...opts });
    peers.push(p);
    return { peer: p, storage };
  };

  /** Everything a client stored hashes to its name. */
  const allVerified = async (s: MemoryShardStorage) => {
    for (const h of s.list()) expect(await blake3Hex(await s.read(h, 0, s.sizeOf(h)!))).toBe(h);
  };

  beforeAll(async () => {
    model = await makeModel();
    cleanup.track(model.dir);
    manifestBytes = await readFile(join(model.dir, 'manifest.msgpack'));
    server = await startSignalServer({ port: 0 });
    corrupt = await SwarmPeer.start({
      node: await createNodeLibp2p(), modelId: model.id, signal: server.addrs, manifestBytes,
      storage: new CorruptStorage(await FsShardStorage.open(model.dir)), ...FAST,
    });
    peers.push(corrupt);
  });

  afterAll(async () => {
    for (const p of peers) await p.stop();
    await server?.stop();
    await cleanup.run();
  });

  it('is banned after one bad shard, and the shard comes verified from an honest peer that joins later', async () => {
    const { peer, storage } = await client();
    const manifest = await peer.getManifest();
    const hash = manifest.shards[0]!.hash;
    const pending = peer.get(hash);
    await waitFor('the corrupt peer to be banned', () => peer.stats().banned.includes(corrupt.id), 20_000);
    expect(storage.has(hash)).toBe(false);
    peers.push(await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false, ...FAST }));
    const bytes = await pending;
    expect(await blake3Hex(bytes)).toBe(hash);
    expect(storage.list()).toEqual([hash]);
    await allVerified(storage);
    expect(peer.peers()).not.toContain(corrupt.id);
  });

  it('is found among several sources of one shard (pieces) and banned; nothing corrupt is stored', async () => {
    const { peer, storage } = await client({ pieceBytes: 4096 });
    await waitFor('both sources to be in contact', () => peer.peers().includes(corrupt.id) && peer.peers().length >= 2, 20_000);
    const manifest = await peer.getManifest();
    for (const s of manifest.shards) expect(await blake3Hex(await peer.get(s.hash))).toBe(s.hash);
    expect(peer.stats().banned).toEqual([corrupt.id]);
    expect(storage.list().length).toBe(new Set(manifest.shards.map((s) => s.hash)).size);
    await allVerified(storage);
  });

  it('a slow holder is abandoned mid-shard and its pieces come from other peers', async () => {
    await corrupt.stop();
    const slow = await SwarmPeer.start({
      node: await createNodeLibp2p(), modelId: model.id, signal: server.addrs, manifestBytes,
      storage: await FsShardStorage.open(model.dir), uploadBytesPerSec: 4096, ...FAST,
    });
    peers.push(slow);
    const { peer } = await client({ pieceBytes: 4096, requestGraceMs: 300, minPeerBytesPerSec: 64 * 1024 });
    const manifest = await peer.getManifest();
    const shard = manifest.shards.find((s) => s.size > 5 * 4096)!;
    await waitFor('the slow holder and others to be in contact', () => peer.peers().includes(slow.id) && peer.peers().length >= 2, 20_000);
    const t0 = Date.now();
    const bytes = await peer.get(shard.hash);
    expect(await blake3Hex(bytes)).toBe(shard.hash);
    // The slow peer was asked (it sent something) but alone it would need size / 4 KiB/s seconds.
    expect(slow.stats().uploadedBytes).toBeGreaterThan(0);
    expect(Date.now() - t0).toBeLessThan((shard.size / 4096) * 1000 / 2);
  });
});
