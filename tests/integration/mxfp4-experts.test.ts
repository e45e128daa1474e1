/**
 * A model whose routed experts stay MXFP4 as released (convert --expert-quant mxfp4) runs the same
 * as the same weights dequantised to f32: MXFP4 dequantises exactly, so the two differ only in
 * summation order. On the TypeScript reference and on WebGPU (the mxfp4 gemv prefill and decode paths).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine } from '../../engine/index.ts';
import { modelDirSource } from '../../engine/node.ts';
import { createCpuBackend, createWebGpuBackend, type Backend } from '../../kernels/index.ts';
import { convert } from '../../manifests/node.ts';
import { writePackedCheckpoint } from '../unit/manifests/mxfp4-fixture.ts';
import { maxAbsDiff } from './fixtures.ts';

const work = mkdtempSync(join(tmpdir(), 'doppler-mxfp4-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
const PROMPT = [1, 17, 300, 42, 99, 7];

async function run(dir: string, backend: Backend): Promise<{ ids: number[]; logits: Float32Array[] }> {
  const engine = await Engine.load({ backend, source: await modelDirSource(dir) });
  const gen = engine.generate(PROMPT, { maxNewTokens: 4, keepLogits: true, stopOnEos: false });
  const ids: number[] = [];
  for await (const t of gen) ids.push(t.id);
  return { ids, logits: [...gen.prefillLogits, ...gen.stepLogits] };
}

beforeAll(async () => {
  const src = join(work, 'src');
  writePackedCheckpoint(src);
  await convert({ source: src, out: join(work, 'f32'), quant: 'f32' });
  await convert({ source: src, out: join(work, 'mxfp4'), quant: 'f32', expertQuant: 'mxfp4' });
});

describe.each([
  ['cpu', async () => createCpuBackend()],
  ['webgpu', () => createWebGpuBackend()],
] as const)('%s backend', (_, make) => {
  it('mxfp4 experts give the logits and greedy ids of their f32 dequantisation', async () => {
    const ref = await run(join(work, 'f32'), await make());
    const got = await run(join(work, 'mxfp4'), await make());
    expect(got.ids).toEqual(ref.ids);
    expect(got.logits).toHaveLength(PROMPT.length + 4);
    got.logits.forEach((row, i) => expect(maxAbsDiff(row, ref.logits[i]!), `position ${i}`).toBeLessThanOrEqual(1e-4));
  });
});
