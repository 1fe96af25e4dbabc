// Goal: the state tree agrees with a naive reference model on every root, value, range and proof,
// whatever the writes, checkpoints, batching and restarts, and tampered proofs never verify.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bytes } from '../../core/bytes.ts';
import {
  StateError,
  decodeStateProof,
  encodeStateProof,
  verifyStateProof,
  type StateProof,
} from '../../core/stateProof.ts';
import type { KvStore } from '../../node/storage/kv.ts';
import { openStateStore, type StateStore } from '../../node/state/stateStore.ts';
import type { StateStoreView } from '../../node/state/stateView.ts';
import { BACKENDS, b, commit, deepKeys, type Backend } from './backends.ts';
import { ReferenceModel } from './referenceModel.ts';

const CONTRACTS = ['alpha', 'beta'] as const;
// Deep keys share long hash prefixes under 'alpha'; the short keys exercise byte order in ranges
// (the empty key, a zero byte, bytes above 0x7f, keys that are prefixes of others).
// Two runs of ten keys sharing a prefix make chains of internal nodes that split and collapse as
// keys come and go (leaves moving between their parent's buffer and nodes below).
const POOL: Uint8Array[] = [
  ...deepKeys('alpha', 2, 10),
  ...deepKeys('alpha', 3, 3),
  b(''),
  b('a'),
  b('ab'),
  b('abc'),
  b('b'),
  Uint8Array.of(0x61, 0x00),
  Uint8Array.of(0xff),
  Uint8Array.of(0x80, 0x01),
];
const PREFIXES: Uint8Array[] = [b(''), b('a'), b('ab'), b('deep/'), Uint8Array.of(0xff), b('zz')];

type Step =
  | { op: 'set'; c: number; k: number; v: Uint8Array }
  | { op: 'del'; c: number; k: number }
  | { op: 'get'; c: number; k: number }
  | { op: 'cp' | 'cpCommit' | 'cpRevert' | 'root' | 'commit' | 'reopen' }
  | { op: 'range'; c: number; p: number; limit: number; after: number | null };

const cArb = fc.nat(CONTRACTS.length - 1);
const kArb = fc.nat(POOL.length - 1);
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant('set' as const),
      c: cArb,
      k: kArb,
      v: fc.uint8Array({ maxLength: 6 }),
    }),
  },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('del' as const), c: cArb, k: kArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('get' as const), c: cArb, k: kArb }) },
  {
    weight: 6,
    arbitrary: fc.record({
      op: fc.constantFrom(
        'cp' as const,
        'cpCommit' as const,
        'cpRevert' as const,
        'root' as const,
        'commit' as const,
        'reopen' as const,
      ),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('range' as const),
      c: cArb,
      p: fc.nat(PREFIXES.length - 1),
      limit: fc.nat(6),
      after: fc.option(kArb),
    }),
  },
);

