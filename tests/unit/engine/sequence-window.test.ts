/**
 * A sequence over sliding-window (ring-buffer) layers, on the mixtral-window fixture (window 8,
 * prompts longer than it, f32, CPU backend): a prompt that leaves the cached ids (a rewind the
 * rings cannot do) starts over and equals a fresh run; one that extends them reuses the cache and
 * still equals a fresh run; so does asking again with exactly the cached ids.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, type Sequence } from '../../../engine/index.ts';
import { modelDirSource } from '../../../engine/node.ts';
import { createCpuBackend } from '../../../kernels/index.ts';
import { convertFixture, hfMoeExtDir, maxAbsDiff, readGolden, type HfMoeGolden } from '../../integration/fixtures.ts';

const DIR = hfMoeExtDir('mixtral-window');
const golden = readGolden<HfMoeGolden>(DIR);
const N = 4;

interface Run { ids: number[]; logits: Float32Array[]; reused: number }

async function run(engine: Engine, prompt: number[], sequence?: Sequence): Promise<Run> {
  const gen = engine.generate(prompt, { maxNewTokens: N, keepLogits: true, stopOnEos: false, ...(sequence ? { sequence } : {}) });
  const ids: number[] = [];
  for await (const t of gen) ids.push(t.id);
  return { ids, logits: gen.stepLogits, reused: gen.stats.reusedTokens };
}

function expectSame(a: Run, b: Run): void {
  expect(a.ids).toEqual(b.ids);
  for (let i = 0; i < a.logits.length; i++) expect(maxAbsDiff(a.logits[i]!, b.logits[i]!)).toBeLessThan(1e-4);
}

describe('a sequence over sliding-window layers', () => {
  let engine: Engine;
  let cleanup = () => {};
  beforeAll(async () => {
    const c = await convertFixture(DIR, 'f32');
    cleanup = c.cleanup;
    engine = await Engine.load({ backend: createCpuBackend(), source: await modelDirSource(c.dir) });
    expect(engine.config.slidingWindow).toBe(8);
  });
  afterAll(() => cleanup());

  it('starts over on a diverging prompt and reuses the cache on an extension, answering as a fresh run', async () => {
    const seq = engine.createSequence(64);
    expect(seq.cache.rewindable).toBe(false);
    const first = await run(engine, golden.input_ids, seq);
    expect(first.ids).toEqual(golden.greedy_ids.slice(0, N));
    const cached = [...seq.ids];
    expect(cached.length).toBe(golden.input_ids.length + N - 1);

    // diverges at position 6, inside what the rings no longer hold
    const diverging = [...golden.input_ids.slice(0, 6), 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
    const second = await run(engine, diverging, seq);
    expect(second.reused).toBe(0);
    expectSame(second, await run(engine, diverging));

    const extension = [...seq.ids, 100, 200, 300];
    const held = seq.ids.length;
    const third = await run(engine, extension, seq);
    expect(third.reused).toBe(held);
    expectSame(third, await run(engine, extension));

    // the same ids again: the last one must run again, a one-position rewind
    const again = [...seq.ids];
    const fourth = await run(engine, again, seq);
    expect(fourth.reused).toBe(0);
    expectSame(fourth, await run(engine, again));
  });
});
