/** Seeded PRNG (the engine's mulberry32) so tests replay exactly. */
export { seededRandom as rng } from '../../../engine/sampling.ts';

/** Standard normal draws (Box–Muller) from a seeded uniform source. */
export function gaussian(u: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}
