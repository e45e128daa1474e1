import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { circuitRelayServer, RELAY_V2_STOP_CODEC, type CircuitRelayService } from '@libp2p/circuit-relay-v2';
import type { Libp2p, Stream, Connection } from '@libp2p/interface';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer as createNetServer, isIP, type AddressInfo } from 'node:net';
import {
  DISCOVERY_PROTOCOL, FrameReader, MAX_MESSAGE_BYTES, MAX_PEERS_LISTED, encodeFrame, parseDiscoveryRequest, sendAll,
} from '../swarm/index.ts';
import { loadOrCreateKey } from '../swarm/node.ts';
import { PeerRegistry } from './registry.ts';
import { byteMeter } from './byte-meter.ts';
import { startFront } from './front.ts';
import { prometheusText } from './prometheus.ts';
import { startSeed, type ModelInfo, type Seed } from './seeds.ts';
import { ISOLATION_HEADERS, serveStatic } from './static.ts';

export interface SignalServerOptions {
  /** The one public port: HTTP(S) and WebSockets (0: any free). Default 9090. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** File holding the server's libp2p identity; created when absent. Without it the identity is new each start. */
  keyFile?: string;
  /** Most circuit-relay reservations held at once. Default 128. */
  maxReservations?: number;
  /** Bytes one relayed connection may carry before it is cut (browsers only signal WebRTC over it). Default 1 MiB. */
  maxPeerBytes?: number;
  /** Seconds one relayed connection may stay open. Default 120. */
  maxRelaySeconds?: number;
  /** Most connections the server accepts. Default 1024. */
  maxConnections?: number;
  /** Most WebSocket connections from one IP address. Default 32. */
  maxConnectionsPerIp?: number;
  /** A peer's registration lapses unless renewed within this time. Default 30 s. */
  registrationTtlMs?: number;
  /** Most models one peer may register under at once. Default 8. */
  maxModelsPerPeer?: number;
  /** Connections still in their handshake at once (silent ones time out after upgradeTimeoutMs). Default 256. */
  maxPendingConnections?: number;
  /** A connection that has not finished its handshake in this time is dropped. Default 5000 ms. */
  upgradeTimeoutMs?: number;
  /** PEM certificate and key: the port serves https and wss (browsers refuse ws from an https page). */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Public multiaddrs of this server without /p2p (e.g. /dns4/example.org/tcp/443/wss), as pages and peers should dial it. */
  announce?: string[];
  /** STUN/TURN servers handed to pages for WebRTC between tabs (RTCIceServer objects). */
  iceServers?: IceServer[];
  /** Converted model directories the server seeds itself. */
  seeds?: string[];
  /** A built page to serve at / (the app). */
  appDir?: string;
}

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

export interface SignalMetrics {
  peers: number;
  connections: number;
  reservations: number;
  relayedConnections: number;
  relayedConnectionsTotal: number;
  bytesIn: number;
  registrations: Record<string, number>;
  uptimeS: number;
}

export interface SignalServer {
  node: Libp2p;
  /** Multiaddrs peers pass as --signal. */
  addrs: string[];
  /** http(s)://host:port of the one public port (the page, /health, /metrics, /api/*). */
  httpUrl: string;
  seeds: Seed[];
  metrics(): SignalMetrics;
  /** The model list the page shows: seeded models and every model with registered peers. */
  models(): ModelInfo[];
  stop(): Promise<void>;
}

/**
 * The signaling server: bootstrap node for browsers and Node peers, circuit-relay v2 server (so
 * browsers can set up WebRTC with each other), the model → peers directory, and — on the same
 * port — the app page, its config, and the models the server seeds.
 *
 * @example
 * const server = await startSignalServer({ port: 8080, seeds: ['models/tiny-moe-text-q8_0'], appDir: 'app/dist' });
 * console.log(server.httpUrl); // open it in a browser
 */
