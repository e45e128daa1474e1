import { describe, expect, it } from 'vitest';
import { RequestQueue } from '../../../api/queue.ts';

describe('RequestQueue', () => {
  it('runs one at a time in arrival order, and a waiter that aborts leaves the line', async () => {
    const q = new RequestQueue();
    const order: string[] = [];
    const r1 = await q.acquire();
    const gone = new AbortController();
    const p2 = q.acquire(gone.signal);
    const p3 = q.acquire().then((release) => (order.push('3'), release));
    expect(q.depth).toBe(3);
    gone.abort(new Error('client left'));
    await expect(p2).rejects.toThrow('client left');
    expect(q.depth).toBe(2);
    order.push('1');
    r1();
    r1(); // releasing twice frees one turn only
    const r3 = await p3;
    expect(order).toEqual(['1', '3']);
    expect(q.depth).toBe(1);
    r3();
    expect(q.depth).toBe(0);
    await expect(q.acquire(AbortSignal.abort())).resolves.toBeTypeOf('function');
  });
});
