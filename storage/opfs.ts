/**
 * The persistent tier in a browser: the Origin Private File System. A write goes to a temporary
 * file that is renamed (move()) to the shard's name once complete: getFileHandle({create}) makes an
 * empty file at once, so writing under the shard's own name would leave an empty file there when
 * the tab closes mid-write (the temp + rename of the Node tier). Stale temporaries are removed by list().
 */
import { isHash } from '../manifests/index.ts';
import { StorageError } from './errors.ts';
import type { PersistentBackend } from './types.ts';

/** The parts of FileSystemDirectoryHandle this backend uses (structural, so tests can fake it). */
export interface OpfsDirectory {
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFile>;
  removeEntry(name: string): Promise<void>;
  keys(): AsyncIterable<string>;
}

export interface OpfsFile {
  getFile(): Promise<Blob>;
  /** Renames the file within its directory. */
  move(newName: string): Promise<void>;
  createWritable(): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void>; abort(reason?: unknown): Promise<void> }>;
}

const TMP_PREFIX = '.tmp-';

export class OpfsBackend implements PersistentBackend {
  readonly name: string;
  private readonly dir: OpfsDirectory;

  constructor(dir: OpfsDirectory, name = 'opfs') {
    this.dir = dir;
    this.name = name;
  }

  /** The store's folder under the origin's OPFS root (navigator.storage.getDirectory()). */
  static async open(folder = 'doppler-shards'): Promise<OpfsBackend> {
    const storage = (globalThis.navigator as Navigator | undefined)?.storage;
    if (!storage?.getDirectory) throw new StorageError('this environment has no Origin Private File System (navigator.storage.getDirectory)');
    const root = await storage.getDirectory();
    const dir = (await root.getDirectoryHandle(folder, { create: true })) as unknown as OpfsDirectory;
    return new OpfsBackend(dir, `opfs:${folder}`);
  }

  async list(): Promise<{ hash: string; size: number }[]> {
    const out: { hash: string; size: number }[] = [];
    const stale: string[] = [];
    for await (const name of this.dir.keys()) {
      if (name.startsWith(TMP_PREFIX)) stale.push(name);
      if (!isHash(name)) continue;
      const file = await (await this.dir.getFileHandle(name)).getFile();
      out.push({ hash: name, size: file.size });
    }
    // left by writes that never finished (a closed tab): never visible under a shard name
    for (const name of stale) await this.dir.removeEntry(name).catch(() => undefined);
    return out;
  }

  async read(hash: string): Promise<Uint8Array | null> {
    let handle: OpfsFile;
    try {
      handle = await this.dir.getFileHandle(hash);
    } catch (err) {
      if ((err as Error).name === 'NotFoundError') return null;
      throw err;
    }
    return new Uint8Array(await (await handle.getFile()).arrayBuffer());
  }

  async write(hash: string, bytes: Uint8Array): Promise<void> {
    if (!isHash(hash)) throw new StorageError(`refusing to write "${hash}": not a shard hash`);
    const tmpName = `${TMP_PREFIX}${hash}-${Math.random().toString(36).slice(2)}`;
    const tmp = await this.dir.getFileHandle(tmpName, { create: true });
    const w = await tmp.createWritable();
    try {
      await w.write(bytes);
      await w.close();
      // move() onto an existing entry is not specified everywhere: clear the name first (absence is safe).
      await this.delete(hash);
      await tmp.move(hash);
    } catch (err) {
      await w.abort(err).catch(() => undefined);
      await this.dir.removeEntry(tmpName).catch(() => undefined);
      throw new StorageError(`${this.name}: writing shard ${hash} failed`, { cause: err });
    }
  }

  async delete(hash: string): Promise<void> {
    try {
      await this.dir.removeEntry(hash);
    } catch (err) {
      if ((err as Error).name !== 'NotFoundError') throw err;
    }
  }
}
