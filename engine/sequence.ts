/**
 * A KV cache that outlives one generation: the ids it holds are remembered, so the next prompt
 * that starts with them prefills only the rest. Rows past the common prefix are dropped by moving
 * the cache's length back; they are overwritten before anything reads them.
 */
import type { Backend } from '../kernels/index.ts';
import type { ModelConfig } from '../manifests/index.ts';
import { EngineError } from './errors.ts';
import { KvCache } from './kv-cache.ts';

export class Sequence {
  readonly cache: KvCache;
  /** The ids whose keys and values the cache holds, in order. */
  readonly ids: number[] = [];
  /** A generation is using the cache; a second one at the same time would corrupt it. */
  busy = false;

  constructor(backend: Backend, cfg: ModelConfig, capacity: number) {
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError(`a sequence needs a positive integer capacity, got ${capacity}`);
    this.cache = new KvCache(backend, cfg, capacity);
  }

  get capacity(): number {
    return this.cache.capacity;
  }

  /**
   * Keeps the longest cached prefix of `prompt` (leaving at least its last id to run, since the
   * next token needs that position's logits) and returns its length.
   */
  reuse(prompt: readonly number[]): number {
    const limit = Math.min(this.ids.length, prompt.length - 1);
    let n = 0;
    while (n < limit && this.ids[n] === prompt[n]) n++;
    this.truncate(n);
    return this.ids.length;
  }

  /**
   * Forgets every position from `n` on. A cache with sliding-window (ring-buffer) layers cannot go
   * back to an earlier position, so it starts over instead.
   */
  truncate(n: number): void {
    if (n < this.ids.length && !this.cache.rewindable) n = 0;
    this.ids.length = Math.min(this.ids.length, n);
    this.cache.length = this.ids.length;
  }

  /** Called after `ids` were committed to the cache by a forward pass. */
  committed(ids: readonly number[]): void {
    this.ids.push(...ids);
    if (this.ids.length !== this.cache.length) throw new EngineError(`sequence out of step: ${this.ids.length} ids for ${this.cache.length} cached positions`);
  }

  free(): void {
    this.cache.free();
    this.ids.length = 0;
  }
}
