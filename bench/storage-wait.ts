/**
 * Storage wait per token with and without prefetch: tiny-moe-text paged through the shard store
 * with a VRAM budget of a fraction of its experts, shards coming from a source with simulated
 * latency and bandwidth, greedy decoding of the golden prompts on the CPU backend. Every run's
 * ids are checked against the all-resident engine.
 *
 *   node_modules/.bin/node bench/storage-wait.ts [--model models/tiny-moe-text-q8_0]
 *     [--golden ../shared/fixtures/tiny-moe-text/golden.json] [--tokens 32] [--budget 0.25,0.5]
 *     [--latency-ms 4] [--mbps 400] [--repeats 3] [--out bench/results/storage-wait.json]
 *
 * Wall-clock waits on a shared machine are noisy: each configuration runs --repeats times and the
 * median is reported, next to the timing-independent counts (demand hits, demands that joined a
 * prefetch already in flight, cold misses).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { openModel, type Engine, type LayerObserver } from '../engine/index.ts';
import { openModelAt } from '../engine/node.ts';
import { createCpuBackend } from '../kernels/index.ts';
import { blake3Hex, decodeManifest, shardHashesOfExpert } from '../manifests/index.ts';
import { Prefetcher } from '../router/index.ts';
import type { PolicyName, ShardSource } from '../storage/index.ts';
import { DirSource } from '../storage/node.ts';
import { layerGates } from './gates.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag, numFlag } from '../cli/command.ts';

const { values } = benchArgs({
  model: { type: 'string', default: 'models/tiny-moe-text-q8_0' },
  golden: { type: 'string', default: '../shared/fixtures/tiny-moe-text/golden.json' },
  tokens: { ...intFlag(1), default: '32' },
  budget: { type: 'string', default: '0.25,0.5' },
  'latency-ms': { ...numFlag(0), default: '4' },
  mbps: { ...numFlag(0.001), default: '400' },
  repeats: { ...intFlag(1), default: '3' },
  out: { type: 'string', default: 'bench/results/storage-wait.json' },
  help: { type: 'boolean', short: 'h' },
});
if (values.help) {
  process.stdout.write('usage: node bench/storage-wait.ts [--model DIR] [--tokens N] [--budget FRACTION,...] [--latency-ms MS] [--mbps MB/s] [--out FILE]\n');
  process.exit(0);
}
const tokens = Number(values.tokens);
const latencyMs = Number(values['latency-ms']);
const bytesPerMs = (Number(values.mbps) * 1e6) / 1000;

/** A source that takes latency + size / bandwidth per shard, as a network or slow disk would. */
class SlowSource implements ShardSource {
  readonly name = 'slow-dir';
  private readonly inner: ShardSource;
  constructor(inner: ShardSource) {
    this.inner = inner;
  }
  async get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    // the clock starts at the request, as a network transfer proceeds while the page computes
    const start = performance.now();
    const bytes = await this.inner.get(hash, signal);
    const left = start + latencyMs + bytes.byteLength / bytesPerMs - performance.now();
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(resolve, Math.max(0, left));
      signal?.addEventListener('abort', () => {
        clearTimeout(t);
        reject(signal.reason);
      }, { once: true });
    });
    return bytes;
  }
}

const dir = new DirSource(values.model!);
const manifestBytes = await dir.getManifest();
const manifest = decodeManifest(manifestBytes, values.model!);
const id = await blake3Hex(manifestBytes);
const prompts = (JSON.parse(readFileSync(values.golden!, 'utf8')) as { prompts: { input_ids: number[] }[] }).prompts.map((p) => p.input_ids);
const expertBytes = manifest.experts.reduce((a, e) => a + e.bytes, 0);
const largestExpert = Math.max(...manifest.experts.map((e) => e.bytes));

async function generateAll(engine: Engine) {
  const ids: number[][] = [];
  let waitMs = 0;
  let generated = 0;
  let decodeMs = 0;
  for (const p of prompts) {
    const g = engine.generate(p, { maxNewTokens: tokens, stopOnEos: false });
    const out: number[] = [];
    for await (const t of g) out.push(t.id);
    ids.push(out);
    waitMs += g.stats.expertWaitMs;
    generated += g.stats.generatedTokens;
    decodeMs += g.stats.decodeMs + g.stats.ttftMs;
  }
  return { ids, waitMs, generated, decodeMs };
}

const reference = await generateAll((await openModelAt({ model: values.model!, backend: createCpuBackend() })).engine);

const gates = await layerGates(manifest, (h) => dir.get(h));

