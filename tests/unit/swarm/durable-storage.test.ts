import { describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blake3Hex } from '../../../manifests/index.ts';
import { DirBackend } from '../../../storage/node.ts';
import { DurableShardStorage } from '../../../swarm/index.ts';

async function shard(n: number, size: number): Promise<{ hash: string; bytes: Uint8Array }> {
  const bytes = new Uint8Array(size).fill(n);
  return { hash: await blake3Hex(bytes), bytes };
}

describe('DurableShardStorage (the swarm peer on the tiered store\'s persistent backend)', () => {
  it('indexes what the backend holds, serves ranges, and keeps within its budget by dropping the least recently used', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'doppler-durable-'));
    try {
      const [a, b, c] = await Promise.all([shard(1, 100), shard(2, 100), shard(3, 100)]);
      const s = await DurableShardStorage.open(await DirBackend.open(dir), 250);
      await s.write(a.hash, a.bytes);
      await s.write(b.hash, b.bytes);
      expect(await s.read(a.hash, 10, 5)).toEqual(a.bytes.subarray(10, 15)); // a is now the most recently used
      await s.write(c.hash, c.bytes);
      expect(s.list().sort()).toEqual([a.hash, c.hash].sort());
      expect(s.usedBytes()).toBe(200);

      // Another open of the same directory (a restart; the tiered store's view) sees the same shards.
      const again = await DurableShardStorage.open(await DirBackend.open(dir));
      expect(again.list().sort()).toEqual([a.hash, c.hash].sort());
      expect(again.sizeOf(c.hash)).toBe(100);

      await again.setBudget(150);
      expect(again.usedBytes()).toBeLessThanOrEqual(150);
      await expect(again.write(b.hash, new Uint8Array(200))).rejects.toThrow(/exceeds the 150-byte budget/);

      // The engine's store writing through the shared view: the peer's index sees it at once.
      const view = again.shared();
      await view.write(b.hash, b.bytes);
      expect(again.has(b.hash)).toBe(true);
      expect(await again.read(b.hash, 0, 100)).toEqual(b.bytes);
      await view.delete(b.hash);
      expect(again.has(b.hash)).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
