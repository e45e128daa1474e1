/**
 * Expert prefetch on a trained model: runs held-out text through the engine (CPU backend),
 * records every token's experts and the hidden state entering each MoE block, then replays the
 * tokens in decode order through the Prefetcher at several settings and reports next-layer
 * precision/recall. Also writes the decode-order expert trace for bench/eviction.ts.
 *
 *   node_modules/.bin/node bench/prefetch.ts [--model models/tiny-moe-text-q8_0]
 *     [--golden ../shared/fixtures/tiny-moe-text/golden.json] [--seqs 8]
 *     [--out bench/results/prefetch.json] [--trace-out $TMPDIR/doppler-expert-trace-tiny-moe-text.json]
 *
 * A causal model gives row t of a prefill the same hidden states as decoding token t, so the
 * replay sees exactly what a token-by-token decode would, without a decode loop per token.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { modelDirSource, openModelAt } from '../engine/node.ts';
import { createCpuBackend } from '../kernels/index.ts';
import { shardHashesOfExpert } from '../manifests/index.ts';
import { Prefetcher, type Routing } from '../router/index.ts';
import type { TraceStep } from '../storage/index.ts';
import { layerGates } from './gates.ts';
import { benchArgs, invocation } from './invocation.ts';
import { intFlag } from '../cli/command.ts';

const { values } = benchArgs({
  model: { type: 'string', default: 'models/tiny-moe-text-q8_0' },
  golden: { type: 'string', default: '../shared/fixtures/tiny-moe-text/golden.json' },
  seqs: { ...intFlag(1), default: '8' },
  out: { type: 'string', default: 'bench/results/prefetch.json' },
  'trace-out': { type: 'string', default: join(tmpdir(), 'doppler-expert-trace-tiny-moe-text.json') },
  help: { type: 'boolean', short: 'h' },
});
if (values.help) {
  process.stdout.write('usage: node bench/prefetch.ts [--model DIR] [--golden golden.json] [--seqs N] [--out FILE] [--trace-out FILE]\n');
  process.exit(0);
}

const golden = JSON.parse(readFileSync(values.golden!, 'utf8')) as { val_seq_ids: number[][] };
const seqs = golden.val_seq_ids.slice(0, Number(values.seqs));
const source = await modelDirSource(values.model!);
const m = source.manifest;
const cfg = m.config;
const H = cfg.hiddenSize;

interface Pass {
  rows: number;
  routing: Map<number, Routing>;
  hidden: Map<number, Float32Array>;
}
let current: Pass | null = null;
const backend = createCpuBackend();
const { engine } = await openModelAt({
  model: values.model!,
  backend,
  observer: {
    async routed(layer, routing, hidden) {
      current!.routing.set(layer, routing);
      current!.hidden.set(layer, await hidden());
    },
  },
});

const passes: Pass[] = [];
const t0 = performance.now();
for (const seq of seqs) {
  current = { rows: seq.length, routing: new Map(), hidden: new Map() };
  for await (const _ of engine.generate(seq, { maxNewTokens: 1 })) break;
  passes.push(current);
}
const engineMs = performance.now() - t0;

const gates = await layerGates(m, (h) => source.shard(h));
const moeLayers = gates.flatMap((g, l) => (g ? [l] : []));

/** Decode-order replay: token t visits the MoE layers in order, as decoding it would. */
function replay(opts: { depth: number; width: number; statsWeight: number; norm: boolean }) {
  const p = new Prefetcher({
    moe: cfg.moe,
    hiddenSize: H,
    numLayers: cfg.numLayers,
    rmsNormEps: cfg.rmsNormEps,
    gate: (l) => (gates[l] ? { ...gates[l], norm: opts.norm ? gates[l].norm : null } : null),
    hashesOf: (l, e) => shardHashesOfExpert(m, l, e),
    target: { prefetch: () => undefined },
    depth: opts.depth,
    width: opts.width,
    statsWeight: opts.statsWeight,
  });
  for (const pass of passes) {
    p.reset();
    for (let t = 0; t < pass.rows; t++) {
      for (const l of moeLayers) {
        const r = pass.routing.get(l)!;
        p.observe(l, r.experts.subarray(t * r.k, (t + 1) * r.k));
        if (l !== moeLayers[moeLayers.length - 1]) p.predict(l, pass.hidden.get(l)!.subarray(t * H, (t + 1) * H));
      }
    }
  }
  return { ...opts, ...p.stats() };
}

const settings = [];
for (const depth of [1, 2]) {
  for (const width of [cfg.moe.topK, cfg.moe.topK + 1]) {
    for (const statsWeight of [0, 0.2, 0.5, 1]) settings.push(replay({ depth, width, statsWeight, norm: true }));
  }
}
settings.push(replay({ depth: 1, width: cfg.moe.topK, statsWeight: 0, norm: false }));

const trace: TraceStep[] = [];
for (const pass of passes) {
  for (let t = 0; t < pass.rows; t++) {
    for (const l of moeLayers) {
      const r = pass.routing.get(l)!;
      trace.push({ layer: l, experts: Array.from(r.experts.subarray(t * r.k, (t + 1) * r.k)) });
    }
  }
}

// the trivial predictor: the experts this token used at the previous layer, for comparison
let same = 0;
let total = 0;
for (let i = 1; i < trace.length; i++) {
  if (trace[i]!.layer === moeLayers[0]) continue;
  const prev = new Set(trace[i - 1]!.experts);
  same += trace[i]!.experts.filter((e) => prev.has(e)).length;
  total += trace[i]!.experts.length;
}

for (const s of settings) {
  process.stdout.write(
    `depth ${s.depth} width ${s.width} stats ${s.statsWeight}${s.norm ? '' : ' (no norm)'}: next layer precision ${(s.nextLayer.precision * 100).toFixed(1)}% recall ${(s.nextLayer.recall * 100).toFixed(1)}%` +
      (s.depth > 1 ? `; 2 ahead precision ${(s.byDepth[1]!.precision * 100).toFixed(1)}% recall ${(s.byDepth[1]!.recall * 100).toFixed(1)}%` : '') +
      '\n',
  );
}
process.stdout.write(`same experts as the previous layer: ${((same / total) * 100).toFixed(1)}%\n`);

mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(
  values.out!,
  `${JSON.stringify(
    {
      bench: 'prefetch',
      command: invocation('prefetch.ts'),
      date: new Date().toISOString(),
      model: values.model,
      modelId: source.id,
      text: `${seqs.length} held-out sequences of ${seqs[0]?.length} tokens (golden.json val_seq_ids)`,
      tokens: passes.reduce((a, p) => a + p.rows, 0),
      engineMs,
      baselineSameAsPreviousLayer: same / total,
      settings: settings.map((s) => ({ depth: s.depth, width: s.width, statsWeight: s.statsWeight, layerNorm: s.norm, nextLayer: s.nextLayer, byDepth: s.byDepth })),
    },
    null,
    2,
  )}\n`,
);
mkdirSync(dirname(values['trace-out']!), { recursive: true });
writeFileSync(values['trace-out']!, JSON.stringify(trace));
process.stdout.write(`wrote ${values.out} and ${values['trace-out']} (${trace.length} steps)\n`);
