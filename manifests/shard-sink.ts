import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { ConvertError } from './errors.ts';
import { blake3Stream } from './hash.ts';

const FLUSH_BYTES = 8 * 1024 * 1024;
export const TEMP_PREFIX = '.tmp-';

interface Hasher {
  update(chunk: Uint8Array): void | Promise<void>;
  digest(): Promise<string>;
  abort?(): void;
}

async function wasmHasher(): Promise<Hasher> {
  const h = await blake3Stream();
  return { update: (c) => h.update(c), digest: async () => h.digestHex() };
}

let b3sumPresent: boolean | null = null;

/** Native `b3sum` on PATH: about 7× hash-wasm per core (bench/results/convert.json). */
function hasB3sum(): boolean {
  b3sumPresent ??= spawnSync('b3sum', ['--version'], { stdio: 'ignore' }).status === 0;
  return b3sumPresent;
}

/** BLAKE3 by piping bytes through a `b3sum` child; the bytes handed to update must not be reused by the caller. */
function b3sumHasher(): Hasher {
  const child = spawn('b3sum', ['--no-names', '--num-threads', '1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  return {
    update: (c) =>
      child.stdin.write(c) ? undefined : new Promise<void>((resolve) => child.stdin.once('drain', () => resolve())),
    digest: async () => {
      child.stdin.end();
      const code = await exited;
      const hash = out.trim();
      if (code !== 0 || !/^[0-9a-f]{64}$/.test(hash)) throw new ConvertError(`b3sum failed (exit ${code})`);
      return hash;
    },
    abort: () => void child.kill(),
  };
}

/**
 * Receives one shard's bytes in order: hashes them as they pass and (unless dir is null, the
 * manifest-only mode) writes them to a temporary file that becomes `dir/<hash>` only once complete,
 * so a shard file under its final name is always whole.
 */
export class ShardSink {
  position = 0;
  private readonly hasher: Hasher;
  private readonly dir: string | null;
  private readonly temp: string | null;
  private readonly fh: FileHandle | null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;

  private constructor(hasher: Hasher, dir: string | null, temp: string | null, fh: FileHandle | null) {
    this.hasher = hasher;
    this.dir = dir;
    this.temp = temp;
    this.fh = fh;
  }

  /**
   * dir null: hash only (manifest-only synth). There hashing is all the work, so a native b3sum is
   * used when present; when writing, disk I/O dominates and the in-process hash-wasm is used.
   */
  static async create(dir: string | null): Promise<ShardSink> {
    if (dir === null) return new ShardSink(hasB3sum() ? b3sumHasher() : await wasmHasher(), null, null, null);
    const hasher = await wasmHasher();
    const temp = join(dir, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      return new ShardSink(hasher, dir, temp, await open(temp, 'wx'));
    } catch (err) {
      throw new ConvertError(`${dir}: cannot create a shard file (${(err as Error).message})`, { cause: err });
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    await this.hasher.update(bytes);
    this.position += bytes.length;
    if (!this.fh) return;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  /** Zero bytes up to `offset` (tensor alignment). */
  async padTo(offset: number): Promise<void> {
    if (offset < this.position) throw new ConvertError(`shard layout error: offset ${offset} is behind position ${this.position}`);
    if (offset > this.position) await this.write(new Uint8Array(offset - this.position));
  }

  /** Completes the shard and returns its hash; the file is renamed to that hash. */
  async finish(): Promise<string> {
    const hash = await this.hasher.digest();
    if (!this.fh) return hash;
    try {
      await this.flush();
      await this.fh.sync();
      await this.fh.close();
      await rename(this.temp!, join(this.dir!, hash));
    } catch (err) {
      await unlink(this.temp!).catch(() => undefined);
      throw new ConvertError(`${this.dir}: writing shard ${hash} failed (${(err as Error).message})`, { cause: err });
    }
    return hash;
  }

  /** Drops a shard that will not be completed. */
  async abort(): Promise<void> {
    this.hasher.abort?.();
    if (!this.fh) return;
    await this.fh.close().catch(() => undefined);
    await unlink(this.temp!).catch(() => undefined);
  }

  private async flush(): Promise<void> {
    const chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    for (const c of chunks) {
      let done = 0;
      while (done < c.length) done += (await this.fh!.write(c, done, c.length - done)).bytesWritten;
    }
  }
}

/** Removes temporaries an interrupted run left in a shards directory. */
export async function removeStaleTemps(dir: string): Promise<void> {
  for (const f of await readdir(dir)) if (f.startsWith(TEMP_PREFIX)) await unlink(join(dir, f)).catch(() => undefined);
}

/** Stores bytes as a content-addressed blob (tokenizer files) and returns its hash. */
export async function storeBlob(dir: string, bytes: Uint8Array): Promise<string> {
  const sink = await ShardSink.create(dir);
  try {
    await sink.write(bytes);
    return await sink.finish();
  } catch (err) {
    await sink.abort();
    throw err;
  }
}
