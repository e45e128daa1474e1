/** A token bucket shared by all uploads of a peer, so `uploadBytesPerSec` caps the peer as a whole. */
export class RateLimiter {
  /** Largest write the cap allows at once (50 ms of the rate, 1–64 KiB): senders split data into these. */
  readonly chunkBytes: number;
  private tokens: number;
  private last = performance.now();
  private readonly rate: number;
  /** Tokens saved up at most: 250 ms of the rate, so timers that fire late on a busy event loop lose no capacity. */
  private readonly capacity: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(bytesPerSec: number) {
    this.rate = bytesPerSec;
    this.chunkBytes = Math.round(Math.min(64 * 1024, Math.max(1024, bytesPerSec / 20)));
    this.capacity = Math.max(this.chunkBytes, bytesPerSec / 4);
    this.tokens = this.chunkBytes;
  }

  /** Resolves when `n` (≤ chunkBytes) bytes may be sent; callers are served in order. */
  take(n: number, signal?: AbortSignal): Promise<void> {
    const next = this.queue.then(() => this.wait(Math.min(n, this.chunkBytes), signal));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async wait(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = performance.now();
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= n) {
        this.tokens -= n;
        return;
      }
      await new Promise((r) => setTimeout(r, Math.max(1, ((n - this.tokens) / this.rate) * 1000)));
    }
  }
}
