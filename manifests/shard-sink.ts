import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConvertError } from './errors.ts';
import { blake3Stream } from './hash.ts';

const FLUSH_BYTES = 8 * 1024 * 1024;
/** Buffers per writev call, below every platform's IOV_MAX. */
const MAX_IOV = 512;
export const TEMP_PREFIX = '.tmp-';

let b3sumPresent: boolean | null = null;

/** Native `b3sum` on PATH: about 8× hash-wasm per core, and multi-threaded on a file (bench/results/synth-671b.json). */
function hasB3sum(): boolean {
  b3sumPresent ??= spawnSync('b3sum', ['--version'], { stdio: 'ignore' }).status === 0;
  return b3sumPresent;
}

/** BLAKE3 of whole files by one `b3sum`, which maps each and hashes on every core. */
function b3sumFiles(paths: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('b3sum', ['--no-names', ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.once('error', reject);
    child.once('close', (code) => {
      const hashes = out.trim().split('\n');
      if (code === 0 && hashes.length === paths.length && hashes.every((h) => /^[0-9a-f]{64}$/.test(h))) resolve(hashes);
      else reject(new ConvertError(`b3sum failed (exit ${code}): ${err.trim()}`));
    });
  });
}

/**
 * Closed shard files waiting for b3sum: one process per batch, since a spawn costs ~3 ms of CPU
 * and, on a loaded machine, ~45 ms of waiting (measured here) — for 15,000 shards, minutes.
 */
let hashQueue: { path: string; resolve(h: string): void; reject(e: unknown): void }[] = [];

function queueB3sum(path: string): Promise<string> {
  return new Promise((resolve, reject) => hashQueue.push({ path, resolve, reject }));
}

export function queuedHashes(): number {
  return hashQueue.length;
}

/** Starts one b3sum over every queued file. */
export function runHashQueue(): void {
  const batch = hashQueue;
  hashQueue = [];
  if (batch.length === 0) return;
  b3sumFiles(batch.map((b) => b.path)).then(
    (hashes) => batch.forEach((b, i) => b.resolve(hashes[i]!)),
    (err: unknown) => batch.forEach((b) => b.reject(err)),
  );
}

/**
 * Scratch files of finished manifest-only shards, overwritten by the next one: reusing a tmpfs
 * file's pages saves allocating and zeroing them per shard (most of the system time otherwise).
 */
const idleScratch: string[] = [];

/** Removes the staged scratch files and their directory once a manifest-only run is done with them. */
export async function releaseScratch(): Promise<void> {
  const dir = scratchDir;
  idleScratch.length = 0;
  scratchDir = null;
  if (dir) await rm(dir, { recursive: true, force: true });
}

/** Where manifest-only shards are staged to be hashed: memory-backed when the system has it. */
let scratchDir: string | null = null;
async function scratch(): Promise<string> {
  if (scratchDir) return scratchDir;
  for (const base of ['/dev/shm', tmpdir()]) {
    try {
      const dir = await mkdtemp(join(base, 'rdrr-synth-'));
      // a run that fails midway still leaves nothing behind
      process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
      scratchDir = dir;
      return dir;
    } catch {
      // not writable here: try the next place
    }
  }
  throw new ConvertError('no writable temporary directory to stage shards in');
}

/**
 * Receives one shard's bytes in order into a temporary file that becomes `dir/<hash>` only once
 * complete, so a shard file under its final name is always whole. dir null (manifest-only synth):
 * the file is staged in memory-backed scratch, hashed and deleted. With `b3sum` on PATH the
 * finished file is hashed by it (multi-threaded, ~8× hash-wasm per core); otherwise hash-wasm
 * hashes the bytes as they pass. Bytes handed to write are held until flushed: callers must not
 * reuse them (synth hands out slices of an immutable pool, which costs no copy at all).
 */
