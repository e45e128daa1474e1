import type { MoeConfig } from '../../../manifests/index.ts';

/** Seeded PRNG (the engine's mulberry32) so tests replay exactly. */
export { seededRandom as rng } from '../../../engine/sampling.ts';

/** Standard normal draws (Box–Muller) from a seeded uniform source. */
export function gaussian(u: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/** A softmax top-k MoE config (8 experts, top-2) with the given fields replaced. */
export function moe(over: Partial<MoeConfig> = {}): MoeConfig {
  return {
    router: 'softmax_topk',
    numExperts: 8,
    topK: 2,
    expertIntermediateSize: 8,
    normTopkProb: true,
    denseLayers: [],
    numSharedExperts: 0,
    sharedIntermediateSize: 0,
    nGroup: 1,
    topkGroup: 1,
    routedScalingFactor: 1,
    ...over,
  };
}
