/**
 * Where a decode step's time goes besides the kernels: the round trip of one read-back (the
 * engine reads each MoE layer's router logits), and end-to-end decode of the demo model.
 *
 *   node bench/latency.ts [--out FILE]      (on a GPU host: bundled by bench/gpu-host.sh)
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { openModelAt } from '../engine/node.ts';
import { createWebGpuBackend } from '../kernels/index.ts';
import { invocation } from './invocation.ts';

const { values } = parseArgs({ options: { out: { type: 'string' }, model: { type: 'string', default: 'models/tiny-moe-text-q8_0' } } });
const backend = await createWebGpuBackend();

const a = backend.act(1, 8);
const b = backend.act(1, 8);
const times: number[] = [];
for (let i = 0; i < 200; i++) {
  const t = performance.now();
  backend.add(a, a, b);
  await backend.read(b);
  times.push(performance.now() - t);
}
times.sort((x, y) => x - y);
const readBack = { medianMs: times[100]!, p10Ms: times[20]!, p90Ms: times[180]! };

const { engine } = await openModelAt({ model: values.model!, backend });
const gen = engine.generate(engine.encode('In the beginning'), { maxNewTokens: 64, stopOnEos: false });
for await (const _ of gen) { /* drain */ }
const out = {
  bench: 'latency',
  command: invocation('latency.ts'),
  date: new Date().toISOString(),
  device: backend.info.description,
  readBack,
  demoDecode: { model: engine.manifest.name, layers: engine.config.numLayers, tokPerS: gen.stats.decodeTokPerS, msPerToken: 1000 / gen.stats.decodeTokPerS, ttftMs: gen.stats.ttftMs },
};
const json = JSON.stringify(out, null, 2);
if (values.out) writeFileSync(values.out, json + '\n');
process.stdout.write(json + '\n');
