/**
 * Two-level manifests. A 671B model has ~15,000 shards; their hashes are 97% of a single-level
 * manifest. Above TWO_LEVEL_MIN_EXPERT_SHARDS routed-expert shards, the top level (config, derived
 * tensor layout, dense shard hashes) names one blob per MoE layer listing that layer's expert shard
 * hashes. The blobs live in shards/ like tokenizer files, so whatever moves shards moves them, and
 * the model id stays the BLAKE3 of the top level, which pins every list by its hash.
 */
import { decodeManifest, encodeLayerList, layerListHashes } from './codec.ts';
import { ManifestError } from './errors.ts';
import { blake3Hex } from './hash.ts';
import type { Manifest } from './types.ts';

/** Below this many routed-expert shards (32 KB of hashes) one level is small enough and simpler. */
export const TWO_LEVEL_MIN_EXPERT_SHARDS = 1024;

/**
 * The manifest made two-level (`twoLevel`; by default when it has enough expert shards), with the list
 * blobs to store in shards/ before the manifest is written. Unchanged and no blobs otherwise.
 * @example
 * const { manifest, blobs } = await splitLayerLists(manifestOfPlan(plan, name, hashes, {}));
 * for (const [hash, bytes] of blobs) await storeBlob(shardsDir, bytes); // each stored under its hash
 */
export async function splitLayerLists(m: Manifest, twoLevel?: boolean): Promise<{ manifest: Manifest; blobs: Map<string, Uint8Array> }> {
  const { layerLists: _, ...single } = m;
  const expertShards = m.shards.filter((s) => s.kind === 'expert').length;
  if (!(twoLevel ?? expertShards >= TWO_LEVEL_MIN_EXPERT_SHARDS) || expertShards === 0) return { manifest: single, blobs: new Map() };
  const byLayer = new Map<number, string[]>();
  const experts = [...m.experts].sort((a, b) => a.layer - b.layer || a.expert - b.expert);
  for (const e of experts) {
    const list = byLayer.get(e.layer) ?? [];
    for (const s of e.shards) list.push(m.shards[s]!.hash);
    byLayer.set(e.layer, list);
  }
  const blobs = new Map<string, Uint8Array>();
  const layerLists: string[] = [];
  for (const [layer, hashes] of [...byLayer].sort((a, b) => a[0] - b[0])) {
    const bytes = encodeLayerList(layer, hashes);
    const hash = await blake3Hex(bytes);
    blobs.set(hash, bytes);
    layerLists.push(hash);
  }
  return { manifest: { ...single, layerLists }, blobs };
}

/**
 * Decodes a manifest of either level: a two-level one's layer lists are fetched through `getBlob`
 * (all of them, in parallel, each verified against its hash) before decoding, since every consumer
 * (placement, verify, fetch, the engine's expert index) needs every shard's hash.
 * @example
 * const manifest = await loadManifest(bytes, 'peer x', (hash) => store.get(hash));
 */
export async function loadManifest(bytes: Uint8Array, source: string, getBlob: (hash: string) => Promise<Uint8Array>): Promise<Manifest> {
  const hashes = layerListHashes(bytes, source);
  if (hashes.length === 0) return decodeManifest(bytes, source);
  const lists = new Map<string, Uint8Array>();
  await Promise.all(hashes.map(async (hash, i) => {
    let blob: Uint8Array;
    try {
      blob = await getBlob(hash);
    } catch (err) {
      throw new ManifestError(`${source}: layerLists[${i}] ${hash} could not be fetched (${(err as Error).message})`, { cause: err });
    }
    const actual = await blake3Hex(blob);
    if (actual !== hash) throw new ManifestError(`${source}: layerLists[${i}] ${hash}: its bytes hash to ${actual}`);
    lists.set(hash, blob);
  }));
  return decodeManifest(bytes, source, lists);
}
