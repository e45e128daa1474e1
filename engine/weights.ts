/**
 * Resolves a manifest's tensors into backend weights. Dense shards (attention, norms, embeddings,
 * shared experts) are uploaded whole at load and stay resident; routed experts come through an
 * ExpertProvider so a store can page them in and out.
 */
import type { Backend, DeviceBytes, Weight } from '../kernels/index.ts';
import { dequantize, fitsRow, matrixDims, quantize, tensorByName, type Manifest, type ModelConfig, type TensorEntry, type WeightDtype } from '../manifests/index.ts';
import { ModelLoadError } from './errors.ts';
import type { ModelSource } from './source.ts';

export interface MlpWeights {
  gate: Weight;
  up: Weight;
  down: Weight;
  /** gpt-oss experts: biases added after each projection. */
  bias?: { gate: Weight; up: Weight; down: Weight };
}

export interface StandardAttention {
  kind: 'standard';
  q: Weight;
  k: Weight;
  v: Weight;
  o: Weight;
  qNorm: Weight | null;
  kNorm: Weight | null;
  /** gpt-oss: biases added after each projection. */
  bias: { q: Weight; k: Weight; v: Weight; o: Weight } | null;
  /** gpt-oss: each head's sink logit. */
  sinks: Weight | null;
}

/**
 * Multi-head latent attention in its absorbed form: kv_b is split at load into, per head, the
 * transpose of its key part (so q_nope maps into the latent space) and its value part (applied
 * after attention), so the cache holds only the latent and the RoPE key.
 */
export interface LatentAttention {
  kind: 'latent';
  qA: Weight | null;
  qANorm: Weight | null;
  /** q_b, or q when q_lora_rank is null: [heads * (nope + rope), in]. */
  q: Weight;
  kvA: Weight;
  kvANorm: Weight;
  /** [heads * kvLoraRank, nope]: per head, W_kᵀ. */
  keyAbsorb: Weight;
  /** [heads * vHeadDim, kvLoraRank]: per head, W_v. */
  valueUp: Weight;
  o: Weight;
}

export interface MoeWeights {
  router: Weight;
  /** The gate and the norm before it on the CPU too, for the prefetcher's early routing. */
  routerHost: Float32Array;
  normHost: Float32Array;
  bias: Float32Array | null;
  /** The same correction bias on the device, for routing there (Backend.route). */
  biasDevice: Weight | null;
  shared: MlpWeights | null;
}

export interface LayerWeights {
  attnNorm: Weight;
  ffnNorm: Weight;
  attention: StandardAttention | LatentAttention;
  mlp: MlpWeights | null;
  moe: MoeWeights | null;
}

export interface DenseWeights {
  embed: Weight;
  finalNorm: Weight;
  lmHead: Weight;
  layers: LayerWeights[];
  /** Device memory the dense part holds. */
  bytes: number;
}

