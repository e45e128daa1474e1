/**
 * The server's one public port: health, Prometheus metrics, the page's config and model list,
 * cross-origin isolation headers, the per-IP WebSocket limit, announce addresses, TLS, and seeding.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { startSignalServer } from '../../signaling-server/node.ts';
import { Cleanup, ROOT } from './swarm-helpers.ts';

const MODEL = join(ROOT, 'models/tiny-moe-text-q8_0');

/** Opens a WebSocket and reports whether the server accepted it. */
function openSocket(url: string): Promise<{ ok: boolean; ws: WebSocket }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    ws.onopen = () => resolve({ ok: true, ws });
    ws.onerror = () => resolve({ ok: false, ws });
  });
}

describe('doppler signal: one port for page, API and swarm', () => {
  const cleanup = new Cleanup();
  afterAll(() => cleanup.run());

  it('serves health, Prometheus metrics, config, the model list and the page with isolation headers; limits WebSockets per IP', async () => {
    const appDir = await cleanup.tempDir('doppler-appdir-');
    await writeFile(join(appDir, 'index.html'), '<!doctype html><title>t</title>');
    const server = await startSignalServer({
      port: 0, seeds: [MODEL], appDir, maxConnectionsPerIp: 1, announce: ['/dns4/doppler.example/tcp/443/wss'],
      iceServers: [{ urls: 'stun:stun.example:3478' }],
    });
    try {
      const id = server.node.peerId.toString();
      expect(server.addrs[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/ws/p2p/${id}$`));
      expect(server.addrs[1]).toBe(`/dns4/doppler.example/tcp/443/wss/p2p/${id}`);
      expect(await (await fetch(`${server.httpUrl}/health`)).json()).toEqual({ ok: true, peerId: id });

      const page = await fetch(`${server.httpUrl}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
      expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
      expect((await fetch(`${server.httpUrl}/../../etc/passwd`)).status).toBe(404);

      const config = await (await fetch(`${server.httpUrl}/api/config`)).json() as { signal: string[]; iceServers: unknown[] };
      expect(config.signal).toEqual([`/dns4/doppler.example/tcp/443/wss/p2p/${id}`]);
      expect(config.iceServers).toEqual([{ urls: 'stun:stun.example:3478' }]);
      const models = await (await fetch(`${server.httpUrl}/api/models`)).json() as { id: string; name: string; architecture: string; peers: number; seeded: boolean; bytes: number }[];
      expect(models).toHaveLength(1);
      expect(models[0]).toMatchObject({ id: server.seeds[0]!.modelId, name: 'tiny-moe-text', architecture: 'mixtral', peers: 1, seeded: true, bytes: 13625088 });

      const wsUrl = server.httpUrl.replace('http', 'ws');
      const first = await openSocket(wsUrl);
      const second = await openSocket(wsUrl);
      expect(first.ok).toBe(true);
      expect(second.ok).toBe(false);
      first.ws.close();
      const prom = await (await fetch(`${server.httpUrl}/metrics`)).text();
      expect(prom).toContain('# TYPE doppler_peers gauge');
      expect(prom).toMatch(/^doppler_websocket_refused_total 1$/m);
      expect(prom).toContain(`doppler_model_peers{model="${server.seeds[0]!.modelId}"} 1`);
      expect(prom).toMatch(/^doppler_relay_bytes_in_total \d+$/m);

      await server.seeds[0]!.stop();
      const after = await (await fetch(`${server.httpUrl}/api/models`)).json() as { peers: number; seeded: boolean }[];
      expect(after[0]).toMatchObject({ peers: 0, seeded: false });
    } finally {
      await server.stop();
    }
  });

  it('serves https and wss with --tls-cert/--tls-key', async () => {
    const dir = await cleanup.tempDir('doppler-tls-');
    await mkdir(dir, { recursive: true });
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const { readFile } = await import('node:fs/promises');
    const server = await startSignalServer({ port: 0, tls: { cert: await readFile(join(dir, 'cert.pem')), key: await readFile(join(dir, 'key.pem')) } });
    try {
      expect(server.httpUrl).toMatch(/^https:/);
      expect(server.addrs[0]).toMatch(/\/wss\/p2p\//);
      const body = await new Promise<string>((resolve, reject) => {
        request(`${server.httpUrl}/health`, { rejectUnauthorized: false }, (res) => {
          let s = '';
          res.on('data', (d: Buffer) => (s += d.toString()));
          res.on('end', () => resolve(s));
        }).on('error', reject).end();
      });
      expect(JSON.parse(body).ok).toBe(true);
      // The WebSocket upgrade crosses TLS and reaches libp2p (101 Switching Protocols).
      const status = await new Promise<number>((resolve, reject) => {
        request(server.httpUrl, { rejectUnauthorized: false, headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } })
          .on('upgrade', (res, socket) => {
            socket.destroy();
            resolve(res.statusCode!);
          }).on('response', (res) => resolve(res.statusCode!)).on('error', reject).end();
      });
      expect(status).toBe(101);
    } finally {
      await server.stop();
    }
  });
});
