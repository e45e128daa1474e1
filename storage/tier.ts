/** One level of the store: resident entries under a byte budget, evicted by a policy. */
import { StorageBudgetError } from './errors.ts';
import type { EvictionPolicy } from './policy.ts';
import type { TierName, TierStats } from './types.ts';

export interface Entry<V> {
  value: V;
  size: number;
}

export function emptyTierStats(budgetBytes: number): TierStats {
  return {
    hits: 0,
    misses: 0,
    bytesIn: 0,
    bytesOut: 0,
    evictions: 0,
    verifyFailures: 0,
    waitMs: 0,
    residentBytes: 0,
    budgetBytes,
    entries: 0,
  };
}

export class Tier<V> {
  readonly name: TierName;
  readonly budget: number;
  readonly counters: TierStats;
  private readonly entries = new Map<string, Entry<V>>();
  private readonly policy: EvictionPolicy;
  private readonly onEvict: (key: string, entry: Entry<V>) => void;
  private used = 0;
  /** Bytes promised to inserts still in progress (persistent writes). */
  private reserved = 0;

  constructor(name: TierName, budget: number, policy: EvictionPolicy, onEvict: (key: string, entry: Entry<V>) => void) {
    if (!Number.isFinite(budget) || budget < 0) throw new StorageBudgetError(`${name} budget must be a non-negative byte count, got ${budget}`);
    this.name = name;
    this.budget = budget;
    this.policy = policy;
    this.onEvict = onEvict;
    this.counters = emptyTierStats(budget);
  }

  get(key: string): V | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  sizeOf(key: string): number | undefined {
    return this.entries.get(key)?.size;
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }

  get usedBytes(): number {
    return this.used;
  }

  /**
   * Evict until `size` more bytes fit. Returns false (evicting nothing more) when the entries
   * `evictable` refuses leave too little room; `strict` turns that into a StorageBudgetError.
   */
  makeRoom(size: number, evictable: (key: string) => boolean, what: string, strict: boolean): boolean {
    if (size > this.budget) {
      if (strict) throw new StorageBudgetError(`${what} (${size} bytes) is larger than the whole ${this.name} budget of ${this.budget} bytes`);
      return false;
    }
    while (this.used + this.reserved + size > this.budget) {
      const victim = this.policy.victim(this.entries.keys(), evictable);
      if (victim === undefined) {
        if (strict) {
          throw new StorageBudgetError(
            `${this.name} budget of ${this.budget} bytes cannot hold ${what} (${size} bytes): ` +
              `${this.used + this.reserved} bytes are pinned, in the current working set, or being written`,
          );
        }
        return false;
      }
      this.evict(victim);
    }
    return true;
  }

  reserve(size: number): void {
    this.reserved += size;
  }

  unreserve(size: number): void {
    this.reserved -= size;
  }

  /** Add an entry; the caller made room first. Replacing an entry keeps the accounting right. */
  insert(key: string, value: V, size: number): void {
    const old = this.entries.get(key);
    if (old) this.used -= old.size;
    this.entries.set(key, { value, size });
    this.used += size;
    this.counters.bytesIn += size;
  }

  evict(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.used -= e.size;
    this.counters.evictions++;
    this.onEvict(key, e);
  }

  /** Drop without counting an eviction (bad bytes, missing file, shutdown). */
  remove(key: string): Entry<V> | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    this.used -= e.size;
    return e;
  }

  snapshot(): TierStats {
    return { ...this.counters, residentBytes: this.used, entries: this.entries.size };
  }
}
