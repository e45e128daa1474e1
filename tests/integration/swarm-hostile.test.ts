/**
 * Hostile peers against a fetch: one that answers a header and then nothing must cost a stall
 * timeout, not the whole size-based request timeout, and be ranked last afterwards; peers that
 * claim a shard but never deliver cannot keep a fetch past its timeout; a directory that already
 * holds a truncated or corrupt shard is verified before anything in it is trusted.
 */
import { readFile, writeFile, mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODEL_FILES } from '../../manifests/index.ts';
import { readModelDir, verifyModelDir } from '../../manifests/node.ts';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { MemoryShardStorage, ShardUnavailableError, SwarmPeer, shardListOf } from '../../swarm/index.ts';
import { createNodeLibp2p, fetchModel, startNodePeer } from '../../swarm/node.ts';
import { startHostilePeer, type Behaviour, type HostilePeer } from './hostile-peer.ts';
import { makeModel } from './swarm-helpers.ts';

describe('hostile peers against a fetch', () => {
  let server: SignalServer;
  let model: { dir: string; id: string };
  let manifest: Uint8Array;
  let shardCount: number;
  const stoppers: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    model = await makeModel();
    manifest = await readFile(join(model.dir, MODEL_FILES.manifest));
    shardCount = shardListOf((await readModelDir(model.dir)).manifest).length;
    server = await startSignalServer({ port: 0 });
  });
  afterAll(async () => {
    for (const s of stoppers.reverse()) await s().catch(() => undefined);
    await server?.stop();
    await rm(model.dir, { recursive: true, force: true });
  });

  async function hostile(behaviour: Behaviour): Promise<HostilePeer> {
    const h = await startHostilePeer({ modelId: model.id, manifest, shardCount, behaviour });
    stoppers.push(() => h.stop());
    return h;
  }

  async function fetcher(opts: Partial<Parameters<typeof SwarmPeer.start>[0]>, signal = server.addrs): Promise<{ peer: SwarmPeer; log: string[] }> {
    const log: string[] = [];
    const peer = await SwarmPeer.start({ node: await createNodeLibp2p(), modelId: model.id, signal, storage: new MemoryShardStorage(), log: (l) => log.push(l), ...opts });
    stoppers.push(() => peer.stop());
    return { peer, log };
  }

  it('a peer that sends a header and then nothing costs one stall timeout, then is ranked last', async () => {
    const seeder = await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false });
    stoppers.push(() => seeder.stop());
    const h = await hostile('stall');
    const { peer, log } = await fetcher({ stallMs: 500 });
    await h.announce(peer.node);
    const t0 = Date.now();
    await peer.fetchAll({ concurrency: 4 });
    const ms = Date.now() - t0;
    // unmeasured peers are tried first, so the liar is asked as soon as the seeder has a measured rate
    expect(h.gets).toBeGreaterThan(0);
    // at most one silent request per concurrent fetch, plus one spot check of its claims
    expect(h.gets).toBeLessThanOrEqual(5);
    expect(log.some((l) => l.includes(`demoted peer ${h.id}`))).toBe(true);
    // without a stall timeout each silent request costs 5 s + size / 32 KiB/s
    expect(ms).toBeLessThan(4000 + 2000 * h.gets);
    console.log(`swarm-hostile: ${shardCount} shards in ${ms} ms past a stalling peer asked ${h.gets} times`);
    await seeder.stop();
  });

  it('holders that claim a shard but never deliver cannot keep a fetch past its timeout', async () => {
    const h = await hostile('stall');
    // no signaling server: the liar is this peer's only contact
    const { peer } = await fetcher({ stallMs: 300, unavailableAfterMs: 1500 }, []);
    await h.announce(peer.node);
    await peer.getManifest();
    const hash = shardListOf(await peer.getManifest())[0]!.hash;
    const t0 = Date.now();
    const err = await Promise.race([peer.get(hash).then(() => null, (e: unknown) => e), new Promise((r) => setTimeout(() => r('hung'), 20_000))]);
    expect(err).toBeInstanceOf(ShardUnavailableError);
    expect((err as Error).message).toMatch(/within 1\.5 s \(1 peer\(s\) claim to hold it\)/);
    expect(Date.now() - t0).toBeLessThan(8000);
  });

  it('a peer claiming every shard with a huge budget but never serving one does not count toward r: nothing is lost when the seeder leaves', async () => {
    const seeder = await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false, replication: 2, heartbeatMs: 300 });
    stoppers.push(() => seeder.stop());
    // three sybils: with r = 2 over {seeder, 2 honest, 3 liars}, ~40% of shards would be placed on the seeder and liars only
    const liars = [await hostile('busy'), await hostile('busy'), await hostile('busy')];
    const liar = liars[0]!;
    const storage = await Promise.all([0, 1].map(async () => {
      const s = new MemoryShardStorage();
      const { peer } = await fetcher({ storage: s, budgetBytes: 2 ** 30, replication: 2, heartbeatMs: 300, discoveryMs: 1000 });
      for (const l of liars) await l.announce(peer.node);
      return { peer, s };
    }));
    for (const l of liars) await l.announce(seeder.node);
    const shards = shardListOf(await storage[0]!.peer.getManifest()).filter((s) => s.size > 0);
    // with the liar trusted, the shards placed on {seeder, liar} would be copied by nobody
    const t0 = Date.now();
    while (!shards.every((s) => storage.some((p) => p.s.has(s.hash)))) {
      if (Date.now() - t0 > 20_000) throw new Error(`only ${shards.filter((s) => storage.some((p) => p.s.has(s.hash))).length} of ${shards.length} shards reached an honest storage peer`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // several heartbeats and placement passes later (eviction trusts the claims it counts), still all there
    await new Promise((r) => setTimeout(r, 3000));
    expect(shards.filter((s) => !storage.some((p) => p.s.has(s.hash))).map((s) => s.hash)).toEqual([]);
    for (const p of storage) {
      expect(p.peer.verifiedHolders(shards[0]!.hash)).not.toContain(liar.id);
      expect(p.peer.holders(shards[0]!.hash)).toContain(liar.id);
    }
    await seeder.stop();
    const { peer: late } = await fetcher({ unavailableAfterMs: 5000 });
    expect(await late.fetchAll()).toBeGreaterThan(0);
  });

  it('fetch into a directory holding a truncated and a corrupt shard re-fetches them and verifies', async () => {
    const seeder = await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false });
    stoppers.push(() => seeder.stop());
    const out = await mkdtemp(join(tmpdir(), 'doppler-fetch-into-'));
    stoppers.push(() => rm(out, { recursive: true, force: true }));
    const { manifest: m } = await readModelDir(model.dir);
    const [a, b] = m.shards.map((s) => s.hash);
    await mkdir(join(out, 'shards'), { recursive: true });
    const bytesA = await readFile(join(model.dir, 'shards', a!));
    await writeFile(join(out, 'shards', a!), bytesA.subarray(0, bytesA.length >> 1));
    const bytesB = Buffer.from(await readFile(join(model.dir, 'shards', b!)));
    bytesB[7] ^= 0xff;
    await writeFile(join(out, 'shards', b!), bytesB);
    const log: string[] = [];
    const peer = await startNodePeer({ dir: out, modelId: model.id, signal: server.addrs, log: (l) => log.push(l) });
    stoppers.push(() => peer.stop());
    await fetchModel(peer, out);
    expect(log.filter((l) => l.startsWith('not using')).length).toBe(2);
    const report = await verifyModelDir(out);
    expect(report.ok).toBe(true);
    await peer.stop();
    await seeder.stop();
  });
});
