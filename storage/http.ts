/** A plain HTTP(S) origin serving a model directory: `<base>/manifest.msgpack`, `<base>/shards/<hash>`. */
import { MODEL_FILES, isHash } from '../manifests/index.ts';
import { SourceError, StorageError } from './errors.ts';
import type { ShardSource } from './types.ts';

export interface HttpSourceOptions {
  /** The fetch to use (default globalThis.fetch). */
  fetch?: typeof fetch;
  /** Refuse responses larger than this (default 4 GiB): a hostile server cannot exhaust memory. */
  maxBytes?: number;
}

export class HttpSource implements ShardSource {
  readonly name: string;
  private readonly base: string;
  private readonly fetchFn: typeof fetch;
  private readonly maxBytes: number;

  constructor(baseUrl: string, opts: HttpSourceOptions = {}) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch (err) {
      throw new StorageError(`"${baseUrl}" is not a URL`, { cause: err });
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new StorageError(`HttpSource needs an http(s) URL, got "${baseUrl}"`);
    }
    this.base = url.href.replace(/\/+$/, '');
    this.name = this.base;
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.maxBytes = opts.maxBytes ?? 4 * 1024 ** 3;
  }

  get(hash: string, signal?: AbortSignal): Promise<Uint8Array> {
    if (!isHash(hash)) return Promise.reject(new StorageError(`"${hash}" is not a shard hash`));
    return this.fetchBytes(`${this.base}/${MODEL_FILES.shards}/${hash}`, signal);
  }

  /** The encoded manifest (decode and check it with manifests' decodeManifest). */
  getManifest(signal?: AbortSignal): Promise<Uint8Array> {
    return this.fetchBytes(`${this.base}/${MODEL_FILES.manifest}`, signal);
  }

  private async fetchBytes(url: string, signal?: AbortSignal): Promise<Uint8Array> {
    const res = await this.fetchFn(url, signal ? { signal } : {});
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new SourceError(`${url}: HTTP ${res.status} ${res.statusText}`.trimEnd());
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (declared > this.maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new SourceError(`${url}: ${declared} bytes is over the ${this.maxBytes}-byte limit`);
    }
    if (!res.body) return new Uint8Array(await res.arrayBuffer());
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > this.maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new SourceError(`${url}: response is over the ${this.maxBytes}-byte limit`);
      }
      chunks.push(value);
    }
    if (chunks.length === 1) return chunks[0]!;
    const out = new Uint8Array(total);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.byteLength;
    }
    return out;
  }
}
