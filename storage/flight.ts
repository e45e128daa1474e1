/**
 * One fetch shared by everyone who wants the same shard. Each party joins with its own abort
 * signal; the fetch itself is aborted only when every party has left before it finished.
 */
export class Flight<T> {
  readonly promise: Promise<T>;
  private readonly controller = new AbortController();
  private interest = 0;
  private settled = false;
  private readonly onAbandon: () => void;

  constructor(run: (signal: AbortSignal) => Promise<T>, onSettle: () => void, onAbandon: () => void) {
    this.onAbandon = onAbandon;
    this.promise = run(this.controller.signal).finally(() => {
      this.settled = true;
      onSettle();
    });
    // parties observe the outcome through join(); an abandoned flight's rejection goes nowhere
    this.promise.catch(() => undefined);
  }

  get abandoned(): boolean {
    return this.controller.signal.aborted;
  }

  join(signal?: AbortSignal): Promise<T> {
    this.interest++;
    return new Promise<T>((resolve, reject) => {
      let left = false;
      const leave = (): void => {
        if (left) return;
        left = true;
        signal?.removeEventListener('abort', onAbort);
        this.interest--;
        if (this.interest === 0 && !this.settled) {
          this.controller.abort(new DOMException('every request for this shard was cancelled', 'AbortError'));
          this.onAbandon();
        }
      };
      const onAbort = (): void => {
        leave();
        reject(abortError(signal));
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.promise.then(
        (v) => {
          if (left) return;
          leave();
          resolve(v);
        },
        (e: unknown) => {
          if (left) return;
          leave();
          reject(e);
        },
      );
    });
  }
}

export function abortError(signal?: AbortSignal): unknown {
  return signal?.reason ?? new DOMException('aborted', 'AbortError');
}

export function isAbort(err: unknown): boolean {
  return (err instanceof Error || err instanceof DOMException) && (err as Error).name === 'AbortError';
}
