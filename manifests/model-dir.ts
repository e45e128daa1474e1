import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadManifest } from './layer-lists.ts';
import { ManifestError, ShardIntegrityError } from './errors.ts';
import { blake3Hex, blake3Stream, isHash } from './hash.ts';
import { MODEL_FILES } from './query.ts';
import { NotRegularFileError, openRegularFile, readRegularFile } from './regular-file.ts';
import type { Manifest } from './types.ts';

/** The manifest of a model directory, its id (BLAKE3 of manifest.msgpack) and its encoded bytes. */
export async function readModelDir(dir: string): Promise<{ manifest: Manifest; id: string; manifestBytes: Uint8Array }> {
  const path = join(dir, MODEL_FILES.manifest);
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = await readRegularFile(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (not a converted model directory, or its convert did not finish)' : (err as Error).message;
    throw new ManifestError(`${path}: ${why}`, { cause: err });
  }
  // a two-level manifest's layer lists are blobs in shards/, each verified by readShardFile
  const manifest = await loadManifest(manifestBytes, path, (hash) => readShardFile(dir, hash));
  return { manifest, id: await blake3Hex(manifestBytes), manifestBytes };
}

/** A shard's (or blob's) bytes, verified against its name. */
export async function readShardFile(dir: string, hash: string): Promise<Uint8Array> {
  if (!isHash(hash)) throw new ShardIntegrityError(`"${hash}" is not a shard name`);
  const path = join(dir, MODEL_FILES.shards, hash);
  let bytes: Uint8Array;
  try {
    bytes = await readRegularFile(path);
  } catch (err) {
    const why = err instanceof NotRegularFileError ? 'unusable' : 'missing';
    throw new ShardIntegrityError(`${path}: ${why} (${(err as Error).message})`, { cause: err });
  }
  const actual = await blake3Hex(bytes);
  if (actual !== hash) throw new ShardIntegrityError(`${path}: corrupt, its bytes hash to ${actual}`);
  return bytes;
}

/** Hashes a file in pieces (a shard can be larger than is wise to hold). */
export async function hashFile(path: string): Promise<{ hash: string; size: number }> {
  const fh = await openRegularFile(path);
  try {
    const h = await blake3Stream();
    const buf = new Uint8Array(8 * 1024 * 1024);
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, size);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
    return { hash: h.digestHex(), size };
  } finally {
    await fh.close();
  }
}

export interface VerifyReport {
  id: string;
  ok: boolean;
  checked: number;
  missing: string[];
  corrupt: { hash: string; actual: string }[];
  /** Shards whose size differs from the manifest (also counted as corrupt when their hash differs). */
  wrongSize: { hash: string; size: number; expected: number }[];
  /** Shard names that are not regular files (a FIFO, a directory, a device): refused unread. */
  notRegular: { hash: string; reason: string }[];
  /** Files in shards/ that this manifest does not reference (harmless: left by an earlier model). */
  unreferenced: string[];
}

/** Re-hashes every shard, tokenizer blob and layer list of a model directory against its name and the manifest. */
export async function verifyModelDir(dir: string, onFile?: (done: number, total: number) => void): Promise<VerifyReport> {
  const { manifest, id } = await readModelDir(dir);
  const expected = new Map<string, number | null>();
  for (const s of manifest.shards) expected.set(s.hash, s.size);
  for (const h of [...Object.values(manifest.tokenizer), ...(manifest.layerLists ?? [])]) if (!expected.has(h)) expected.set(h, null);
  const report: VerifyReport = { id, ok: true, checked: 0, missing: [], corrupt: [], wrongSize: [], notRegular: [], unreferenced: [] };
  let done = 0;
  for (const [hash, size] of expected) {
    const path = join(dir, MODEL_FILES.shards, hash);
    let got: { hash: string; size: number };
    try {
      got = await hashFile(path);
    } catch (err) {
      if (err instanceof NotRegularFileError) {
        report.notRegular.push({ hash, reason: err.message });
        onFile?.(++done, expected.size);
        continue;
      }
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      report.missing.push(hash);
      onFile?.(++done, expected.size);
      continue;
    }
    report.checked++;
    if (got.hash !== hash) report.corrupt.push({ hash, actual: got.hash });
    if (size !== null && got.size !== size) report.wrongSize.push({ hash, size: got.size, expected: size });
    onFile?.(++done, expected.size);
  }
  const present = await readdir(join(dir, MODEL_FILES.shards)).catch(() => [] as string[]);
  report.unreferenced = present.filter((f) => isHash(f) && !expected.has(f));
  report.ok = report.missing.length === 0 && report.corrupt.length === 0 && report.wrongSize.length === 0 && report.notRegular.length === 0;
  return report;
}
