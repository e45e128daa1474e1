/**
 * The persistent tier in a browser: the Origin Private File System. Writes go through
 * createWritable(), which writes to a swap file and replaces the target atomically on close(), so
 * a crash never leaves a partial file under a shard's name (the temp + rename of the Node tier).
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
  createWritable(): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void>; abort(reason?: unknown): Promise<void> }>;
}

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
    for await (const name of this.dir.keys()) {
      if (!isHash(name)) continue;
      const file = await (await this.dir.getFileHandle(name)).getFile();
      out.push({ hash: name, size: file.size });
    }
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
    const w = await (await this.dir.getFileHandle(hash, { create: true })).createWritable();
    try {
      await w.write(bytes);
      await w.close();
    } catch (err) {
      await w.abort(err).catch(() => undefined);
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
