/**
 * Eviction policies for the store's tiers.
 *
 * Expert traffic is a loop: every token walks layers 0..L-1 and each layer picks k of its E
 * experts, with a skewed, slowly drifting popularity. Plain LRU is at its worst on loops: the
 * least recently used expert belongs to the layer that comes next. The reuse-distance policy
 * instead predicts when each shard will next be needed and evicts the one needed last (an online
 * approximation of Belady's optimum):
 *
 *   expected layer-steps to next use of an expert of layer l, with the walk now at layer c,
 *     d + L · (1/p − 1),   d = ((l − c − 1) mod L) + 1
 *
 * where p is the expert's decayed per-visit usage frequency in its layer (aging keeps it current
 * when routing drifts). Shards without a layer (dense weights, unknown hashes) are predicted from
 * their own mean gap between uses; a shard used once is evicted first (scan resistance).
 * Prefetched shards not yet used are protected until the layer they were fetched for has been
 * visited, and the store separately protects pinned shards and the current working set.
 */

/** What the store knows about a shard from the manifest; all fields optional. */
export interface ShardMeta {
  size?: number;
  layer?: number;
  expert?: number;
}

export type MetaOf = (key: string) => ShardMeta | undefined;

interface KeyState {
  /** Decayed use count, as of layer visit `at` (keys with a layer) or step `at` (without). */
  count: number;
  at: number;
  lastTick: number;
  lastStep: number;
  /** EWMA of the gap between uses in layer-steps (keys without a layer). */
  gap: number;
  uses: number;
  /** Prefetched and not yet used: the layer visit count when it arrived. */
  prefetchedAtVisit: number;
  prefetchedAtStep: number;
}

/**
 * Shared record of demand traffic: which layer the walk is at, how often each layer was visited
 * and how often each shard was used. One model feeds every tier's policy, so a tier that a hit
 * never reached (the RAM copy of a VRAM-resident shard) still sees the shard as hot.
 */
export class TrafficModel {
  /** Decay per visit of a layer (keys with a layer) or per layer-step (keys without). */
  readonly decay: number;
  private readonly metaOf: MetaOf;
  private readonly keys = new Map<string, KeyState>();
  private readonly visits: number[] = [];
  private tick = 0;
  private step = 0;
  private layer = -1;
  private maxLayer = -1;

  constructor(metaOf: MetaOf, opts: { decay?: number; numLayers?: number } = {}) {
    this.metaOf = metaOf;
    this.decay = opts.decay ?? 0.98;
    if (opts.numLayers !== undefined) this.maxLayer = opts.numLayers - 1;
  }

  get currentLayer(): number {
    return this.layer;
  }

  get numLayers(): number {
    return this.maxLayer + 1;
  }

  /** A caller used key now. */
  access(key: string): void {
    this.tick++;
    const layer = this.layerOf(key);
    if (layer !== undefined) {
      if (layer !== this.layer) {
        this.step++;
        this.layer = layer;
        if (layer > this.maxLayer) this.maxLayer = layer;
        this.visits[layer] = (this.visits[layer] ?? 0) + 1;
      }
    } else {
      this.step++;
    }
    const s = this.state(key);
    const now = layer !== undefined ? this.visits[layer]! : this.step;
    // one use per visit: several tokens of one prefill reaching the same expert count once
    if (!(layer !== undefined && s.uses > 0 && s.at === now)) {
      s.count = s.count * this.decay ** (now - s.at) + 1;
      s.at = now;
    }
    if (s.uses > 0) s.gap = s.uses === 1 ? this.step - s.lastStep : 0.7 * s.gap + 0.3 * (this.step - s.lastStep);
    s.uses++;
    s.lastTick = this.tick;
    s.lastStep = this.step;
    s.prefetchedAtVisit = -1;
    s.prefetchedAtStep = -1;
  }

  /** key arrived without a caller asking (prefetch). */
  prefetched(key: string): void {
    const s = this.state(key);
    const layer = this.layerOf(key);
    s.prefetchedAtVisit = layer !== undefined ? (this.visits[layer] ?? 0) : 0;
    s.prefetchedAtStep = this.step;
    if (s.uses === 0) s.lastTick = this.tick;
  }

  /** Forget a key's history once no tier holds it and nothing refers to it. */
  forget(key: string): void {
    this.keys.delete(key);
  }

