import { alignUp, architectureTensors, storedDtype, type TensorSpec } from './layout.ts';
import { matrixDims, tensorByteLength } from './quant.ts';
import type { ExpertEntry, Manifest, ModelConfig, ShardEntry, TensorEntry, WeightDtype } from './types.ts';

export interface PlannedTensor {
  spec: TensorSpec;
  dtype: WeightDtype;
  shard: number;
  offset: number;
  length: number;
}

export interface PlannedShard {
  kind: 'dense' | 'expert';
  size: number;
  tensors: PlannedTensor[];
}

/**
 * Where every byte of a model goes, decided before any is written: dense shards first (packed in
 * model order), then one shard per routed expert in (layer, expert) order, split only when the expert
 * exceeds the shard size. Knowing the layout up front lets shards be produced independently
 * (streamed, or hashed in parallel) and makes expert entries derivable when decoding a manifest.
 */
export interface ModelPlan {
  config: ModelConfig;
  quant: WeightDtype;
  /** Routed experts' quantization (the same as `quant` unless asked otherwise). */
  expertQuant: WeightDtype;
  shards: PlannedShard[];
  /** Manifest order: dense tensors, then each expert's tensors. */
  tensors: PlannedTensor[];
  experts: { layer: number; expert: number; shards: number[] }[];
}

export function planModel(config: ModelConfig, quant: WeightDtype, shardBytes: number, expertQuant: WeightDtype = quant): ModelPlan {
  const { dense, experts } = architectureTensors(config);
  const shards: PlannedShard[] = [];
  const tensors: PlannedTensor[] = [];
  const pack = (specs: TensorSpec[], kind: PlannedShard['kind']): number[] => {
    const used: number[] = [];
    let current: PlannedShard | null = null;
    for (const spec of specs) {
      const dtype = storedDtype(spec, quant, expertQuant);
      const { rows, cols } = matrixDims(spec.shape);
      const length = tensorByteLength(dtype, rows, cols);
      let offset = current ? alignUp(current.size) : 0;
      if (!current || (current.tensors.length > 0 && offset + length > shardBytes)) {
        current = { kind, size: 0, tensors: [] };
        shards.push(current);
        used.push(shards.length - 1);
        offset = 0;
      }
      const t: PlannedTensor = { spec, dtype, shard: shards.length - 1, offset, length };
      current.tensors.push(t);
      current.size = offset + length;
      tensors.push(t);
    }
    return used;
  };
  pack(dense, 'dense');
  const expertList: ModelPlan['experts'] = [];
  for (let i = 0; i < experts.length; ) {
    const at = experts[i]!.expert!;
    let end = i + 1;
    while (end < experts.length && experts[end]!.expert!.layer === at.layer && experts[end]!.expert!.expert === at.expert) end++;
    expertList.push({ layer: at.layer, expert: at.expert, shards: pack(experts.slice(i, end), 'expert') });
    i = end;
  }
  return { config, quant, expertQuant, shards, tensors, experts: expertList };
}

/** The manifest of a plan once its shards' hashes are known; `source` records what the checkpoint stored (convert). */
export function manifestOfPlan(plan: ModelPlan, name: string, hashes: string[], tokenizer: Record<string, string>, source?: Manifest['source']): Manifest {
  const shards: ShardEntry[] = plan.shards.map((s, i) => ({ hash: hashes[i]!, size: s.size, kind: s.kind }));
  const tensors: TensorEntry[] = plan.tensors.map((t) => ({
    name: t.spec.name,
    shape: [...t.spec.shape],
    dtype: t.dtype,
    shard: t.shard,
    offset: t.offset,
    length: t.length,
  }));
  const experts: ExpertEntry[] = plan.experts.map((e) => ({
    layer: e.layer,
    expert: e.expert,
    shards: e.shards,
    bytes: e.shards.reduce((sum, s) => sum + shards[s]!.size, 0),
  }));
  let parameters = 0;
  for (const t of plan.tensors) parameters += t.spec.shape.reduce((a, b) => a * b, 1);
  let denseBytes = 0;
  let expertBytes = 0;
  for (const s of shards) {
    if (s.kind === 'dense') denseBytes += s.size;
    else expertBytes += s.size;
  }
  return {
    format: 'rdrr',
    version: 1,
    name,
    config: plan.config,
    quant: plan.quant,
    ...(plan.expertQuant !== plan.quant ? { expertQuant: plan.expertQuant } : {}),
    ...(source ? { source } : {}),
    tensors,
    shards,
    experts,
    tokenizer,
    totals: { parameters, bytes: denseBytes + expertBytes, denseBytes, expertBytes },
  };
}
