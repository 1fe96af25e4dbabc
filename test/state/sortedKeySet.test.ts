// Goal: the ordered key index behaves as a sorted set of byte strings through splits and merges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CHUNK_MAX, SortedKeySet } from '../../node/state/sortedKeySet.ts';

describe('SortedKeySet', () => {
  it('matches a sorted array under random adds, deletes and seeks (200 cases)', () => {
    const keyArb = fc
      .integer({ min: 0, max: 3 * CHUNK_MAX })
      .map((i) => String.fromCharCode(i % 256) + (i >> 8).toString());
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), keyArb), { maxLength: 6 * CHUNK_MAX }),
        fc.array(fc.tuple(keyArb, fc.boolean()), { maxLength: 20 }),
        (ops, seeks) => {
          const set = new SortedKeySet();
          const ref = new Set<string>();
          for (const [add, k] of ops) {
            if (add) expect(set.add(k)).toBe(!ref.has(k));
            else expect(set.delete(k)).toBe(ref.has(k));
            if (add) ref.add(k);
            else ref.delete(k);
          }
          expect(set.size).toBe(ref.size);
          const sorted = [...ref].sort();
          for (const [start, exclusive] of seeks) {
            const c = set.seek(start, exclusive);
            const got: string[] = [];
            for (let k = c.next(); k !== undefined; k = c.next()) got.push(k);
            expect(got).toEqual(sorted.filter((k) => (exclusive ? k > start : k >= start)));
            expect(set.has(start)).toBe(ref.has(start));
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('orders latin1 strings as their bytes', () => {
    const set = new SortedKeySet();
    for (const k of ['\u00ff', 'a', '', 'a\u0000', '\u0080', 'A']) set.add(k);
    const c = set.seek('', false);
    const out: string[] = [];
    for (let k = c.next(); k !== undefined; k = c.next()) out.push(Buffer.from(k, 'latin1').toString('hex'));
    expect(out).toEqual(['', '41', '61', '6100', '80', 'ff']);
  });
});
