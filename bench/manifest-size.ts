/**
 * Encoded manifest sizes of real-model presets, single-level vs two-level (what a client fetches
 * before anything else, and what the layer lists add), from the plan alone: hashes are fixed-width,
 * so placeholder hashes give exact sizes. Writes bench/results/manifest-size.json (or --out).
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { plannedManifestSize } from '../manifests/node.ts';
import type { WeightDtype } from '../manifests/index.ts';
import { invocation } from './invocation.ts';

const { values } = parseArgs({ options: { out: { type: 'string' } } });
const path = values.out ?? new URL('./results/manifest-size.json', import.meta.url).pathname;
if (!values.out && existsSync(path)) throw new Error(`${path} exists: give --out to replace it`);

const cases: { preset: string; quant: WeightDtype; expertQuant: WeightDtype }[] = [
  { preset: 'deepseek-v3-671b', quant: 'q4_0', expertQuant: 'q4_0' },
  { preset: 'mixtral-8x7b', quant: 'q4_0', expertQuant: 'q4_0' },
  { preset: 'gpt-oss-120b', quant: 'f16', expertQuant: 'mxfp4' },
];
const rows = [];
for (const c of cases) {
  const single = await plannedManifestSize(c.preset, c.quant, 64, c.expertQuant, false);
  const two = await plannedManifestSize(c.preset, c.quant, 64, c.expertQuant, true);
  const auto = await plannedManifestSize(c.preset, c.quant, 64, c.expertQuant);
  rows.push({
    ...c,
    shards: single.shards,
    expertShards: single.experts,
    singleLevelBytes: single.bytes,
    twoLevelTopBytes: two.bytes,
    twoLevelListBytes: two.listBytes,
    writtenByDefault: auto.listBytes > 0 ? 'two-level' : 'single-level',
  });
}
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(path, JSON.stringify({ bench: 'manifest-size', command: invocation('manifest-size.ts'), shardMiB: 64, rows }, null, 2) + '\n');
console.table(rows);