interface Config {
  fraction: number;
  policy: PolicyName;
  depth: number;
  /** RAM tier budget as a fraction of the experts' bytes. */
  ram: number;
  /** Prefetch the next layer into VRAM and the `depth - 1` after it into RAM only. */
  staged: boolean;
}
const runs = [];
const configs: Config[] = values.budget!.split(',').map(Number).flatMap((fraction) =>
  (['lru', 'reuse'] as PolicyName[]).flatMap((policy) => [0, 1, 2].map((depth) => ({ fraction, policy, depth, ram: 0, staged: false }))),
);
// a RAM tier between VRAM and the source, with prefetches farther ahead staged in it
for (const [depth, staged] of [[0, false], [1, false], [3, true]] as const) {
  configs.push({ fraction: 0.25, policy: 'reuse', depth, ram: 0.5, staged });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const { fraction, policy, depth, ram, staged } of configs) {
  // a token needs topK experts of one layer at once: the smallest budget the engine accepts
  const vramBytes = Math.max(manifest.config.moe.topK * largestExpert, Math.round(fraction * expertBytes));
  const trials = [];
  for (let rep = 0; rep < Number(values.repeats); rep++) {
    // the staging prefetcher needs the store openModel opens: it is built right after, before any token runs
    let staging: Prefetcher | null = null;
    const { engine, store } = await openModel({
      backend: createCpuBackend(),
      manifestFrom: [dir],
      modelId: id,
      sources: [new SlowSource(dir)],
      budgets: { vramBytes, ramBytes: Math.round(ram * expertBytes) },
      policy,
      prefetchDepth: staged ? 0 : depth,
      ...(staged ? { observer: { routed: (l, r, h) => staging!.routed(l, r, h) } satisfies LayerObserver } : {}),
    });
    if (staged) {
      staging = new Prefetcher({
        moe: manifest.config.moe,
        hiddenSize: manifest.config.hiddenSize,
        numLayers: manifest.config.numLayers,
        rmsNormEps: manifest.config.rmsNormEps,
        depth,
        gate: (l) => gates[l] ?? null,
        hashesOf: (l, e) => shardHashesOfExpert(manifest, l, e),
        target: {
          prefetch: (h, p, hint) => store.prefetch(h, p, { device: (hint?.layersAhead ?? 1) <= 1 }),
          cancel: (h) => store.cancel(h),
        },
      });
    }
    const before = store.stats();
    const r = await generateAll(engine);
    const s = store.stats();
    await store.close();
    const demands = s.requests - before.requests;
    const hits = s.vram!.hits - before.vram!.hits;
    const joined = s.deduplicated - before.deduplicated;
    trials.push({
      idsMatch: JSON.stringify(r.ids) === JSON.stringify(reference.ids),
      tokens: r.generated,
      waitMsPerToken: r.waitMs / r.generated,
      msPerToken: r.decodeMs / r.generated,
      demandHitRate: hits / demands,
      joinedPrefetchPerToken: joined / r.generated,
      coldMissesPerToken: (demands - hits - joined) / r.generated,
      fetchesPerToken: (s.remote.hits - before.remote.hits) / r.generated,
      prefetch: s.prefetch,
    });
  }
  const run = {
    budgetFraction: fraction,
    vramBytes,
    ramBytes: Math.round(ram * expertBytes),
    stagedInRam: staged,
    policy,
    prefetchDepth: depth,
    idsMatchResident: trials.every((t) => t.idsMatch),
    tokens: trials[0]!.tokens,
    expertWaitMsPerToken: median(trials.map((t) => t.waitMsPerToken)),
    msPerToken: median(trials.map((t) => t.msPerToken)),
    demandHitRate: median(trials.map((t) => t.demandHitRate)),
    joinedPrefetchPerToken: median(trials.map((t) => t.joinedPrefetchPerToken)),
    coldMissesPerToken: median(trials.map((t) => t.coldMissesPerToken)),
    fetchesPerToken: median(trials.map((t) => t.fetchesPerToken)),
    prefetch: trials[0]!.prefetch,
  };
  runs.push(run);
  process.stdout.write(
    `budget ${fraction}${ram ? ` ram ${ram}` : ''} ${policy.padEnd(5)} prefetch depth ${depth}${staged ? ' (2+ ahead into RAM)' : ''}: wait ${run.expertWaitMsPerToken.toFixed(2)} ms/token (${run.msPerToken.toFixed(1)} ms/token), ` +
      `hits ${(run.demandHitRate * 100).toFixed(1)}%, cold misses ${run.coldMissesPerToken.toFixed(2)}/token, joined prefetch ${run.joinedPrefetchPerToken.toFixed(2)}/token, ` +
      `fetches ${run.fetchesPerToken.toFixed(2)}/token, ids ${run.idsMatchResident ? 'match' : 'DIFFER'}\n`,
  );
}

mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(
  values.out!,
  `${JSON.stringify(
    {
      bench: 'storage-wait',
      command: invocation('storage-wait.ts'),
      date: new Date().toISOString(),
      model: values.model,
      backend: 'cpu',
      prompts: prompts.length,
      newTokensPerPrompt: tokens,
      expertBytes,
      source: { latencyMs, mbps: Number(values.mbps) },
      repeats: Number(values.repeats),
      residentMsPerToken: reference.decodeMs / reference.generated,
      runs,
    },
    null,
    2,
  )}\n`,
);
process.stdout.write(`wrote ${values.out}\n`);