/** Tensor lookup with errors that name the model and the missing tensor. */
export class TensorTable {
  private readonly byName: Map<string, TensorEntry>;
  private readonly manifest: Manifest;
  constructor(manifest: Manifest) {
    this.manifest = manifest;
    this.byName = tensorByName(manifest);
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  get config(): ModelConfig {
    return this.manifest.config;
  }
  get(name: string): TensorEntry {
    const t = this.byName.get(name);
    if (!t) throw new ModelLoadError(`model "${this.manifest.name}" has no tensor "${name}", which ${this.manifest.config.architecture} needs`);
    return t;
  }
}

export function bindWeight(backend: Backend, bytes: DeviceBytes, t: TensorEntry): Weight {
  const { rows, cols } = matrixDims(t.shape);
  return backend.weight(bytes, t.offset, t.dtype, rows, cols);
}

export async function loadDenseWeights(backend: Backend, source: ModelSource): Promise<DenseWeights> {
  const m = source.manifest;
  const cfg = m.config;
  const table = new TensorTable(m);

  // The few tensors the CPU needs too: routers and the norms before them (for the prefetcher),
  // DeepSeek's correction bias, and MLA's kv_b (split at load).
  const hostNames = new Set<string>();
  for (let l = 0; l < cfg.numLayers; l++) {
    if (!cfg.moe.denseLayers.includes(l)) {
      hostNames.add(`layers.${l}.moe.router`).add(`layers.${l}.ffn_norm`);
      if (table.has(`layers.${l}.moe.router_bias`)) hostNames.add(`layers.${l}.moe.router_bias`);
    }
    if (cfg.mla) hostNames.add(`layers.${l}.attn.kv_b`);
  }
  // Each dense shard is fetched once, uploaded whole, and dropped from host memory.
  const uploaded = new Map<number, DeviceBytes>();
  const hostTensors = new Map<string, Float32Array>();
  const denseShards = new Set(m.tensors.filter((t) => !t.name.includes('.moe.experts.')).map((t) => t.shard));
  let bytes = 0;
  for (const index of [...denseShards].sort((a, b) => a - b)) {
    const shard = await source.shard(m.shards[index]!.hash);
    const d = backend.upload(shard);
    uploaded.set(index, d);
    bytes += d.byteLength;
    for (const name of hostNames) {
      const t = table.get(name);
      if (t.shard === index) hostTensors.set(name, dequantize(t, shard.subarray(t.offset, t.offset + t.length)));
    }
  }
  const w = (name: string): Weight => {
    const t = table.get(name);
    return bindWeight(backend, uploaded.get(t.shard)!, t);
  };
  const host = (name: string): Float32Array => hostTensors.get(name)!;
  /** A weight built at load from host data (MLA's split kv_b), stored in the source tensor's format where its width allows. */
  const derived = (data: Float32Array, rows: number, cols: number, like: WeightDtype): Weight => {
    const dtype: WeightDtype = fitsRow(like, cols) ? like : 'f16';
    const d = backend.upload(quantize(data, rows, cols, dtype));
    bytes += d.byteLength;
    return backend.weight(d, 0, dtype, rows, cols);
  };

  const mlp = (prefix: string): MlpWeights => ({ gate: w(`${prefix}.gate`), up: w(`${prefix}.up`), down: w(`${prefix}.down`) });

  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `layers.${l}`;
    const attention = cfg.mla ? latentAttention(cfg, p, w, host, table, derived) : {
      kind: 'standard' as const,
      q: w(`${p}.attn.q`),
      k: w(`${p}.attn.k`),
      v: w(`${p}.attn.v`),
      o: w(`${p}.attn.o`),
      qNorm: cfg.qkNorm ? w(`${p}.attn.q_norm`) : null,
      kNorm: cfg.qkNorm ? w(`${p}.attn.k_norm`) : null,
      bias: cfg.attentionBias ? { q: w(`${p}.attn.q_bias`), k: w(`${p}.attn.k_bias`), v: w(`${p}.attn.v_bias`), o: w(`${p}.attn.o_bias`) } : null,
      sinks: cfg.attentionSinks ? w(`${p}.attn.sinks`) : null,
    };
    const dense = cfg.moe.denseLayers.includes(l);
    layers.push({
      attnNorm: w(`${p}.attn_norm`),
      ffnNorm: w(`${p}.ffn_norm`),
      attention,
      mlp: dense ? mlp(`${p}.mlp`) : null,
      moe: dense ? null : {
        router: w(`${p}.moe.router`),
        routerHost: host(`${p}.moe.router`),
        normHost: host(`${p}.ffn_norm`),
        bias: table.has(`${p}.moe.router_bias`) ? host(`${p}.moe.router_bias`) : null,
        biasDevice: table.has(`${p}.moe.router_bias`) ? w(`${p}.moe.router_bias`) : null,
        shared: cfg.moe.numSharedExperts > 0 ? mlp(`${p}.moe.shared`) : null,
      },
    });
  }
  const embed = w('embed');
  return {
    embed,
    finalNorm: w('final_norm'),
    lmHead: cfg.tieWordEmbeddings ? embed : w('lm_head'),
    layers,
    bytes,
  };
}

function latentAttention(
  cfg: ModelConfig,
  p: string,
  w: (name: string) => Weight,
  host: (name: string) => Float32Array,
  table: TensorTable,
  derived: (data: Float32Array, rows: number, cols: number, like: WeightDtype) => Weight,
): LatentAttention {
  const mla = cfg.mla!;
  const heads = cfg.numHeads;
  const { qkNopeHeadDim: nope, vHeadDim: vDim, kvLoraRank: rank } = mla;
  const kvB = host(`${p}.attn.kv_b`);
  const per = nope + vDim;
  if (kvB.length !== heads * per * rank) {
    throw new ModelLoadError(`${p}.attn.kv_b has ${kvB.length} values, expected heads ${heads} × (${nope} + ${vDim}) × ${rank}`);
  }
  const keyAbsorb = new Float32Array(heads * rank * nope);
  const valueUp = new Float32Array(heads * vDim * rank);
  for (let h = 0; h < heads; h++) {
    for (let k = 0; k < nope; k++) {
      const src = (h * per + k) * rank;
      for (let n = 0; n < rank; n++) keyAbsorb[(h * rank + n) * nope + k] = kvB[src + n]!;
    }
    valueUp.set(kvB.subarray((h * per + nope) * rank, (h * per + per) * rank), h * vDim * rank);
  }
  const kvDtype = table.get(`${p}.attn.kv_b`).dtype;
  const lora = mla.qLoraRank !== null;
  return {
    kind: 'latent',
    qA: lora ? w(`${p}.attn.q_a`) : null,
    qANorm: lora ? w(`${p}.attn.q_a_norm`) : null,
    q: w(lora ? `${p}.attn.q_b` : `${p}.attn.q`),
    kvA: w(`${p}.attn.kv_a`),
    kvANorm: w(`${p}.attn.kv_a_norm`),
    keyAbsorb: derived(keyAbsorb, heads * rank, nope, kvDtype),
    valueUp: derived(valueUp, heads * vDim, rank, kvDtype),
    o: w(`${p}.attn.o`),
  };
}