export class ShardSink {
  position = 0;
  private readonly stream: { update(chunk: Uint8Array): void; digestHex(): string } | null;
  private readonly dir: string | null;
  private readonly temp: string;
  private readonly fh: FileHandle;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  /** Bytes already in the file (writes are positioned: a reused scratch file is overwritten in place). */
  private written = 0;

  private constructor(stream: ShardSink['stream'], dir: string | null, temp: string, fh: FileHandle) {
    this.stream = stream;
    this.dir = dir;
    this.temp = temp;
    this.fh = fh;
  }

  static async create(dir: string | null): Promise<ShardSink> {
    const stream = hasB3sum() ? null : await blake3Stream();
    const where = dir ?? (await scratch());
    const reuse = dir === null ? idleScratch.pop() : undefined;
    const temp = reuse ?? join(where, `${TEMP_PREFIX}${randomBytes(8).toString('hex')}`);
    try {
      return new ShardSink(stream, dir, temp, await open(temp, reuse ? 'r+' : 'wx'));
    } catch (err) {
      throw new ConvertError(`${where}: cannot create a shard file (${(err as Error).message})`, { cause: err });
    }
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (bytes.length === 0) return;
    this.stream?.update(bytes);
    this.position += bytes.length;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= FLUSH_BYTES || this.pending.length >= MAX_IOV) await this.flush();
  }

  /** Zero bytes up to `offset` (tensor alignment). */
  async padTo(offset: number): Promise<void> {
    if (offset < this.position) throw new ConvertError(`shard layout error: offset ${offset} is behind position ${this.position}`);
    if (offset > this.position) await this.write(new Uint8Array(offset - this.position));
  }

  /** Completes the shard and returns its hash; the file is renamed to that hash (or, manifest-only, kept for reuse). */
  async finish(): Promise<string> {
    await this.close();
    const hash = this.place();
    runHashQueue();
    return hash;
  }

  /** Writes out what is held and closes the file: the bytes are complete, not yet hashed. */
  async close(): Promise<void> {
    try {
      await this.flush();
      if (this.dir) await this.fh.sync();
      else await this.fh.truncate(this.position);
      await this.fh.close();
    } catch (err) {
      await this.fh.close().catch(() => undefined);
      await unlink(this.temp).catch(() => undefined);
      throw new ConvertError(`${this.dir ?? 'scratch'}: writing a shard failed (${(err as Error).message})`, { cause: err });
    }
  }

  /**
   * After close: hashes the file (queued for a batched b3sum, see runHashQueue) and renames it to
   * its hash. The hash is queued synchronously, so a caller can close several shards, then run the queue.
   */
  place(): Promise<string> {
    const hashing = this.stream ? Promise.resolve(this.stream.digestHex()) : queueB3sum(this.temp);
    return hashing.then(
      async (hash) => {
        if (this.dir) await rename(this.temp, join(this.dir, hash));
        else idleScratch.push(this.temp);
        return hash;
      },
    ).catch(async (err: unknown) => {
      await unlink(this.temp).catch(() => undefined);
      throw new ConvertError(`${this.dir ?? 'scratch'}: hashing a shard failed (${(err as Error).message})`, { cause: err });
    });
  }

  /** Drops a shard that will not be completed. */
  async abort(): Promise<void> {
    await this.fh.close().catch(() => undefined);
    await unlink(this.temp).catch(() => undefined);
  }

  /** One writev per flush: synth's pool slices go from memory to the file in a single copy. */
  private async flush(): Promise<void> {
    let chunks = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    while (chunks.length > 0) {
      let { bytesWritten } = await this.fh.writev(chunks, this.written);
      this.written += bytesWritten;
      // a short write: drop what went out and retry the rest
      while (chunks.length > 0 && bytesWritten >= chunks[0]!.length) bytesWritten -= chunks.shift()!.length;
      if (bytesWritten > 0) chunks = [chunks[0]!.subarray(bytesWritten), ...chunks.slice(1)];
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
