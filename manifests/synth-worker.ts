import { parentPort, workerData } from 'node:worker_threads';
import { normaliseConfig } from './config.ts';
import { writeShards } from './model-writer.ts';
import { planModel } from './plan.ts';
import { shardsOf, type WorkerSlot } from './shard-workers.ts';
import { writeSynthTensor } from './synth-bytes.ts';
import type { WeightDtype } from './types.ts';

interface Job extends WorkerSlot {
  rawConfig: Record<string, unknown>;
  quant: WeightDtype;
  expertQuant: WeightDtype;
  shardBytes: number;
  shardsDir: string | null;
  seed: number;
}

const job = workerData as Job;
const plan = planModel(normaliseConfig(job.rawConfig, 'preset'), job.quant, job.shardBytes, job.expertQuant);
const { items, indices } = shardsOf(plan.shards, job);
const hashes = await writeShards({ ...plan, shards: items }, job.shardsDir, (sink, t) => writeSynthTensor(sink, t, job.seed), (p) => {
  parentPort!.postMessage({ index: indices[p.shardsDone - 1] });
});
parentPort!.postMessage({ done: true, hashes: hashes.map((h, j) => [indices[j], h]) });
