/** Where a peer keeps the shards it holds. Bytes written here were verified by the peer first. */
export interface ShardStorage {
  has(hash: string): boolean;
  /** Byte size of a held shard, undefined when not held. */
  sizeOf(hash: string): number | undefined;
  /** `length` bytes from `offset` of a held shard. */
  read(hash: string, offset: number, length: number): Promise<Uint8Array>;
  write(hash: string, bytes: Uint8Array): Promise<void>;
  /** Drops a held shard (a replica this peer no longer needs to keep). */
  delete(hash: string): Promise<void>;
  list(): string[];
  usedBytes(): number;
}

/** Shards in memory: browsers and tests. */
export class MemoryShardStorage implements ShardStorage {
  private readonly shards = new Map<string, Uint8Array>();
  private used = 0;

  has(hash: string): boolean {
    return this.shards.has(hash);
  }

  sizeOf(hash: string): number | undefined {
    return this.shards.get(hash)?.length;
  }

  async read(hash: string, offset: number, length: number): Promise<Uint8Array> {
    const s = this.shards.get(hash);
    if (!s) throw new Error(`shard ${hash} is not held`);
    return s.subarray(offset, offset + length);
  }

  async write(hash: string, bytes: Uint8Array): Promise<void> {
    if (this.shards.has(hash)) return;
    this.shards.set(hash, bytes);
    this.used += bytes.length;
  }

  async delete(hash: string): Promise<void> {
    const s = this.shards.get(hash);
    if (!s) return;
    this.shards.delete(hash);
    this.used -= s.length;
  }

  list(): string[] {
    return [...this.shards.keys()];
  }

  usedBytes(): number {
    return this.used;
  }
}
