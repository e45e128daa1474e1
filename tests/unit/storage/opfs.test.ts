import { describe, expect, it } from 'vitest';
import { OpfsBackend, ShardStore, type OpfsDirectory, type OpfsFile } from '../../../storage/index.ts';
import { MemorySource, corrupt, makeShards } from './helpers.ts';

/** An in-memory stand-in for an OPFS directory with createWritable's commit-on-close semantics. */
class FakeDir implements OpfsDirectory {
  readonly files = new Map<string, Uint8Array>();
  failWrites = false;
  async getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFile> {
    if (!this.files.has(name)) {
      if (!options?.create) throw new DOMException(`${name} not found`, 'NotFoundError');
      this.files.set(name, new Uint8Array(0));
    }
    return {
      getFile: async () => new Blob([this.files.get(name)!.slice()]),
      createWritable: async () => {
        let pending = new Uint8Array(0);
        return {
          write: async (data: Uint8Array) => {
            if (this.failWrites) throw new Error('quota exceeded');
            pending = data.slice();
          },
          close: async () => void this.files.set(name, pending),
          abort: async () => undefined,
        };
      },
      move: async (to: string) => {
        this.files.set(to, this.files.get(name)!);
        this.files.delete(name);
      },
    };
  }
  async removeEntry(name: string): Promise<void> {
    if (!this.files.delete(name)) throw new DOMException(`${name} not found`, 'NotFoundError');
  }
  async *keys(): AsyncIterable<string> {
    yield* [...this.files.keys()];
  }
}

describe('OpfsBackend', () => {
  it('stores, lists, reads and deletes shards; a failed write leaves the old file', async () => {
    const dir = new FakeDir();
    const b = new OpfsBackend(dir);
    const [s] = await makeShards(1, 300);
    await b.write(s!.hash, s!.bytes);
    dir.files.set('notes.txt', new Uint8Array(3));
    expect(await b.list()).toEqual([{ hash: s!.hash, size: 300 }]);
    expect(await b.read(s!.hash)).toEqual(s!.bytes);
    dir.failWrites = true;
    await expect(b.write(s!.hash, new Uint8Array(5))).rejects.toThrow(/writing shard .* failed/);
    expect(await b.read(s!.hash)).toEqual(s!.bytes);
    await b.delete(s!.hash);
    await b.delete(s!.hash);
    expect(await b.read(s!.hash)).toBeNull();
    await expect(b.write('x/../y', s!.bytes)).rejects.toThrow(/not a shard hash/);
    // a failed write leaves no temporary behind, and one a closed tab left is removed on listing
    expect([...dir.files.keys()].filter((n) => n.startsWith('.tmp-'))).toEqual([]);
    dir.files.set(`.tmp-${s!.hash}-abc`, new Uint8Array(0));
    await b.list();
    expect([...dir.files.keys()].filter((n) => n.startsWith('.tmp-'))).toEqual([]);
  });

  it('serves a warm restart and catches a corrupted OPFS file', async () => {
    const dir = new FakeDir();
    const shards = await makeShards(2, 256);
    const first = await ShardStore.open({ sources: [new MemorySource('m', shards)], ramBytes: 0, persistent: { backend: new OpfsBackend(dir), bytes: 1 << 20 } });
    for (const s of shards) await first.get(s.hash);
    await first.close();
    dir.files.set(shards[1]!.hash, corrupt(dir.files.get(shards[1]!.hash)!));
    const src = new MemorySource('m', shards);
    const second = await ShardStore.open({ sources: [src], ramBytes: 0, persistent: { backend: new OpfsBackend(dir), bytes: 1 << 20 } });
    for (const s of shards) expect(await second.get(s.hash)).toEqual(s.bytes);
    expect(src.calls).toEqual([shards[1]!.hash]);
    expect(second.stats().persistent!.verifyFailures).toBe(1);
    await second.close();
  });

  it('open() explains when there is no OPFS', async () => {
    await expect(OpfsBackend.open()).rejects.toThrow(/no Origin Private File System/);
  });
});
