import { parentPort, workerData } from 'node:worker_threads';
import { normaliseConfig } from './config.ts';
import { writeShards } from './model-writer.ts';
import { planModel, type ModelPlan } from './plan.ts';
import { writeSynthTensor } from './synth-bytes.ts';
import type { WeightDtype } from './types.ts';

/** One synth worker: produces the shards whose index ≡ id (mod count) and posts each hash. */
interface Job {
  rawConfig: Record<string, unknown>;
  quant: WeightDtype;
  shardBytes: number;
  shardsDir: string | null;
  seed: number;
  id: number;
  count: number;
}

const job = workerData as Job;
const full = planModel(normaliseConfig(job.rawConfig, 'preset'), job.quant, job.shardBytes);
const mine = full.shards.map((s, i) => ({ s, i })).filter(({ i }) => i % job.count === job.id);
const sub: ModelPlan = { ...full, shards: mine.map(({ s }) => s) };
const hashes = await writeShards(sub, job.shardsDir, (sink, t) => writeSynthTensor(sink, t, job.seed), (p) => {
  parentPort!.postMessage({ index: mine[p.shardsDone - 1]!.i });
});
parentPort!.postMessage({ done: true, hashes: hashes.map((h, j) => [mine[j]!.i, h]) });
