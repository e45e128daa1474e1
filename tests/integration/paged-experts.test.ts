/**
 * Experts paged through the tiered store: under budgets so small that every token evicts, the
 * greedy output equals the all-resident run; a budget that cannot hold one token's experts is
 * refused at load; a warm persistent tier serves a restart without the remote source, and a
 * corrupted file in it is caught and fetched again.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, ModelLoadError, openModel, type ModelSource } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../kernels/index.ts';
import { createWasmBackendNode } from '../../kernels/node.ts';
import { blake3Hex } from '../../manifests/index.ts';
import type { ShardSource } from '../../storage/index.ts';
import { DirBackend, DirSource } from '../../storage/node.ts';
import { convertFixture, hfMoeDir, hfMoeExtDir } from './fixtures.ts';

const DEMO = new URL('../../models/tiny-moe-text-q8_0', import.meta.url).pathname;
const PROMPTS = [[454, 265, 311], [1, 40, 41, 42, 43, 44, 45, 46, 47, 48]];

async function greedy(engine: Engine, ids: number[], n = 12): Promise<number[]> {
  const out: number[] = [];
  for await (const t of engine.generate(ids, { maxNewTokens: n, stopOnEos: false })) out.push(t.id);
  return out;
}

/** topK × the largest expert: the least VRAM a token can run in. */
function minimumVram(source: ModelSource): number {
  const m = source.manifest;
  const largest = Math.max(...m.experts.map((e) => e.shards.reduce((s, i) => s + m.shards[i]!.size, 0)));
  return m.config.moe.topK * largest;
}

type BackendName = 'cpu' | 'webgpu' | 'wasm';
const makeBackend = async (name: BackendName): Promise<Backend> =>
  name === 'cpu' ? createCpuBackend() : name === 'wasm' ? createWasmBackendNode({ threads: 2 }) : createWebGpuBackend();

async function pagedEngine(source: ModelSource, dir: string, opts: { backend: BackendName; vram: number; ram: number; sources: ShardSource[]; cacheDir?: string }) {
  const { engine, store } = await openModel({
    backend: await makeBackend(opts.backend),
    manifestFrom: [new DirSource(dir)],
    modelId: source.id,
    sources: opts.sources,
    budgets: { vramBytes: opts.vram, ramBytes: opts.ram },
    ...(opts.cacheDir ? { persistent: await DirBackend.open(opts.cacheDir) } : {}),
  });
  return { engine, store };
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

const mixtralTiny = async () => {
  const c = await convertFixture(hfMoeDir('mixtral-tiny'), 'f32');
  scratch.push(c.dir);
  return c.dir;
};

// gpt-oss: each expert's shard carries its biases, and the prefetcher's early routing adds the router bias
const gptossPlain = async () => {
  const c = await convertFixture(hfMoeExtDir('gptoss-plain'), 'f32');
  scratch.push(c.dir);
  return c.dir;
};

// WebGPU (SwiftShader here) runs the small fixture: its release and eviction path destroys real GPU buffers
describe.each([
  { name: 'tiny-moe-text (q8_0 demo model)', backend: 'cpu' as const, open: async () => DEMO },
  { name: 'mixtral-tiny (f32)', backend: 'cpu' as const, open: mixtralTiny },
  { name: 'mixtral-tiny (f32)', backend: 'webgpu' as const, open: mixtralTiny },
  { name: 'gptoss-plain (f32)', backend: 'cpu' as const, open: gptossPlain },
  // the WASM heap allocates and frees each evicted shard's bytes
  { name: 'tiny-moe-text (q8_0 demo model)', backend: 'wasm' as const, open: async () => DEMO },
])('$name on $backend', ({ backend, open }) => {
  let dir: string;
  let source: ModelSource;
  let resident: number[][];
  beforeAll(async () => {
    dir = await open();
    source = await modelDirSource(dir);
    const engine = await Engine.load({ backend: await makeBackend(backend), source });
    resident = [];
    for (const p of PROMPTS) resident.push(await greedy(engine, p));
  });

  it('generates the all-resident output with budgets that force evictions every token', async () => {
    const vram = minimumVram(source);
    for (const ram of [0, vram]) {
      const { engine, store } = await pagedEngine(source, dir, { backend, vram, ram, sources: [new DirSource(dir)] });
      for (let i = 0; i < PROMPTS.length; i++) expect(await greedy(engine, PROMPTS[i]!)).toEqual(resident[i]);
      const s = store.stats();
      expect(s.vram!.evictions).toBeGreaterThan(12);
      expect(s.vram!.residentBytes).toBeLessThanOrEqual(vram);
      await store.close();
    }
  });

  it('refuses at load a VRAM budget that cannot hold one token\'s experts', async () => {
    const vram = minimumVram(source) - 1;
    const load = pagedEngine(source, dir, { backend, vram, ram: 0, sources: [new DirSource(dir)] });
    await expect(load).rejects.toThrow(ModelLoadError);
    await expect(load).rejects.toThrow(/needs \d+ at once/);
  });

  it('restarts from a warm persistent tier without the remote source, and refetches a corrupted file', async () => {
    const cacheDir = mkdtempSync(join(tmpdir(), 'doppler-cache-'));
    scratch.push(cacheDir);
    const vram = minimumVram(source);
    const first = await pagedEngine(source, dir, { backend, vram, ram: 0, sources: [new DirSource(dir)], cacheDir });
    expect(await greedy(first.engine, PROMPTS[0]!)).toEqual(resident[0]);
    await first.store.close();

    const warm = await pagedEngine(source, dir, { backend, vram, ram: 0, sources: [], cacheDir });
    expect(await greedy(warm.engine, PROMPTS[0]!)).toEqual(resident[0]);
    expect(warm.store.stats().remote.hits).toBe(0);
    await warm.store.close();

    const victim = readdirSync(join(cacheDir, 'shards')).find((f) => source.manifest.experts.some((e) => e.shards.some((s) => source.manifest.shards[s]!.hash === f)))!;
    writeFileSync(join(cacheDir, 'shards', victim), 'not the shard');
    const healed = await pagedEngine(source, dir, { backend, vram: vram * 8, ram: 0, sources: [new DirSource(dir)], cacheDir });
    for (let i = 0; i < PROMPTS.length; i++) expect(await greedy(healed.engine, PROMPTS[i]!)).toEqual(resident[i]);
    // whether or not the prompts routed to the corrupted expert, asking for it must give good bytes
    expect(await blake3Hex(await healed.store.get(victim))).toBe(victim);
    expect(healed.store.stats().persistent!.verifyFailures).toBe(1);
    expect(healed.store.stats().remote.hits).toBeGreaterThanOrEqual(1);
    await healed.store.close();
  });
});
