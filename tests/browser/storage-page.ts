/**
 * Page entry for the OPFS storage test: the shard store's persistent tier on the Origin Private
 * File System, shards over HTTP, a warm restart without the source, and a corrupted OPFS file.
 */
import { decodeManifest } from '../../manifests/index.ts';
import { HttpSource, OpfsBackend, ShardStore, type StoreStats } from '../../storage/index.ts';

/** What the page hands back to tests/browser/storage-opfs.test.ts. */
export interface Result {
  shards: number;
  first: StoreStats;
  warm: StoreStats;
  repaired: StoreStats;
  files: string[];
}

async function run(modelUrl: string, folder: string, count: number): Promise<Result> {
  const http = new HttpSource(modelUrl);
  const m = decodeManifest(await http.getManifest(), modelUrl);
  const hashes = m.shards.filter((s) => s.kind === 'expert').slice(0, count).map((s) => s.hash);
  const open = async (sources: HttpSource[]) =>
    ShardStore.open({ sources, ramBytes: 0, persistent: { backend: await OpfsBackend.open(folder), bytes: 1 << 30 } });

  const first = await open([http]);
  for (const h of hashes) await first.get(h);
  await first.close();
  const firstStats = first.stats();

  const warm = await open([]);
  for (const h of hashes) await warm.get(h);
  await warm.close();

  // flip a byte of one stored shard through the OPFS API, as a damaged disk would
  const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle(folder);
  const file = await dir.getFileHandle(hashes[0]!);
  const bytes = new Uint8Array(await (await file.getFile()).arrayBuffer());
  bytes[7]! ^= 0xff;
  const w = await file.createWritable();
  await w.write(bytes);
  await w.close();

  const repaired = await open([http]);
  for (const h of hashes) await repaired.get(h);
  await repaired.close();

  const files: string[] = [];
  for await (const name of (dir as unknown as { keys(): AsyncIterable<string> }).keys()) files.push(name);
  await (await navigator.storage.getDirectory()).removeEntry(folder, { recursive: true });
  return { shards: hashes.length, first: firstStats, warm: warm.stats(), repaired: repaired.stats(), files: files.sort() };
}

Object.assign(globalThis, { dopplerOpfs: run });
