import { blake3Hex } from '../../../manifests/index.ts';
import type { DeviceUploader, ShardSource } from '../../../storage/index.ts';
import { rng } from '../router/helpers.ts';

export interface Shard {
  hash: string;
  bytes: Uint8Array;
}

/** n shards of `size` seeded random bytes. */
export async function makeShards(n: number, size: number, seed = 1): Promise<Shard[]> {
  const u = rng(seed);
  const out: Shard[] = [];
  for (let i = 0; i < n; i++) {
    const bytes = Uint8Array.from({ length: size }, () => Math.floor(u() * 256));
    out.push({ hash: await blake3Hex(bytes), bytes });
  }
  return out;
}

export function corrupt(bytes: Uint8Array): Uint8Array {
  const c = bytes.slice();
  c[c.length >> 1]! ^= 0xff;
  return c;
}

/**
 * An in-memory source that records calls. `hold()` makes the next gets wait until `open()`;
 * `bad` hashes are served corrupted (a set entry is consumed once when `badOnce`).
 */
export class MemorySource implements ShardSource {
  readonly name: string;
  readonly calls: string[] = [];
  readonly aborted: string[] = [];
  readonly bad = new Set<string>();
  badOnce = false;
  private readonly data = new Map<string, Uint8Array>();
  private gate: Promise<void> | null = null;
  private openGate: (() => void) | null = null;

  constructor(name: string, shards: Shard[]) {
    this.name = name;
    for (const s of shards) this.data.set(s.hash, s.bytes);
  }

  hold(): void {
    this.gate = new Promise((r) => (this.openGate = r));
  }

  open(): void {
    this.openGate?.();
    this.gate = null;
  }

  async get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    this.calls.push(hash);
    if (this.gate) {
      const gate = this.gate;
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.aborted.push(hash);
          reject(signal!.reason);
        };
        if (signal?.aborted) return onAbort();
        signal?.addEventListener('abort', onAbort, { once: true });
        void gate.then(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
    const b = this.data.get(hash);
    if (!b) throw new Error(`${this.name} has no shard ${hash}`);
    if (this.bad.has(hash)) {
      if (this.badOnce) this.bad.delete(hash);
      return corrupt(b);
    }
    return b.slice();
  }
}

export interface FakeHandle {
  id: number;
  bytes: Uint8Array;
}

/** Records uploads and releases so tests can check every handle is released exactly once. */
export class FakeUploader implements DeviceUploader<FakeHandle> {
  readonly live = new Map<number, FakeHandle>();
  uploads = 0;
  releases = 0;
  private next = 1;
  upload(bytes: Uint8Array): FakeHandle {
    this.uploads++;
    const h = { id: this.next++, bytes: bytes.slice() };
    this.live.set(h.id, h);
    return h;
  }
  release(h: FakeHandle): void {
    if (!this.live.delete(h.id)) throw new Error(`handle ${h.id} released twice or never uploaded`);
    this.releases++;
  }
}

export const tick = () => new Promise<void>((r) => setTimeout(r, 0));

/** Let queued microtasks and timers run until cond holds (bounded). */
export async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await tick();
  }
  throw new Error(`timed out waiting for ${what}`);
}
