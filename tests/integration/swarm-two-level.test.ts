/**
 * A two-level manifest through the swarm and the CLI: a peer that has only the model id adopts the
 * manifest from the seeder, fetches its layer lists (verified) with it, and `fetchModel` writes a
 * directory that `doppler verify` and `doppler inspect` accept, under the same model id.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { fetchModel, startNodePeer } from '../../swarm/node.ts';
import type { SwarmPeer } from '../../swarm/index.ts';
import { readModelDir, verifyModelDir } from '../../manifests/node.ts';
import { twoLevelCopy } from '../unit/manifests/two-level-copy.ts';
import { Cleanup, DOPPLER, NODE, ROOT, makeModel } from './swarm-helpers.ts';

const FAST = { heartbeatMs: 300, discoveryMs: 500 };

describe('two-level manifest over the swarm', () => {
  const cleanup = new Cleanup();
  const peers: SwarmPeer[] = [];
  let server: SignalServer | undefined;

  afterAll(async () => {
    for (const p of peers) await p.stop();
    await server?.stop();
    await cleanup.run();
  });

  it('fetches the lists with the manifest, then every shard; verify and inspect accept the copy', async () => {
    const model = await makeModel();
    cleanup.track(model.dir);
    const seedDir = await mkdtemp(join(tmpdir(), 'doppler-two-level-seed-'));
    cleanup.track(seedDir);
    const two = await twoLevelCopy(model.dir, seedDir);
    server = await startSignalServer({ port: 0 });
    peers.push(await startNodePeer({ dir: seedDir, signal: server.addrs, evict: false, ...FAST }));

    const outDir = await mkdtemp(join(tmpdir(), 'doppler-two-level-out-'));
    cleanup.track(outDir);
    const fetcher = await startNodePeer({ dir: outDir, modelId: two.id, signal: server.addrs, unavailableAfterMs: 20_000, ...FAST });
    peers.push(fetcher);
    const m = await fetcher.getManifest();
    expect(m.layerLists).toEqual([...two.lists.keys()]);
    await fetchModel(fetcher, outDir);

    const { id, manifest } = await readModelDir(outDir);
    expect(id).toBe(two.id);
    expect(manifest.layerLists).toHaveLength(two.lists.size);
    const report = await verifyModelDir(outDir);
    expect(report.ok).toBe(true);
    expect(report.unreferenced).toEqual([]);

    const verify = spawnSync(NODE, [DOPPLER, 'verify', outDir], { cwd: ROOT, encoding: 'utf8' });
    expect(verify.status).toBe(0);
    const inspect = spawnSync(NODE, [DOPPLER, 'inspect', outDir, '--json'], { cwd: ROOT, encoding: 'utf8' });
    expect(inspect.status).toBe(0);
    expect((JSON.parse(inspect.stdout) as { id: string }).id).toBe(two.id);
  });
});
