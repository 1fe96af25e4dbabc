// Goal: the in-memory state finds entries by the bytes of a key, whatever object carries them:
// one key object reused across contracts, or changed in place between calls.
import { describe, expect, it } from 'vitest';
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
