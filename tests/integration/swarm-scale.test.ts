import { afterAll, describe, expect, it } from 'vitest';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blake3Hex } from '../../manifests/index.ts';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { shardListOf } from '../../swarm/index.ts';
import { decodeManifest } from '../../swarm/model.ts';
import { FsShardStorage } from '../../swarm/node.ts';
import { ROOT } from './swarm-helpers.ts';
import { replicated, startMember, type Member } from './in-process-swarm.ts';

const MODEL = join(ROOT, 'models/tiny-moe-text-q8_0');
const STORAGE_PEERS = 30;
const R = 3;
/** Generous: a loaded 2-core machine runs the 31 peers' handshakes and spot checks slowly. */
const BOUND_MS = 200_000;

async function until(what: string, cond: () => boolean): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > BOUND_MS) throw new Error(`${what} did not happen within ${BOUND_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('a 30-peer in-process swarm on gossip membership', () => {
  let server: SignalServer | undefined;
  const members: Member[] = [];
  afterAll(async () => {
    await Promise.all(members.map((m) => m.peer.stop().catch(() => undefined)));
    await server?.stop();
  });

  it('converges to r copies of every shard, and a fresh peer fetches the demo model', async () => {
    const manifestBytes = await readFile(join(MODEL, 'manifest.msgpack'));
    const modelId = await blake3Hex(manifestBytes);
    const shards = shardListOf(decodeManifest(manifestBytes, 'demo manifest'));
    const total = shards.reduce((a, s) => a + s.size, 0);
    server = await startSignalServer({ port: 0, httpPort: 0 });
    members.push(await startMember(server, modelId, 'gossip', { storage: await FsShardStorage.open(MODEL, { verify: false }), manifestBytes, evict: false }));
    const budgetBytes = Math.ceil((2 * R * total) / STORAGE_PEERS);
    // one at a time: a signaling server in a process with dozens of busy peers handshakes slowly
    for (let i = 0; i < STORAGE_PEERS; i++) members.push(await startMember(server, modelId, 'gossip', { budgetBytes }));
    const storers = members.slice(1);
    // every peer hears every other through the topic, although none dialed more than a few of them
    await until('every peer knowing every other', () => members.every((m) => m.peer.peers().length >= members.length - 1));
    await until(`r = ${R} copies of every shard on the storage peers`, () => replicated(storers, shards, R));

    const fresh = await startMember(server, modelId, 'gossip');
    members.push(fresh);
    expect(await fresh.peer.fetchAll()).toBe(shards.length);
    for (const s of shards) expect(await blake3Hex(await fresh.peer.get(s.hash))).toBe(s.hash);
    // the seeder did not serve it all: the fetch drew on the storage peers
    expect(storers.reduce((a, m) => a + m.peer.stats().uploadedBytes, 0)).toBeGreaterThan(0);
  }, BOUND_MS * 3);
});
