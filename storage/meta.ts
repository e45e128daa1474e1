import type { Manifest } from '../manifests/index.ts';
import type { ShardMeta } from './policy.ts';

/**
 * What the store should know about a model's shards: sizes (checked against what sources
 * return) and, for routed experts, (layer, expert), which lets the eviction policy follow the
 * layer-by-layer walk of expert traffic. Pass it as ShardStoreOptions.meta.
 */
export function shardMeta(m: Manifest): Map<string, ShardMeta> {
  const out = new Map<string, ShardMeta>();
  for (const s of m.shards) out.set(s.hash, { size: s.size });
  for (const e of m.experts) {
    for (const i of e.shards) out.set(m.shards[i]!.hash, { size: m.shards[i]!.size, layer: e.layer, expert: e.expert });
  }
  return out;
}
