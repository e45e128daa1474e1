import { Worker } from 'node:worker_threads';
import type { Progress } from './model-writer.ts';

/** What every shard worker receives besides its own job: which shards are its (index ≡ id mod count). */
export interface WorkerSlot {
  id: number;
  count: number;
}

/**
 * Produces a plan's shards in `count` worker threads, each running `script` (which writes the shards
 * whose index ≡ id (mod count) and posts `{ index }` per shard, then `{ done, hashes }`). Shards are
 * independent once the plan is fixed, so this scales with cores; memory stays a few shards per worker.
 * A failure (or a throwing onProgress) stops every worker; shards already finished are complete files.
 */
export async function runShardWorkers(script: URL, job: object, sizes: number[], count: number, onProgress?: (p: Progress) => void): Promise<string[]> {
  // A fractional count would leave shards no worker owns (index ≡ id mod 2.5 never holds).
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`worker count must be an integer ≥ 1, got ${count}`);
  const hashes: string[] = new Array(sizes.length);
  const bytesTotal = sizes.reduce((a, b) => a + b, 0);
  let shardsDone = 0;
  let bytesDone = 0;
  const workers: Worker[] = [];
  const run = (id: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const w = new Worker(script, { workerData: { ...job, id, count } satisfies WorkerSlot });
      workers.push(w);
      w.on('message', (msg: { index?: number; done?: boolean; hashes?: [number, string][] }) => {
        if (msg.done) {
          for (const [i, h] of msg.hashes!) hashes[i] = h;
          return;
        }
        shardsDone++;
        bytesDone += sizes[msg.index!]!;
        try {
          onProgress?.({ shardsDone, shardsTotal: sizes.length, bytesDone, bytesTotal });
        } catch (err) {
          reject(err);
        }
      });
      w.on('error', reject);
      w.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`shard worker ${id} exited with code ${code}`))));
    });
  try {
    await Promise.all(Array.from({ length: count }, (_, i) => run(i)));
  } catch (err) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw err;
  }
  return hashes;
}

/** Worker side: the shards (and their plan indices) this worker produces. */
export function shardsOf<T>(all: T[], slot: WorkerSlot): { items: T[]; indices: number[] } {
  const indices = all.map((_, i) => i).filter((i) => i % slot.count === slot.id);
  return { items: indices.map((i) => all[i]!), indices };
}
