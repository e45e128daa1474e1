import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { createNodeLibp2p, startNodePeer } from '../../swarm/node.ts';
import { MemoryShardStorage, SwarmPeer } from '../../swarm/index.ts';
import { Cleanup, makeModel, waitFor, type Proc } from './swarm-helpers.ts';

/**
 * A peer that hangs (SIGSTOP: its connections stay open, it answers nothing) is dropped after missed
 * heartbeats, and its replicas are copied elsewhere.
 */
const R = 2;
const HEARTBEAT_MS = 300;
/** Three missed heartbeats, each abandoned after its 2 s timeout, plus scheduling slack. */
const DROP_BOUND_MS = 10_000;

describe('storage peers stalling and arriving', () => {
  const cleanup = new Cleanup();
  const inProcess: SwarmPeer[] = [];
  let server: SignalServer;
  let model: { dir: string; id: string };
  const joiners: Proc[] = [];

  beforeAll(async () => {
    model = await makeModel();
    cleanup.track(model.dir);
    server = await startSignalServer({ port: 0 });
    inProcess.push(await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false, replication: R, heartbeatMs: HEARTBEAT_MS, discoveryMs: 1000 }));
    const fast = ['--heartbeat-ms', String(HEARTBEAT_MS), '--discovery-ms', '1000', '--replication', String(R)];
    joiners.push(...await Promise.all([0, 1, 2].map(async () =>
      cleanup.spawn(['join', model.id, '--signal', server.addrs[0]!, '--storage-mib', '1', '--dir', await cleanup.tempDir('doppler-join-'), ...fast], 1, 60_000))));
  });

  afterAll(async () => {
    for (const p of joiners) p.child.kill('SIGCONT');
    for (const p of inProcess) await p.stop();
    await server?.stop();
    await cleanup.run();
  });

  it('is dropped after missed heartbeats and its shards are re-replicated', async () => {
    const obs = await SwarmPeer.start({ node: await createNodeLibp2p(), modelId: model.id, signal: server.addrs, storage: new MemoryShardStorage(), keepFetched: false, heartbeatMs: HEARTBEAT_MS, discoveryMs: 1000 });
    inProcess.push(obs);
    await obs.getManifest();
    // Every shard at r copies besides the seeder's: the joiners alone hold r copies of each.
    const seederId = inProcess[0]!.id;
    const joinerCopies = () => Math.min(...[...obs.replication().keys()].map((h) => obs.holders(h).filter((id) => id !== seederId).length));
    await waitFor('the joiners to hold r copies of every shard', () => obs.peers().length === 4 && joinerCopies() >= R, 30_000);

    const victim = joiners[0]!;
    const victimId = victim.lines[0]!;
    const held = [...obs.replication().keys()].filter((h) => obs.holders(h).includes(victimId));
    expect(held.length).toBeGreaterThan(0);
    victim.child.kill('SIGSTOP');
    const droppedMs = await waitFor('the stalled peer to be dropped', () => !obs.peers().includes(victimId), DROP_BOUND_MS);
    // The seeder volunteers no storage here, so the two live joiners must now hold r copies between them.
    await waitFor('the stalled peer’s shards to be re-replicated', () => joinerCopies() >= R, DROP_BOUND_MS);
    for (const h of held) expect(obs.holders(h).filter((id) => id !== victimId && id !== seederId).length).toBeGreaterThanOrEqual(R);
    console.log(`swarm-stall: SIGSTOPped peer dropped after ${droppedMs} ms`);
  });

  it('a new storage peer takes its share and replicas elsewhere are dropped, leaving exactly r copies', async () => {
    const obs = inProcess.at(-1)!;
    const seederId = inProcess[0]!.id;
    const fresh = await cleanup.spawn(['join', model.id, '--signal', server.addrs[0]!, '--storage-mib', '1', '--dir', await cleanup.tempDir('doppler-join-'),
      '--heartbeat-ms', String(HEARTBEAT_MS), '--discovery-ms', '1000', '--replication', String(R)], 1, 60_000);
    joiners.push(fresh);
    const freshId = fresh.lines[0]!;
    const copies = () => [...obs.replication().keys()].map((h) => obs.holders(h).filter((id) => id !== seederId && id !== obs.id).length);
    const heldBy = (id: string) => [...obs.replication().keys()].filter((h) => obs.holders(h).includes(id)).length;
    await waitFor('the new peer to take its share and every shard to settle at r copies', () =>
      heldBy(freshId) > 0 && copies().every((n) => n === R), 20_000);
    // Three live storage peers share r copies of each shard: the new one holds about a third of r × shards.
    const shards = obs.replication().size;
    expect(heldBy(freshId)).toBeGreaterThan(shards * R / 3 / 2);
    expect(heldBy(freshId)).toBeLessThan(shards);
  });
});
