/** Node-only ways to feed the engine. */
import { readModelDir, readShardFile } from '../manifests/node.ts';
import type { ModelSource } from './source.ts';

/** A converted model directory on disk; every shard is verified against its name as it is read. */
export async function modelDirSource(dir: string): Promise<ModelSource> {
  const { manifest, id } = await readModelDir(dir);
  return { manifest, id, shard: (hash) => readShardFile(dir, hash) };
}
