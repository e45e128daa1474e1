import { describe, expect, it } from 'vitest';
import { ShardStore, TrafficModel, ReusePolicy, parseTrace, simulateEviction, type ShardMeta, type TraceStep } from '../../../storage/index.ts';
import { rng } from '../router/helpers.ts';
import { MemorySource, makeShards } from './helpers.ts';

/** Decode-like traffic: L layers, each picking k of E experts with a per-layer skew and token-to-token repeats. */
function trace(layers: number, experts: number, k: number, tokens: number, seed: number): TraceStep[] {
  const u = rng(seed);
  const prev: number[][] = [];
  const out: TraceStep[] = [];
  for (let t = 0; t < tokens; t++) {
    for (let l = 0; l < layers; l++) {
      const chosen = new Set<number>();
      while (chosen.size < k) {
        if (prev[l] && u() < 0.3) chosen.add(prev[l]![Math.floor(u() * k)]!);
        else chosen.add(Math.floor(experts * u() ** 2));
      }
      prev[l] = [...chosen];
      out.push({ layer: l, experts: [...chosen] });
    }
  }
  return out;
}

describe('eviction policies on expert traffic', () => {
  it('the reuse policy beats LRU below and above one token of experts, and stays under Belady', () => {
    const t = trace(12, 16, 2, 400, 1);
    // 24 (exactly one token's 12 × 2 experts) is LRU's best case and is left out: there the two tie
    for (const capacity of [10, 48, 96]) {
      const lru = simulateEviction(t, 'lru', capacity).hitRate;
      const reuse = simulateEviction(t, 'reuse', capacity).hitRate;
      const opt = simulateEviction(t, 'belady', capacity).hitRate;
      expect(reuse).toBeGreaterThan(lru + 0.02);
      expect(reuse).toBeLessThanOrEqual(opt);
    }
  });

  it('LRU thrashes on a loop larger than the cache; the reuse policy keeps a stable part of it', () => {
    const loop: TraceStep[] = [];
    for (let t = 0; t < 50; t++) for (let l = 0; l < 10; l++) loop.push({ layer: l, experts: [0] });
    expect(simulateEviction(loop, 'lru', 5).hits).toBe(0);
    expect(simulateEviction(loop, 'reuse', 5).hitRate).toBeGreaterThan(0.35);
  });

  it('protects prefetched shards until their layer has been visited', () => {
    const meta = new Map<string, ShardMeta>([['a', { layer: 0 }], ['b', { layer: 1 }], ['c', { layer: 2 }]]);
    const traffic = new TrafficModel((k) => meta.get(k));
    const policy = new ReusePolicy(traffic);
    traffic.access('a');
    traffic.prefetched('c');
    // c was never used, so it would be the first victim if it were not a pending prefetch
    expect(policy.victim(['a', 'c'], () => true)).toBe('a');
    traffic.access('b');
    traffic.access('c');
    traffic.access('a');
    expect(traffic.isPendingPrefetch('c')).toBe(false);
  });

  it('parseTrace names the first malformed entry', () => {
    expect(() => parseTrace({}, 't.json')).toThrow(/t.json: a trace is a JSON array/);
    expect(() => parseTrace([{ layer: 0, experts: [1] }, { layer: -1, experts: [] }], 't.json')).toThrow(/entry 1/);
    expect(parseTrace([{ layer: 2, experts: [3, 3, 1] }], 't.json')).toEqual([{ layer: 2, experts: [3, 1] }]);
    expect(() => simulateEviction([{ layer: 0, experts: [1, 2, 3] }], 'lru', 2)).toThrow(/working set of 3/);
  });

  it('the store uses the policy: with layer metadata it fetches less than LRU on looping traffic', async () => {
    const layers = 6;
    const shards = await makeShards(layers * 4, 256, 3);
    const meta = new Map<string, ShardMeta>(shards.map((s, i) => [s.hash, { size: 256, layer: Math.floor(i / 4), expert: i % 4 }]));
    const t = trace(layers, 4, 1, 60, 4);
    const fetches: Record<string, number> = {};
    for (const policy of ['lru', 'reuse'] as const) {
      const src = new MemorySource('m', shards);
      const store = await ShardStore.open({ sources: [src], ramBytes: 4 * 256, meta, policy });
      for (const step of t) await store.get(shards[step.layer * 4 + step.experts[0]!]!.hash);
      fetches[policy] = src.calls.length;
      expect(store.stats().policy).toBe(policy);
      await store.close();
    }
    expect(fetches.reuse!).toBeLessThan(fetches.lru! * 0.9);
  });
});
