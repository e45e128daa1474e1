/**
 * Resolves a manifest's tensors into backend weights. Dense shards (attention, norms, embeddings,
 * shared experts) are uploaded whole at load and stay resident; routed experts come through an
 * ExpertProvider so a store can page them in and out.
 */
import type { Backend, DeviceBytes, Weight } from '../kernels/index.ts';
import { dequantize, matrixDims, quantize, tensorByName, type Manifest, type ModelConfig, type TensorEntry, type WeightDtype } from '../manifests/index.ts';
import { ModelLoadError } from './errors.ts';
import type { ModelSource } from './source.ts';

export interface MlpWeights {
  gate: Weight;
  up: Weight;
  down: Weight;
}

export interface StandardAttention {
  kind: 'standard';
  q: Weight;
  k: Weight;
  v: Weight;
  o: Weight;
  qNorm: Weight | null;
  kNorm: Weight | null;
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
  const uploaded = new Map<number, DeviceBytes>();
  const hostBytes = new Map<number, Uint8Array>();
  let bytes = 0;

  const shardBytes = async (index: number): Promise<Uint8Array> => {
    let b = hostBytes.get(index);
    if (!b) {
      b = await source.shard(m.shards[index]!.hash);
      hostBytes.set(index, b);
    }
    return b;
  };
  const device = async (t: TensorEntry): Promise<Weight> => {
    let d = uploaded.get(t.shard);
    if (!d) {
      d = backend.upload(await shardBytes(t.shard));
      uploaded.set(t.shard, d);
      bytes += d.byteLength;
    }
    return bindWeight(backend, d, t);
  };
  const w = (name: string) => device(table.get(name));
  const host = async (name: string): Promise<Float32Array> => {
    const t = table.get(name);
    const b = await shardBytes(t.shard);
    return dequantize(t, b.subarray(t.offset, t.offset + t.length));
  };
  /** A weight built at load from host data (MLA's split kv_b), stored in the source tensor's format where its width allows. */
  const derived = (data: Float32Array, rows: number, cols: number, like: WeightDtype): Weight => {
    const dtype: WeightDtype = like === 'q8_0' || like === 'q4_0' ? (cols % 32 === 0 ? like : 'f16') : like;
    const d = backend.upload(quantize(data, rows, cols, dtype));
    bytes += d.byteLength;
    return backend.weight(d, 0, dtype, rows, cols);
  };

  const mlp = async (prefix: string): Promise<MlpWeights> => ({
    gate: await w(`${prefix}.gate`),
    up: await w(`${prefix}.up`),
    down: await w(`${prefix}.down`),
  });

  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `layers.${l}`;
    const attention = cfg.mla ? await latentAttention(cfg, p, w, host, table, derived) : {
      kind: 'standard' as const,
      q: await w(`${p}.attn.q`),
      k: await w(`${p}.attn.k`),
      v: await w(`${p}.attn.v`),
      o: await w(`${p}.attn.o`),
      qNorm: cfg.qkNorm ? await w(`${p}.attn.q_norm`) : null,
      kNorm: cfg.qkNorm ? await w(`${p}.attn.k_norm`) : null,
    };
    const dense = cfg.moe.denseLayers.includes(l);
    layers.push({
      attnNorm: await w(`${p}.attn_norm`),
      ffnNorm: await w(`${p}.ffn_norm`),
      attention,
      mlp: dense ? await mlp(`${p}.mlp`) : null,
      moe: dense ? null : {
        router: await w(`${p}.moe.router`),
        routerHost: await host(`${p}.moe.router`),
        normHost: await host(`${p}.ffn_norm`),
        bias: table.has(`${p}.moe.router_bias`) ? await host(`${p}.moe.router_bias`) : null,
        shared: cfg.moe.numSharedExperts > 0 ? await mlp(`${p}.moe.shared`) : null,
      },
    });
  }
  const embed = await w('embed');
  return {
    embed,
    finalNorm: await w('final_norm'),
    lmHead: cfg.tieWordEmbeddings ? embed : await w('lm_head'),
    layers,
    bytes,
  };
}

async function latentAttention(
  cfg: ModelConfig,
  p: string,
  w: (name: string) => Promise<Weight>,
  host: (name: string) => Promise<Float32Array>,
  table: TensorTable,
  derived: (data: Float32Array, rows: number, cols: number, like: WeightDtype) => Weight,
): Promise<LatentAttention> {
  const mla = cfg.mla!;
  const heads = cfg.numHeads;
  const { qkNopeHeadDim: nope, vHeadDim: vDim, kvLoraRank: rank } = mla;
  const kvB = await host(`${p}.attn.kv_b`);
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
    qA: lora ? await w(`${p}.attn.q_a`) : null,
    qANorm: lora ? await w(`${p}.attn.q_a_norm`) : null,
    q: await w(lora ? `${p}.attn.q_b` : `${p}.attn.q`),
    kvA: await w(`${p}.attn.kv_a`),
    kvANorm: await w(`${p}.attn.kv_a_norm`),
    keyAbsorb: derived(keyAbsorb, heads * rank, nope, kvDtype),
    valueUp: derived(valueUp, heads * vDim, rank, kvDtype),
    o: await w(`${p}.attn.o`),
  };
}
