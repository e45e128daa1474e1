import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { blake3Hex } from '../../manifests/index.ts';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { startNodePeer } from '../../swarm/node.ts';
import type { SwarmPeer } from '../../swarm/index.ts';
import { Cleanup, ROOT, runDoppler } from './swarm-helpers.ts';

/** The store's remote tier can be the swarm: `doppler generate` from a seeded demo model gives the local output. */
const DEMO = join(ROOT, 'models/tiny-moe-text-q8_0');
const ARGS = ['--ids', '1,2,3,4', '--max-new', '6', '--greedy', '--no-eos', '--json', '--backend', 'cpu'];

describe('generate from a swarm', () => {
  const cleanup = new Cleanup();
  let server: SignalServer;
  let seeder: SwarmPeer;

  beforeAll(async () => {
    server = await startSignalServer({ port: 0 });
    seeder = await startNodePeer({ dir: DEMO, signal: server.addrs });
  });

  afterAll(async () => {
    await seeder?.stop();
    await server?.stop();
    await cleanup.run();
  });

  it('produces the same tokens as the local model directory, its shards coming from a peer into an empty cache', async () => {
    const local = await runDoppler(['generate', DEMO, ...ARGS], 120_000);
    expect(local.code).toBe(0);
    const cache = await cleanup.tempDir('doppler-swarm-cache-');
    const swarm = await runDoppler(['generate', seeder.modelId, '--source', 'swarm', '--signal', server.addrs[0]!, '--cache-dir', cache, ...ARGS], 120_000);
    expect(swarm.stderr).not.toMatch(/error/i);
    expect(swarm.code).toBe(0);
    const ids = (out: string) => (JSON.parse(out) as { generated_ids: number[] }).generated_ids;
    expect(ids(swarm.stdout)).toEqual(ids(local.stdout));
    expect(ids(swarm.stdout)).toHaveLength(6);
    expect(seeder.stats().uploadedBytes).toBeGreaterThan(0);
    // One store on disk: the swarm peer served the cache the engine filled; each shard is there once, intact.
    expect(existsSync(join(cache, 'swarm'))).toBe(false);
    const stored = (await readdir(join(cache, 'shards'))).filter((n) => /^[0-9a-f]{64}$/.test(n));
    expect(stored.length).toBeGreaterThan(5);
    for (const h of stored) expect(await blake3Hex(new Uint8Array(await readFile(join(cache, 'shards', h))))).toBe(h);
  });
});
