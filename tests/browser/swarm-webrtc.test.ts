import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { startSignalServer, type SignalServer } from '../../signaling-server/node.ts';
import { startNodePeer } from '../../swarm/node.ts';
import { Cleanup, makeModel } from '../integration/swarm-helpers.ts';
import { withBrowser } from './harness.ts';

const PAGE = fileURLToPath(new URL('./swarm-page.ts', import.meta.url));

describe('browser swarm over WebRTC', () => {
  const cleanup = new Cleanup();
  let server: SignalServer;
  let model: { dir: string; id: string };

  beforeAll(async () => {
    model = await makeModel();
    cleanup.track(model.dir);
    server = await startSignalServer({ port: 0 });
  });

  afterAll(async () => {
    await server?.stop();
    await cleanup.run();
  });

  it('two tabs meet through the signaling server, connect directly over WebRTC, and one fetches verified shards from the other', async () => {
    const result = await withBrowser(PAGE, async ({ newPage }) => {
      const seeder = await newPage();
      const leecher = await newPage();
      await seeder.waitForFunction(() => window.dopplerSwarm !== undefined);
      await leecher.waitForFunction(() => window.dopplerSwarm !== undefined);
      const seederId = await seeder.evaluate((o) => window.dopplerSwarm.start(o), { signal: server.addrs, modelId: model.id, seedFrom: '/model/' });
      await leecher.evaluate((o) => window.dopplerSwarm.start(o), { signal: server.addrs, modelId: model.id });
      await leecher.waitForFunction((id) => window.dopplerSwarm.peers().includes(id), seederId, { timeout: 30_000 });
      const fetched = await leecher.evaluate(() => window.dopplerSwarm.fetchAll());
      const conns = await leecher.evaluate((id) => window.dopplerSwarm.connections(id), seederId);
      const seederStats = await seeder.evaluate(() => window.dopplerSwarm.stats());
      return { fetched, conns, seederStats, relay: server.metrics() };
    }, { mounts: { '/model/': model.dir } });

    expect(result.fetched.verified).toBe(true);
    expect(result.fetched.blobs).toBeGreaterThan(20);
    expect(result.conns.some((c) => c.addr.includes('/webrtc') && !c.limited)).toBe(true);
    // The shards came from the other tab, not from the signaling server (which holds none).
    expect(result.seederStats.uploadedBytes).toBeGreaterThanOrEqual(result.fetched.bytes);
    // Both tabs hold a reservation on the signaling server, which relayed the WebRTC set-up only.
    expect(result.relay.reservations).toBe(2);
    expect(result.relay.relayedConnectionsTotal).toBeGreaterThan(0);
    expect(result.relay.bytesIn).toBeLessThan(result.fetched.bytes);
    console.log(`swarm-webrtc: ${result.fetched.blobs} blobs, ${result.fetched.bytes} bytes tab→tab in ${result.fetched.ms.toFixed(0)} ms over ${result.conns.map((c) => c.addr).join(', ')}`);
  });

  it('a tab fetches verified shards from a Node seeder over WebSockets', async () => {
    const seeder = await startNodePeer({ dir: model.dir, signal: server.addrs, evict: false, heartbeatMs: 500, discoveryMs: 1000 });
    try {
      const result = await withBrowser(PAGE, async ({ newPage }) => {
        const tab = await newPage();
        await tab.waitForFunction(() => window.dopplerSwarm !== undefined);
        await tab.evaluate((o) => window.dopplerSwarm.start(o), { signal: server.addrs, modelId: model.id });
        await tab.waitForFunction((id) => window.dopplerSwarm.peers().includes(id), seeder.id, { timeout: 30_000 });
        return { fetched: await tab.evaluate(() => window.dopplerSwarm.fetchAll()), conns: await tab.evaluate((id) => window.dopplerSwarm.connections(id), seeder.id) };
      });
      expect(result.fetched.verified).toBe(true);
      expect(result.conns.some((c) => /\/tcp\/\d+\/ws$/.test(c.addr.split('/p2p/')[0]!) && !c.limited)).toBe(true);
      expect(seeder.stats().uploadedBytes).toBeGreaterThanOrEqual(result.fetched.bytes);
    } finally {
      await seeder.stop();
    }
  });
});
