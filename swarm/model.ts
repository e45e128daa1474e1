import { decodeManifest, loadManifest, type Manifest } from '../manifests/index.ts';
import type { PlacedShard } from './placement.ts';

/**
 * The blobs a model's swarm moves, in a fixed order every peer derives from the manifest alone: the
 * manifest's shards, then tokenizer blobs and a two-level manifest's layer lists (sizes unknown to the
 * manifest: 0 here). Duplicates keep their
 * first position.
 */
export function shardListOf(m: Manifest): PlacedShard[] {
  const seen = new Set<string>();
  const out: PlacedShard[] = [];
  for (const s of m.shards) {
    if (!seen.has(s.hash)) out.push({ hash: s.hash, size: s.size });
    seen.add(s.hash);
  }
  for (const h of [...Object.values(m.tokenizer), ...(m.layerLists ?? [])]) {
    if (!seen.has(h)) out.push({ hash: h, size: 0 });
    seen.add(h);
  }
  return out;
}

export { decodeManifest, loadManifest, type Manifest };