/** Every applicable tampering of a valid proof; each must fail to verify. */
function tamperings(root: Bytes, key: Bytes, value: Bytes | undefined, proof: StateProof) {
  const out: Array<{ name: string; root: Bytes; value: Bytes | undefined; proof: StateProof }> = [];
  const flip = (x: Bytes, i = 0): Buffer => {
    const y = Buffer.from(x);
    y[i % y.length]! ^= 1;
    return y;
  };
  out.push({ name: 'root', root: flip(root, 7), value, proof });
  if (value !== undefined) {
    out.push({ name: 'value', root, value: Buffer.concat([value, b('!')]), proof });
    out.push({ name: 'absent', root, value: undefined, proof });
  } else out.push({ name: 'present', root, value: b('x'), proof });
  if (proof.leaf !== null) {
    out.push({
      name: 'leaf.valueHash',
      root,
      value,
      proof: { ...proof, leaf: { ...proof.leaf, valueHash: flip(proof.leaf.valueHash) } },
    });
    out.push({
      name: 'leaf.keyHash',
      root,
      value,
      proof: { ...proof, leaf: { ...proof.leaf, keyHash: flip(proof.leaf.keyHash, 31) } },
    });
    out.push({ name: 'no leaf', root, value, proof: { ...proof, leaf: null } });
  }
  proof.levels.forEach((level, d) => {
    const levels = (l: (typeof proof.levels)[number]) => proof.levels.map((x, i) => (i === d ? l : x));
    if (level.siblings.length > 0) {
      out.push({
        name: `sibling ${d}`,
        root,
        value,
        proof: {
          ...proof,
          levels: levels({ ...level, siblings: level.siblings.map((s, i) => (i === 0 ? flip(s, 5) : s)) }),
        },
      });
    }
    // Moving a sibling to another free slot changes the node.
    for (let bit = 0; bit < 16; bit++) {
      if ((level.bitmap >> bit) & 1 || level.siblings.length === 0) continue;
      const low = level.bitmap & -level.bitmap;
      const moved = (level.bitmap & ~low) | (1 << bit);
      if (moved === level.bitmap) continue;
      out.push({
        name: `bitmap ${d}`,
        root,
        value,
        proof: { ...proof, levels: levels({ ...level, bitmap: moved }) },
      });
      break;
    }
  });
  if (proof.levels.length > 0)
    out.push({ name: 'drop level', root, value, proof: { ...proof, levels: proof.levels.slice(0, -1) } });
  out.push({
    name: 'extra level',
    root,
    value,
    proof: { ...proof, levels: [...proof.levels, { bitmap: 1 << 3, siblings: [flip(root)] }] },
  });
  return out;
}

