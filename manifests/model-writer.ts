import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeManifest } from './codec.ts';
import { ConvertError } from './errors.ts';
import { blake3Hex } from './hash.ts';
import type { ModelPlan, PlannedTensor } from './plan.ts';
import { MODEL_FILES } from './query.ts';
import { queuedHashes, releaseScratch, removeStaleTemps, runHashQueue, ShardSink, storeBlob } from './shard-sink.ts';
import type { Manifest } from './types.ts';

export interface Progress {
  shardsDone: number;
  shardsTotal: number;
  bytesDone: number;
  bytesTotal: number;
}

/** Writes one planned tensor's bytes (starting at sink.position == t.offset). */
export type TensorWriter = (sink: ShardSink, t: PlannedTensor) => Promise<void>;

/** Prepares `<dir>/shards` and clears temporaries of an interrupted run; never touches complete shards or the manifest. */
export async function prepareModelDir(dir: string): Promise<string> {
  const shards = join(dir, MODEL_FILES.shards);
  try {
    await mkdir(shards, { recursive: true });
    await removeStaleTemps(shards);
  } catch (err) {
    throw new ConvertError(`${dir}: cannot prepare the output directory (${(err as Error).message})`, { cause: err });
  }
  return shards;
}

/** Closed shards hashed by one b3sum. */
const HASH_BATCH = 4;
/** Shards written and closed but not yet hashed (memory, manifest-only: this many staged files). */
const STAGED_SHARDS = 3 * HASH_BATCH;

/** Produces every shard of a plan in order, one at a time (memory: one shard's write buffer). Returns their hashes. */
export async function writeShards(
  plan: ModelPlan,
  shardsDir: string | null,
  writeTensor: TensorWriter,
  onProgress?: (p: Progress) => void,
): Promise<string[]> {
  const hashes: string[] = [];
  const bytesTotal = plan.shards.reduce((a, s) => a + s.size, 0);
  let bytesDone = 0;
  const staged: { size: number; hash: Promise<string> }[] = [];
  // in order, so progress and the hash list follow the plan
  const settle = async (): Promise<void> => {
    const { size, hash } = staged.shift()!;
    hashes.push(await hash);
    bytesDone += size;
    onProgress?.({ shardsDone: hashes.length, shardsTotal: plan.shards.length, bytesDone, bytesTotal });
  };
  try {
    for (const shard of plan.shards) {
      const sink = await ShardSink.create(shardsDir);
      try {
        for (const t of shard.tensors) {
          await sink.padTo(t.offset);
          await writeTensor(sink, t);
          if (sink.position !== t.offset + t.length) throw new ConvertError(`tensor ${t.spec.name}: wrote ${sink.position - t.offset} bytes, layout says ${t.length}`);
        }
        await sink.close();
      } catch (err) {
        await sink.abort();
        throw err;
      }
      staged.push({ size: shard.size, hash: sink.place() });
      if (queuedHashes() >= HASH_BATCH) runHashQueue();
      // the oldest was queued STAGED_SHARDS shards ago, so its batch has already started
      while (staged.length > STAGED_SHARDS) await settle();
    }
    runHashQueue();
    while (staged.length > 0) await settle();
  } finally {
    // a failure leaves no hash pending unobserved
    runHashQueue();
    await Promise.allSettled(staged.map((s) => s.hash));
    if (shardsDir === null) await releaseScratch();
  }
  return hashes;
}

/**
 * Makes the model complete by writing its manifest last (after a two-level manifest's layer lists): temp files renamed into place, the
 * msgpack (the model's identity) first, so any manifest.msgpack a reader finds points only at
 * shards that are already whole.
 */
export async function commitManifest(dir: string, manifest: Manifest, layerLists: ReadonlyMap<string, Uint8Array> = new Map()): Promise<{ id: string; manifestBytes: Uint8Array }> {
  // a two-level manifest's layer lists are stored (like shards) before the manifest that names them
  for (const [hash, bytes] of layerLists) {
    const stored = await storeBlob(join(dir, MODEL_FILES.shards), bytes);
    if (stored !== hash) throw new ConvertError(`layer list ${hash} was stored as ${stored}`);
  }
  const manifestBytes = encodeManifest(manifest);
  const id = await blake3Hex(manifestBytes);
  const json = JSON.stringify({ id, ...manifest }, null, 1);
  const tmpBin = join(dir, `.tmp-${MODEL_FILES.manifest}`);
  const tmpJson = join(dir, `.tmp-${MODEL_FILES.json}`);
  try {
    await writeFile(tmpBin, manifestBytes);
    await writeFile(tmpJson, json);
    await rename(tmpBin, join(dir, MODEL_FILES.manifest));
    await rename(tmpJson, join(dir, MODEL_FILES.json));
  } catch (err) {
    await unlink(tmpBin).catch(() => undefined);
    await unlink(tmpJson).catch(() => undefined);
    throw new ConvertError(`${dir}: writing the manifest failed (${(err as Error).message})`, { cause: err });
  }
  return { id, manifestBytes };
}
