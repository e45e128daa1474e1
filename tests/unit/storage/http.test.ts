import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpSource, ShardStore, SourceError, StorageError } from '../../../storage/index.ts';
import { corrupt, makeShards, type Shard } from './helpers.ts';

let server: Server;
let base: string;
let shards: Shard[];
const requests: string[] = [];
const MANIFEST = new Uint8Array([0x81, 0xa1, 0x61, 0x01]);

beforeAll(async () => {
  shards = await makeShards(3, 4096, 11);
  const bad = shards[2]!.hash;
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    const m = /^\/model\/shards\/([0-9a-f]{64})$/.exec(req.url ?? '');
    if (req.url === '/model/manifest.msgpack') {
      res.end(MANIFEST);
      return;
    }
    const s = m && shards.find((x) => x.hash === m[1]);
    if (!s) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    res.end(s.hash === bad ? corrupt(s.bytes) : s.bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/model/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('HttpSource', () => {
  it('fetches shards and the manifest under the base URL', async () => {
    const src = new HttpSource(base);
    expect(src.name).toBe(base.replace(/\/$/, ''));
    expect(await src.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    expect(await src.getManifest()).toEqual(MANIFEST);
    expect(requests).toContain(`/model/shards/${shards[0]!.hash}`);
  });

  it('turns an HTTP error into a SourceError naming the URL and status', async () => {
    const missing = '1'.repeat(64);
    await expect(new HttpSource(base).get(missing)).rejects.toThrow(new RegExp(`/model/shards/${missing}: HTTP 404`));
    await expect(new HttpSource(base).get(missing)).rejects.toBeInstanceOf(SourceError);
  });

  it('refuses responses over its size limit and malformed arguments', async () => {
    await expect(new HttpSource(base, { maxBytes: 1000 }).get(shards[0]!.hash)).rejects.toThrow(/over the 1000-byte limit/);
    await expect(new HttpSource(base).get('../secret')).rejects.toBeInstanceOf(StorageError);
    expect(() => new HttpSource('ftp://x/')).toThrow(/http\(s\) URL/);
    expect(() => new HttpSource('not a url')).toThrow(/not a URL/);
  });

  it('backs a store: verified bytes, a corrupted response detected and reported', async () => {
    const store = await ShardStore.open({ sources: [new HttpSource(base)], ramBytes: 1 << 20 });
    expect(await store.get(shards[1]!.hash)).toEqual(shards[1]!.bytes);
    await expect(store.get(shards[2]!.hash)).rejects.toThrow(/no source delivered verified bytes in 2 attempts/);
    const st = store.stats();
    expect(st.remote.verifyFailures).toBe(2);
    expect(st.remote.sources[base.replace(/\/$/, '')]!.verifyFailures).toBe(2);
    await store.close();
  });

  it('passes the abort signal to fetch', async () => {
    const ac = new AbortController();
    ac.abort();
    await expect(new HttpSource(base).get(shards[0]!.hash, ac.signal)).rejects.toMatchObject({ name: 'AbortError' });
  });
});
