/**
 * openModel / openModelAt: one entry point from a directory or a source, with budgets and
 * progress; the same tokens as loading the directory directly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { twoLevelCopy } from '../manifests/two-level-copy.ts';
import { Engine, ModelLoadError, type LoadProgress } from '../../../engine/index.ts';
import { modelDirSource, openModelAt } from '../../../engine/node.ts';
import { createCpuBackend } from '../../../kernels/index.ts';

const DEMO = new URL('../../../models/tiny-moe-text-q8_0', import.meta.url).pathname;

async function greedy(engine: Engine, n = 6): Promise<number[]> {
  const out: number[] = [];
  for await (const t of engine.generate([454, 265, 311], { maxNewTokens: n, stopOnEos: false })) out.push(t.id);
  return out;
}

describe('openModelAt', () => {
  it('reports manifest, every shard with bytes, the tokenizer and ready, and generates as a direct load does', async () => {
    const events: LoadProgress[] = [];
    const opened = await openModelAt({ model: DEMO, backend: createCpuBackend(), onProgress: (p) => events.push(p) });
    const direct = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(DEMO) });
    expect(await greedy(opened.engine)).toEqual(await greedy(direct));
    const m = opened.engine.manifest;
    expect(events[0]).toMatchObject({ stage: 'manifest', modelId: opened.engine.modelId, shards: m.shards.length });
    const shards = events.filter((e) => e.stage === 'shard');
    // resident: every shard and the tokenizer blobs, each reported once
    expect(shards).toHaveLength(m.shards.length + 2); // tokenizer.json, tokenizer_config.json
    expect(shards.some((e) => e.kind === 'tokenizer')).toBe(true);
    const last = shards.at(-1)!;
    expect(last.done).toBe(last.total);
    expect(last.doneBytes).toBe(last.totalBytes);
    expect(last.doneBytes).toBeGreaterThanOrEqual(m.totals.bytes);
    expect(shards.every((e) => e.from.startsWith('dir:'))).toBe(true);
    expect(events.at(-1)).toMatchObject({ stage: 'ready' });
    await opened.close();
  });

  it('pages experts under a VRAM budget: only dense shards load up front, and the output is unchanged', async () => {
    const events: LoadProgress[] = [];
    const resident = await openModelAt({ model: DEMO, backend: createCpuBackend() });
    const m = resident.engine.manifest;
    const paged = await openModelAt({ model: DEMO, backend: createCpuBackend(), budgets: { vramBytes: m.totals.expertBytes / 4, ramBytes: 0 }, onProgress: (p) => events.push(p) });
    expect(await greedy(paged.engine)).toEqual(await greedy(resident.engine));
    const kinds = new Set(events.flatMap((e) => (e.stage === 'shard' ? [e.kind] : [])));
    expect(kinds.has('expert')).toBe(false);
    expect(paged.store.stats().vram!.budgetBytes).toBe(m.totals.expertBytes / 4);
    await Promise.all([paged.close(), resident.close()]);
  });

  it('opens a two-level manifest (layer lists fetched from the source at open) to the same tokens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'open-two-level-'));
    try {
      const two = await twoLevelCopy(DEMO, join(dir, 'model'));
      const events: LoadProgress[] = [];
      // from a source, as a remote model: lists come through ShardSource.get before the store exists
      const opened = await openModelAt({ model: two.id, source: join(dir, 'model'), backend: createCpuBackend(), onProgress: (p) => events.push(p) });
      const direct = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(DEMO) });
      expect(opened.engine.manifest.layerLists).toHaveLength(two.lists.size);
      expect(await greedy(opened.engine, 4)).toEqual(await greedy(direct, 4));
      expect(events[0]).toMatchObject({ stage: 'manifest', modelId: two.id });
      await opened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a model id the manifest does not hash to, and an aborted open', async () => {
    await expect(openModelAt({ model: 'ab'.repeat(32), source: DEMO, backend: createCpuBackend() })).rejects.toThrow(ModelLoadError);
    await expect(openModelAt({ model: 'ab'.repeat(32), source: DEMO, backend: createCpuBackend() })).rejects.toThrow(/hashes to [0-9a-f]{64}, not the model id/);
    await expect(openModelAt({ model: DEMO, backend: createCpuBackend(), signal: AbortSignal.abort() })).rejects.toThrow(/abort/i);
  });
});
