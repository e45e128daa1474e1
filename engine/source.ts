import type { Manifest } from '../manifests/index.ts';

/**
 * Where the engine gets a model's bytes: the decoded manifest, and each shard or blob by hash.
 * Implementations verify what they return (a model directory, a tiered store, a swarm).
 */
export interface ModelSource {
  readonly manifest: Manifest;
  /** The model id: BLAKE3 of the encoded manifest. */
  readonly id: string;
  shard(hash: string): Promise<Uint8Array>;
}