  lastUse(key: string): number {
    return this.keys.get(key)?.lastTick ?? 0;
  }

  /** Prefetched, not yet used, and the visit it was fetched for has not happened yet. */
  isPendingPrefetch(key: string): boolean {
    const s = this.keys.get(key);
    if (!s || s.prefetchedAtVisit < 0) return false;
    const layer = this.layerOf(key);
    if (layer !== undefined) return (this.visits[layer] ?? 0) <= s.prefetchedAtVisit || this.layer === layer;
    return this.step - s.prefetchedAtStep <= Math.max(1, this.numLayers);
  }

  /** Expected layer-steps until a caller next uses key (larger: evict sooner). */
  expectedNextUse(key: string): number {
    const s = this.keys.get(key);
    const layer = this.layerOf(key);
    if (layer !== undefined) {
      const L = Math.max(this.numLayers, layer + 1);
      const d = (((layer - this.layer - 1) % L) + L) % L + 1;
      const v = this.visits[layer] ?? 0;
      const decayedCount = s ? s.count * this.decay ** (v - s.at) : 0;
      const decayedVisits = this.decay === 1 ? v : (1 - this.decay ** v) / (1 - this.decay);
      const p = Math.min(1, (decayedCount + 0.05) / (decayedVisits + 1));
      return d + L * (1 / p - 1);
    }
    if (!s || s.uses < 2) return 1e12 - (s?.lastTick ?? 0);
    return Math.max(1, s.gap - (this.step - s.lastStep)) + s.gap;
  }

  private layerOf(key: string): number | undefined {
    const l = this.metaOf(key)?.layer;
    return l !== undefined && l >= 0 ? l : undefined;
  }

  private state(key: string): KeyState {
    let s = this.keys.get(key);
    if (!s) {
      s = { count: 0, at: 0, lastTick: 0, lastStep: 0, gap: 0, uses: 0, prefetchedAtVisit: -1, prefetchedAtStep: -1 };
      this.keys.set(key, s);
    }
    return s;
  }
}

/** Chooses which resident entry of a tier to evict. */
export interface EvictionPolicy {
  readonly name: string;
  /** The member to evict next among those `evictable` allows; undefined when none is. */
  victim(members: Iterable<string>, evictable: (key: string) => boolean): string | undefined;
}

export type PolicyName = 'lru' | 'reuse';

/** Least recently used (by the shared traffic model's demand accesses). The baseline. */
export class LruPolicy implements EvictionPolicy {
  readonly name = 'lru';
  private readonly traffic: TrafficModel;
  constructor(traffic: TrafficModel) {
    this.traffic = traffic;
  }
  victim(members: Iterable<string>, evictable: (key: string) => boolean): string | undefined {
    let best: string | undefined;
    let bestT = Infinity;
    for (const k of members) {
      if (!evictable(k)) continue;
      const t = this.traffic.lastUse(k);
      if (t < bestT) {
        bestT = t;
        best = k;
      }
    }
    return best;
  }
}

/** Evicts the shard expected to be needed last; protects pending prefetches while others remain. */
export class ReusePolicy implements EvictionPolicy {
  readonly name = 'reuse';
  private readonly traffic: TrafficModel;
  constructor(traffic: TrafficModel) {
    this.traffic = traffic;
  }
  victim(members: Iterable<string>, evictable: (key: string) => boolean): string | undefined {
    let best: string | undefined;
    let bestScore = -Infinity;
    let bestT = Infinity;
    let fallback: string | undefined;
    let fallbackT = Infinity;
    for (const k of members) {
      if (!evictable(k)) continue;
      const t = this.traffic.lastUse(k);
      if (this.traffic.isPendingPrefetch(k)) {
        if (t < fallbackT) {
          fallbackT = t;
          fallback = k;
        }
        continue;
      }
      const score = this.traffic.expectedNextUse(k);
      if (score > bestScore || (score === bestScore && t < bestT)) {
        bestScore = score;
        bestT = t;
        best = k;
      }
    }
    return best ?? fallback;
  }
}

export function createPolicy(name: PolicyName, traffic: TrafficModel): EvictionPolicy {
  switch (name) {
    case 'lru':
      return new LruPolicy(traffic);
    case 'reuse':
      return new ReusePolicy(traffic);
  }
}
