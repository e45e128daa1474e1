/** The routers of a model as the prefetcher sees them, read on the host from its shards. */
import { dequantize, tensorByName, type Manifest } from '../manifests/index.ts';
import type { LayerGate } from '../router/index.ts';

export async function layerGates(m: Manifest, shard: (hash: string) => Promise<Uint8Array>): Promise<(LayerGate | null)[]> {
  const tensors = tensorByName(m);
  const read = async (name: string): Promise<Float32Array | null> => {
    const t = tensors.get(name);
    if (!t) return null;
    const bytes = await shard(m.shards[t.shard]!.hash);
    return dequantize(t, bytes.subarray(t.offset, t.offset + t.length));
  };
  const gates: (LayerGate | null)[] = [];
  for (let l = 0; l < m.config.numLayers; l++) {
    const weight = await read(`layers.${l}.moe.router`);
    gates.push(weight ? { weight, norm: await read(`layers.${l}.ffn_norm`), bias: await read(`layers.${l}.moe.router_bias`) } : null);
  }
  return gates;
}
