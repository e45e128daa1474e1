import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { blake3Hex, decodeManifest } from '../../../manifests/index.ts';
import { HttpSource, SourceError } from '../../../storage/index.ts';
import { DirSource, openNodeStore, sourceFromSpec } from '../../../storage/node.ts';
import { FakeUploader, type FakeHandle } from './helpers.ts';

const MODEL = fileURLToPath(new URL('../../../models/tiny-moe-text-q8_0/', import.meta.url));

let cache: string;
beforeEach(async () => {
  cache = await mkdtemp(join(tmpdir(), 'doppler-node-store-'));
});
afterEach(async () => {
  await rm(cache, { recursive: true, force: true });
});

describe('Node storage helpers', () => {
  it('DirSource reads a model directory; missing shards are SourceErrors naming the path', async () => {
    const src = new DirSource(MODEL);
    const m = decodeManifest(await src.getManifest(), MODEL);
    const bytes = await src.get(m.shards[1]!.hash);
    expect(await blake3Hex(bytes)).toBe(m.shards[1]!.hash);
    const err = await src.get('2'.repeat(64)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SourceError);
    expect((err as Error).message).toMatch(/shards\/2{64}: no such shard file/);
    await expect(src.get('../manifest.json')).rejects.toThrow(/not a shard hash/);
  });

  it('sourceFromSpec picks HTTP for URLs and a directory otherwise', () => {
    expect(sourceFromSpec('https://example.org/m')).toBeInstanceOf(HttpSource);
    expect(sourceFromSpec(MODEL)).toBeInstanceOf(DirSource);
  });

  it('openNodeStore pages a real model’s experts into VRAM with a cache directory, then restarts warm', async () => {
    const m = decodeManifest(await new DirSource(MODEL).getManifest(), MODEL);
    const experts = m.experts.filter((e) => e.layer < 2).map((e) => m.shards[e.shards[0]!]!);
    const up = new FakeUploader();
    const store = await openNodeStore<FakeHandle>({
      sources: [MODEL],
      ramBytes: 0,
      vram: { bytes: 3 * experts[0]!.size, uploader: up },
      cacheDir: cache,
      manifest: m,
    });
    for (const s of experts) expect((await store.getDevice(s.hash)).bytes.length).toBe(s.size);
    await store.close();
    expect(up.live.size).toBe(0);
    expect((await readdir(join(cache, 'shards'))).length).toBe(experts.length);
    const warm = await openNodeStore({ sources: [], ramBytes: 1 << 24, cacheDir: cache, manifest: m });
    for (const s of experts) expect((await warm.get(s.hash)).length).toBe(s.size);
    expect(warm.stats().persistent!.hits).toBe(experts.length);
    await warm.close();
  });
});
