import { createLibp2p } from 'libp2p';
import { webSockets } from '@libp2p/websockets';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify } from '@libp2p/identify';
import { ping } from '@libp2p/ping';
import { circuitRelayServer, RELAY_V2_STOP_CODEC, type CircuitRelayService } from '@libp2p/circuit-relay-v2';
import type { Libp2p, Stream, Connection } from '@libp2p/interface';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  DISCOVERY_PROTOCOL, FrameReader, MAX_MESSAGE_BYTES, MAX_PEERS_LISTED, encodeFrame, parseDiscoveryRequest, sendAll,
} from '../swarm/index.ts';
import { loadOrCreateKey } from '../swarm/node.ts';
import { PeerRegistry } from './registry.ts';
import { byteMeter } from './byte-meter.ts';

export interface SignalServerOptions {
  /** WebSockets port (0: any free). Default 9090. */
  port?: number;
  /** Address to listen on. Default 127.0.0.1. */
  host?: string;
  /** Port of the HTTP /health and /metrics endpoint (0: any free). Default port + 1, or any free when port is 0. */
  httpPort?: number;
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
  /** A peer's registration lapses unless renewed within this time. Default 30 s. */
  registrationTtlMs?: number;
  /** Most models one peer may register under at once. Default 8. */
  maxModelsPerPeer?: number;
  /** Most connections from one IP address, pending or open. Default 128. */
  maxConnectionsPerIp?: number;
  /** Connections still in their handshake at once (silent ones time out after upgradeTimeoutMs). Default 256. */
  maxPendingConnections?: number;
  /** A connection that has not finished its handshake in this time is dropped. Default 5000 ms. */
  upgradeTimeoutMs?: number;
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
  httpUrl: string;
  metrics(): SignalMetrics;
  stop(): Promise<void>;
}

/**
 * The signaling server: bootstrap node for browsers and Node peers, circuit-relay v2 server (so
 * browsers can set up WebRTC with each other), and the model → peers directory. It stores no weights.
 */
export async function startSignalServer(opts: SignalServerOptions = {}): Promise<SignalServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 9090;
  const meter = byteMeter();
  const perIp = ipLimiter(opts.maxConnectionsPerIp ?? 128, (opts.upgradeTimeoutMs ?? 5000) + 500);
  const node = await createLibp2p({
    ...(opts.keyFile ? { privateKey: await loadOrCreateKey(opts.keyFile) } : {}),
    addresses: { listen: [`/ip4/${host}/tcp/${port}/ws`] },
    transports: [webSockets(), tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // libp2p's defaults (10 pending handshakes, 10 s to finish one) let ten silent sockets lock everyone out
    connectionManager: {
      maxConnections: opts.maxConnections ?? 1024,
      maxIncomingPendingConnections: opts.maxPendingConnections ?? 256,
      inboundUpgradeTimeout: opts.upgradeTimeoutMs ?? 5000,
    },
    connectionGater: { denyInboundConnection: (maConn) => perIp.deny(maConn.remoteAddr.toString()) },
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
  const relay: CircuitRelayService = node.services.relay;
  const registry = new PeerRegistry({ ttlMs: opts.registrationTtlMs ?? 30_000, ...(opts.maxModelsPerPeer ? { maxModelsPerPeer: opts.maxModelsPerPeer } : {}) });
  perIp.track(node);
  // lapsed registrations give their memory back even when nobody registers again
  const sweepTimer = setInterval(() => registry.sweep(), Math.max(1000, (opts.registrationTtlMs ?? 30_000) / 2));
  const started = Date.now();
  let relayedTotal = 0;

  node.addEventListener('peer:disconnect', (e) => registry.remove(e.detail.toString()));
  await node.handle(DISCOVERY_PROTOCOL, (stream: Stream, conn: Connection) => serveDiscovery(stream, conn, registry), { maxInboundStreams: 4 });
  // Each relayed connection opens one STOP stream from the relay to its target; count them as they appear.
  const seenStops = new WeakSet<Stream>();
  const stopTimer = setInterval(() => {
    for (const c of node.getConnections()) {
      for (const s of c.streams) {
        if (s.protocol === RELAY_V2_STOP_CODEC && !seenStops.has(s)) {
          seenStops.add(s);
          relayedTotal++;
        }
      }
    }
  }, 250);

  const metrics = (): SignalMetrics => ({
    peers: node.getPeers().length,
    connections: node.getConnections().length,
    reservations: relay.reservations.size,
    relayedConnections: node.getConnections().reduce((n, c) => n + c.streams.filter((s) => s.protocol === RELAY_V2_STOP_CODEC).length, 0),
    relayedConnectionsTotal: relayedTotal,
    bytesIn: meter.bytesIn(),
    registrations: registry.counts(),
    uptimeS: Math.round((Date.now() - started) / 1000),
  });

  const http: Server = createServer((req, res) => {
    const body = req.url === '/health' ? { ok: true, peerId: node.peerId.toString() } : req.url === '/metrics' ? metrics() : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
    res.end(JSON.stringify(body ?? { error: 'not found' }));
  });
  const httpPort = opts.httpPort ?? (port === 0 ? 0 : port + 1);
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(httpPort, host, () => resolve());
  });
  const bound = (http.address() as AddressInfo).port;

  return {
    node,
    addrs: node.getMultiaddrs().map(String),
    httpUrl: `http://${host}:${bound}`,
    metrics,
    async stop() {
      clearInterval(stopTimer);
      clearInterval(sweepTimer);
      await new Promise<void>((r) => http.close(() => r()));
      http.closeAllConnections();
      await node.stop();
    },
  };
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

/** The host part of a multiaddr string (/ip4/1.2.3.4/tcp/…), or the whole string when it has none. */
function hostOf(addr: string): string {
  const m = /^\/(?:ip4|ip6|dns4|dns6|dns)\/([^/]+)/.exec(addr);
  return m ? m[1]! : addr;
}

/**
 * Connections per remote IP, counting those still in their handshake (a socket that never speaks
 * holds its slot until the upgrade timeout), so one address cannot take every slot.
 */
function ipLimiter(max: number, windowMs: number): { deny(addr: string): boolean; track(node: Libp2p): void } {
  const open = new Map<string, number>();
  const pendingByHost = new Map<string, number>();
  return {
    deny(addr) {
      const host = hostOf(addr);
      const n = (open.get(host) ?? 0) + (pendingByHost.get(host) ?? 0);
      if (n >= max) return true;
      pendingByHost.set(host, (pendingByHost.get(host) ?? 0) + 1);
      // counted as pending for the upgrade window (a finished handshake is counted as open besides)
      setTimeout(() => {
        const p = (pendingByHost.get(host) ?? 1) - 1;
        if (p <= 0) pendingByHost.delete(host);
        else pendingByHost.set(host, p);
      }, windowMs).unref();
      return false;
    },
    track(node) {
      node.addEventListener('connection:open', (e) => {
        const host = hostOf(e.detail.remoteAddr.toString());
        open.set(host, (open.get(host) ?? 0) + 1);
      });
      node.addEventListener('connection:close', (e) => {
        const host = hostOf(e.detail.remoteAddr.toString());
        const n = (open.get(host) ?? 1) - 1;
        if (n <= 0) open.delete(host);
        else open.set(host, n);
      });
    },
  };
}
