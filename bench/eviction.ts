/**
 * Eviction policies on expert traffic: plain LRU vs the store's reuse-distance policy, with
 * Belady's offline optimum as the ceiling, at several cache budgets.
 *
 *   node_modules/.bin/node bench/eviction.ts [--trace trace.json ...] [--out bench/results/eviction.json]
 *
 * A trace is a JSON array of {layer, experts[]}, one entry per layer of each forward pass, in
 * execution order. Without --trace only the synthetic traces run; with it they run as well.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { seededRandom } from '../engine/sampling.ts';
import { parseTrace, simulateEviction, type TraceStep } from '../storage/index.ts';
import { invocation } from './invocation.ts';

const FRACTIONS = [0.1, 0.2, 0.3, 0.5, 0.7];


interface SynthSpec {
  name: string;
  layers: number;
  experts: number;
  k: number;
  tokens: number;
  /** Zipf exponent of per-layer popularity (0: uniform). */
  zipf: number;
  /** Probability that a slot repeats one of the previous token's experts at the layer. */
  repeat: number;
  /** Every this many tokens, a tenth of each layer's popularity ranks are reshuffled. */
  driftEvery: number;
  seed: number;
}

/** Decode-like traffic: per-layer skewed popularity, token-to-token locality, slow drift. */
function synthTrace(s: SynthSpec): TraceStep[] {
  const u = seededRandom(s.seed);
  const rankWeight = Array.from({ length: s.experts }, (_, r) => 1 / (r + 1) ** s.zipf);
  const perm = Array.from({ length: s.layers }, () => shuffle(Array.from({ length: s.experts }, (_, i) => i), u));
  const prev: number[][] = Array.from({ length: s.layers }, () => []);
  const trace: TraceStep[] = [];
  for (let t = 0; t < s.tokens; t++) {
    if (t > 0 && t % s.driftEvery === 0) {
      for (const p of perm) {
        for (let j = 0; j < s.experts / 10; j++) {
          const a = Math.floor(u() * s.experts);
          const b = Math.floor(u() * s.experts);
          [p[a], p[b]] = [p[b]!, p[a]!];
        }
      }
    }
    for (let l = 0; l < s.layers; l++) {
      const chosen = new Set<number>();
      while (chosen.size < s.k) {
        const last = prev[l]!;
        if (last.length > 0 && u() < s.repeat) {
          chosen.add(last[Math.floor(u() * last.length)]!);
          continue;
        }
        const w = rankWeight.map((x, r) => (chosen.has(perm[l]![r]!) ? 0 : x));
        let x = u() * w.reduce((a, b) => a + b, 0);
        let r = 0;
        while (x >= w[r]! && r < w.length - 1) x -= w[r++]!;
        chosen.add(perm[l]![r]!);
      }
      prev[l] = [...chosen];
      trace.push({ layer: l, experts: [...chosen] });
    }
  }
  return trace;
}

function shuffle<T>(a: T[], u: () => number): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(u() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function describe(trace: TraceStep[]) {
  const distinct = new Set<string>();
  let accesses = 0;
  let maxStep = 0;
  for (const s of trace) {
    for (const e of s.experts) distinct.add(`${s.layer}/${e}`);
    accesses += s.experts.length;
    maxStep = Math.max(maxStep, s.experts.length);
  }
  return { steps: trace.length, layers: new Set(trace.map((s) => s.layer)).size, distinctExperts: distinct.size, accesses, maxStepExperts: maxStep };
}

function run(name: string, trace: TraceStep[]) {
  const info = describe(trace);
  const rows = [];
  for (const f of FRACTIONS) {
    const capacity = Math.max(info.maxStepExperts, Math.round(f * info.distinctExperts));
    const lru = simulateEviction(trace, 'lru', capacity);
    const reuse = simulateEviction(trace, 'reuse', capacity);
    const belady = simulateEviction(trace, 'belady', capacity);
    rows.push({
      budgetFraction: f,
      capacity,
      hitRate: { lru: lru.hitRate, reuse: reuse.hitRate, belady: belady.hitRate },
      missesPerToken: {
        lru: ((lru.accesses - lru.hits) * info.layers) / info.steps,
        reuse: ((reuse.accesses - reuse.hits) * info.layers) / info.steps,
        belady: ((belady.accesses - belady.hits) * info.layers) / info.steps,
      },
      missReductionVsLru: lru.hits === lru.accesses ? 0 : 1 - (reuse.accesses - reuse.hits) / (lru.accesses - lru.hits),
    });
  }
  return { name, ...info, results: rows };
}

const { values } = parseArgs({
  options: {
    trace: { type: 'string', multiple: true },
    out: { type: 'string', default: 'bench/results/eviction.json' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write('usage: node bench/eviction.ts [--trace trace.json ...] [--out bench/results/eviction.json]\n');
  process.exit(0);
}

const synth: SynthSpec[] = [
  { name: 'synthetic zipf-temporal (16 layers x 64 experts, top-4)', layers: 16, experts: 64, k: 4, tokens: 1500, zipf: 1.0, repeat: 0.3, driftEvery: 300, seed: 1 },
  { name: 'synthetic mixtral-like (32 layers x 8 experts, top-2)', layers: 32, experts: 8, k: 2, tokens: 1500, zipf: 0.8, repeat: 0.3, driftEvery: 300, seed: 2 },
  { name: 'synthetic uniform (16 layers x 64 experts, top-4)', layers: 16, experts: 64, k: 4, tokens: 1000, zipf: 0, repeat: 0, driftEvery: 1e9, seed: 3 },
];
const traces: { name: string; trace: TraceStep[] }[] = synth.map((s) => ({ name: s.name, trace: synthTrace(s) }));
for (const path of values.trace ?? []) {
  traces.push({ name: basename(path), trace: parseTrace(JSON.parse(readFileSync(path, 'utf8')), path) });
}

const results = traces.map((t) => run(t.name, t.trace));
for (const r of results) {
  process.stdout.write(`${r.name}: ${r.steps} steps, ${r.distinctExperts} experts\n`);
  for (const row of r.results) {
    const h = row.hitRate;
    process.stdout.write(
      `  budget ${(row.budgetFraction * 100).toFixed(0).padStart(2)}% (${row.capacity}): hit rate lru ${(h.lru * 100).toFixed(1)}%  reuse ${(h.reuse * 100).toFixed(1)}%  belady ${(h.belady * 100).toFixed(1)}%  misses -${(row.missReductionVsLru * 100).toFixed(1)}% vs lru\n`,
    );
  }
}
mkdirSync(dirname(values.out!), { recursive: true });
writeFileSync(
  values.out!,
  `${JSON.stringify({ bench: 'eviction', command: invocation('eviction.ts'), date: new Date().toISOString(), node: process.version, policies: ['lru', 'reuse', 'belady'], traces: results }, null, 2)}\n`,
);
process.stdout.write(`wrote ${values.out}\n`);