export async function startSignalServer(opts: SignalServerOptions = {}): Promise<SignalServer> {
  const host = opts.host ?? '127.0.0.1';
  const tls = opts.tls !== undefined;
  const meter = byteMeter();
  const registry = new PeerRegistry({ ttlMs: opts.registrationTtlMs ?? 30_000, ...(opts.maxModelsPerPeer ? { maxModelsPerPeer: opts.maxModelsPerPeer } : {}) });
  // lapsed registrations give their memory back even when nobody registers again
  const sweepTimer = setInterval(() => registry.sweep(), Math.max(1000, (opts.registrationTtlMs ?? 30_000) / 2));
  const started = Date.now();
  const seeds: Seed[] = [];
  let upstream = 0;
  const front = await startFront({
    port: opts.port ?? 9090, host, ...(opts.tls ? { tls: opts.tls } : {}), maxConnectionsPerIp: opts.maxConnectionsPerIp ?? 32,
    upstreamPort: () => upstream,
    handle: (req, res) => void route(req, res).catch((err: Error) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`internal error: ${err.message}`);
    }),
  });
  const localHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const publicAddrs = [`${ipOrDns(localHost)}/tcp/${front.port}/${tls ? 'wss' : 'ws'}`, ...(opts.announce ?? [])];
  upstream = await freeLoopbackPort();
  let libp2p: Awaited<ReturnType<typeof createServerNode>>;
  try {
    libp2p = await createServerNode(opts, upstream, publicAddrs, meter);
  } catch (err) {
    clearInterval(sweepTimer);
    await front.close();
    throw err;
  }
  const relay: CircuitRelayService = libp2p.services.relay;
  const id = libp2p.peerId.toString();
  const addrs = publicAddrs.map((a) => `${a}/p2p/${id}`);
  let relayedTotal = 0;

  libp2p.addEventListener('peer:disconnect', (e) => registry.remove(e.detail.toString()));
  await libp2p.handle(DISCOVERY_PROTOCOL, (stream: Stream, conn: Connection) => serveDiscovery(stream, conn, registry), { maxInboundStreams: 4 });
  // Each relayed connection opens one STOP stream from the relay to its target; count them as they appear.
  const seenStops = new WeakSet<Stream>();
  const stopTimer = setInterval(() => {
    for (const c of libp2p.getConnections()) {
      for (const s of c.streams) {
        if (s.protocol === RELAY_V2_STOP_CODEC && !seenStops.has(s)) {
          seenStops.add(s);
          relayedTotal++;
        }
      }
    }
  }, 250);

  const metrics = (): SignalMetrics => ({
    peers: libp2p.getPeers().length,
    connections: libp2p.getConnections().length,
    reservations: relay.reservations.size,
    relayedConnections: libp2p.getConnections().reduce((n, c) => n + c.streams.filter((s) => s.protocol === RELAY_V2_STOP_CODEC).length, 0),
    relayedConnectionsTotal: relayedTotal,
    bytesIn: meter.bytesIn(),
    registrations: registry.counts(),
    uptimeS: Math.round((Date.now() - started) / 1000),
  });

  const models = (): ModelInfo[] => {
    const counts = registry.counts();
    const out: ModelInfo[] = seeds.map((s) => ({ ...s.info, peers: counts[s.modelId] ?? 0, seeded: !s.stopped }));
    for (const [m, n] of Object.entries(counts)) {
      if (!seeds.some((s) => s.modelId === m)) out.push({ id: m, name: '', architecture: '', quant: '', parameters: 0, bytes: 0, shards: 0, peers: n, seeded: false });
    }
    return out;
  };

  const prometheus = () => {
    const m = metrics();
    const served = Object.fromEntries(seeds.map((s) => [s.modelId, s.peer.stats().uploadedBytes]));
    return prometheusText([
      { name: 'doppler_peers', help: 'Peers connected to the server.', type: 'gauge', value: m.peers },
      { name: 'doppler_connections', help: 'Open libp2p connections.', type: 'gauge', value: m.connections },
      { name: 'doppler_relay_reservations', help: 'Circuit-relay reservations held.', type: 'gauge', value: m.reservations },
      { name: 'doppler_relayed_connections_total', help: 'Relayed connections (WebRTC set-ups) since start.', type: 'counter', value: m.relayedConnectionsTotal },
      { name: 'doppler_relay_bytes_in_total', help: 'Bytes received on all libp2p connections.', type: 'counter', value: m.bytesIn },
      { name: 'doppler_websocket_bytes_total', help: 'Bytes through the public port\'s WebSocket connections, both ways.', type: 'counter', value: front.bytes() },
      { name: 'doppler_websocket_refused_total', help: 'WebSocket connections refused by the per-IP limit.', type: 'counter', value: front.refused() },
      { name: 'doppler_models', help: 'Models with registered peers.', type: 'gauge', value: Object.keys(m.registrations).length },
      { name: 'doppler_model_peers', help: 'Registered peers per model.', type: 'gauge', value: m.registrations },
      { name: 'doppler_seeded_bytes_served_total', help: 'Shard bytes the server\'s own seeders uploaded, per model.', type: 'counter', value: served },
      { name: 'doppler_uptime_seconds', help: 'Seconds since start.', type: 'gauge', value: m.uptimeS },
    ]);
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { ...ISOLATION_HEADERS, 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (path === '/health') return json(200, { ok: true, peerId: id });
    if (path === '/metrics') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
      res.end(prometheus());
      return;
    }
    if (path === '/metrics.json') return json(200, metrics());
    if (path === '/api/config') return json(200, { peerId: id, signal: signalFor(req), iceServers: opts.iceServers ?? [] });
    if (path === '/api/models') return json(200, models());
    if (opts.appDir && (req.method === 'GET' || req.method === 'HEAD') && (await serveStatic(opts.appDir, path, res))) return;
    json(404, { error: `not found: ${path}` });
  }

  /** The address a page should dial: announced ones, else the host it reached us by. */
  function signalFor(req: IncomingMessage): string[] {
    if (opts.announce?.length) return opts.announce.map((a) => `${a}/p2p/${id}`);
    const hostHeader = req.headers.host ?? `${localHost}:${front.port}`;
    const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hostHeader);
    const h = m?.[1] ?? localHost;
    const p = m?.[2] ?? (tls ? '443' : '80');
    return [`${ipOrDns(h)}/tcp/${p}/${tls ? 'wss' : 'ws'}/p2p/${id}`];
  }

  const stop = async () => {
    clearInterval(stopTimer);
    clearInterval(sweepTimer);
    for (const s of seeds) await s.stop().catch(() => undefined);
    await front.close();
    await libp2p.stop();
  };
  try {
    for (const dir of opts.seeds ?? []) seeds.push(await startSeed(libp2p, registry, dir, () => addrs, opts.registrationTtlMs ?? 30_000));
  } catch (err) {
    await stop();
    throw err;
  }

  return { node: libp2p, addrs, httpUrl: `${tls ? 'https' : 'http'}://${localHost.includes(':') ? `[${localHost}]` : localHost}:${front.port}`, seeds, metrics, models, stop };
}

