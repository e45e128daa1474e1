/**
 * One request at a time per model (a chat session has one KV cache), first come first served.
 * Waiters that give up (a client that disconnected while queued) leave the line.
 */
export class RequestQueue {
  private active = false;
  private readonly waiting: Array<{ go: () => void; cancel: (e: unknown) => void }> = [];

  /** Requests running plus waiting. */
  get depth(): number {
    return (this.active ? 1 : 0) + this.waiting.length;
  }

  get waitingCount(): number {
    return this.waiting.length;
  }

  /** Resolves with a release function once it is this caller's turn; rejects if `signal` aborts first. */
  acquire(signal?: AbortSignal): Promise<() => void> {
    const release = () => {
      const next = this.waiting.shift();
      if (next) next.go();
      else this.active = false;
    };
    if (!this.active) {
      this.active = true;
      return Promise.resolve(once(release));
    }
    return new Promise((resolve, reject) => {
      const entry = {
        go: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(once(release));
        },
        cancel: reject,
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(entry);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal!.reason);
      };
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }
}

function once(f: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    f();
  };
}
