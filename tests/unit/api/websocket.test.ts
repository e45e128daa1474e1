/** The small RFC 6455 server: fragmented and split frames, ping, and protocol errors. */
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acceptWebSocket } from '../../../api/websocket.ts';

/** A client frame: masked, as RFC 6455 requires of clients. */
function clientFrame(opcode: number, payload: Buffer, fin = true, masked = true): Buffer {
  const mask = Buffer.from([1, 2, 3, 4]);
  const head = Buffer.from([(fin ? 0x80 : 0) | opcode, (masked ? 0x80 : 0) | payload.length]);
  const body = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  return Buffer.concat(masked ? [head, mask, body] : [head, payload]);
}

describe('acceptWebSocket', () => {
  let server: Server;
  let port: number;
  const sockets: Duplex[] = [];
  beforeAll(async () => {
    server = createServer();
    server.on('upgrade', (req, socket) => sockets.push(socket) && acceptWebSocket(req, socket, (ws) => ({ message: (t) => ws.send(`echo:${t}`), close: () => {} })));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));

  async function open() {
    const sock = connect(port, '127.0.0.1');
    let got = Buffer.alloc(0);
    sock.on('data', (d) => (got = Buffer.concat([got, d])));
    sock.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
    const until = async (cond: () => boolean) => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    };
    await until(() => got.includes('\r\n\r\n'));
    // RFC 6455's own example key and accept value
    expect(got.toString()).toContain('Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    got = got.subarray(got.indexOf('\r\n\r\n') + 4);
    return { sock, got: () => got, until };
  }

  it('joins fragmented messages, survives frames split across reads, and answers ping', async () => {
    const c = await open();
    const whole = Buffer.concat([clientFrame(1, Buffer.from('hel'), false), clientFrame(0, Buffer.from('lo'))]);
    c.sock.write(whole.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 20));
    c.sock.write(whole.subarray(5));
    c.sock.write(clientFrame(9, Buffer.from('p')));
    await c.until(() => c.got().length >= 2 + 10 + 3);
    expect(c.got().subarray(0, 12)).toEqual(Buffer.concat([Buffer.from([0x81, 10]), Buffer.from('echo:hello')]));
    expect(c.got().subarray(12, 15)).toEqual(Buffer.from([0x8a, 1, 0x70]));
    c.sock.destroy();
  });

  it('closes with 1002 on an unmasked client frame', async () => {
    const c = await open();
    c.sock.write(clientFrame(1, Buffer.from('x'), true, false));
    await c.until(() => c.got().length >= 4);
    expect(c.got()[0]).toBe(0x88);
    expect(c.got().readUInt16BE(2)).toBe(1002);
    c.sock.destroy();
  });
});
