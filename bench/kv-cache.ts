/**
 * KV-cache bytes per token of the real model shapes, as the engine stores the cache (f32), next
 * to what an expanded cache would take: for MLA, per-head keys (nope + rope) and values, which is
 * what a non-absorbed implementation (transformers' included) caches.
 *
 *   node_modules/.bin/node bench/kv-cache.ts    → bench/results/kv-cache.json
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { KvCache } from '../engine/index.ts';
import { normaliseConfig, type ModelConfig } from '../manifests/index.ts';
import { PRESETS } from '../manifests/node.ts';
import { invocation } from './invocation.ts';

function expandedBytesPerToken(cfg: ModelConfig): number {
  const perLayer = cfg.mla
    ? cfg.numHeads * (cfg.mla.qkNopeHeadDim + cfg.mla.qkRopeHeadDim + cfg.mla.vHeadDim)
    : 2 * cfg.numKvHeads * cfg.headDim;
  return perLayer * 4 * cfg.numLayers;
}

const rows = Object.entries(PRESETS).map(([name, p]) => {
  const cfg = normaliseConfig(p.config, `preset ${name}`);
  const stored = KvCache.bytesPerToken(cfg);
  const expanded = expandedBytesPerToken(cfg);
  return {
    preset: name,
    attention: cfg.mla ? 'MLA (latent cache)' : `GQA ${cfg.numHeads}/${cfg.numKvHeads}`,
    bytesPerTokenStored: stored,
    bytesPerTokenExpanded: expanded,
    ratio: expanded / stored,
    gibAt32kTokensStored: (stored * 32768) / 2 ** 30,
    gibAt32kTokensExpanded: (expanded * 32768) / 2 ** 30,
  };
});
const out = { bench: 'kv-cache', command: invocation('kv-cache.ts'), dtype: 'f32 (the engine caches activations in f32)', rows };
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/kv-cache.json', import.meta.url), JSON.stringify(out, null, 2) + '\n');
console.table(rows);
