/** Spot checks decide whose claims count: pass → trusted, wrong bytes → banned, no answer → unproven, busy → no verdict. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { blake3Hex } from '../../../manifests/index.ts';
import { SpotChecker, type SpotCheckIo } from '../../../swarm/spot-check.ts';

const bytes = Uint8Array.from({ length: 5_000_000 }, (_, i) => (i * 31) & 0xff);
const small = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff);

async function setup(answer: (hash: string, offset: number, length: number) => Promise<Uint8Array>, holdBig: boolean) {
  const shards = [{ hash: await blake3Hex(bytes), size: bytes.length }, { hash: await blake3Hex(small), size: small.length }];
  const events: string[] = [];
  const io: SpotCheckIo = {
    request: (_id, hash, offset, length) => answer(hash, offset, length),
    held: (hash) => holdBig && hash === shards[0]!.hash,
    readLocal: async (_hash, offset, length) => bytes.subarray(offset, offset + length),
    ban: (id, why) => void events.push(`ban ${id}: ${why}`),
    changed: () => void events.push('changed'),
    log: () => undefined,
  };
  return { checker: new SpotChecker(io, 60_000), shards, events };
}

const honest = async (hash: string, offset: number, length: number) => (hash.startsWith((await blake3Hex(bytes)).slice(0, 8)) ? bytes : small).slice(offset, offset + length);
const settle = () => new Promise((r) => setTimeout(r, 50));

describe('SpotChecker', () => {
  it('trusts a peer that serves a claimed range equal to our copy', async () => {
    const { checker, shards, events } = await setup(honest, true);
    checker.maybeCheck('p', Uint8Array.of(0b11), shards);
    await settle();
    expect(checker.trusted('p')).toBe(true);
    expect(events).toEqual(['changed']);
  });

  it('verifies a small claimed shard whole when we hold none of its claims', async () => {
    const { checker, shards } = await setup(honest, false);
    checker.maybeCheck('p', Uint8Array.of(0b10), shards);
    await settle();
    expect(checker.trusted('p')).toBe(true);
  });

  it('bans a peer whose claimed bytes are wrong', async () => {
    const { checker, shards, events } = await setup(async (_h, _o, length) => new Uint8Array(length).fill(1), true);
    checker.maybeCheck('liar', Uint8Array.of(0b11), shards);
    await settle();
    expect(checker.trusted('liar')).toBe(false);
    expect(events.some((e) => e.startsWith('ban liar: claims shard'))).toBe(true);
  });

  it('leaves a peer that does not answer (or says "not held") unproven, and a busy one unjudged', async () => {
    const notHeld = await setup(async () => Promise.reject(new Error('not held')), true);
    notHeld.checker.maybeCheck('q', Uint8Array.of(0b11), notHeld.shards);
    await settle();
    expect(notHeld.checker.trusted('q')).toBe(false);
    expect(notHeld.events).toEqual([]);
    const busyErr = Object.assign(new Error('busy'), { name: 'PeerBusyError' });
    const busy = await setup(async () => Promise.reject(busyErr), true);
    busy.checker.maybeCheck('b', Uint8Array.of(0b11), busy.shards);
    await settle();
    expect(busy.checker.trusted('b')).toBe(false);
    expect(busy.events).toEqual([]);
  });

  // the big shard (5 MB) is over the 4 MiB whole-check limit
  it('does not check a peer that claims nothing checkable', async () => {
    let asked = 0;
    const { checker, shards } = await setup(async () => {
      asked++;
      return new Uint8Array();
    }, false);
    checker.maybeCheck('e', Uint8Array.of(0), shards);
    checker.maybeCheck('f', Uint8Array.of(0b01), shards); // claims only the big shard, which we do not hold
    await settle();
    expect(asked).toBe(0);
  });

  describe('placement of newcomers', () => {
    afterEach(() => void vi.useRealTimers());

    // the heal regression: a storage peer that joins empty was never placed a shard, so never claimed one to be checked on
    it('counts the budget of a newcomer that claims nothing at once, and keeps it once its first claim passes', async () => {
      const { checker, shards } = await setup(honest, true);
      checker.maybeCheck('n', Uint8Array.of(0), shards);
      expect(checker.placeable('n')).toBe(true);
      expect(checker.trusted('n')).toBe(false);
      checker.maybeCheck('n', Uint8Array.of(0b01), shards);
      expect(checker.placeable('n')).toBe(true); // still deciding: no flapping while the check runs
      await settle();
      expect(checker.trusted('n')).toBe(true);
      expect(checker.placeable('n')).toBe(true);
    });

    it('drops a newcomer whose first claim is not answered, or that proves nothing within a re-check period', async () => {
      const silent = await setup(async () => Promise.reject(new Error('not held')), true);
      silent.checker.maybeCheck('s', Uint8Array.of(0), silent.shards);
      silent.checker.maybeCheck('s', Uint8Array.of(0b01), silent.shards);
      await settle();
      expect(silent.checker.placeable('s')).toBe(false);
      expect(silent.events).toEqual(['changed']);

      vi.useFakeTimers({ toFake: ['Date'] });
      const idle = await setup(honest, true);
      idle.checker.maybeCheck('i', Uint8Array.of(0), idle.shards);
      vi.setSystemTime(Date.now() + 59_000);
      expect(idle.checker.placeable('i')).toBe(true);
      vi.setSystemTime(Date.now() + 2_000);
      expect(idle.checker.placeable('i')).toBe(false);
    });

    it('never counts the budget of a peer first seen claiming shards until it passes a check (busy liars stay out)', async () => {
      const busyErr = Object.assign(new Error('busy'), { name: 'PeerBusyError' });
      const { checker, shards } = await setup(async () => Promise.reject(busyErr), true);
      checker.maybeCheck('liar', Uint8Array.of(0b11), shards);
      expect(checker.placeable('liar')).toBe(false);
      await settle();
      expect(checker.placeable('liar')).toBe(false);
      expect(checker.placeable('unknown')).toBe(false);
    });
  });
});
