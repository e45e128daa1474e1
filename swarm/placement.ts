/**
 * Deterministic shard placement by rendezvous hashing: every storage peer ranks peers for a shard by a
 * hash of (shard, peer) and the same inputs give the same owners everywhere, so peers agree on who
 * keeps what without coordinating. When a peer leaves only its shards move; a new peer takes the
 * shards it now ranks highest for.
 */

export interface StoragePeer {
  id: string;
  /** Bytes this peer volunteers for replicas. */
  budget: number;
}

export interface PlacedShard {
  hash: string;
  size: number;
}

/** 64-bit FNV-1a over the two strings: cheap, stable, well spread for rendezvous ranking. */
export function rendezvousScore(shard: string, peer: string): bigint {
  let h = 0xcbf29ce484222325n;
  const s = `${shard}/${peer}`;
  for (let i = 0; i < s.length; i++) {
    h ^= BigInt(s.charCodeAt(i));
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  // FNV's low bits mix poorly for near-identical inputs; a final avalanche step fixes that.
  h ^= h >> 33n;
  h = (h * 0xff51afd7ed558ccdn) & 0xffffffffffffffffn;
  h ^= h >> 33n;
  return h;
}

/**
 * Owners of each shard: the `r` highest-ranked peers that still have budget for it, taking shards in
 * list order so every peer computes the same budgets.
 */
export function assignShards(shards: readonly PlacedShard[], peers: readonly StoragePeer[], r: number): Map<string, string[]> {
  const left = new Map(peers.map((p) => [p.id, p.budget]));
  const out = new Map<string, string[]>();
  for (const s of shards) {
    const ranked = [...peers].sort((a, b) => {
      const d = rendezvousScore(s.hash, b.id) - rendezvousScore(s.hash, a.id);
      return d > 0n ? 1 : d < 0n ? -1 : a.id < b.id ? -1 : 1;
    });
    const owners: string[] = [];
    for (const p of ranked) {
      if (owners.length >= r) break;
      const budget = left.get(p.id)!;
      if (budget >= s.size) {
        owners.push(p.id);
        left.set(p.id, budget - s.size);
      }
    }
    out.set(s.hash, owners);
  }
  return out;
}
