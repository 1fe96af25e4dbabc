// Goal: the in-memory state finds entries by the bytes of a key, whatever object carries them
// (one key object reused across contracts, or changed in place between calls), and its root and
// entries follow the order of contract, then key bytes.
import { describe, expect, it } from 'vitest';
import { compareBytes, toHex } from '../../core/bytes.ts';
import { pack } from '../../core/codec.ts';
import { merkleRoot } from '../../core/merkle.ts';
import { createMemoryState } from '../../vm/memoryState.ts';

describe('memory state keys', () => {
  it('a reused key object reads and writes by its current bytes and the given contract', () => {
    const state = createMemoryState();
    const key = Buffer.from('bal:a');
    state.set('c1', key, Uint8Array.of(1));
    state.set('c2', key, Uint8Array.of(2));
    expect(state.get('c1', key)).toEqual(Uint8Array.of(1));
    expect(state.get('c2', key)).toEqual(Uint8Array.of(2));
    key[4] = 0x62; // now 'bal:b'
    expect(state.get('c1', key)).toBeUndefined();
    state.set('c1', key, Uint8Array.of(3));
    expect(state.get('c1', Buffer.from('bal:b'))).toEqual(Uint8Array.of(3));
    expect(state.get('c1', Buffer.from('bal:a'))).toEqual(Uint8Array.of(1));
    expect(state.has('c1', Uint8Array.from(Buffer.from('bal:a')))).toBe(true);
    expect(state.size).toBe(3);
  });
});

describe('memory state root', () => {
  it('orders entries by contract, then key bytes, whatever the names and bytes', () => {
    // The root sorts entry ids as strings; it must give the order of (contract, key bytes), also
    // for contract names that prefix each other, keys with high bytes and keys prefixing others.
    const reference = (entries: Array<[string, Uint8Array, Uint8Array]>): string =>
      toHex(
        merkleRoot(
          [...entries]
            .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : compareBytes(a[1], b[1])))
            .map(([c, k, v]) => pack([c, k, v])),
        ),
      );
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const contracts of [
      ['a', 'a.b', 'a-', 'ab', '$nonce', 'b', 'A'],
      ['a', 'a\u0000', 'a\u0000b', 'b'],
    ]) {
      const state = createMemoryState();
      const live = new Map<string, [string, Uint8Array, Uint8Array]>();
      for (let i = 0; i < 300; i++) {
        const c = contracts[rnd(contracts.length)]!;
        const key = Uint8Array.from({ length: rnd(4) }, () => [0, 1, 0x61, 0x7f, 0x80, 0xff][rnd(6)]!);
        const value = Uint8Array.of(rnd(256));
        state.set(c, key, value);
        live.set(`${c}/${toHex(key)}`, [c, key, value]);
      }
      expect(toHex(state.root())).toBe(reference([...live.values()]));
      expect(state.entries().map(([c, k]) => `${c}/${toHex(k)}`)).toEqual(
        [...live.values()]
          .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : compareBytes(a[1], b[1])))
          .map(([c, k]) => `${c}/${toHex(k)}`),
      );
    }
  });
});
