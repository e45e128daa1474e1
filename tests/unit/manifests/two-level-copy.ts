import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { splitLayerLists } from '../../../manifests/index.ts';
import { readModelDir } from '../../../manifests/node.ts';
import { commitManifest } from '../../../manifests/model-writer.ts';

/** A copy of a model directory whose manifest is made two-level (same shards, plus the layer lists). */
export async function twoLevelCopy(src: string, dst: string): Promise<{ id: string; manifestBytes: Uint8Array; lists: Map<string, Uint8Array> }> {
  mkdirSync(join(dst, 'shards'), { recursive: true });
  for (const f of readdirSync(join(src, 'shards'))) copyFileSync(join(src, 'shards', f), join(dst, 'shards', f));
  const { manifest } = await readModelDir(src);
  const { manifest: two, blobs } = await splitLayerLists(manifest, true);
  const { id, manifestBytes } = await commitManifest(dst, two, blobs);
  return { id, manifestBytes, lists: blobs };
}
