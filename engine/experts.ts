/**
 * Routed experts reach the forward pass through an ExpertProvider: the engine asks for the experts
 * a layer's router chose, runs them, and releases them. What "resident" means is the provider's
 * business — everything uploaded at load, or a tiered store paging shards in under a budget.
 */
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import type { Manifest } from '../manifests/index.ts';
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

/** Every expert on the device from load on: the baseline other providers must match exactly. */
export async function loadAllExperts(backend: Backend, source: ModelSource): Promise<ExpertProvider> {
  const m: Manifest = source.manifest;
  const table = new TensorTable(m);
  const devices = new Map<number, DeviceBytes>();
  let total = 0;
  for (const e of m.experts) {
    for (const s of e.shards) {
      if (devices.has(s)) continue;
      const d = backend.upload(await source.shard(m.shards[s]!.hash));
      devices.set(s, d);
      total += d.byteLength;
    }
  }
  const weights = new Map<string, MlpWeights>();
  for (const e of m.experts) {
    weights.set(`${e.layer}/${e.expert}`, expertWeights(backend, table, e.layer, e.expert, (s) => devices.get(s)!));
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
  };
}
