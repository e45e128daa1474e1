/**
 * Page entry for the browser engine test: the same engine code as Node, on navigator.gpu, with
 * shards fetched over HTTP through the shard store (verified before use).
 */
import { Engine, type ModelSource } from '../../engine/index.ts';
import { createWebGpuBackend } from '../../kernels/index.ts';
import { blake3Hex, decodeManifest } from '../../manifests/index.ts';
import { HttpSource, ShardStore } from '../../storage/index.ts';

async function greedy(modelUrl: string, ids: number[], maxNewTokens: number): Promise<{ ids: number[]; adapter: string }> {
  const http = new HttpSource(modelUrl);
  const manifestBytes = await http.getManifest();
  const store = await ShardStore.open({ sources: [http], ramBytes: 64 << 20 });
  const source: ModelSource = { manifest: decodeManifest(manifestBytes, modelUrl), id: await blake3Hex(manifestBytes), shard: (h) => store.get(h) };
  const backend = await createWebGpuBackend();
  const engine = await Engine.load({ backend, source });
  const out: number[] = [];
  for await (const t of engine.generate(ids, { maxNewTokens, stopOnEos: false })) out.push(t.id);
  await store.close();
  return { ids: out, adapter: backend.name };
}

Object.assign(globalThis, { dopplerGreedy: greedy });
