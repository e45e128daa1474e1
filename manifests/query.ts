import { ManifestError } from './errors.ts';
import type { Manifest, TensorEntry } from './types.ts';

/** File names inside a model directory. */
export const MODEL_FILES = { manifest: 'manifest.msgpack', json: 'manifest.json', shards: 'shards' } as const;

export function tensorByName(m: Manifest): Map<string, TensorEntry> {
  return new Map(m.tensors.map((t) => [t.name, t]));
}

/** Hashes of the shards holding one routed expert (several when it was split). */
export function shardHashesOfExpert(m: Manifest, layer: number, expert: number): string[] {
  const e = m.experts.find((x) => x.layer === layer && x.expert === expert);
  if (!e) throw new ManifestError(`${m.name}: no routed expert ${expert} in layer ${layer}`);
  return e.shards.map((i) => m.shards[i]!.hash);
}

export interface ModelSummary {
  name: string;
  architecture: string;
  quant: string;
  parameters: { total: number; dense: number; experts: number; activePerToken: number };
  bytes: { total: number; dense: number; experts: number; tokenizer: number | null };
  shards: { total: number; dense: number; expert: number };
  moeLayers: number;
  experts: { perLayer: number; topK: number; shared: number };
  /** Weight bytes read to produce one token: every dense shard plus topK routed experts per MoE layer (shared experts are in the dense shards). */
  bytesPerToken: number;
}

/** Parameter and byte counts of a model, split dense vs routed experts (what `doppler inspect` prints). */
export function summarize(m: Manifest): ModelSummary {
  let expertParams = 0;
  let denseParams = 0;
  for (const t of m.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (m.shards[t.shard]!.kind === 'expert') expertParams += n;
    else denseParams += n;
  }
  const moeLayers = new Set(m.experts.map((e) => e.layer)).size;
  const { topK, numExperts, numSharedExperts } = m.config.moe;
  const perExpertParams = m.experts.length ? expertParams / m.experts.length : 0;
  const perExpertBytes = m.experts.length ? m.totals.expertBytes / m.experts.length : 0;
  return {
    name: m.name,
    architecture: m.config.architecture,
    quant: m.quant,
    parameters: { total: m.totals.parameters, dense: denseParams, experts: expertParams, activePerToken: Math.round(denseParams + moeLayers * topK * perExpertParams) },
    bytes: { total: m.totals.bytes, dense: m.totals.denseBytes, experts: m.totals.expertBytes, tokenizer: null },
    shards: {
      total: m.shards.length,
      dense: m.shards.filter((s) => s.kind === 'dense').length,
      expert: m.shards.filter((s) => s.kind === 'expert').length,
    },
    moeLayers,
    experts: { perLayer: numExperts, topK, shared: numSharedExperts },
    bytesPerToken: Math.round(m.totals.denseBytes + moeLayers * topK * perExpertBytes),
  };
}
