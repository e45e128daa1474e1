import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hashFile, openRegularFile } from '../manifests/node.ts';
import { join } from 'node:path';
import type { ShardStorage } from './storage.ts';

const HEX64 = /^[0-9a-f]{64}$/;
let tmpCounter = 0;

/**
 * Shards as files `<dir>/shards/<hash>`, the layout `doppler convert` writes, so a seeded model
 * directory is served in place and a fetched one is a model directory. Writes go to a temporary name
 * and are renamed, so a crash never leaves a partial file under a shard's name.
 */
export class FsShardStorage implements ShardStorage {
  readonly dir: string;
  private readonly sizes = new Map<string, number>();
  private used = 0;
  /** Files found under shard names at open that were not used: not regular files, or bytes that hash to something else. */
  readonly refused: { hash: string; reason: string }[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Opens (creating if needed) `<dir>/shards` and indexes the shard files already there. With
   * `verify` (the default) each is re-hashed first: a truncated or corrupt file left by a crash or
   * by someone else is not served or counted as held, and is replaced when the shard is fetched.
   * Anything that is not a regular file is never indexed (it would block or lie on read).
   */
  static async open(dir: string, opts: { verify?: boolean } = {}): Promise<FsShardStorage> {
    const s = new FsShardStorage(dir);
    await mkdir(join(dir, 'shards'), { recursive: true });
    for (const name of await readdir(join(dir, 'shards'))) {
      if (!HEX64.test(name)) continue;
      const path = join(dir, 'shards', name);
      const st = await stat(path).catch(() => null);
      if (!st?.isFile()) {
        s.refused.push({ hash: name, reason: `${path} is not a regular file` });
        continue;
      }
      if (opts.verify ?? true) {
        const got = await hashFile(path).catch((err: Error) => ({ hash: `unreadable: ${err.message}`, size: 0 }));
        if (got.hash !== name) {
          s.refused.push({ hash: name, reason: `${path} does not hash to its name (${got.hash.slice(0, 40)})` });
          continue;
        }
      }
      s.sizes.set(name, st.size);
      s.used += st.size;
    }
    return s;
  }

  has(hash: string): boolean {
    return this.sizes.has(hash);
  }

  sizeOf(hash: string): number | undefined {
    return this.sizes.get(hash);
  }

  async read(hash: string, offset: number, length: number): Promise<Uint8Array> {
    const fh = await openRegularFile(join(this.dir, 'shards', hash));
    try {
      const out = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(out, done, length - done, offset + done);
        if (bytesRead === 0) throw new Error(`${join(this.dir, 'shards', hash)} is shorter than expected`);
        done += bytesRead;
      }
      return out;
    } finally {
      await fh.close();
    }
  }

  async write(hash: string, bytes: Uint8Array): Promise<void> {
    if (this.sizes.has(hash)) return;
    const path = join(this.dir, 'shards', hash);
    const tmp = `${path}.tmp-${process.pid}-${tmpCounter++}`;
    // a refused non-file under this name (a directory, a FIFO) would make the rename fail or block
    await rm(path, { recursive: true, force: true });
    await writeFile(tmp, bytes);
    await rename(tmp, path);
    this.sizes.set(hash, bytes.length);
    this.used += bytes.length;
  }

  async delete(hash: string): Promise<void> {
    const size = this.sizes.get(hash);
    if (size === undefined) return;
    this.sizes.delete(hash);
    this.used -= size;
    await rm(join(this.dir, 'shards', hash), { force: true });
  }

  list(): string[] {
    return [...this.sizes.keys()];
  }

  usedBytes(): number {
    return this.used;
  }
}
