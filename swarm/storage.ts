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

/**
 * The durable key → bytes store a peer can keep shards in: structurally the storage layer's
 * PersistentBackend (OPFS in a tab, a directory in Node), so the engine's tiered store and the
 * swarm peer can share one, and what the engine cached is what the peer serves.
 */
export interface DurableShards {
  readonly name: string;
  list(): Promise<{ hash: string; size: number }[]>;
  read(hash: string): Promise<Uint8Array | null>;
  write(hash: string, bytes: Uint8Array): Promise<void>;
  delete(hash: string): Promise<void>;
}

/**
 * Shards in a durable store under a byte budget: a write that would exceed it first drops the
 * least recently used shards (never the one being written). The index is kept in memory, so
 * has/sizeOf/list answer at once. Bytes are verified by the peer before they are written; bytes
 * read back are not re-verified here (the engine's store verifies what it uses).
 */
export class DurableShardStorage implements ShardStorage {
  private readonly sizes = new Map<string, number>();
  private used = 0;
  private budget: number;
  readonly backend: DurableShards;

  private constructor(backend: DurableShards, budgetBytes: number) {
    this.backend = backend;
    this.budget = budgetBytes;
  }

  /** Indexes what `backend` already holds. */
  static async open(backend: DurableShards, budgetBytes = Infinity): Promise<DurableShardStorage> {
    const s = new DurableShardStorage(backend, budgetBytes);
    for (const { hash, size } of await backend.list()) {
      s.sizes.set(hash, size);
      s.used += size;
    }
    return s;
  }

  get budgetBytes(): number {
    return this.budget;
  }

  /** Changes the budget, dropping least recently used shards until the held bytes fit. */
  async setBudget(bytes: number): Promise<void> {
    this.budget = bytes;
    await this.makeRoom(0);
  }

  has(hash: string): boolean {
    return this.sizes.has(hash);
  }

  sizeOf(hash: string): number | undefined {
    return this.sizes.get(hash);
  }

  async read(hash: string, offset: number, length: number): Promise<Uint8Array> {
    const bytes = await this.backend.read(hash);
    if (!bytes) {
      this.forget(hash);
      throw new Error(`shard ${hash} vanished from ${this.backend.name}`);
    }
    this.touch(hash);
    return offset === 0 && length >= bytes.length ? bytes : bytes.subarray(offset, offset + length);
  }

  async write(hash: string, bytes: Uint8Array): Promise<void> {
    if (this.sizes.has(hash)) return;
    if (bytes.length > this.budget) throw new Error(`shard ${hash} (${bytes.length} bytes) exceeds the ${this.budget}-byte budget of ${this.backend.name}`);
    await this.makeRoom(bytes.length);
    await this.backend.write(hash, bytes);
    this.sizes.set(hash, bytes.length);
    this.used += bytes.length;
  }

  async delete(hash: string): Promise<void> {
    if (!this.sizes.has(hash)) return;
    this.forget(hash);
    await this.backend.delete(hash);
  }

  list(): string[] {
    return [...this.sizes.keys()];
  }

  usedBytes(): number {
    return this.used;
  }

  /**
   * The same durable store as another owner sees it — the engine's tiered store as its persistent
   * tier — with this index kept in step, so a shard that owner stores is one this peer serves.
   * That owner's budget governs what it writes.
   */
  shared(): DurableShards {
    return {
      name: this.backend.name,
      list: () => this.backend.list(),
      read: (hash) => this.backend.read(hash),
      write: async (hash, bytes) => {
        await this.backend.write(hash, bytes);
        if (!this.sizes.has(hash)) this.used += bytes.length;
        this.sizes.set(hash, bytes.length);
        // the other writer (the engine's persistent tier) does not know this budget: evict back within it
        await this.makeRoom(0);
      },
      delete: async (hash) => {
        this.forget(hash);
        await this.backend.delete(hash);
      },
    };
  }

  /** Map order is insertion order: re-inserting on use keeps the least recently used first. */
  private touch(hash: string): void {
    const size = this.sizes.get(hash);
    if (size === undefined) return;
    this.sizes.delete(hash);
    this.sizes.set(hash, size);
  }

  private forget(hash: string): void {
    const size = this.sizes.get(hash);
    if (size === undefined) return;
    this.sizes.delete(hash);
    this.used -= size;
  }

  private async makeRoom(incoming: number): Promise<void> {
    for (const hash of [...this.sizes.keys()]) {
      if (this.used + incoming <= this.budget) return;
      await this.delete(hash);
    }
  }
}
