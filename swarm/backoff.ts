/**
 * Retry delays with exponential backoff, jitter and a cap: `firstMs`, doubling up to `maxMs`, each
 * spread by ±`jitter` so that many tabs that lost one server do not all knock at the same moment.
 */
export interface BackoffOptions {
  firstMs: number;
  maxMs: number;
  /** Fraction each delay is spread by, either way (0.2: ±20 %, never above maxMs). Default 0.2. */
  jitter?: number;
  /** Uniform in [0, 1) (tests pass a fixed one). Default Math.random. */
  random?: () => number;
}

export class Backoff {
  private readonly opts: Required<BackoffOptions>;
  private tries = 0;

  /**
   * @example
   * const b = new Backoff({ firstMs: 1000, maxMs: 30_000 });
   * setTimeout(retry, b.next()); // ~1 s, then ~2 s, ~4 s … ~30 s; b.reset() once it works
   */
  constructor(opts: BackoffOptions) {
    if (!(opts.firstMs > 0) || !(opts.maxMs >= opts.firstMs)) {
      throw new RangeError(`backoff needs 0 < firstMs <= maxMs, got firstMs ${opts.firstMs}, maxMs ${opts.maxMs}`);
    }
    const jitter = opts.jitter ?? 0.2;
    if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`backoff jitter must be in [0, 1), got ${jitter}`);
    this.opts = { firstMs: opts.firstMs, maxMs: opts.maxMs, jitter, random: opts.random ?? Math.random };
  }

  /** Failures since the last reset. */
  get failures(): number {
    return this.tries;
  }

  /** The delay before the next try, counting one more failure. */
  next(): number {
    const { firstMs, maxMs, jitter, random } = this.opts;
    const base = Math.min(maxMs, firstMs * 2 ** Math.min(this.tries, 52));
    this.tries++;
    return Math.min(maxMs, base * (1 - jitter + 2 * jitter * random()));
  }

  /** The next failure starts again from `firstMs`. */
  reset(): void {
    this.tries = 0;
  }
}
