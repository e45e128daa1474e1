/** Interfaces at the storage boundary: what the store reads from and writes to. */

/**
 * Anything that can produce a shard's bytes by hash: HTTP, a model directory, the swarm. The
 * store never trusts what it returns: every byte is BLAKE3-verified before use.
 */
export interface ShardSource {
  get(hash: string, signal?: AbortSignal): Promise<Uint8Array>;
  /** Shown in errors and stats. */
  readonly name?: string;
}

/** Moves bytes to the accelerator; storage never imports kernels. */
export interface DeviceUploader<H> {
  upload(bytes: Uint8Array): H;
  release(h: H): void;
}

/**
 * A durable key → bytes store (OPFS in a browser, a directory in Node). Writes must be atomic:
 * a crash leaves either the old state or the complete new file, never a partial one under `hash`.
 */
export interface PersistentBackend {
  readonly name: string;
  /** Every complete stored shard with its byte size (stale temporaries are cleaned up here). */
  list(): Promise<{ hash: string; size: number }[]>;
  /** The stored bytes, or null when absent. Not verified: the store does that. */
  read(hash: string): Promise<Uint8Array | null>;
  write(hash: string, bytes: Uint8Array): Promise<void>;
  delete(hash: string): Promise<void>;
}

export type TierName = 'vram' | 'ram' | 'persistent' | 'remote';

export interface TierStats {
  /** Requests this tier answered. */
  hits: number;
  /** Requests that reached this tier and went further down. */
  misses: number;
  /** Bytes written into this tier (promotions, prefetches, uploads). */
  bytesIn: number;
  /** Bytes this tier served to the tier above or to a caller. */
  bytesOut: number;
  evictions: number;
  /** Shards from this tier whose bytes did not hash to their name. */
  verifyFailures: number;
  /** Milliseconds callers waited on requests this tier answered. */
  waitMs: number;
  residentBytes: number;
  budgetBytes: number;
  entries: number;
}

export interface SourceStats {
  requests: number;
  failures: number;
  verifyFailures: number;
  bytes: number;
}

export interface PrefetchStats {
  /** prefetch() entries accepted (already resident or queued ones do not count). */
  issued: number;
  completed: number;
  cancelled: number;
  failed: number;
  /** Prefetched shards a caller later used. */
  used: number;
  /** Prefetched shards evicted before any caller used them. */
  wasted: number;
  queued: number;
  running: number;
}

export interface StoreStats {
  vram: TierStats | null;
  ram: TierStats;
  persistent: TierStats | null;
  remote: TierStats & { sources: Record<string, SourceStats> };
  /** get()/getDevice() calls, and how many joined a fetch already in flight. */
  requests: number;
  deduplicated: number;
  /** Total milliseconds callers waited in get()/getDevice() on anything but a top-tier hit. */
  waitMs: number;
  prefetch: PrefetchStats;
  /** Persistent writes that failed (the shard stays usable from memory). */
  persistentWriteFailures: number;
  policy: string;
}
