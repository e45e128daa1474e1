/**
 * Larger-than-VRAM decoding: a random-weight model of a real shape (default mixtral-8x7b at q4_0),
 * decoded with the routed experts paged through the shard store under a VRAM budget (default a
 * quarter of the expert bytes), with and without prefetch, next to the same model fully resident.
 * Writes one JSON object (stdout, and --out FILE). gpt-oss as released: --preset gpt-oss-120b
 * --quant f16 --expert-quant mxfp4.
 *
 *   node bench/paged.ts [--preset mixtral-8x7b] [--quant q4_0] [--expert-quant Q] [--layers N] [--tokens 32]
 *                       [--vram-fraction 0.25] [--dir /tmp/doppler-paged] [--out FILE]
 * On a GPU host: ../shared/gpu-host/prepare.sh bench/paged.ts, then
 *   source .gpu-host/env.sh && node .gpu-host/entry.mjs --out $OUT/paged.json
 */
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, backendUploader, type GenerationStats, type ModelSource } from '../engine/index.ts';
import { modelDirSource } from '../engine/node.ts';
import { createWebGpuBackend, type DeviceBytes } from '../kernels/index.ts';
import { MODEL_FILES, type WeightDtype } from '../manifests/index.ts';
import { PRESETS, synth } from '../manifests/node.ts';
import { ShardStore, shardMeta, type StoreStats } from '../storage/index.ts';
import { DirSource } from '../storage/node.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag, numFlag } from '../cli/command.ts';

const { values } = benchArgs({
  preset: { type: 'string', default: 'mixtral-8x7b' },
  quant: { type: 'string', default: 'q4_0' },
  'expert-quant': { type: 'string' },
  layers: intFlag(1),
  tokens: { ...intFlag(1), default: '32' },
  'vram-fraction': { ...numFlag(0, 1), default: '0.25' },
  dir: { type: 'string', default: '/tmp/doppler-paged' },
  out: { type: 'string' },
});
const preset = PRESETS[values.preset!];
if (!preset) throw new Error(`unknown preset ${values.preset}`);
const layers = values.layers === undefined ? undefined : Number(values.layers);
const tokens = Number(values.tokens);
const dir = values.dir!;
const log = (s: string) => process.stderr.write(`${s}\n`);

let t = performance.now();
if (!existsSync(join(dir, MODEL_FILES.manifest))) {
  await synth({ arch: preset.arch, preset: values.preset!, quant: values.quant as WeightDtype, expertQuant: (values['expert-quant'] ?? values.quant) as WeightDtype, out: dir,
    // one thread: worker scripts do not survive bundling for the GPU host
    workers: 1, ...(layers !== undefined ? { layers } : {}) });
}
const synthSeconds = (performance.now() - t) / 1000;
const model = await modelDirSource(dir);
const m = model.manifest;
log(`model ${m.name}: ${(m.totals.bytes / 1e9).toFixed(2)} GB (${(m.totals.expertBytes / 1e9).toFixed(2)} GB experts), synth ${synthSeconds.toFixed(1)} s`);

const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919 + 13) % m.config.vocabSize);

async function decode(engine: Engine) {
  const ids: number[] = [];
  const gen = engine.generate(prompt, { maxNewTokens: tokens, stopOnEos: false });
  for await (const tok of gen) ids.push(tok.id);
  return { ids, stats: gen.stats };
}

function summary(s: GenerationStats) {
  return { ttftMs: s.ttftMs, decodeTokPerS: s.decodeTokPerS, expertWaitMsPerToken: s.expertWaitMs / s.generatedTokens, gpuBytes: s.gpuBytes };
}

