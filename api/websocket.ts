/**
 * The server side of RFC 6455, as much as the API needs: the upgrade handshake, text messages
 * (fragmented or not) from masked client frames, ping/pong and close. Nothing outside Node's
 * http and crypto; browsers' and Node's own WebSocket clients talk to it.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_MESSAGE = 1 << 20;

export interface WsConnection {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  readonly closed: boolean;
}

export interface WsHandlers {
  message(text: string): void;
  close(): void;
}

/** Completes the handshake on an `upgrade` request; returns null (after answering 400) when it is not a WebSocket one. */
export function acceptWebSocket(req: IncomingMessage, socket: Duplex, handlers: (ws: WsConnection) => WsHandlers): WsConnection | null {
  const key = req.headers['sec-websocket-key'];
  if (req.headers.upgrade?.toLowerCase() !== 'websocket' || typeof key !== 'string') {
    socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    return null;
  }
  const accept = createHash('sha1').update(key + GUID).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  let closed = false;
  const conn: WsConnection = {
    send: (text) => {
      if (!closed) socket.write(frame(1, Buffer.from(text, 'utf8')));
    },
    close: (code = 1000, reason = '') => {
      if (closed) return;
      closed = true;
      const body = Buffer.alloc(2 + Buffer.byteLength(reason));
      body.writeUInt16BE(code, 0);
      body.write(reason, 2);
      socket.end(frame(8, body));
    },
    get closed() {
      return closed;
    },
  };
  const h = handlers(conn);
  let buf = Buffer.alloc(0);
  let parts: Buffer[] = [];
  let partBytes = 0;
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (;;) {
      const f = parseFrame(buf);
      if (f === 'incomplete') return;
      if (f === 'bad') return conn.close(1002, 'protocol error');
      buf = buf.subarray(f.length);
      if (f.opcode === 8) return conn.close();
      if (f.opcode === 9) socket.write(frame(10, f.payload));
      if (f.opcode === 2) return conn.close(1003, 'text messages only');
      if (f.opcode === 1 || f.opcode === 0) {
        parts.push(f.payload);
        partBytes += f.payload.length;
        if (partBytes > MAX_MESSAGE) return conn.close(1009, 'message too large');
        if (f.fin) {
          const text = Buffer.concat(parts).toString('utf8');
          parts = [];
          partBytes = 0;
          h.message(text);
        }
      }
    }
  });
  const ended = () => {
    if (!closed) closed = true;
    h.close();
  };
  socket.once('close', ended);
  socket.on('error', () => socket.destroy());
  return conn;
}

function frame(opcode: number, payload: Buffer): Buffer {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n]) : n < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  if (n >= 126 && n < 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else if (n >= 65536) {
    head[0] = 0x80 | opcode;
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

function parseFrame(b: Buffer): { fin: boolean; opcode: number; payload: Buffer; length: number } | 'incomplete' | 'bad' {
  if (b.length < 2) return 'incomplete';
  const fin = (b[0]! & 0x80) !== 0;
  const opcode = b[0]! & 0x0f;
  if (b[0]! & 0x70) return 'bad';
  // clients must mask what they send
  if ((b[1]! & 0x80) === 0) return 'bad';
  let len = b[1]! & 0x7f;
  let at = 2;
  if (len === 126) {
    if (b.length < 4) return 'incomplete';
    len = b.readUInt16BE(2);
    at = 4;
  } else if (len === 127) {
    if (b.length < 10) return 'incomplete';
    const big = b.readBigUInt64BE(2);
    if (big > BigInt(MAX_MESSAGE)) return 'bad';
    len = Number(big);
    at = 10;
  }
  if (b.length < at + 4 + len) return 'incomplete';
  const mask = b.subarray(at, at + 4);
  const payload = Buffer.alloc(len);
  for (let i = 0; i < len; i++) payload[i] = b[at + 4 + i]! ^ mask[i & 3]!;
  return { fin, opcode, payload, length: at + 4 + len };
}