function ipOrDns(h: string): string {
  if (isIP(h) === 4) return `/ip4/${h}`;
  if (isIP(h) === 6) return `/ip6/${h}`;
  return `/dns4/${h}`;
}

/** A loopback port free right now, for libp2p's WebSockets listener behind the front. */
function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createNetServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

async function createServerNode(opts: SignalServerOptions, port: number, announce: string[], meter: ReturnType<typeof byteMeter>) {
  return createLibp2p({
    ...(opts.keyFile ? { privateKey: await loadOrCreateKey(opts.keyFile) } : {}),
    // libp2p listens on loopback only; the front forwards upgrades to it (and limits connections per IP,
    // which libp2p cannot: every connection reaches it from loopback) and peers see the public addresses.
    addresses: { listen: [`/ip4/127.0.0.1/tcp/${port}/ws`], announce },
    transports: [webSockets(), tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // libp2p's defaults (10 pending handshakes, 10 s to finish one) let ten silent sockets lock everyone out
    connectionManager: {
      maxConnections: opts.maxConnections ?? 1024,
      maxIncomingPendingConnections: opts.maxPendingConnections ?? 256,
      inboundUpgradeTimeout: opts.upgradeTimeoutMs ?? 5000,
    },
    metrics: meter.metrics,
    services: {
      identify: identify(),
      ping: ping(),
      relay: circuitRelayServer({
        reservations: {
          maxReservations: opts.maxReservations ?? 128,
          defaultDataLimit: BigInt(opts.maxPeerBytes ?? 1024 * 1024),
          defaultDurationLimit: (opts.maxRelaySeconds ?? 120) * 1000,
        },
      }),
    },
  });
}

async function serveDiscovery(stream: Stream, conn: Connection, registry: PeerRegistry): Promise<void> {
  const peer = conn.remotePeer.toString();
  const from = `peer ${peer}`;
  try {
    const req = parseDiscoveryRequest(await new FrameReader(stream, from).readFrame(MAX_MESSAGE_BYTES), from);
    let reply;
    try {
      reply = { t: 'peers', peers: registry.register(req.model, peer, req.addrs, MAX_PEERS_LISTED) };
    } catch (err) {
      reply = { t: 'err', message: (err as Error).message };
    }
    await sendAll(stream, encodeFrame(reply));
    await stream.close();
  } catch (err) {
    stream.abort(err as Error);
  }
}
