import { constants, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';

/** A path that should be a regular file is something else (a FIFO, a directory, a device, a socket). */
export class NotRegularFileError extends Error {
  override name = 'NotRegularFileError';
  readonly code = 'ENOTREG';
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `path` for reading only when it is a regular file. The open is non-blocking (a FIFO would
 * otherwise block until a writer appears) and the check is made on the opened handle, so the file
 * cannot be swapped between check and read. Errors keep Node's `code` (ENOENT…) so callers can
 * tell "missing" from "wrong kind".
 *
 * @example
 * const fh = await openRegularFile('model/shards/ab12…');
 * try { await fh.read(buf, 0, buf.length, 0); } finally { await fh.close(); }
 */
export async function openRegularFile(path: string): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new NotRegularFileError(`${path} is ${kindOf(st)}, not a regular file`);
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** The whole contents of a regular file (refusing anything else before reading a byte). */
export async function readRegularFile(path: string, signal?: AbortSignal): Promise<Uint8Array> {
  const fh = await openRegularFile(path);
  try {
    return new Uint8Array(await fh.readFile(signal ? { signal } : {}));
  } finally {
    await fh.close();
  }
}
