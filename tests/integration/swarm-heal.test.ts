import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeLibp2p } from '../../swarm/node.ts';
import { MemoryShardStorage, SwarmPeer } from '../../swarm/index.ts';
import { Cleanup, makeModel, runDoppler, waitFor, type Proc } from './swarm-helpers.ts';

/**
 * Ten real peer processes on loopback (one seeder, nine storage peers), r = 3. Three die at once by
 * SIGKILL — the seeder among them — and the swarm must keep every shard reachable and copy the
 * lost replicas back to r within HEAL_BOUND_MS; a fresh `doppler fetch` then gets a model that
 * `doppler verify` accepts.
 */
const R = 3;
const JOINERS = 9;
/** Stated bound for re-replication after the kill: death is seen at once (connection close), heartbeats are 500 ms. */
const HEAL_BOUND_MS = 15_000;
const FAST = ['--heartbeat-ms', '1000', '--discovery-ms', '1000'];

describe('swarm self-healing with 10 peer processes', () => {
  const cleanup = new Cleanup();
  let observer: SwarmPeer | undefined;
  let signal: string;
  let model: { dir: string; id: string };
  let seeder: Proc;
  const joiners: Proc[] = [];

  beforeAll(async () => {
    model = await makeModel();
    cleanup.track(model.dir);
    const sig = await cleanup.spawn(['signal', '--port', '0'], 1);
    signal = sig.lines[0]!;
    seeder = await cleanup.spawn(['seed', model.dir, '--signal', signal, '--replication', String(R), ...FAST], 2);
    const started = await Promise.all(Array.from({ length: JOINERS }, async () =>
      cleanup.spawn(['join', model.id, '--signal', signal, '--storage-mib', '1', '--replication', String(R), '--dir', await cleanup.tempDir('doppler-join-'), ...FAST], 1, 60_000)));
    joiners.push(...started);
    observer = await SwarmPeer.start({
      node: await createNodeLibp2p(), modelId: model.id, signal: [signal], storage: new MemoryShardStorage(),
      keepFetched: false, heartbeatMs: 1000, discoveryMs: 1000,
    });
  });

  afterAll(async () => {
    await observer?.stop();
    await cleanup.run();
  });

  it('spreads the model to r peers, survives 3 SIGKILLs, heals to r, and serves a fresh fetch', async () => {
    const obs = observer!;
    const manifest = await obs.getManifest();
    const shardCount = obs.replication().size;
    const blobs = new Set([...manifest.shards.map((s) => s.hash), ...Object.values(manifest.tokenizer)]);
    expect(shardCount).toBe(blobs.size);
    const minHolders = () => Math.min(...obs.replication().values());

    const spreadMs = await waitFor('all 10 peers and r copies of every shard', () => obs.peers().length === 1 + JOINERS && minHolders() >= R, 180_000);
    // Storage peers hold their share, not the whole model: rendezvous placement spreads it.
    const heldByJoiners = obs.peers().filter((id) => id !== seeder.lines[1]).map((id) => [...obs.replication().keys()].filter((h) => obs.holders(h).includes(id)).length);
    expect(Math.max(...heldByJoiners)).toBeLessThan(shardCount);

    // Kill the seeder and two storage peers such that one copy of each shard survives somewhere.
    const joinerIds = joiners.map((j) => j.lines[0]!);
    const survivesWithout = (dead: Set<string>) => [...obs.replication().keys()].every((h) => obs.holders(h).some((id) => !dead.has(id) && id !== obs.id));
    let victims: number[] | undefined;
    for (let a = 0; a < JOINERS && !victims; a++) {
      for (let b = a + 1; b < JOINERS && !victims; b++) {
        if (survivesWithout(new Set([seeder.lines[1]!, joinerIds[a]!, joinerIds[b]!]))) victims = [a, b];
      }
    }
    expect(victims).toBeDefined();
    const killed = [seeder, joiners[victims![0]!]!, joiners[victims![1]!]!];
    const killedIds = new Set([seeder.lines[1]!, joinerIds[victims![0]!]!, joinerIds[victims![1]!]!]);
    for (const p of killed) p.child.kill('SIGKILL');
    const t0 = Date.now();

    // Every shard stays available: fetch each one (verified) while the swarm heals.
    const hashes = [...obs.replication().keys()];
    const fetched = await Promise.all(hashes.map((h) => obs.get(h)));
    const sizes = new Map(manifest.shards.map((s) => [s.hash, s.size]));
    expect(fetched.every((b, i) => b.length === (sizes.get(hashes[i]!) ?? b.length) && b.length > 0)).toBe(true);

    await waitFor('the killed peers to be noticed', () => obs.peers().every((id) => !killedIds.has(id)), 10_000);
    const healMs = await waitFor('replication back to r', () => minHolders() >= R, HEAL_BOUND_MS);
    const total = Date.now() - t0;
    console.log(`swarm-heal: spread in ${spreadMs} ms; after SIGKILL of 3 of 10 peers, back to r=${R} in ${total} ms (bound ${HEAL_BOUND_MS} ms)`);
    expect(healMs).toBeLessThan(HEAL_BOUND_MS);
    expect(obs.peers().length).toBe(JOINERS - 2);

    const out = await cleanup.tempDir('doppler-fetch-');
    const fetch = await runDoppler(['fetch', model.id, '--signal', signal, '--out', out, ...FAST]);
    expect(fetch.stderr).toContain('fetched model');
    expect(fetch.code).toBe(0);
    const verify = await runDoppler(['verify', out]);
    expect(verify.stdout + verify.stderr).toContain('0 corrupt');
    expect(verify.code).toBe(0);
  }, 400_000);
});
