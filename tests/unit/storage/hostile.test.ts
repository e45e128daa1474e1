/**
 * The persistent tier is a directory other processes can write: a file replaced (or swapped for a
 * FIFO) while the store runs is never used unverified, even one this store wrote itself.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ShardStore } from '../../../storage/index.ts';
import { DirBackend, DirSource } from '../../../storage/node.ts';
import { MemorySource, corrupt, makeShards } from './helpers.ts';

const SIZE = 1024;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'doppler-hostile-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** One shard fetched into a store with no RAM tier (every later get reads the disk) and written to `dir`. */
async function storedShard() {
  const shards = await makeShards(1, SIZE);
  const src = new MemorySource('m', shards);
  const store = await ShardStore.open({ sources: [src], ramBytes: 0, persistent: { backend: await DirBackend.open(dir), bytes: 10 * SIZE } });
  const hash = shards[0]!.hash;
  await store.get(hash);
  await store.flush();
  return { shards, src, store, hash, path: join(dir, 'shards', hash) };
}

describe('persistent files replaced during a run', () => {
  it('a file this store wrote, then overwritten by another process, is verified, dropped and refetched', async () => {
    const { shards, src, store, hash, path } = await storedShard();
    await writeFile(path, corrupt(await readFile(path)));
    expect(await store.get(hash)).toEqual(shards[0]!.bytes);
    await store.flush();
    expect(store.stats().persistent!.verifyFailures).toBe(1);
    expect(src.calls).toEqual([hash, hash]);
    await store.close();
  });

  it('a file swapped for a FIFO is refused without blocking, and the shard comes from the source', async () => {
    const { shards, store, hash, path } = await storedShard();
    await rm(path);
    execFileSync('mkfifo', [path]);
    expect(await store.get(hash)).toEqual(shards[0]!.bytes);
    await store.close();
  }, 20_000);

  it('a model directory source names a FIFO shard instead of hanging', async () => {
    const shards = await makeShards(1, SIZE);
    await DirBackend.open(dir);
    execFileSync('mkfifo', [join(dir, 'shards', shards[0]!.hash)]);
    await expect(new DirSource(dir).get(shards[0]!.hash)).rejects.toThrow(/a FIFO, not a regular file/);
  }, 20_000);
});
