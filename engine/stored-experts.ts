/**
 * Routed experts paged through the tiered shard store: an expert's shards are pinned and brought
 * into the store's VRAM tier when the router picks it, and unpinned once its kernels are
 * submitted, so the store may evict it for the next layer's experts.
 */
import type { Backend, DeviceBytes } from '../kernels/index.ts';
import type { ShardStore } from '../storage/index.ts';
import { ModelLoadError } from './errors.ts';
import { expertWeights, type ExpertProvider } from './experts.ts';
import type { ModelSource } from './source.ts';
import { TensorTable } from './weights.ts';

/** The store's VRAM tier holds uploads made through the engine's backend. */
export function backendUploader(backend: Backend) {
  return { upload: (bytes: Uint8Array) => backend.upload(bytes), release: (d: DeviceBytes) => backend.releaseBytes(d) };
}

export function storedExperts(store: ShardStore<DeviceBytes>, vramBytes: number) {
  return async (backend: Backend, source: ModelSource): Promise<ExpertProvider> => {
    const m = source.manifest;
    const table = new TensorTable(m);
    const shardsOf = new Map<string, number[]>();
    let largest = 0;
    for (const e of m.experts) {
      shardsOf.set(`${e.layer}/${e.expert}`, e.shards);
      largest = Math.max(largest, e.shards.reduce((sum, s) => sum + m.shards[s]!.size, 0));
    }
    const capacity = largest === 0 ? Infinity : Math.floor(vramBytes / largest);
    const topK = m.config.moe.topK;
    if (capacity < topK) {
      throw new ModelLoadError(`a VRAM budget of ${(vramBytes / 2 ** 20).toFixed(1)} MiB holds ${capacity} experts of up to ` +
        `${(largest / 2 ** 20).toFixed(2)} MiB, but one token of "${m.name}" needs ${topK} at once: ` +
        `give at least ${Math.ceil((topK * largest) / 2 ** 20)} MiB`);
    }
    const hashesOf = (layer: number, expert: number): string[] => {
      const shards = shardsOf.get(`${layer}/${expert}`);
      if (!shards) throw new ModelLoadError(`model "${m.name}" lists no routed expert ${expert} in layer ${layer}`);
      return shards.map((s) => m.shards[s]!.hash);
    };
    return {
      async acquire(layer, experts) {
        const hashes = [...new Set(Array.from(experts, (e) => hashesOf(layer, e)).flat())];
        for (const h of hashes) store.pin(h);
        try {
          const devices = new Map<string, DeviceBytes>();
          await Promise.all(hashes.map(async (h) => devices.set(h, await store.getDevice(h))));
          return Array.from(experts, (e) => expertWeights(backend, table, layer, e, (s) => devices.get(m.shards[s]!.hash)!));
        } catch (err) {
          for (const h of hashes) store.release(h);
          throw err;
        }
      },
      release(layer, experts) {
        for (const h of new Set(Array.from(experts, (e) => hashesOf(layer, e)).flat())) store.release(h);
      },
      capacity: () => capacity,
      bytes: () => store.stats().vram?.residentBytes ?? 0,
      slabs: () => null,
    };
  };
}
