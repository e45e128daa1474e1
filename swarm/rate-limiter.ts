/** A token bucket shared by all uploads of a peer, so `uploadBytesPerSec` caps the peer as a whole. */
export class RateLimiter {
  private tokens: number;
  private last = performance.now();
  private readonly rate: number;
  private readonly burst: number;
  private queue: Promise<void> = Promise.resolve();

  constructor(bytesPerSec: number) {
    this.rate = bytesPerSec;
    // A burst of 50 ms keeps the cap accurate over short windows while allowing 64 KiB writes at low rates.
    this.burst = Math.max(64 * 1024, bytesPerSec / 20);
    this.tokens = this.burst;
  }

  /** Resolves when `n` bytes may be sent; callers are served in order. */
  take(n: number, signal?: AbortSignal): Promise<void> {
    const next = this.queue.then(() => this.wait(n, signal));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async wait(n: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      signal?.throwIfAborted();
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.rate);
      this.last = now;
      if (this.tokens >= Math.min(n, this.burst)) {
        this.tokens -= n;
        return;
      }
      const ms = ((Math.min(n, this.burst) - this.tokens) / this.rate) * 1000;
      await new Promise((r) => setTimeout(r, Math.max(1, ms)));
    }
  }
}
