/**
 * Routed experts reach the forward pass through an ExpertProvider: the engine asks for the experts
 * a layer's router chose, runs them, and releases them. What "resident" means is the provider's
 * business — everything uploaded at load, or a tiered store paging shards in under a budget.
 */
import type { Backend, DeviceBytes, ExpertSlabs, Weight } from '../kernels/index.ts';
import { matrixDims, type Manifest, type TensorEntry } from '../manifests/index.ts';
import { ModelLoadError } from './errors.ts';
import type { ModelSource } from './source.ts';
import { bindWeight, TensorTable, type MlpWeights } from './weights.ts';

export interface ExpertProvider {
  /** Resolves once every listed expert of the layer is on the device; they stay until release. */
  acquire(layer: number, experts: Int32Array): Promise<MlpWeights[]>;
  release(layer: number, experts: Int32Array): void;
  /** How many experts can be held at once (the engine runs a layer's experts in chunks of this). */
  capacity(): number;
  /** Device bytes held for experts now. */
  bytes(): number;
  /**
   * The layer's experts as slabs when all of them stay resident for good (no acquire needed), so a
   * kernel can pick them by id on the device; null when the provider pages them.
   */
  slabs(layer: number): ExpertSlabs | null;
}

/** Binds an expert's three matrices (and their biases, where the model has them) inside its uploaded shard(s). */
export function expertWeights(backend: Backend, table: TensorTable, layer: number, expert: number, deviceOf: (shard: number) => DeviceBytes): MlpWeights {
  const bind = (part: string) => {
    const t = table.get(`layers.${layer}.moe.experts.${expert}.${part}`);
    return bindWeight(backend, deviceOf(t.shard), t);
  };
  const w: MlpWeights = { gate: bind('gate'), up: bind('up'), down: bind('down') };
  if (table.config.moe.expertBias) w.bias = { gate: bind('gate_bias'), up: bind('up_bias'), down: bind('down_bias') };
  return w;
}

const KINDS = ['gate', 'up', 'down'] as const;
/** gpt-oss experts' bias vectors, uploaded in slabs of their own next to the matrices. */
const BIAS_KINDS = ['gate_bias', 'up_bias', 'down_bias'] as const;
/** Slot alignment of a slab: what Backend.routedExperts asks for. */
const SLOT_ALIGN = 256;

/**
 * Every expert on the device from load on: the baseline other providers must match exactly. Each
 * layer's experts are uploaded as three slabs (gate, up, down), expert e in slot e, so kernels can
 * also select them by id on the device (`slabs`); experts with biases get three more slabs for them.
 */
export async function loadAllExperts(backend: Backend, source: ModelSource): Promise<ExpertProvider> {
  const m: Manifest = source.manifest;
  const table = new TensorTable(m);
  const byLayer = new Map<number, number[]>();
  for (const e of m.experts) byLayer.set(e.layer, [...(byLayer.get(e.layer) ?? []), e.expert]);
  const kinds = m.config.moe.expertBias ? [...KINDS, ...BIAS_KINDS] : KINDS;
  const weights = new Map<string, MlpWeights>();
  const slabs = new Map<number, ExpertSlabs>();
  let total = 0;
  for (const [layer, experts] of byLayer) {
    const count = Math.max(...experts) + 1;
    if (experts.length !== count) throw new ModelLoadError(`model "${m.name}" lists ${experts.length} routed experts in layer ${layer}; expected ids 0..${count - 1}, each once`);
    const tensors = kinds.map((kind) => experts.map((e) => table.get(`layers.${layer}.moe.experts.${e}.${kind}`)));
    const hosts = await shardBytes(source, m, tensors.flat());
    const slots = tensors.map((ts) => {
      const stride = Math.ceil(Math.max(...ts.map((t) => t.length)) / SLOT_ALIGN) * SLOT_ALIGN;
      const bytes = new Uint8Array(stride * count);
      ts.forEach((t, j) => bytes.set(hosts.get(t.shard)!.subarray(t.offset, t.offset + t.length), experts[j]! * stride));
      const d = backend.upload(bytes);
      total += d.byteLength;
      const byExpert = new Array<Weight>(count);
      ts.forEach((t, j) => {
        const { rows, cols } = matrixDims(t.shape);
        byExpert[experts[j]!] = backend.weight(d, experts[j]! * stride, t.dtype, rows, cols);
      });
      return byExpert;
    });
    const [gate, up, down, gateBias, upBias, downBias] = slots;
    for (let e = 0; e < count; e++) {
      const w: MlpWeights = { gate: gate![e]!, up: up![e]!, down: down![e]! };
      if (gateBias && upBias && downBias) w.bias = { gate: gateBias[e]!, up: upBias[e]!, down: downBias[e]! };
      weights.set(`${layer}/${e}`, w);
    }
    if (uniform(tensors.slice(0, KINDS.length))) slabs.set(layer, { gate: gate!, up: up!, down: down! });
  }
  return {
    acquire: async (layer, experts) => Array.from(experts, (e) => {
      const w = weights.get(`${layer}/${e}`);
      if (!w) throw new ModelLoadError(`model "${m.name}" lists no routed expert ${e} in layer ${layer}`);
      return w;
    }),
    release: () => {},
    capacity: () => Infinity,
    bytes: () => total,
    slabs: (layer) => slabs.get(layer) ?? null,
  };
}

/** The bytes of every shard holding one of `tensors`, fetched once each. */
async function shardBytes(source: ModelSource, m: Manifest, tensors: TensorEntry[]): Promise<Map<number, Uint8Array>> {
  const out = new Map<number, Uint8Array>();
  for (const t of tensors) {
    if (!out.has(t.shard)) out.set(t.shard, await source.shard(m.shards[t.shard]!.hash));
  }
  return out;
}

/** Whether each kind's experts share one format and shape (slots a kernel can pick by id). */
function uniform(tensors: TensorEntry[][]): boolean {
  return tensors.every((ts) => ts.every((t) => t.dtype === ts[0]!.dtype && t.shape.join() === ts[0]!.shape.join()));
}
