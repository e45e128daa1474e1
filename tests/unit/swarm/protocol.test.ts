import { describe, expect, it } from 'vitest';
import { FrameReader, encodeFrame, RateLimiter, SwarmProtocolError, parseDiscoveryRequest } from '../../../swarm/index.ts';
import { bitfieldOf, hasBit, parseShardRequest, parseShardResponse, MAX_PIECE_BYTES } from '../../../swarm/protocol.ts';

async function* chunks(parts: Uint8Array[]) {
  for (const p of parts) yield p;
}

/** Splits bytes into pieces of varying size, as a network would. */
function split(b: Uint8Array, sizes: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  for (let i = 0; o < b.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(b.subarray(o, o + n));
    o += n;
  }
  return out;
}

const H = 'ab'.repeat(32);

describe('framing', () => {
  it('reads frames and raw bytes back across arbitrary chunk boundaries', async () => {
    const raw = Uint8Array.from({ length: 1000 }, (_, i) => i & 255);
    const all = new Uint8Array([...encodeFrame({ t: 'bytes', length: 1000 }), ...raw, ...encodeFrame({ t: 'err', message: 'x' })]);
    for (const sizes of [[1], [3, 7], [4096]]) {
      const r = new FrameReader(chunks(split(all, sizes)), 'test');
      expect(await r.readFrame(1024)).toEqual({ t: 'bytes', length: 1000 });
      expect(await r.readExact(1000)).toEqual(raw);
      expect(await r.readFrame(1024)).toEqual({ t: 'err', message: 'x' });
      expect(await r.readFrame(1024)).toBeNull();
    }
  });

  it('refuses a frame over the limit and a stream cut short, naming the peer', async () => {
    const big = encodeFrame({ pad: new Uint8Array(2000) });
    await expect(new FrameReader(chunks([big]), 'peer X').readFrame(1024)).rejects.toThrow(/peer X: message of \d+ bytes exceeds/);
    await expect(new FrameReader(chunks([big.subarray(0, 10)]), 'peer Y').readFrame(4096)).rejects.toThrow(SwarmProtocolError);
  });
});

describe('message validation', () => {
  it('accepts well-formed requests', () => {
    expect(parseShardRequest({ t: 'get', model: H, hash: H, offset: 0, length: 10 }, 'p')).toEqual({ t: 'get', model: H, hash: H, offset: 0, length: 10 });
    expect(parseDiscoveryRequest({ t: 'register', model: H, addrs: ['/ip4/1.2.3.4/tcp/1'] }, 'p').addrs).toHaveLength(1);
  });

  it('rejects malformed or oversized ones', () => {
    expect(() => parseShardRequest({ t: 'get', model: H, hash: 'nothex', offset: 0, length: 1 }, 'peer Z')).toThrow(/peer Z: hash/);
    expect(() => parseShardRequest({ t: 'get', model: H, hash: H, offset: -1, length: 1 }, 'p')).toThrow(/offset/);
    expect(() => parseShardRequest({ t: 'get', model: H, hash: H, offset: 0, length: MAX_PIECE_BYTES + 1 }, 'p')).toThrow(/length/);
    expect(() => parseShardRequest({ t: 'nope' }, 'p')).toThrow(/unknown request/);
    expect(() => parseShardResponse({ t: 'have', model: H, bits: 'x', budget: 0, peers: [] }, 'p')).toThrow(/bits/);
    expect(() => parseDiscoveryRequest({ t: 'register', model: H, addrs: Array(17).fill('/x') }, 'p')).toThrow(/addrs/);
  });

  it('bitfields round-trip', () => {
    const held = Array.from({ length: 19 }, (_, i) => i % 3 === 0);
    const bits = bitfieldOf(held);
    expect(bits.length).toBe(3);
    expect(held.map((_, i) => hasBit(bits, i))).toEqual(held);
  });
});

describe('upload rate limiter', () => {
  it('makes small writes wait too at low rates', async () => {
    const lim = new RateLimiter(4096);
    expect(lim.chunkBytes).toBe(1024);
    const start = performance.now();
    for (let i = 0; i < 3; i++) await lim.take(1024);
    expect(performance.now() - start).toBeGreaterThan(400);
  });

  it('holds a stream of writes to the configured rate', async () => {
    const lim = new RateLimiter(1024 * 1024);
    const start = performance.now();
    expect(lim.chunkBytes).toBe(52429);
    for (let i = 0; i < 30; i++) await lim.take(lim.chunkBytes);
    const s = (performance.now() - start) / 1000;
    // 1.5 MiB at 1 MiB/s, less the first chunk that the bucket starts with.
    expect(s).toBeGreaterThan(1.3);
    expect(s).toBeLessThan(5);
  });
});
