/**
 * Where a decode step's time goes besides the kernels: the round trip of one read-back, and
 * end-to-end decode of the demo model (greedy, experts resident): tokens per second, time to first
 * token, the engine's deterministic counters per decoded token (dispatches, read-backs, bytes
 * uploaded, submissions), and the CPU time spent inside backend calls per token (recording,
 * submitting and starting read-backs) next to the rest of the step, which is waiting on the GPU.
 *
 *   node bench/latency.ts [--out FILE] [--model DIR] [--tokens N] [--backend webgpu|cpu]
 *   (on a GPU host: bundled by bench/gpu-host.sh, run as node .gpu-host/latency.mjs --out latency.json)
 */
import { writeFileSync } from 'node:fs';
import { openModelAt } from '../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../kernels/index.ts';
import { intFlag } from '../cli/command.ts';
import { benchArgs, invocation } from './invocation.ts';

const { values } = benchArgs({
  out: { type: 'string' },
  model: { type: 'string', default: 'models/tiny-moe-text-q8_0' },
  tokens: { ...intFlag(2), default: '64' },
  backend: { type: 'string', default: 'webgpu' },
});
if (values.backend !== 'webgpu' && values.backend !== 'cpu') {
  process.stderr.write(`--backend must be webgpu or cpu, got ${values.backend}\n`);
  process.exit(2);
}
const gpu = values.backend === 'webgpu' ? await createWebGpuBackend() : null;
const inner: Backend = gpu ?? createCpuBackend();

let readBack: { medianMs: number; p10Ms: number; p90Ms: number } | null = null;
if (gpu) {
  const a = gpu.act(1, 8);
  const b = gpu.act(1, 8);
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    gpu.add(a, a, b);
    await gpu.read(b);
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  readBack = { medianMs: times[100]!, p10Ms: times[20]!, p90Ms: times[180]! };
}

/** The backend with the synchronous part of every call timed (for async calls: until they return their promise). */
let inCallsMs = 0;
const timed = new Proxy(inner, {
  get(target, prop, receiver) {
    const value = Reflect.get(target, prop, receiver) as unknown;
    if (typeof value !== 'function') return value;
    return (...args: unknown[]) => {
      const t = performance.now();
      try {
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      } finally {
        inCallsMs += performance.now() - t;
      }
    };
  },
});

const { engine } = await openModelAt({ model: values.model!, backend: timed });
const prompt = engine.encode('In the beginning');
// one warm-up generation compiles every pipeline the decode uses
for await (const _ of engine.generate(prompt, { maxNewTokens: 2, stopOnEos: false })) { /* warm-up */ }
const gen = engine.generate(prompt, { maxNewTokens: Number(values.tokens), stopOnEos: false });
let decodeCallsMs = 0;
let first = true;
for await (const _ of gen) {
  // calls made for the first token are the prefill's
  if (first) inCallsMs = 0;
  first = false;
  decodeCallsMs = inCallsMs;
}
const decoded = gen.stats.generatedTokens - 1;
const msPerToken = gen.stats.decodeMs / decoded;
const cpuUs = (decodeCallsMs / decoded) * 1000;
const out = {
  bench: 'latency',
  command: invocation('latency.ts'),
  date: new Date().toISOString(),
  device: gpu ? gpu.info.description : 'cpu reference backend',
  readBack,
  demoDecode: {
    model: engine.manifest.name,
    layers: engine.config.numLayers,
    tokPerS: gen.stats.decodeTokPerS,
    msPerToken,
    ttftMs: gen.stats.ttftMs,
    /** Microseconds per decoded token inside backend calls (JS recording, submits, starting reads). */
    cpuUsPerToken: cpuUs,
    /** The rest of each step: waiting for the GPU (and JS outside backend calls, e.g. sampling). */
    otherUsPerToken: msPerToken * 1000 - cpuUs,
    countersPerToken: gen.stats.counters.perToken,
    prefillCounters: gen.stats.counters.prefill,
  },
};
const json = JSON.stringify(out, null, 2);
if (values.out) writeFileSync(values.out, json + '\n');
process.stdout.write(json + '\n');
process.exit(0);
