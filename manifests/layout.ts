import { fitsRow } from './formats/index.ts';
import { TENSOR_ALIGN, type ModelConfig, type WeightDtype } from './types.ts';

/** What a tensor is for decides how it is stored: matrices take the requested quantization, the rest stay f32. */
export type TensorRole = 'matrix' | 'norm' | 'router' | 'bias';

export interface TensorSpec {
  /** Canonical name (types.ts lists them). */
  name: string;
  shape: number[];
  role: TensorRole;
  /** Set for routed-expert tensors: they go into that expert's own shard(s). */
  expert?: { layer: number; expert: number };
}

export function isMoeLayer(config: ModelConfig, layer: number): boolean {
  return !config.moe.denseLayers.includes(layer);
}

/** Every tensor the architecture's forward pass needs, dense ones in model order then experts. */
export function architectureTensors(config: ModelConfig): { dense: TensorSpec[]; experts: TensorSpec[] } {
  const H = config.hiddenSize;
  const dense: TensorSpec[] = [];
  const experts: TensorSpec[] = [];
  const mat = (name: string, rows: number, cols: number): void => void dense.push({ name, shape: [rows, cols], role: 'matrix' });
  const vec = (name: string, n: number, role: TensorRole = 'norm'): void => void dense.push({ name, shape: [n], role });
  const mlp = (prefix: string, inter: number): void => {
    mat(`${prefix}.gate`, inter, H);
    mat(`${prefix}.up`, inter, H);
    mat(`${prefix}.down`, H, inter);
  };
  mat('embed', config.vocabSize, H);
  for (let l = 0; l < config.numLayers; l++) {
    const p = `layers.${l}`;
    vec(`${p}.attn_norm`, H);
    const mla = config.mla;
    if (mla) {
      const qHead = mla.qkNopeHeadDim + mla.qkRopeHeadDim;
      if (mla.qLoraRank === null) mat(`${p}.attn.q`, config.numHeads * qHead, H);
      else {
        mat(`${p}.attn.q_a`, mla.qLoraRank, H);
        vec(`${p}.attn.q_a_norm`, mla.qLoraRank);
        mat(`${p}.attn.q_b`, config.numHeads * qHead, mla.qLoraRank);
      }
      mat(`${p}.attn.kv_a`, mla.kvLoraRank + mla.qkRopeHeadDim, H);
      vec(`${p}.attn.kv_a_norm`, mla.kvLoraRank);
      mat(`${p}.attn.kv_b`, config.numHeads * (mla.qkNopeHeadDim + mla.vHeadDim), mla.kvLoraRank);
      mat(`${p}.attn.o`, H, config.numHeads * mla.vHeadDim);
    } else {
      mat(`${p}.attn.q`, config.numHeads * config.headDim, H);
      mat(`${p}.attn.k`, config.numKvHeads * config.headDim, H);
      mat(`${p}.attn.v`, config.numKvHeads * config.headDim, H);
      mat(`${p}.attn.o`, H, config.numHeads * config.headDim);
      if (config.qkNorm) {
        vec(`${p}.attn.q_norm`, config.headDim);
        vec(`${p}.attn.k_norm`, config.headDim);
      }
      if (config.attentionBias) {
        vec(`${p}.attn.q_bias`, config.numHeads * config.headDim, 'bias');
        vec(`${p}.attn.k_bias`, config.numKvHeads * config.headDim, 'bias');
        vec(`${p}.attn.v_bias`, config.numKvHeads * config.headDim, 'bias');
        vec(`${p}.attn.o_bias`, H, 'bias');
      }
      if (config.attentionSinks) vec(`${p}.attn.sinks`, config.numHeads, 'bias');
    }
    vec(`${p}.ffn_norm`, H);
    if (!isMoeLayer(config, l)) {
      mlp(`${p}.mlp`, config.intermediateSize);
      continue;
    }
    const moe = config.moe;
    dense.push({ name: `${p}.moe.router`, shape: [moe.numExperts, H], role: 'router' });
    if (moe.router !== 'softmax_topk') vec(`${p}.moe.router_bias`, moe.numExperts, 'router');
    if (moe.numSharedExperts > 0) mlp(`${p}.moe.shared`, moe.sharedIntermediateSize);
    for (let e = 0; e < moe.numExperts; e++) experts.push(...expertTensors(config, l, e));
  }
  vec('final_norm', H);
  if (!config.tieWordEmbeddings) mat('lm_head', config.vocabSize, H);
  return { dense, experts };
}

/** The tensors of one routed expert, in storage order. */
export function expertTensors(config: ModelConfig, layer: number, expert: number): TensorSpec[] {
  const H = config.hiddenSize;
  const I = config.moe.expertIntermediateSize;
  const p = `layers.${layer}.moe.experts.${expert}`;
  const at = { layer, expert };
  const specs: TensorSpec[] = [
    { name: `${p}.gate`, shape: [I, H], role: 'matrix', expert: at },
    { name: `${p}.up`, shape: [I, H], role: 'matrix', expert: at },
    { name: `${p}.down`, shape: [H, I], role: 'matrix', expert: at },
  ];
  if (config.moe.expertBias) {
    specs.push(
      { name: `${p}.gate_bias`, shape: [I], role: 'bias', expert: at },
      { name: `${p}.up_bias`, shape: [I], role: 'bias', expert: at },
      { name: `${p}.down_bias`, shape: [H], role: 'bias', expert: at },
    );
  }
  return specs;
}

/**
 * The dtype a tensor gets: matrices the requested one (`expertQuant` for routed experts; f16 when a
 * row is not whole blocks of it), others f32.
 */
export function storedDtype(spec: Pick<TensorSpec, 'shape' | 'role' | 'expert'>, quant: WeightDtype, expertQuant: WeightDtype = quant): WeightDtype {
  if (spec.role !== 'matrix') return 'f32';
  const q = spec.expert ? expertQuant : quant;
  return fitsRow(q, spec.shape[spec.shape.length - 1]!) ? q : 'f16';
}

export function alignUp(n: number, a: number = TENSOR_ALIGN): number {
  return Math.ceil(n / a) * a;
}
