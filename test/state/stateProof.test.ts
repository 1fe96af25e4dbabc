// Goal: proofs verify as a pure function of (root, contract, key, value, proof): golden roots pin
// the hashing rules, the encoding is canonical, and malformed proofs are refused, never thrown.
import { describe, expect, it } from 'vitest';
import { pack } from '../../core/codec.ts';
import {
  EMPTY_STATE_ROOT,
  STATE_PROOF_TAG,
  decodeStateProof,
  encodeStateProof,
  stateKeyHash,
  verifyStateProof,
  writeStateKeyHash,
  type StateProof,
} from '../../core/stateProof.ts';
import { createMemoryStore } from '../../node/storage/kv.ts';
import { encodeStateKey } from '../../node/state/stateLayout.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { b, commit } from './backends.ts';

async function smallTree() {
  const kv = createMemoryStore();
  const store = await openStateStore(kv);
  const v = store.view();
  v.set('alpha', b('a'), b('x'));
  v.set('alpha', b('b'), b('y'));
  v.set('beta', b(''), b(''));
  await commit(kv, store, v, 0);
  return store;
}

describe('state hashing rules (golden vectors)', () => {
  it('pins key hashes and roots', async () => {
    expect(Buffer.from(stateKeyHash('alpha', b('a'))).toString('hex')).toBe(
      'b42682c7e65eebc4628c6ecd871472794bd4541b5655e3964ee835838b59db98',
    );
    // The encoding is unambiguous: moving a byte between contract and key changes the hash.
    expect(Buffer.from(stateKeyHash('ab', b('c'))).equals(Buffer.from(stateKeyHash('a', b('bc'))))).toBe(
      false,
    );
    const store = await smallTree();
    expect(Buffer.from(store.root).toString('hex')).toBe(
      'fa327977ce7d24dcb5fda0c37cb9e6a21206da48436335a7ff2eb40589b3d063',
    );
    const kv = createMemoryStore();
    const one = await openStateStore(kv);
    const v = one.view();
    expect(Buffer.from(v.root()).equals(EMPTY_STATE_ROOT)).toBe(true);
    v.set('alpha', b('a'), b('x'));
    expect(Buffer.from(v.root()).toString('hex')).toBe(
      '19a5a9af3e8a66ee4dc1ecdde16be9b0f142528cbcf551734890e48e5e69920b',
    );
  });

  it('hashes a flat-index key to the key hash of its (contract, key), as a store opening does', () => {
    const to = Buffer.alloc(40);
    for (const [contract, key] of [
      ['alpha', b('a')],
      ['ab', b('c')],
      ['a', b('bc')],
      ['_sys.x', b('')],
      ['c', Buffer.alloc(1024, 0xff)],
    ] as const) {
      writeStateKeyHash(encodeStateKey(contract, key), to, 3);
      expect(to.subarray(3, 35).equals(Buffer.from(stateKeyHash(contract, key)))).toBe(true);
    }
  });
});

