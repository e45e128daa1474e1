/**
 * Eviction policies for the store's tiers.
 *
 * Expert traffic is a loop: every token walks layers 0..L-1 and each layer picks k of its E
 * experts, with a skewed, slowly drifting popularity and token-to-token locality. Plain LRU is at
 * its worst on loops: the least recently used expert belongs to the layer that comes next. The
 * reuse-distance policy instead predicts when each shard will next be needed and evicts the one
 * needed last (an online approximation of Belady's optimum):
 *
 *   expected layer-steps to next use of an expert of layer l, with the walk now at layer c,
 *     d + L · (1/p − 1),   d = ((l − c − 1) mod L) + 1
 *
 * where p is the probability that the expert is used at its layer's next visit. p is learned
 * online: every visit of a layer scores each expert the layer has used by (recency: visits since
 * its last use, log-bucketed; frequency: its decayed per-visit use rate, bucketed) and records
 * whether it was used, so the table learns how much recency and popularity predict reuse for
 * this model's routing (aging keeps both current when routing drifts). Shards without a layer
 * (dense weights, unknown hashes) are predicted from their own mean gap between uses; a shard used
 * once is evicted first (scan resistance). Prefetched shards not yet used are protected until the
 * layer they were fetched for has been visited; the store separately protects pinned shards and
 * the current working set.
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
const AGE_BUCKETS = 8;
const FREQ_BUCKETS = 8;
/** Prior weight of a key's own frequency in its cell's estimate. */
const CELL_PRIOR = 2;
/** Aging of the learned table per layer visit. */
const TABLE_DECAY = 0.998;

export class TrafficModel {
  /** Decay per visit of a layer (keys with a layer) or per layer-step (keys without). */
  readonly decay: number;
  private readonly metaOf: MetaOf;
  private readonly keys = new Map<string, KeyState>();
  private readonly visits: number[] = [];
  private readonly layerKeys = new Map<number, Set<string>>();
  /** Per (recency, frequency) cell: decayed [uses, trials] at a layer visit. */
  private readonly table = new Float64Array(AGE_BUCKETS * FREQ_BUCKETS * 2);
  /** Cells of the current visit's layer's keys, taken when the visit began. */
  private visitCells = new Map<string, number>();
  private visitUsed = new Set<string>();
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
        this.endVisit();
        this.step++;
        this.layer = layer;
        if (layer > this.maxLayer) this.maxLayer = layer;
        this.visits[layer] = (this.visits[layer] ?? 0) + 1;
        this.beginVisit(layer);
      }
      this.visitUsed.add(key);
      let known = this.layerKeys.get(layer);
      if (!known) this.layerKeys.set(layer, (known = new Set()));
      known.add(key);
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
    const layer = this.layerOf(key);
    if (layer !== undefined) this.layerKeys.get(layer)?.delete(key);
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
      // the next visit of the layer: the one after the current visit when we are inside it
      const next = (this.visits[layer] ?? 0) + 1;
      const f = this.frequency(s, next - 1);
      const cell = this.cell(s, next, f);
      const p = Math.min(1, Math.max(1e-4, (this.table[2 * cell]! + CELL_PRIOR * f) / (this.table[2 * cell + 1]! + CELL_PRIOR)));
      return d + L * (1 / p - 1);
    }
    if (!s || s.uses < 2) return 1e12 - (s?.lastTick ?? 0);
    return Math.max(1, s.gap - (this.step - s.lastStep)) + s.gap;
  }

  /** Decayed per-visit use rate as of visit v (a small floor for never-used keys). */
  private frequency(s: KeyState | undefined, v: number): number {
    const decayedVisits = this.decay === 1 ? v : (1 - this.decay ** v) / (1 - this.decay);
    const decayedCount = s && s.uses > 0 ? s.count * this.decay ** (v - s.at) : 0;
    return Math.min(1, (decayedCount + 0.05) / (decayedVisits + 1));
  }

  /** The (recency, frequency) cell of a key as seen from layer visit v. */
  private cell(s: KeyState | undefined, v: number, f: number): number {
    const age = s && s.uses > 0 ? Math.min(AGE_BUCKETS - 2, Math.floor(Math.log2(Math.max(1, v - s.at)))) : AGE_BUCKETS - 1;
    return age * FREQ_BUCKETS + Math.min(FREQ_BUCKETS - 1, Math.floor(f * FREQ_BUCKETS));
  }

  private beginVisit(layer: number): void {
    const v = this.visits[layer]!;
    this.visitCells = new Map();
    this.visitUsed = new Set();
    for (const k of this.layerKeys.get(layer) ?? []) {
      const s = this.keys.get(k);
      this.visitCells.set(k, this.cell(s, v, this.frequency(s, v - 1)));
    }
  }

  /** Score the visit that just ended: for each cell, how many of its keys were used. */
  private endVisit(): void {
    if (this.layer < 0) return;
    for (let i = 0; i < this.table.length; i++) this.table[i]! *= TABLE_DECAY;
    for (const [k, c] of this.visitCells) {
      this.table[2 * c + 1]! += 1;
      if (this.visitUsed.has(k)) this.table[2 * c]! += 1;
    }
    const fresh = (AGE_BUCKETS - 1) * FREQ_BUCKETS;
    for (const k of this.visitUsed) {
      if (this.visitCells.has(k) || this.layerOf(k) !== this.layer) continue;
      this.table[2 * fresh + 1]! += 1;
      this.table[2 * fresh]! += 1;
    }
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
