import { describe, expect, it } from 'vitest';
import { decodeManifest } from '../../../manifests/index.ts';
import { readFileSync } from 'node:fs';
import { shardMeta } from '../../../storage/index.ts';

describe('shardMeta', () => {
  it('gives every shard its size and every expert shard its layer and expert', () => {
    const dir = new URL('../../../models/tiny-moe-text-q8_0/', import.meta.url);
    const m = decodeManifest(readFileSync(new URL('manifest.msgpack', dir)), 'tiny-moe-text-q8_0');
    const meta = shardMeta(m);
    expect(meta.size).toBe(new Set(m.shards.map((s) => s.hash)).size);
    for (const s of m.shards) expect(meta.get(s.hash)!.size).toBe(s.size);
    const e = m.experts.find((x) => x.layer === 3 && x.expert === 5)!;
    expect(meta.get(m.shards[e.shards[0]!]!.hash)).toMatchObject({ layer: 3, expert: 5 });
    const dense = m.shards.find((s) => s.kind === 'dense')!;
    expect(meta.get(dense.hash)!.layer).toBeUndefined();
  });
});
