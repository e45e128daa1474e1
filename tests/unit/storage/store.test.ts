import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blake3Hex } from '../../../manifests/index.ts';
import {
  ShardStore,
  ShardUnavailableError,
  StorageBudgetError,
  StorageError,
  type ShardMeta,
  type ShardStoreOptions,
} from '../../../storage/index.ts';
import { DirBackend } from '../../../storage/node.ts';
import { FakeUploader, MemorySource, corrupt, makeShards, until, type FakeHandle } from './helpers.ts';

const SIZE = 1024;

let dir: string;
const opened: ShardStore<unknown>[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'doppler-store-'));
  opened.length = 0;
});
afterEach(async () => {
  // finish background writes before the directory goes
  await Promise.all(opened.map((s) => s.close()));
  await rm(dir, { recursive: true, force: true });
});

async function open<H = unknown>(opts: ShardStoreOptions<H>): Promise<ShardStore<H>> {
  const s = await ShardStore.open<H>(opts);
  opened.push(s as ShardStore<unknown>);
  return s;
}

describe('ShardStore: tiers and verification', () => {
  it('fetches from the source, verifies, promotes into RAM and the persistent tier', async () => {
    const shards = await makeShards(3, SIZE);
    const src = new MemorySource('mem', shards);
    const store = await open({ sources: [src], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    const got = await store.get(shards[0]!.hash);
    expect(got).toEqual(shards[0]!.bytes);
    await store.flush();
    expect(store.where(shards[0]!.hash)).toEqual(['ram', 'persistent']);
    expect(await readFile(join(dir, 'shards', shards[0]!.hash))).toEqual(Buffer.from(shards[0]!.bytes));
    await store.get(shards[0]!.hash);
    expect(src.calls.length).toBe(1);
    const s = store.stats();
    expect(s.ram.hits).toBe(1);
    expect(s.ram.misses).toBe(1);
    expect(s.persistent!.misses).toBe(1);
    expect(s.remote.hits).toBe(1);
    expect(s.remote.bytesOut).toBe(SIZE);
    expect(s.persistent!.residentBytes).toBe(SIZE);
    expect(s.requests).toBe(2);
    expect(s.remote.waitMs).toBeGreaterThanOrEqual(0);
    await store.close();
  });

  it('keeps each tier within its budget and counts evictions', async () => {
    const shards = await makeShards(6, SIZE);
    const store = await open({ sources: [new MemorySource('mem', shards)], ramBytes: 3 * SIZE + 100 });
    for (const s of shards) await store.get(s.hash);
    const st = store.stats();
    expect(st.ram.entries).toBe(3);
    expect(st.ram.residentBytes).toBeLessThanOrEqual(3 * SIZE + 100);
    expect(st.ram.evictions).toBe(3);
    expect(shards.filter((s) => store.where(s.hash).includes('ram')).length).toBe(3);
  });

  it('passes shards larger than the RAM budget through without keeping them', async () => {
    const shards = await makeShards(1, SIZE);
    const store = await open({ sources: [new MemorySource('mem', shards)], ramBytes: SIZE - 1 });
    expect(await store.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    expect(store.where(shards[0]!.hash)).toEqual([]);
  });

  it('detects corrupted bytes from one source and takes the shard from the next', async () => {
    const shards = await makeShards(2, SIZE);
    const evil = new MemorySource('evil', shards);
    const good = new MemorySource('good', shards);
    evil.bad.add(shards[0]!.hash);
    const store = await open({ sources: [evil, good], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    expect(await store.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    await store.flush();
    const s = store.stats();
    expect(s.remote.verifyFailures).toBe(1);
    expect(s.remote.sources.evil!.verifyFailures).toBe(1);
    expect(s.remote.sources.good!.requests).toBe(1);
    expect(await blake3Hex(await readFile(join(dir, 'shards', shards[0]!.hash)))).toBe(shards[0]!.hash);
    // the evil source still serves shard 1 correctly: it is not skipped for good
    await store.get(shards[1]!.hash);
    expect(good.calls).toEqual([shards[0]!.hash]);
  });

  it('refetches from the same source when it is the only one and the first copy was bad', async () => {
    const shards = await makeShards(1, SIZE);
    const src = new MemorySource('only', shards);
    src.bad.add(shards[0]!.hash);
    src.badOnce = true;
    const store = await open({ sources: [src], ramBytes: 10 * SIZE });
    expect(await store.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    expect(src.calls.length).toBe(2);
    expect(store.stats().remote.verifyFailures).toBe(1);
  });

  it('fails with ShardUnavailableError naming each attempt when no source serves good bytes, storing nothing', async () => {
    const shards = await makeShards(1, SIZE);
    const a = new MemorySource('a', shards);
    const b = new MemorySource('b', []);
    a.bad.add(shards[0]!.hash);
    const store = await open({ sources: [a, b], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    const err = await store.get(shards[0]!.hash).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ShardUnavailableError);
    expect((err as Error).message).toMatch(/3 attempts \(2 sources\)/);
    const causes = ((err as Error).cause as AggregateError).errors.map((e: Error) => e.message);
    expect(causes[0]).toMatch(/^a served bytes .* hash to something else/);
    expect(causes[1]).toMatch(/^b: b has no shard/);
    await store.flush();
    expect(store.where(shards[0]!.hash)).toEqual([]);
    expect(await readdir(join(dir, 'shards'))).toEqual([]);
    expect(store.stats().remote.misses).toBe(1);
  });

  it('rejects a source answer whose size disagrees with the manifest before hashing it', async () => {
    const shards = await makeShards(1, SIZE);
    const meta = new Map<string, ShardMeta>([[shards[0]!.hash, { size: SIZE + 1 }]]);
    const store = await open({ sources: [new MemorySource('m', shards)], ramBytes: 10 * SIZE, meta, maxAttempts: 1 });
    const err = await store.get(shards[0]!.hash).catch((e: unknown) => e);
    expect(((err as Error).cause as AggregateError).errors[0].message).toMatch(/served 1024 bytes .* the manifest says 1025/);
  });

  it('refuses malformed hashes before touching any tier', async () => {
    const store = await open({ sources: [new MemorySource('m', [])], ramBytes: SIZE, persistent: { backend: await DirBackend.open(dir), bytes: SIZE } });
    await expect(store.get('../../etc/passwd')).rejects.toThrow(StorageError);
    await expect(store.get('A'.repeat(64))).rejects.toThrow(/not a shard hash/);
    expect(() => store.prefetch(['nope'], 1)).toThrow(/not a shard hash/);
    expect(store.stats().requests).toBe(0);
  });
});

describe('ShardStore: restart and the persistent tier', () => {
  it('warm restart serves everything from disk without any source', async () => {
    const shards = await makeShards(4, SIZE);
    const first = await open({ sources: [new MemorySource('m', shards)], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    for (const s of shards) await first.get(s.hash);
    await first.close();
    const second = await open({ ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    expect(second.stats().persistent!.entries).toBe(4);
    for (const s of shards) expect(await second.get(s.hash)).toEqual(s.bytes);
    const st = second.stats();
    expect(st.persistent!.hits).toBe(4);
    expect(st.persistent!.verifyFailures).toBe(0);
    const missing = (await makeShards(1, SIZE, 77))[0]!;
    await expect(second.get(missing.hash)).rejects.toThrow(/not stored locally and no source is configured/);
  });

  it('detects a corrupted file after restart, drops it, and refetches it from the source', async () => {
    const shards = await makeShards(2, SIZE);
    const first = await open({ sources: [new MemorySource('m', shards)], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    for (const s of shards) await first.get(s.hash);
    await first.close();
    const path = join(dir, 'shards', shards[0]!.hash);
    await writeFile(path, corrupt(await readFile(path)));
    const src = new MemorySource('m', shards);
    const second = await open({ sources: [src], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    expect(await second.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    expect(await second.get(shards[1]!.hash)).toEqual(shards[1]!.bytes);
    await second.flush();
    const st = second.stats();
    expect(st.persistent!.verifyFailures).toBe(1);
    expect(st.persistent!.hits).toBe(1);
    expect(src.calls).toEqual([shards[0]!.hash]);
    expect(await blake3Hex(await readFile(path))).toBe(shards[0]!.hash);
  });

  it('treats a truncated file as corrupt and cleans up temporaries of an interrupted write', async () => {
    const shards = await makeShards(1, SIZE);
    await DirBackend.open(dir);
    await writeFile(join(dir, 'shards', shards[0]!.hash), shards[0]!.bytes.subarray(0, 100));
    await writeFile(join(dir, 'shards', `.tmp-${shards[0]!.hash}-abc`), shards[0]!.bytes.subarray(0, 10));
    await writeFile(join(dir, 'shards', 'README'), 'not a shard');
    const store = await open({ sources: [new MemorySource('m', shards)], ramBytes: 10 * SIZE, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    expect((await readdir(join(dir, 'shards'))).sort()).toEqual(['README', shards[0]!.hash].sort());
    expect(await store.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    await store.flush();
    expect(store.stats().persistent!.verifyFailures).toBe(1);
    expect((await readFile(join(dir, 'shards', shards[0]!.hash))).length).toBe(SIZE);
  });

  it('evicts files beyond the persistent budget, keeping pinned ones', async () => {
    const shards = await makeShards(5, SIZE);
    const store = await open({ sources: [new MemorySource('m', shards)], ramBytes: 0, persistent: { backend: await DirBackend.open(dir), bytes: 2 * SIZE } });
    store.pin(shards[0]!.hash);
    for (const s of shards) {
      await store.get(s.hash);
      await store.flush();
    }
    const files = await readdir(join(dir, 'shards'));
    expect(files.length).toBe(2);
    expect(files).toContain(shards[0]!.hash);
    expect(store.stats().persistent!.evictions).toBe(3);
  });

  it('shrinks an over-full cache directory to the budget at open', async () => {
    const shards = await makeShards(4, SIZE);
    const first = await open({ sources: [new MemorySource('m', shards)], ramBytes: 0, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
    for (const s of shards) await first.get(s.hash);
    await first.close();
    const second = await open({ ramBytes: 0, persistent: { backend: await DirBackend.open(dir), bytes: 2 * SIZE } });
    await second.flush();
    expect(second.stats().persistent!.entries).toBe(2);
    expect((await readdir(join(dir, 'shards'))).length).toBe(2);
  });
});

describe('ShardStore: concurrency', () => {
  it('shares one fetch among concurrent requests', async () => {
    const shards = await makeShards(1, SIZE);
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await open({ sources: [src], ramBytes: 10 * SIZE });
    const all = Array.from({ length: 10 }, () => store.get(shards[0]!.hash));
    await until(() => src.calls.length === 1, 'the fetch to start');
    src.open();
    const got = await Promise.all(all);
    for (const g of got) expect(g).toEqual(shards[0]!.bytes);
    expect(src.calls.length).toBe(1);
    const st = store.stats();
    expect(st.deduplicated).toBe(9);
    expect(st.requests).toBe(10);
  });

  it('uploads once for concurrent getDevice calls and shares the fetch with get', async () => {
    const shards = await makeShards(1, SIZE);
    const src = new MemorySource('m', shards);
    src.hold();
    const up = new FakeUploader();
    const store = await open<FakeHandle>({ sources: [src], ramBytes: 10 * SIZE, vram: { bytes: 4 * SIZE, uploader: up } });
    const devs = Array.from({ length: 5 }, () => store.getDevice(shards[0]!.hash));
    const bytes = store.get(shards[0]!.hash);
    await until(() => src.calls.length === 1, 'the fetch to start');
    src.open();
    const handles = await Promise.all(devs);
    expect(new Set(handles).size).toBe(1);
    expect(handles[0]!.bytes).toEqual(shards[0]!.bytes);
    expect(await bytes).toEqual(shards[0]!.bytes);
    expect(up.uploads).toBe(1);
    expect(src.calls.length).toBe(1);
    expect(store.where(shards[0]!.hash)).toEqual(['vram', 'ram']);
  });

  it('a caller abort rejects that caller only; the fetch stops when every caller has left', async () => {
    const shards = await makeShards(1, SIZE);
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await open({ sources: [src], ramBytes: 10 * SIZE });
    const a = new AbortController();
    const b = new AbortController();
    const pa = store.get(shards[0]!.hash, a.signal);
    const pb = store.get(shards[0]!.hash, b.signal);
    await until(() => src.calls.length === 1, 'the fetch to start');
    a.abort();
    await expect(pa).rejects.toMatchObject({ name: 'AbortError' });
    expect(src.aborted).toEqual([]);
    b.abort();
    await expect(pb).rejects.toMatchObject({ name: 'AbortError' });
    await until(() => src.aborted.length === 1, 'the source to see the abort');
    src.open();
    // a fresh request starts a fresh fetch rather than joining the abandoned one
    expect(await store.get(shards[0]!.hash)).toEqual(shards[0]!.bytes);
    expect(src.calls.length).toBe(2);
  });
});

describe('ShardStore: VRAM, pinning and the working set', () => {
  it('evicts device handles through the uploader and releases every handle on close', async () => {
    const shards = await makeShards(5, SIZE);
    const up = new FakeUploader();
    const store = await open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: 2 * SIZE, uploader: up } });
    for (const s of shards) {
      const h = await store.getDevice(s.hash);
      expect(h.bytes).toEqual(s.bytes);
    }
    expect(up.live.size).toBe(2);
    expect(up.releases).toBe(3);
    expect(store.stats().vram!.evictions).toBe(3);
    await store.close();
    expect(up.live.size).toBe(0);
    await expect(store.get(shards[0]!.hash)).rejects.toThrow(/closed/);
  });

  it('never evicts pinned shards and refuses with StorageBudgetError when pins fill the budget', async () => {
    const shards = await makeShards(4, SIZE);
    const up = new FakeUploader();
    const store = await open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: 2 * SIZE, uploader: up } });
    store.pin(shards[0]!.hash);
    store.pin(shards[1]!.hash);
    await store.getDevice(shards[0]!.hash);
    await store.getDevice(shards[1]!.hash);
    const err = await store.getDevice(shards[2]!.hash).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageBudgetError);
    expect((err as Error).message).toMatch(/vram budget of 2048 bytes cannot hold shard .* \(1024 bytes\): 2048 bytes are pinned/);
    expect(store.where(shards[0]!.hash)).toEqual(['vram']);
    store.release(shards[1]!.hash);
    await store.getDevice(shards[2]!.hash);
    expect(store.where(shards[1]!.hash)).toEqual([]);
    expect(store.where(shards[0]!.hash)).toEqual(['vram']);
    expect(() => store.release(shards[1]!.hash)).toThrow(/not pinned/);
    store.pin(shards[0]!.hash);
    store.release(shards[0]!.hash);
    store.release(shards[0]!.hash);
  });

  it('refuses a shard larger than the whole VRAM budget', async () => {
    const shards = await makeShards(1, SIZE);
    const store = await open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: SIZE - 1, uploader: new FakeUploader() } });
    await expect(store.getDevice(shards[0]!.hash)).rejects.toThrow(/larger than the whole vram budget/);
  });

  it('protects the working set from eviction until it is replaced', async () => {
    const shards = await makeShards(3, SIZE);
    const up = new FakeUploader();
    const store = await open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: 2 * SIZE, uploader: up } });
    store.setWorkingSet([shards[0]!.hash, shards[1]!.hash]);
    await store.getDevice(shards[0]!.hash);
    await store.getDevice(shards[1]!.hash);
    await expect(store.getDevice(shards[2]!.hash)).rejects.toThrow(StorageBudgetError);
    store.setWorkingSet([shards[2]!.hash]);
    await store.getDevice(shards[2]!.hash);
    expect(up.live.size).toBe(2);
  });

  it('getDevice without a VRAM tier is a StorageError', async () => {
    const store = await open({ ramBytes: 0 });
    await expect(store.getDevice('0'.repeat(64))).rejects.toThrow(/no VRAM tier/);
  });
});

describe('ShardStore: failing persistent writes', () => {
  it('serves the shard and counts the failure when the persistent tier cannot write', async () => {
    const shards = await makeShards(2, SIZE);
    const files = new Map<string, Uint8Array>();
    const backend = {
      name: 'flaky',
      list: async () => [...files].map(([hash, b]) => ({ hash, size: b.length })),
      read: async (h: string) => files.get(h) ?? null,
      write: async (h: string, b: Uint8Array) => {
        if (h === shards[0]!.hash) throw new Error('disk full');
        files.set(h, b.slice());
      },
      delete: async (h: string) => void files.delete(h),
    };
    const store = await open({ sources: [new MemorySource('m', shards)], ramBytes: 0, persistent: { backend, bytes: 10 * SIZE } });
    for (const s of shards) expect(await store.get(s.hash)).toEqual(s.bytes);
    await store.flush();
    const st = store.stats();
    expect(st.persistentWriteFailures).toBe(1);
    expect(st.persistent!.entries).toBe(1);
    expect(st.persistent!.residentBytes).toBe(SIZE);
    expect(store.where(shards[1]!.hash)).toEqual(['persistent']);
  });
});
