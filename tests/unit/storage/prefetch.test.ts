import { describe, expect, it } from 'vitest';
import { ShardStore } from '../../../storage/index.ts';
import { FakeUploader, MemorySource, makeShards, until, type FakeHandle } from './helpers.ts';

const SIZE = 512;

describe('ShardStore.prefetch', () => {
  it('runs the highest priority first, FIFO among equals, within the concurrency limit', async () => {
    const shards = await makeShards(5, SIZE);
    const [a, b, c, d, e] = shards.map((s) => s.hash) as [string, string, string, string, string];
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await ShardStore.open({ sources: [src], ramBytes: 10 * SIZE, prefetchConcurrency: 1 });
    store.prefetch([a, b, c], 1);
    store.prefetch([d], 5);
    store.prefetch([e], 1);
    store.prefetch([c], 3); // raising a queued shard's priority
    await until(() => src.calls.length === 1, 'the first prefetch');
    expect(store.stats().prefetch).toMatchObject({ issued: 5, running: 1, queued: 4 });
    src.open();
    await store.flush();
    expect(src.calls).toEqual([a, d, c, b, e]);
    expect(store.stats().prefetch).toMatchObject({ completed: 5, running: 0, queued: 0 });
    for (const s of shards) expect(store.where(s.hash)).toEqual(['ram']);
    await store.close();
  });

  it('skips resident shards and counts prefetched shards that callers then use', async () => {
    const shards = await makeShards(3, SIZE);
    const store = await ShardStore.open({ sources: [new MemorySource('m', shards)], ramBytes: 10 * SIZE });
    await store.get(shards[0]!.hash);
    store.prefetch(shards.map((s) => s.hash), 1);
    await store.flush();
    expect(store.stats().prefetch.issued).toBe(2);
    await store.get(shards[1]!.hash);
    const st = store.stats();
    expect(st.prefetch.used).toBe(1);
    expect(st.ram.hits).toBe(1);
    await store.close();
  });

  it('cancel drops queued prefetches and aborts running ones nobody waits for', async () => {
    const shards = await makeShards(3, SIZE);
    const [a, b, c] = shards.map((s) => s.hash) as [string, string, string];
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await ShardStore.open({ sources: [src], ramBytes: 10 * SIZE, prefetchConcurrency: 1 });
    store.prefetch([a, b, c], 1);
    await until(() => src.calls.length === 1, 'the first prefetch');
    store.cancel([a, c]);
    await until(() => src.aborted.length === 1, 'the running fetch to abort');
    expect(src.aborted).toEqual([a]);
    src.open();
    await store.flush();
    expect(src.calls).toEqual([a, b]);
    expect(store.where(a)).toEqual([]);
    expect(store.where(b)).toEqual(['ram']);
    expect(store.stats().prefetch).toMatchObject({ cancelled: 2, completed: 1, failed: 0 });
    await store.close();
  });

  it('cancelling a prefetch that a caller also waits for leaves the caller served', async () => {
    const shards = await makeShards(1, SIZE);
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await ShardStore.open({ sources: [src], ramBytes: 10 * SIZE });
    store.prefetch([shards[0]!.hash], 1);
    await until(() => src.calls.length === 1, 'the prefetch');
    const demand = store.get(shards[0]!.hash);
    store.cancel([shards[0]!.hash]);
    src.open();
    expect(await demand).toEqual(shards[0]!.bytes);
    expect(src.aborted).toEqual([]);
    expect(src.calls.length).toBe(1);
    expect(store.stats().deduplicated).toBe(1);
    await store.close();
  });

  it('prefetches into VRAM when there is a VRAM tier, and counts unused prefetches evicted as wasted', async () => {
    const shards = await makeShards(4, SIZE);
    const up = new FakeUploader();
    const store = await ShardStore.open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: 2 * SIZE, uploader: up } });
    store.prefetch([shards[0]!.hash, shards[1]!.hash], 1);
    await store.flush();
    expect(up.uploads).toBe(2);
    await store.getDevice(shards[0]!.hash);
    expect(up.uploads).toBe(2);
    expect(store.stats().vram!.hits).toBe(1);
    // shard 1 was prefetched and never used; demand for 2 and 3 pushes it out
    await store.getDevice(shards[2]!.hash);
    await store.getDevice(shards[3]!.hash);
    const p = store.stats().prefetch;
    expect(p.used).toBe(1);
    expect(p.wasted).toBe(1);
    await store.close();
  });

  it('a prefetch that cannot make room fails quietly instead of evicting the working set', async () => {
    const shards = await makeShards(3, SIZE);
    const up = new FakeUploader();
    const store = await ShardStore.open<FakeHandle>({ sources: [new MemorySource('m', shards)], ramBytes: 0, vram: { bytes: 2 * SIZE, uploader: up } });
    store.setWorkingSet([shards[0]!.hash, shards[1]!.hash]);
    await store.getDevice(shards[0]!.hash);
    await store.getDevice(shards[1]!.hash);
    store.prefetch([shards[2]!.hash], 9);
    await store.flush();
    expect(store.stats().prefetch.failed).toBe(1);
    expect(store.where(shards[0]!.hash)).toEqual(['vram']);
    expect(store.where(shards[2]!.hash)).toEqual([]);
    await store.close();
  });

  it('a prefetch that joins a demand fetch does not mark the shard as prefetched', async () => {
    const shards = await makeShards(3, SIZE);
    const src = new MemorySource('m', shards);
    src.hold();
    const store = await ShardStore.open({ sources: [src], ramBytes: 2 * SIZE });
    const demand = store.get(shards[0]!.hash);
    await until(() => src.calls.length === 1, 'the demand fetch');
    store.prefetch([shards[0]!.hash], 1);
    src.open();
    await demand;
    await store.flush();
    // evict it: it was demanded, so it is neither a used nor a wasted prefetch
    await store.get(shards[1]!.hash);
    await store.get(shards[2]!.hash);
    expect(store.where(shards[0]!.hash)).toEqual([]);
    expect(store.stats().prefetch).toMatchObject({ completed: 1, used: 0, wasted: 0 });
    await store.close();
  });
});
