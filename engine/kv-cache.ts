import type { Act, Backend } from '../kernels/index.ts';
import type { ModelConfig } from '../manifests/index.ts';

/**
 * Per-layer attention cache. Standard attention keeps keys and values per KV head; latent attention
 * (MLA) keeps one row of [normalised latent | rotated RoPE key] per token, kvLoraRank + ropeDim
 * floats, shared by every head. `length` counts committed positions: rows past it may hold the
 * partial writes of a failed step and are never read.
 */
export class KvCache {
  readonly capacity: number;
  readonly keys: Act[];
  /** Standard attention only (latent attention reads values from `keys`). */
  readonly values: Act[];
  length = 0;
  private readonly backend: Backend;

  constructor(backend: Backend, cfg: ModelConfig, capacity: number) {
    this.backend = backend;
    this.capacity = capacity;
    this.keys = [];
    this.values = [];
    for (let l = 0; l < cfg.numLayers; l++) {
      if (cfg.mla) {
        this.keys.push(backend.act(capacity, cfg.mla.kvLoraRank + cfg.mla.qkRopeHeadDim));
      } else {
        this.keys.push(backend.act(capacity, cfg.numKvHeads * cfg.headDim));
        this.values.push(backend.act(capacity, cfg.numKvHeads * cfg.headDim));
      }
    }
  }

  /** Bytes per cached token across all layers. */
  static bytesPerToken(cfg: ModelConfig): number {
    const perLayer = cfg.mla ? cfg.mla.kvLoraRank + cfg.mla.qkRopeHeadDim : 2 * cfg.numKvHeads * cfg.headDim;
    return perLayer * 4 * cfg.numLayers;
  }

  free(): void {
    for (const a of [...this.keys, ...this.values]) this.backend.freeAct(a);
    this.keys.length = 0;
    this.values.length = 0;
  }
}
