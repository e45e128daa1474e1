/** pickBackend: the fastest candidate by the probe wins, the rest are destroyed, failures are recorded. */
import { describe, expect, it } from 'vitest';
import { createCpuBackend, KernelError, pickBackend, probeGemv, type Backend } from '../../../kernels/index.ts';

function fake(name: string, ms: number, destroyed: string[]): Backend & { ms: number } {
  return { ...createCpuBackend(), name, ms, destroy: () => destroyed.push(name) } as Backend & { ms: number };
}

const probe = async (b: Backend) => (b as Backend & { ms: number }).ms;

describe('pickBackend', () => {
  it('keeps the fastest by the probe and destroys the others', async () => {
    const destroyed: string[] = [];
    const pick = await pickBackend(
      [
        { name: 'a', create: async () => fake('a', 5, destroyed) },
        { name: 'b', create: async () => fake('b', 2, destroyed) },
        { name: 'c', create: async () => fake('c', 9, destroyed) },
      ],
      probe,
    );
    expect(pick.name).toBe('b');
    expect(pick.trials).toEqual([{ name: 'a', ms: 5 }, { name: 'b', ms: 2 }, { name: 'c', ms: 9 }]);
    expect(destroyed.sort()).toEqual(['a', 'c']);
  });

  it('takes a candidate at once when it says so, and records candidates that fail to start', async () => {
    const destroyed: string[] = [];
    const pick = await pickBackend(
      [
        { name: 'broken', create: async () => { throw new KernelError('no adapter'); } },
        { name: 'slow', create: async () => fake('slow', 50, destroyed) },
        { name: 'gpu', create: async () => fake('gpu', 99, destroyed), takeAtOnce: () => true },
        { name: 'never', create: async () => { throw new Error('must not be created'); } },
      ],
      probe,
    );
    expect(pick.name).toBe('gpu');
    expect(pick.trials).toEqual([{ name: 'broken', error: 'no adapter' }, { name: 'slow', ms: 50 }, { name: 'gpu' }]);
    expect(destroyed).toEqual(['slow']);
  });

  it('throws naming every failure when no candidate starts', async () => {
    await expect(pickBackend([{ name: 'x', create: async () => { throw new Error('nope'); } }], probe)).rejects.toThrow(/x: nope/);
  });

  it('probes a real backend and leaves nothing allocated', async () => {
    const be = createCpuBackend();
    const before = be.bytesInUse();
    expect(await probeGemv(be)).toBeGreaterThan(0);
    expect(be.bytesInUse()).toBe(before);
  });
});
