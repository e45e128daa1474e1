import { afterAll, describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PeerRegistry } from '../../signaling-server/node.ts';
import { Cleanup, runDoppler, waitFor } from './swarm-helpers.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('doppler signal', () => {
  const cleanup = new Cleanup();
  afterAll(() => cleanup.run());

  it('prints its multiaddrs, serves /health and /metrics, keeps its identity with --key-file; swarm commands fail clearly', async () => {
    const keyFile = join(await cleanup.tempDir('doppler-signal-'), 'server.key');
    const start = async () => {
      const p = await cleanup.spawn(['signal', '--port', '0', '--no-app', '--key-file', keyFile, '--max-reservations', '4'], 1);
      await waitFor('the metrics URL', () => /http:\/\/\S+\/metrics/.test(p.stderr()), 10_000);
      return { p, url: p.stderr().match(/(http:\/\/\S+)\/metrics/)![1]! };
    };
    const first = await start();
    const addr = first.p.lines[0]!;
    expect(addr).toMatch(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+\/ws\/p2p\/12D3Koo\w+$/);
    const health = await (await fetch(`${first.url}/health`)).json() as { ok: boolean; peerId: string };
    expect(health.ok).toBe(true);
    expect(addr.endsWith(health.peerId)).toBe(true);
    const metrics = await (await fetch(`${first.url}/metrics.json`)).json() as Record<string, unknown>;
    expect(await (await fetch(`${first.url}/metrics`)).text()).toMatch(/^doppler_peers \d+$/m);
    expect(Object.keys(metrics).sort()).toEqual(['bytesIn', 'connections', 'peers', 'registrations', 'relayedConnections', 'relayedConnectionsTotal', 'reservations', 'uptimeS']);
    expect((await fetch(`${first.url}/nope`)).status).toBe(404);

    first.p.child.kill('SIGTERM');
    expect(await first.p.exited).toBe(0);
    const second = await start();
    expect(second.p.lines[0]!.split('/p2p/')[1]).toBe(health.peerId);

    // A model nobody serves: fetch gives up with a clear error and leaves no manifest behind.
    const out = await cleanup.tempDir('doppler-fetch-');
    const fetched = await runDoppler(['fetch', 'c'.repeat(64), '--signal', second.p.lines[0]!, '--out', out, '--timeout-s', '1']);
    expect(fetched.code).toBe(1);
    expect(fetched.stderr).toContain(`no peer of model ${'c'.repeat(64)}`);
    expect(existsSync(join(out, 'manifest.msgpack'))).toBe(false);
    const bad = await runDoppler(['join', 'not-a-model', '--signal', second.p.lines[0]!, '--storage-mib', '1']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('is not a model id');
    expect((await runDoppler(['seed', '--help'])).stdout).toContain('usage: doppler seed');
  });
});

describe('peer registry', () => {
  it('lists the other live peers of a model only, drops leavers and lapsed entries', () => {
    const r = new PeerRegistry({ ttlMs: 1000 });
    expect(r.register(A, 'p1', ['/a1'], 64, 0)).toEqual([]);
    r.register(B, 'q1', ['/b1'], 64, 0);
    expect(r.register(A, 'p2', ['/a2'], 64, 10)).toEqual([{ id: 'p1', addrs: ['/a1'] }]);
    r.remove('p1');
    expect(r.register(A, 'p3', ['/a3'], 64, 20).map((p) => p.id)).toEqual(['p2']);
    expect(r.register(A, 'p3', ['/a3'], 64, 2000)).toEqual([]);
    expect(r.counts()).toEqual({ [A]: 1, [B]: 1 });
  });

  it('caps peers per model', () => {
    const r = new PeerRegistry({ maxPerModel: 2 });
    r.register(A, 'p1', ['/1'], 64);
    r.register(A, 'p2', ['/2'], 64);
    expect(() => r.register(A, 'p3', ['/3'], 64)).toThrow(/maximum of 2 peers/);
  });
});
