// Goal: per-peer queues never exceed their bounds, never throw when full, and drop by their stated policy.
import { describe, expect, it } from 'vitest';
import { backoffDelayMs } from '../../node/p2p/backoff.ts';
import { createBoundedQueue } from '../../node/p2p/boundedQueue.ts';
import { P2pError } from '../../node/p2p/errors.ts';

const item = (n: number, size = 1): Uint8Array => new Uint8Array(size).fill(n);

describe('bounded queue', () => {
  it('drop-oldest keeps the newest items and counts the dropped', () => {
    const q = createBoundedQueue({ maxItems: 3, maxBytes: 100, policy: 'drop-oldest' });
    for (let i = 0; i < 5; i++) expect(q.push(item(i))).toBe(true);
    expect(q.stats()).toEqual({ depth: 3, bytes: 3, enqueued: 5, dropped: 2 });
    expect(q.peek()?.[0]).toBe(2);
    expect(q.length).toBe(3);
    expect([q.shift()?.[0], q.shift()?.[0], q.shift()?.[0], q.shift()]).toEqual([2, 3, 4, undefined]);
    expect(q.peek()).toBeUndefined();
  });

  it('drop-newest refuses new items and keeps the prefix', () => {
    const q = createBoundedQueue({ maxItems: 3, maxBytes: 100, policy: 'drop-newest' });
    const accepted = [0, 1, 2, 3, 4].map((i) => q.push(item(i)));
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(q.stats()).toEqual({ depth: 3, bytes: 3, enqueued: 3, dropped: 2 });
    expect(q.shift()?.[0]).toBe(0);
  });

  it('bounds bytes as well as count', () => {
    const q = createBoundedQueue({ maxItems: 100, maxBytes: 10, policy: 'drop-oldest' });
    q.push(item(1, 4));
    q.push(item(2, 4));
    q.push(item(3, 4)); // 12 bytes would not fit: the oldest goes
    expect(q.stats()).toMatchObject({ depth: 2, bytes: 8, dropped: 1 });
    expect(q.push(item(9, 11))).toBe(false); // larger than the whole queue
    expect(q.stats()).toMatchObject({ depth: 2, bytes: 8, dropped: 2 });
  });

  it('puts back an unsent item at the head, or drops it if the queue filled meanwhile', () => {
    const q = createBoundedQueue({ maxItems: 2, maxBytes: 100, policy: 'drop-oldest' });
    q.push(item(1));
    q.push(item(2));
    const head = q.shift();
    if (head === undefined) throw new Error('empty');
    q.unshift(head);
    expect(q.shift()?.[0]).toBe(1);
    q.push(item(3));
    q.unshift(head); // full again: 2 and 3 wait
    expect(q.stats()).toMatchObject({ depth: 2, dropped: 1 });
    q.clear();
    expect(q.stats()).toMatchObject({ depth: 0, bytes: 0, dropped: 3 });
  });

  it('refuses nonsense bounds', () => {
    expect(() => createBoundedQueue({ maxItems: 0, maxBytes: 1, policy: 'drop-oldest' })).toThrow(P2pError);
  });
});

describe('reconnection backoff', () => {
  it('grows exponentially from the base, is capped, and jitters within [half, full]', () => {
    expect(backoffDelayMs(0, 100, 10_000, 0)).toBe(50);
    expect(backoffDelayMs(0, 100, 10_000, 0.999999)).toBe(100);
    expect(backoffDelayMs(3, 100, 10_000, 0)).toBe(400);
    expect(backoffDelayMs(3, 100, 10_000, 0.5)).toBe(600);
    expect(backoffDelayMs(50, 100, 10_000, 0)).toBe(5_000);
    expect(backoffDelayMs(50, 100, 10_000, 0.999999)).toBe(10_000);
    for (let a = 0; a < 40; a++) expect(backoffDelayMs(a, 100, 10_000, 1)).toBeLessThanOrEqual(10_000);
  });
});
