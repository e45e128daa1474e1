import { describe, expect, it } from 'vitest';
import { Backoff } from '../../../swarm/backoff.ts';

describe('Backoff', () => {
  it('doubles from firstMs to the cap, spread by the jitter, and starts over after a reset', () => {
    let r = 0.5;
    const b = new Backoff({ firstMs: 1000, maxMs: 30_000, random: () => r });
    expect([1, 2, 3, 4, 5, 6, 7].map(() => b.next())).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(b.failures).toBe(7);
    b.reset();
    expect(b.failures).toBe(0);
    r = 0;
    expect(b.next()).toBeCloseTo(800);
    r = 0.999999;
    expect(b.next()).toBeCloseTo(2400, 0);
    // The jitter never takes a delay above the cap.
    for (let i = 0; i < 10; i++) b.next();
    expect(b.next()).toBe(30_000);
  });

  it('without jitter is a fixed cadence when firstMs equals maxMs', () => {
    const b = new Backoff({ firstMs: 5000, maxMs: 5000, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([5000, 5000, 5000]);
  });

  it('refuses bad settings by name', () => {
    expect(() => new Backoff({ firstMs: 0, maxMs: 10 })).toThrow(/firstMs 0/);
    expect(() => new Backoff({ firstMs: 100, maxMs: 10 })).toThrow(/maxMs 10/);
    expect(() => new Backoff({ firstMs: 1, maxMs: 10, jitter: 1 })).toThrow(/jitter/);
  });
});