describe.each(BACKENDS)('state store against the reference model (%s)', (_name, make) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await make();
  });
  afterAll(() => backend.close());

  it('roots, values, ranges and proofs agree with the model; tampering fails (1,000 cases)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { maxLength: 40 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 3 }),
        fc.nat(),
        async (steps, retain, memoryVersions, seed) => {
          const kv: KvStore = backend.fresh();
          // Few versions in memory: proofs against the others rebuild their trees from stale records.
          let store: StateStore = await openStateStore(kv, { retainVersions: retain, memoryVersions });
          let view: StateStoreView = store.view();
          let base = new ReferenceModel();
          let cur = base.clone();
          let stack: ReferenceModel[] = [];
          const versions = new Map<number, ReferenceModel>();
          let version = -1;
          const commitView = async (): Promise<void> => {
            while (view.depth > 0) view.commit();
            stack = [];
            version++;
            const root = await commit(kv, store, view, version);
            expect(Buffer.from(root).equals(cur.root())).toBe(true);
            expect(Buffer.from(store.root).equals(root)).toBe(true);
            base = cur;
            versions.set(version, base.clone());
            view = store.view();
            cur = base.clone();
          };
          for (const s of steps) {
            switch (s.op) {
              case 'set':
                view.set(CONTRACTS[s.c]!, POOL[s.k]!, s.v);
                cur.set(CONTRACTS[s.c]!, POOL[s.k]!, s.v);
                break;
              case 'del':
                view.delete(CONTRACTS[s.c]!, POOL[s.k]!);
                cur.delete(CONTRACTS[s.c]!, POOL[s.k]!);
                break;
              case 'get': {
                const want = cur.get(CONTRACTS[s.c]!, POOL[s.k]!);
                const got = view.get(CONTRACTS[s.c]!, POOL[s.k]!);
                expect(got === undefined ? undefined : Buffer.from(got).toString('hex')).toBe(
                  want === undefined ? undefined : Buffer.from(want).toString('hex'),
                );
                expect(view.has(CONTRACTS[s.c]!, POOL[s.k]!)).toBe(want !== undefined);
                break;
              }
              case 'cp':
                view.checkpoint();
                stack.push(cur.clone());
                break;
              case 'cpCommit':
                if (stack.length === 0) expect(() => view.commit()).toThrow(StateError);
                else {
                  view.commit();
                  stack.pop();
                }
                break;
              case 'cpRevert':
                if (stack.length === 0) expect(() => view.revert()).toThrow(StateError);
                else {
                  view.revert();
                  cur = stack.pop()!;
                }
                break;
              case 'root':
                expect(Buffer.from(view.root()).equals(cur.root())).toBe(true);
                break;
              case 'commit':
                await commitView();
                break;
              case 'reopen':
                // A restart: uncommitted writes are lost, the committed version comes back.
                store = await openStateStore(kv, {
                  retainVersions: retain,
                  memoryVersions,
                  ...(version >= 0 ? { version } : {}),
                });
                view = store.view();
                cur = base.clone();
                stack = [];
                break;
              case 'range': {
                const c = CONTRACTS[s.c]!;
                const after = s.after === null ? undefined : POOL[s.after]!;
                const got = view.range(c, PREFIXES[s.p]!, s.limit, after);
                const want = cur.range(c, PREFIXES[s.p]!, s.limit, after);
                const hex = (l: Array<[Bytes, Bytes]>) =>
                  l.map(([k, v]) => [Buffer.from(k).toString('hex'), Buffer.from(v).toString('hex')]);
                expect(hex(got)).toEqual(hex(want));
                break;
              }
            }
          }
          await commitView();

          const oldest = Math.max(0, version - retain + 1);
          expect(store.oldestVersion).toBe(oldest);
          for (const [v, model] of versions) {
            if (v < oldest) {
              expect(() => store.rootAt(v)).toThrow(expect.objectContaining({ code: 'VERSION_PRUNED' }));
              continue;
            }
            expect(Buffer.from(store.rootAt(v)).equals(model.root())).toBe(true);
          }
          // Every key at a retained version: value and proof agree with that version's model.
          let n = seed;
          const pick = (m: number): number => (n = (n * 1103515245 + 12345) % 2 ** 31) % m;
          const v = oldest + pick(version - oldest + 1);
          const model = versions.get(v)!;
          const root = model.root();
          let tampered = false;
          for (const c of CONTRACTS) {
            for (const key of POOL) {
              const want = model.get(c, key);
              const got = store.getAt(v, c, key);
              expect(got === undefined ? undefined : Buffer.from(got).toString('hex')).toBe(
                want === undefined ? undefined : Buffer.from(want).toString('hex'),
              );
              const p = store.prove(c, key, v);
              expect(p.version).toBe(v);
              expect(Buffer.from(p.root).equals(root)).toBe(true);
              expect(p.value === undefined ? undefined : Buffer.from(p.value).toString('hex')).toBe(
                want === undefined ? undefined : Buffer.from(want).toString('hex'),
              );
              // The proof travels as canonical bytes.
              const proof = decodeStateProof(encodeStateProof(p.proof));
              expect(verifyStateProof(root, c, key, want, proof)).toBe(true);
              if (!tampered && pick(4) === 0) {
                tampered = true;
                for (const t of tamperings(root, key, want, proof)) {
                  expect([t.name, verifyStateProof(t.root, c, key, t.value, t.proof)]).toEqual([
                    t.name,
                    false,
                  ]);
                }
              }
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('the same writes give the same root whatever the batching and restarts (300 cases)', async () => {
    const writeArb = fc.record({ c: cArb, k: kArb, v: fc.option(fc.uint8Array({ maxLength: 4 })) });
    await fc.assert(
      fc.asyncProperty(
        fc.array(writeArb, { minLength: 1, maxLength: 30 }),
        fc.array(fc.constantFrom('none', 'commit', 'commit+reopen'), { minLength: 30, maxLength: 30 }),
        async (writes, cuts) => {
          const model = new ReferenceModel();
          for (const w of writes) {
            if (w.v === null) model.delete(CONTRACTS[w.c]!, POOL[w.k]!);
            else model.set(CONTRACTS[w.c]!, POOL[w.k]!, w.v);
          }
          const kv = backend.fresh();
          let store = await openStateStore(kv);
          let view = store.view();
          let version = 0;
          for (let i = 0; i < writes.length; i++) {
            const w = writes[i]!;
            if (w.v === null) view.delete(CONTRACTS[w.c]!, POOL[w.k]!);
            else view.set(CONTRACTS[w.c]!, POOL[w.k]!, w.v);
            if (cuts[i] !== 'none') {
              await commit(kv, store, view, version++);
              if (cuts[i] === 'commit+reopen') store = await openStateStore(kv, { version: version - 1 });
              view = store.view();
            }
          }
          await commit(kv, store, view, version);
          expect(Buffer.from(store.root).equals(model.root())).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});
