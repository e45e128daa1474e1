/**
 * The server's one public port: HTTP(S) requests go to the route handler, WebSocket upgrades are
 * piped to the libp2p WebSockets listener on a loopback port. libp2p's listener owns its socket
 * and takes no external server, so the front terminates TLS and forwards the upgrade bytes as they
 * came; to libp2p every connection is a plain ws one from loopback.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';

export interface FrontOptions {
  port: number;
  host: string;
  /** PEM certificate and key: serve https and wss. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Most open WebSocket connections from one IP address; more are refused with 429. */
  maxConnectionsPerIp: number;
  /** Loopback port of the libp2p WebSockets listener (known once libp2p listens). */
  upstreamPort: () => number;
  handle: (req: IncomingMessage, res: ServerResponse) => void;
}

export interface Front {
  server: Server;
  port: number;
  /** Bytes piped through upgraded connections, both directions. */
  bytes(): number;
  /** Upgrades refused by the per-IP limit. */
  refused(): number;
  close(): Promise<void>;
}

export async function startFront(opts: FrontOptions): Promise<Front> {
  const server: Server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, opts.handle) : createHttpServer(opts.handle);
  const perIp = new Map<string, number>();
  const open = new Set<Duplex>();
  let piped = 0;
  let refused = 0;

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const ip = req.socket.remoteAddress ?? '?';
    const n = perIp.get(ip) ?? 0;
    if (n >= opts.maxConnectionsPerIp) {
      refused++;
      socket.end(`HTTP/1.1 429 Too Many Requests\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      return;
    }
    perIp.set(ip, n + 1);
    open.add(socket);
    const upstream: Socket = connect(opts.upstreamPort(), '127.0.0.1');
    const done = () => {
      if (!open.delete(socket)) return;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
      upstream.destroy();
      socket.destroy();
    };
    socket.on('data', (d: Buffer) => (piped += d.length));
    upstream.on('data', (d: Buffer) => (piped += d.length));
    socket.on('close', done).on('error', done);
    upstream.on('close', done).on('error', done);
    upstream.on('connect', () => {
      upstream.write(requestHead(req));
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    bytes: () => piped,
    refused: () => refused,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
    },
  };
}

/** The request line and headers as received, for the upstream listener to parse again. */
function requestHead(req: IncomingMessage): string {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}
