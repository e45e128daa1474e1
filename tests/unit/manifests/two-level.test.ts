/**
 * Two-level manifests: the top level names one layer list per MoE layer; decoding fetches and
 * verifies them. Old single-level manifests (the committed demo model) still decode.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { blake3Hex, decodeManifest, encodeManifest, layerListHashes, loadManifest } from '../../../manifests/index.ts';
import { plannedManifestSize, readModelDir, verifyModelDir } from '../../../manifests/node.ts';
import { encodeLayerList } from '../../../manifests/codec.ts';
import { twoLevelCopy } from './two-level-copy.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'rdrr-two-level-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('two-level manifest', async () => {
  const one = await readModelDir(DEMO);
  const dir = join(work, 'two');
  const two = await twoLevelCopy(DEMO, dir);
  const hashes = layerListHashes(two.manifestBytes);
  const moeLayers = new Set(one.manifest.experts.map((e) => e.layer)).size;
  const fromMap = (m: Map<string, Uint8Array>) => (h: string) => (m.has(h) ? Promise.resolve(m.get(h)!) : Promise.reject(new Error('absent')));

  it('the old single-level demo manifest still decodes, and names no lists', () => {
    expect(layerListHashes(one.manifestBytes)).toEqual([]);
    expect(one.manifest.layerLists).toBeUndefined();
  });

  it('decodes to the same tables, keeps id = BLAKE3 of the top level, verifies with its lists', async () => {
    expect(hashes).toHaveLength(moeLayers);
    const { manifest, id } = await readModelDir(dir);
    expect(id).toBe(two.id);
    expect(id).toBe(await blake3Hex(readFileSync(join(dir, 'manifest.msgpack'))));
    expect(manifest.layerLists).toEqual(hashes);
    const { layerLists: _, ...rest } = manifest;
    expect(rest).toEqual(one.manifest);
    expect(Buffer.compare(encodeManifest(manifest), two.manifestBytes)).toBe(0);
    const report = await verifyModelDir(dir);
    expect(report.ok).toBe(true);
    expect(report.checked).toBe(new Set([...one.manifest.shards.map((s) => s.hash), ...Object.values(one.manifest.tokenizer)]).size + moeLayers);
    // the top level no longer carries the expert hashes
    expect(two.manifestBytes.length).toBeLessThan(one.manifestBytes.length - one.manifest.experts.length * 32 + moeLayers * 32 + 64);
  });

  it('refuses by name: lists not given, missing, corrupt, for another layer, a shard short', async () => {
    expect(() => decodeManifest(two.manifestBytes, 'm')).toThrow(/m: a two-level manifest: its \d+ layer lists are needed/);
    await expect(loadManifest(two.manifestBytes, 'm', fromMap(new Map()))).rejects.toThrow(/m: layerLists\[0\] [0-9a-f]{64} could not be fetched \(absent\)/);
    const bad = new Map(two.lists);
    bad.set(hashes[1]!, new Uint8Array([1, 2, 3]));
    await expect(loadManifest(two.manifestBytes, 'm', fromMap(bad))).rejects.toThrow(/layerLists\[1\] [0-9a-f]{64}: its bytes hash to/);
    // lists that hash right but say the wrong thing (as a buggy writer could make): checked field by field
    const swapped = new Map(two.lists);
    swapped.set(hashes[0]!, two.lists.get(hashes[1]!)!);
    expect(() => decodeManifest(two.manifestBytes, 'm', swapped)).toThrow(/layerLists\[0\] \(layer \d+\)\.layer is \d+, the manifest names it for layer/);
    const first = one.manifest.experts.filter((e) => e.layer === one.manifest.experts[0]!.layer).flatMap((e) => e.shards.map((s) => one.manifest.shards[s]!.hash));
    const short = new Map(two.lists);
    short.set(hashes[0]!, encodeLayerList(one.manifest.experts[0]!.layer, first.slice(1)));
    expect(() => decodeManifest(two.manifestBytes, 'm', short)).toThrow(/layerLists\[0\] \(layer \d+\)\.hashes lists \d+ shards, layer \d+'s experts take \d+/);
    const notList = new Map(two.lists);
    notList.set(hashes[0]!, encodeManifest(one.manifest));
    expect(() => decodeManifest(two.manifestBytes, 'm', notList)).toThrow(/layerLists\[0\] \(layer \d+\)\.format must be "rdrr-layer-list"/);
  });

  it('a corrupt list on disk fails reading the model, naming the file', async () => {
    const bad = join(work, 'bad');
    const copy = await twoLevelCopy(DEMO, bad);
    const h = layerListHashes(copy.manifestBytes)[0]!;
    writeFileSync(join(bad, 'shards', h), 'x');
    await expect(readModelDir(bad)).rejects.toThrow(new RegExp(`layerLists\\[0\\] ${h} could not be fetched .*corrupt`));
  });

  it('real-model presets: the 671B top level is a few KB, the lists hold the expert hashes', async () => {
    const ds = await plannedManifestSize('deepseek-v3-671b', 'q4_0');
    expect(ds.bytes).toBeLessThan(12 * 1024); // 191 dense shard hashes + 58 list hashes + 1.9 KB
    expect(ds.listBytes).toBeGreaterThan(58 * 256 * 32);
    const single = await plannedManifestSize('deepseek-v3-671b', 'q4_0', 64, 'q4_0', false);
    expect(single.listBytes).toBe(0);
    expect(single.bytes).toBeGreaterThan(ds.shards * 32);
  });
});