describe('proof verification', () => {
  it('proves presence and absence, and an empty tree proves every key absent', async () => {
    const store = await smallTree();
    const p = store.prove('alpha', b('a'));
    expect(Buffer.from(p.value!).toString()).toBe('x');
    expect(verifyStateProof(store.root, 'alpha', b('a'), b('x'), p.proof)).toBe(true);
    expect(verifyStateProof(store.root, 'alpha', b('a'), b('y'), p.proof)).toBe(false);
    expect(verifyStateProof(store.root, 'alpha', b('a'), undefined, p.proof)).toBe(false);
    const absent = store.prove('alpha', b('zzz'));
    expect(absent.value).toBeUndefined();
    expect(verifyStateProof(store.root, 'alpha', b('zzz'), undefined, absent.proof)).toBe(true);
    expect(verifyStateProof(store.root, 'alpha', b('zzz'), b(''), absent.proof)).toBe(false);
    const empty: StateProof = { leaf: null, levels: [] };
    expect(verifyStateProof(EMPTY_STATE_ROOT, 'any', b('key'), undefined, empty)).toBe(true);
    expect(verifyStateProof(store.root, 'any', b('key'), undefined, empty)).toBe(false);
  });

  it('returns false, never throws, on malformed arguments', async () => {
    const store = await smallTree();
    const { proof } = store.prove('alpha', b('a'));
    const junk: unknown[] = [
      null,
      undefined,
      7,
      'x',
      {},
      { leaf: null },
      { leaf: null, levels: 'x' },
      { leaf: 5, levels: [] },
    ];
    for (const j of junk)
      expect(verifyStateProof(store.root, 'alpha', b('a'), b('x'), j as StateProof)).toBe(false);
    const badLevels = [
      null,
      { bitmap: -1, siblings: [] },
      { bitmap: 0x10000, siblings: [] },
      { bitmap: 1.5, siblings: [] },
      { bitmap: 3, siblings: 'x' },
    ];
    for (const l of badLevels) {
      expect(
        verifyStateProof(store.root, 'alpha', b('a'), b('x'), { leaf: proof.leaf, levels: [l as never] }),
      ).toBe(false);
    }
    expect(verifyStateProof(b('short'), 'alpha', b('a'), b('x'), proof)).toBe(false);
    expect(verifyStateProof(store.root, 'bad name!', b('a'), b('x'), proof)).toBe(false);
    expect(verifyStateProof(store.root, 'alpha', 'a' as never, b('x'), proof)).toBe(false);
    expect(verifyStateProof(store.root, 'alpha', b('a'), 'x' as never, proof)).toBe(false);
    expect(
      verifyStateProof(store.root, 'alpha', b('a'), b('x'), {
        ...proof,
        levels: new Array(65).fill(proof.levels[0]),
      }),
    ).toBe(false);
  });

  it("an exclusion proof through another key's leaf must place that leaf on the key's path", async () => {
    const store = await smallTree();
    const present = store.prove('alpha', b('a'));
    // Reusing a's leaf (a different key) to claim b is absent fails: a's leaf is not on b's path
    // at that depth, or the root does not match.
    expect(verifyStateProof(store.root, 'alpha', b('b'), undefined, present.proof)).toBe(false);
  });
});

describe('proof encoding', () => {
  it('round-trips canonically', async () => {
    const store = await smallTree();
    for (const key of ['a', 'b', 'zzz']) {
      const { proof, value } = store.prove('alpha', b(key));
      const bytes = encodeStateProof(proof);
      const back = decodeStateProof(bytes);
      expect(Buffer.from(encodeStateProof(back)).equals(Buffer.from(bytes))).toBe(true);
      expect(verifyStateProof(store.root, 'alpha', b(key), value, back)).toBe(true);
    }
  });

  it('refuses wrong tags, shapes, non-canonical siblings and trailing bytes', async () => {
    const store = await smallTree();
    const { proof } = store.prove('alpha', b('a'));
    const levels = proof.levels.map((l) => [l.bitmap, Buffer.concat(l.siblings as Buffer[])]);
    const leaf = [proof.leaf!.keyHash, proof.leaf!.valueHash];
    const h = Buffer.alloc(32, 1);
    const bad: Array<[unknown, string]> = [
      [['trellis.other.v1', leaf, levels], 'WRONG_TAG'],
      [[STATE_PROOF_TAG, leaf], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, [h], levels], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, [h, Buffer.alloc(31)], levels], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, null, [[0x10000, Buffer.alloc(0)]]], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, null, [[3, Buffer.alloc(32)]]], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, null, [[0xffff, Buffer.alloc(16 * 32)]]], 'WRONG_SHAPE'],
      [[STATE_PROOF_TAG, null, [[1, Buffer.from(EMPTY_STATE_ROOT)]]], 'NON_CANONICAL'],
      [[STATE_PROOF_TAG, null, new Array(65).fill([1, h])], 'TOO_LARGE'],
    ];
    for (const [value, code] of bad)
      expect(() => decodeStateProof(pack(value))).toThrow(expect.objectContaining({ code }));
    const good = encodeStateProof(proof);
    expect(() => decodeStateProof(Buffer.concat([good, Buffer.of(0)]))).toThrow(
      expect.objectContaining({ code: 'TRAILING_BYTES' }),
    );
    expect(() => decodeStateProof(Buffer.of(0x93))).toThrow(expect.objectContaining({ code: 'MALFORMED' }));
  });
});