/** What changed in the store over one decode: hit rates per tier and the upload rate into VRAM. */
function storeDelta(before: StoreStats, after: StoreStats, seconds: number) {
  const hitRate = (b: StoreStats['ram'] | null, a: StoreStats['ram'] | null) => {
    if (!a || !b) return null;
    const hits = a.hits - b.hits;
    const misses = a.misses - b.misses;
    return hits + misses === 0 ? null : hits / (hits + misses);
  };
  const uploaded = after.vram!.bytesIn - before.vram!.bytesIn;
  return {
    vramHitRate: hitRate(before.vram, after.vram),
    ramHitRate: hitRate(before.ram, after.ram),
    vramEvictions: after.vram!.evictions - before.vram!.evictions,
    uploadedGB: uploaded / 1e9,
    uploadGBps: uploaded / 1e9 / seconds,
    prefetchUsed: after.prefetch.used - before.prefetch.used,
    prefetchWasted: after.prefetch.wasted - before.prefetch.wasted,
  };
}

// One backend and one store for every run: RAM holds the whole model (verified once, up front),
// so the paged runs measure RAM → VRAM paging, not disk reads or hashing.
const vramBudget = Math.floor(Number(values['vram-fraction']) * m.totals.expertBytes);
const backend = await createWebGpuBackend();
const store = await ShardStore.open<DeviceBytes>({
  sources: [new DirSource(dir)],
  ramBytes: m.totals.bytes + 2 ** 30,
  vram: { bytes: vramBudget, uploader: backendUploader(backend) },
  meta: shardMeta(m),
  numLayers: m.config.numLayers,
});
t = performance.now();
await Promise.all(m.shards.map((s) => store.get(s.hash)));
const warmVerifyGBps = m.totals.bytes / 1e9 / ((performance.now() - t) / 1000);
log(`RAM tier warm: ${warmVerifyGBps.toFixed(2)} GB/s read + verified`);
const fromRam: ModelSource = { manifest: m, id: model.id, shard: (h) => store.get(h) };

async function pagedRun(prefetchDepth: number) {
  const engine = await Engine.load({ backend, source: fromRam, store, storeBudgets: { vramBytes: vramBudget, ramBytes: m.totals.bytes + 2 ** 30 }, prefetchDepth });
  const before = store.stats();
  const t1 = performance.now();
  const run = await decode(engine);
  const seconds = (performance.now() - t1) / 1000;
  return {
    ids: run.ids,
    result: { prefetchDepth, loadMs: engine.loadMs, ...summary(run.stats), store: storeDelta(before, store.stats(), seconds), prefetcher: run.stats.prefetch ?? null },
  };
}

const withoutPrefetch = await pagedRun(0);
log(`paged, no prefetch: ${withoutPrefetch.result.decodeTokPerS.toFixed(2)} tok/s`);
const withPrefetch = await pagedRun(1);
log(`paged + prefetch: ${withPrefetch.result.decodeTokPerS.toFixed(2)} tok/s`);

const resident = await Engine.load({ backend, source: fromRam });
const residentRun = await decode(resident);
log(`resident: ${residentRun.stats.decodeTokPerS.toFixed(2)} tok/s`);

const out = {
  bench: 'paged',
  command: invocation('paged.ts'),
  date: new Date().toISOString(),
  device: backend.info.description,
  warmVerifyGBps,
  model: { name: m.name, bytes: m.totals.bytes, expertBytes: m.totals.expertBytes, denseBytes: m.totals.denseBytes, layers: m.config.numLayers, shards: m.shards.length },
  vramBudgetBytes: vramBudget,
  promptTokens: prompt.length,
  decodeTokens: tokens,
  sameIdsAsResident: JSON.stringify(withPrefetch.ids) === JSON.stringify(residentRun.ids) && JSON.stringify(withoutPrefetch.ids) === JSON.stringify(residentRun.ids),
  paged: withPrefetch.result,
  pagedNoPrefetch: withoutPrefetch.result,
  resident: { loadMs: resident.loadMs, ...summary(residentRun.stats) },
};
const json = JSON.stringify(out, null, 2);
if (values.out) writeFileSync(values.out, json + '\n');
process.stdout.write(json + '\n');
