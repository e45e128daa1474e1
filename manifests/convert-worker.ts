import { parentPort, workerData } from 'node:worker_threads';
import { openSources, type SourceJob } from './convert.ts';
import { writeShards } from './model-writer.ts';
import { shardsOf, type WorkerSlot } from './shard-workers.ts';
import { encodeTensor } from './tensor-encoder.ts';

interface Job extends WorkerSlot, SourceJob {
  shardsDir: string;
}

const job = workerData as Job;
const { plan, sources, ckpt } = await openSources(job);
try {
  const { items, indices } = shardsOf(plan.shards, job);
  const hashes = await writeShards({ ...plan, shards: items }, job.shardsDir, (sink, t) => encodeTensor(sink, t, sources.get(t.spec.name)!), (p) => {
    parentPort!.postMessage({ index: indices[p.shardsDone - 1] });
  });
  parentPort!.postMessage({ done: true, hashes: hashes.map((h, j) => [indices[j], h]) });
} finally {
  await ckpt.close();
}
