import { describe, expect, it } from 'vitest';
import { assignShards, rendezvousScore } from '../../../swarm/index.ts';

function rng(seed: number) {
  return () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
}
const hex = (r: () => number) => Array.from({ length: 64 }, () => Math.floor(r() * 16).toString(16)).join('');

describe('rendezvous placement', () => {
  const r = rng(7);
  const shards = Array.from({ length: 200 }, () => ({ hash: hex(r), size: 1000 }));
  const peers = Array.from({ length: 10 }, (_, i) => ({ id: `peer-${i}`, budget: 1e9 }));

  it('gives every shard r distinct owners, the same whatever order peers are listed in', () => {
    const a = assignShards(shards, peers, 3);
    const b = assignShards(shards, [...peers].reverse(), 3);
    for (const s of shards) {
      expect(new Set(a.get(s.hash)).size).toBe(3);
      expect(b.get(s.hash)).toEqual(a.get(s.hash));
    }
  });

  it('spreads shards evenly (each peer within 40% of its fair share)', () => {
    const a = assignShards(shards, peers, 3);
    const counts = new Map<string, number>();
    for (const o of a.values()) for (const id of o) counts.set(id, (counts.get(id) ?? 0) + 1);
    const fair = (200 * 3) / 10;
    for (const p of peers) expect(Math.abs(counts.get(p.id)! - fair)).toBeLessThan(0.4 * fair);
  });

  it('moves only the departed peer’s shards when a peer leaves', () => {
    const a = assignShards(shards, peers, 3);
    const b = assignShards(shards, peers.filter((p) => p.id !== 'peer-4'), 3);
    for (const s of shards) {
      const before = a.get(s.hash)!.filter((id) => id !== 'peer-4');
      expect(b.get(s.hash)!.slice(0, before.length).sort()).toEqual([...before].sort());
    }
  });

  it('respects budgets and hands the rest to peers with room', () => {
    const tight = peers.map((p, i) => ({ ...p, budget: i === 0 ? 5000 : 1e9 }));
    const a = assignShards(shards, tight, 3);
    const mine = [...a.values()].filter((o) => o.includes('peer-0')).length;
    expect(mine).toBe(5);
    for (const o of a.values()) expect(o.length).toBe(3);
  });

  it('scores are stable and differ per peer', () => {
    expect(rendezvousScore('a', 'b')).toBe(rendezvousScore('a', 'b'));
    expect(rendezvousScore('a', 'b')).not.toBe(rendezvousScore('a', 'c'));
  });
});
