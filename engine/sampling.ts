/**
 * Next-token choice from a row of logits: greedy (argmax, the first index among equal maxima, as
 * torch.argmax does) or temperature + nucleus (top-p) sampling from a seeded generator, so a seed
 * reproduces a run exactly.
 */
export interface SamplingOptions {
  /** 0 or absent: greedy. */
  temperature?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches topP (default 1). */
  topP?: number;
  seed?: number;
}

export function argmax(logits: ArrayLike<number>, start = 0, len = logits.length - start): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < len; i++) {
    const v = logits[start + i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

/** mulberry32: small, fast and good enough to draw tokens; the same seed gives the same stream. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Sampler = (logits: Float32Array, start: number, len: number) => number;

/** Whether these options pick the argmax (temperature 0 or absent). */
export function isGreedy(opts: SamplingOptions): boolean {
  return !((opts.temperature ?? 0) > 0);
}

export function createSampler(opts: SamplingOptions): Sampler {
  const temperature = opts.temperature ?? 0;
  if (isGreedy(opts)) return argmax;
  const topP = opts.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${topP}`);
  const random = seededRandom(opts.seed ?? 0);
  return (logits, start, len) => {
    let max = -Infinity;
    for (let i = 0; i < len; i++) max = Math.max(max, logits[start + i]!);
    const probs = new Float64Array(len);
    let sum = 0;
    for (let i = 0; i < len; i++) sum += probs[i] = Math.exp((logits[start + i]! - max) / temperature);
    const order = Array.from({ length: len }, (_, i) => i).sort((a, b) => probs[b]! - probs[a]! || a - b);
    let kept = 0;
    let mass = 0;
    while (kept < len && mass < topP * sum) mass += probs[order[kept++]!]!;
    let r = random() * mass;
    for (let i = 0; i < kept; i++) {
      r -= probs[order[i]!]!;
      if (r < 0) return order[i]!;
    }
    return order[kept - 1]!;
  };
}
