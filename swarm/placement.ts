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

/** Two independent 32-bit hashes of a string (cyrb53's mixing), so scores need no BigInt. */
function hash2(str: string): [number, number] {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < str.length; i++) {
    const c = str.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return [h1 >>> 0, h2 >>> 0];
}

/** murmur3's finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function mix(s: [number, number], p: [number, number]): number {
  return fmix32(s[0] ^ p[0]) * 2 ** 21 + (fmix32(s[1] ^ p[1] ^ 0x9e3779b9) >>> 11);
}

/** Rank of `peer` for `shard`: a 53-bit integer, identical in every JavaScript engine. */
export function rendezvousScore(shard: string, peer: string): number {
  return mix(hash2(shard), hash2(peer));
}

/**
 * Owners of each shard: the `r` highest-ranked peers that still have budget for it, taking shards in
 * list order so every peer computes the same budgets.
 */
export function assignShards(shards: readonly PlacedShard[], peers: readonly StoragePeer[], r: number): Map<string, string[]> {
  const left = peers.map((p) => p.budget);
  const peerHashes = peers.map((p) => hash2(p.id));
  // Ties (astronomically rare) go to the smaller id, so the order never depends on how peers are listed.
  const byId = peers.map((_, i) => i).sort((a, b) => (peers[a]!.id < peers[b]!.id ? -1 : 1));
  const tieRank = new Array<number>(peers.length);
  byId.forEach((pi, rank) => (tieRank[pi] = rank));
  const scores = new Float64Array(peers.length);
  const order = peers.map((_, i) => i);
  const out = new Map<string, string[]>();
  for (const s of shards) {
    const sh = hash2(s.hash);
    for (let i = 0; i < peers.length; i++) scores[i] = mix(sh, peerHashes[i]!);
    order.sort((a, b) => scores[b]! - scores[a]! || tieRank[a]! - tieRank[b]!);
    const owners: string[] = [];
    for (const i of order) {
      if (owners.length >= r) break;
      if (left[i]! >= s.size) {
        owners.push(peers[i]!.id);
        left[i]! -= s.size;
      }
    }
    out.set(s.hash, owners);
  }
  return out;
}
