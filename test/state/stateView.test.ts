// Goal: a state view behaves as the VM needs (nested checkpoints, reads through the overlay, range
// scans in key order, bad input refused without changing anything) on both storage backends.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bytes } from '../../core/bytes.ts';
import {
  EMPTY_STATE_ROOT,
  MAX_STATE_KEY_BYTES,
  MAX_STATE_RANGE_LIMIT,
  MAX_STATE_VALUE_BYTES,
  verifyStateProof,
} from '../../core/stateProof.ts';
import type { KvStore } from '../../node/storage/kv.ts';
import { encodeStateKey, putEntry, valueKey } from '../../node/state/stateLayout.ts';
import { openStateStore, type StateStore } from '../../node/state/stateStore.ts';
import { BACKENDS, b, commit, deepKeys, type Backend } from './backends.ts';
import { ReferenceModel } from './referenceModel.ts';

const hex = (x: Bytes | undefined): string | undefined =>
  x === undefined ? undefined : Buffer.from(x).toString('hex');
const str = (x: Bytes | undefined): string | undefined =>
  x === undefined ? undefined : Buffer.from(x).toString('utf8');
const keysOf = (l: Array<[Bytes, Bytes]>): string[] => l.map(([k]) => Buffer.from(k).toString('latin1'));

async function countKeys(kv: KvStore): Promise<number> {
  let n = 0;
  for await (const _ of kv.scan({})) n++;
  return n;
}

describe.each(BACKENDS)('state view (%s)', (_name, make) => {
  let backend: Backend;
  let kv: KvStore;
  let store: StateStore;
  beforeAll(async () => {
    backend = await make();
  });
  afterAll(() => backend.close());

  const fresh = async (): Promise<void> => {
    kv = backend.fresh();
    store = await openStateStore(kv);
  };

  describe('checkpoints', () => {
    it('revert discards the writes since the checkpoint, commit keeps them for the parent', async () => {
      await fresh();
      const base = store.view();
      base.set('c', b('a'), b('0'));
      await commit(kv, store, base, 0);
      const v = store.view();
      const root0 = v.root();
      expect(v.depth).toBe(0);
      v.checkpoint();
      v.set('c', b('a'), b('1'));
      v.checkpoint();
      v.set('c', b('a'), b('2'));
      v.set('c', b('b'), b('x'));
      v.delete('c', b('a'));
      expect(v.depth).toBe(2);
      expect(v.get('c', b('a'))).toBeUndefined();
      v.revert();
      expect(v.depth).toBe(1);
      expect(str(v.get('c', b('a')))).toBe('1');
      expect(v.has('c', b('b'))).toBe(false);
      v.commit();
      expect(v.depth).toBe(0);
      expect(str(v.get('c', b('a')))).toBe('1');
      const m = new ReferenceModel();
      m.set('c', b('a'), b('1'));
      expect(Buffer.from(v.root()).equals(m.root())).toBe(true);
      expect(Buffer.from(v.root()).equals(root0)).toBe(false);
    });

    it('reverting an outer checkpoint undoes inner checkpoints that were committed', async () => {
      await fresh();
      const v = store.view();
      const empty = v.root();
      v.checkpoint();
      v.set('c', b('x'), b('1'));
      v.checkpoint();
      v.set('c', b('y'), b('2'));
      v.commit();
      v.revert();
      expect(v.get('c', b('x'))).toBeUndefined();
      expect(v.get('c', b('y'))).toBeUndefined();
      expect(Buffer.from(v.root()).equals(empty)).toBe(true);
      expect(Buffer.from(empty).equals(EMPTY_STATE_ROOT)).toBe(true);
    });

    it('a delete reverted restores the committed value and root', async () => {
      await fresh();
      const w = store.view();
      w.set('c', b('k'), b('v'));
      await commit(kv, store, w, 0);
      const v = store.view();
      const before = v.root();
      v.checkpoint();
      v.delete('c', b('k'));
      expect(v.has('c', b('k'))).toBe(false);
      expect(Buffer.from(v.root()).equals(before)).toBe(false);
      v.revert();
      expect(str(v.get('c', b('k')))).toBe('v');
      expect(Buffer.from(v.root()).equals(before)).toBe(true);
    });

    it('root() between writes on deep shared paths rehashes every changed path', async () => {
      // Regression: a node changed in place below its parent must clear the parent's hash.
      await fresh();
      const [k1, k2, k3] = deepKeys('c', 1, 3, 20_000);
      const v = store.view();
      const m = new ReferenceModel();
      for (const [k, val] of [
        [k1!, b('1')],
        [k2!, b('2')],
        [k3!, b('3')],
        [k2!, b('4')],
      ] as const) {
        v.set('c', k, val);
        m.set('c', k, val);
        expect(Buffer.from(v.root()).equals(m.root())).toBe(true);
      }
      v.delete('c', k1!);
      m.delete('c', k1!);
      expect(Buffer.from(v.root()).equals(m.root())).toBe(true);
      expect(Buffer.from(await commit(kv, store, v, 0)).equals(m.root())).toBe(true);
    });

    it('commit or revert without a checkpoint is refused and changes nothing', async () => {
      await fresh();
      const v = store.view();
      v.set('c', b('k'), b('v'));
      expect(() => v.commit()).toThrow(expect.objectContaining({ code: 'NO_CHECKPOINT' }));
      expect(() => v.revert()).toThrow(expect.objectContaining({ code: 'NO_CHECKPOINT' }));
      expect(str(v.get('c', b('k')))).toBe('v');
    });

    it('a view with an open checkpoint cannot be committed', async () => {
      await fresh();
      const v = store.view();
      v.checkpoint();
      v.set('c', b('k'), b('v'));
      expect(() => store.commitOps(v, 0)).toThrow(expect.objectContaining({ code: 'OPEN_CHECKPOINT' }));
      v.commit();
      await commit(kv, store, v, 0);
      expect(str(store.getAt(0, 'c', b('k')))).toBe('v');
    });

    it('root() writes nothing', async () => {
      await fresh();
      const v = store.view();
      for (let i = 0; i < 50; i++) v.set('c', b(`k${i}`), b(`v${i}`));
      v.root();
      v.root();
      expect(await countKeys(kv)).toBe(0);
    });
  });

  describe('versions and commits', () => {
    it('a view is bound to the version it was opened on', async () => {
      await fresh();
      const a = store.view();
      const other = store.view();
      a.set('c', b('k'), b('1'));
      await commit(kv, store, a, 0);
      expect(() => a.get('c', b('k'))).toThrow(expect.objectContaining({ code: 'VIEW_CLOSED' }));
      expect(() => other.get('c', b('k'))).toThrow(expect.objectContaining({ code: 'STALE_VIEW' }));
      expect(str(store.view().get('c', b('k')))).toBe('1');
    });

    it('versions follow one another; a foreign view is refused', async () => {
      await fresh();
      await commit(kv, store, store.view(), 5);
      expect(store.version).toBe(5);
      expect(() => store.commitOps(store.view(), 7)).toThrow(
        expect.objectContaining({ code: 'BAD_VERSION' }),
      );
      expect(() => store.commitOps(store.view(), 5)).toThrow(
        expect.objectContaining({ code: 'BAD_VERSION' }),
      );
      const elsewhere = await openStateStore(backend.fresh());
      expect(() => store.commitOps(elsewhere.view(), 6)).toThrow(
        expect.objectContaining({ code: 'BAD_OPTIONS' }),
      );
      expect(store.version).toBe(5);
    });

    it('an abandoned commit (batch never written) leaves the store on the old version', async () => {
      await fresh();
      const v0 = store.view();
      v0.set('c', b('k'), b('old'));
      await commit(kv, store, v0, 0);
      const lost = store.view();
      lost.set('c', b('k'), b('lost'));
      const dropped = store.commitOps(lost, 1);
      expect(dropped.ops.length).toBeGreaterThan(0);
      expect(store.version).toBe(0);
      const v1 = store.view();
      expect(str(v1.get('c', b('k')))).toBe('old');
      v1.set('c', b('k'), b('new'));
      await commit(kv, store, v1, 1);
      expect(() => dropped.finalize()).toThrow(expect.objectContaining({ code: 'STALE_VIEW' }));
      expect(str(store.getAt(1, 'c', b('k')))).toBe('new');
      expect(str(store.getAt(0, 'c', b('k')))).toBe('old');
    });

    it('a reopened store rebuilds its tree; proofs against older versions rebuild theirs', async () => {
      await fresh();
      store = await openStateStore(kv, { memoryVersions: 2 });
      const models: ReferenceModel[] = [];
      const m = new ReferenceModel();
      for (let version = 0; version < 6; version++) {
        const v = store.view();
        for (let i = 0; i < 200; i++) {
          const key = b(`k${(version * 37 + i) % 500}`);
          if (i % 9 === 4) {
            v.delete('c', key);
            m.delete('c', key);
          } else {
            v.set('c', key, b(`${version}:${i}`));
            m.set('c', key, b(`${version}:${i}`));
          }
        }
        await commit(kv, store, v, version);
        models.push(m.clone());
      }
      const check = (s: StateStore, order: readonly number[]): void => {
        for (const version of order) {
          const model = models[version]!;
          expect(Buffer.from(s.rootAt(version)).equals(model.root())).toBe(true);
          for (const i of [0, 7, 123, 499, 600]) {
            const key = b(`k${i}`);
            const p = s.prove('c', key, version);
            expect(str(p.value)).toBe(str(model.get('c', key)));
            expect(verifyStateProof(model.root(), 'c', key, model.get('c', key), p.proof)).toBe(true);
            expect(str(s.getAt(version, 'c', key))).toBe(str(model.get('c', key)));
          }
        }
      };
      // Versions 4 and 5 are in memory; 0 to 3 are rebuilt from stale records (newest first, each
      // from the one rebuilt before it).
      check(store, [0, 1, 2, 3, 4, 5]);
      const reopened = await openStateStore(kv, { version: 5, memoryVersions: 1 });
      expect(Buffer.from(reopened.root).equals(store.root)).toBe(true);
      check(reopened, [5, 4, 3, 2, 1, 0]);
      // Rebuilt trees stay valid across commits.
      const v6 = reopened.view();
      v6.set('c', b('k0'), b('six'));
      v6.delete('c', b('k7'));
      await commit(kv, reopened, v6, 6);
      check(reopened, [0, 2, 1, 3, 5, 4]);
      await expect(openStateStore(kv, { memoryVersions: 0 })).rejects.toMatchObject({ code: 'BAD_OPTIONS' });
    });

    it('stored values that do not match the stored root are refused at open', async () => {
      await fresh();
      const v = store.view();
      for (let i = 0; i < 20; i++) v.set('c', b(`k${i}`), b(`v${i}`));
      await commit(kv, store, v, 0);
      // Version 0 wrote every value: the entry of k3 at version 0, changed.
      await kv.batch([
        { type: 'put', key: valueKey(encodeStateKey('c', b('k3')), putEntry(0)), value: b('tampered') },
      ]);
      await expect(openStateStore(kv, { version: 0 })).rejects.toMatchObject({ code: 'CORRUPT' });
    });

    it('opening at a version other than the stored one is refused', async () => {
      await fresh();
      await expect(openStateStore(kv, { version: 0 })).rejects.toMatchObject({ code: 'VERSION_MISSING' });
      await commit(kv, store, store.view(), 0);
      await expect(openStateStore(kv, { version: 1 })).rejects.toMatchObject({ code: 'VERSION_MISSING' });
      await expect(openStateStore(kv, { retainVersions: 0 })).rejects.toMatchObject({ code: 'BAD_OPTIONS' });
      const again = await openStateStore(kv, { version: 0 });
      expect(Buffer.from(again.root).equals(store.root)).toBe(true);
    });
  });

  describe('bad input is refused and changes nothing', () => {
    it('names, keys, values and limits', async () => {
      await fresh();
      const v = store.view();
      v.set('c', b('k'), b('v'));
      const root = v.root();
      const cases: Array<[() => unknown, string]> = [
        [() => v.set('bad name', b('k'), b('v')), 'BAD_CONTRACT'],
        [() => v.set('', b('k'), b('v')), 'BAD_CONTRACT'],
        [() => v.get('x'.repeat(65), b('k')), 'BAD_CONTRACT'],
        [() => v.set('c', 'k' as unknown as Bytes, b('v')), 'BAD_KEY'],
        [() => v.set('c', new Uint8Array(MAX_STATE_KEY_BYTES + 1), b('v')), 'BAD_KEY'],
        [() => v.set('c', b('k'), null as unknown as Bytes), 'BAD_VALUE'],
        [() => v.set('c', b('k'), new Uint8Array(MAX_STATE_VALUE_BYTES + 1)), 'BAD_VALUE'],
        [() => v.delete('c', undefined as unknown as Bytes), 'BAD_KEY'],
        [() => v.range('c', b(''), -1), 'BAD_LIMIT'],
        [() => v.range('c', b(''), 1.5), 'BAD_LIMIT'],
        [() => v.range('c', b(''), MAX_STATE_RANGE_LIMIT + 1), 'BAD_LIMIT'],
        [() => store.getAt(-1, 'c', b('k')), 'BAD_VERSION'],
        [() => store.getAt(3, 'c', b('k')), 'VERSION_MISSING'],
        [() => store.prove('c', b('k')), 'VERSION_MISSING'],
      ];
      for (const [fn, code] of cases) expect(fn).toThrow(expect.objectContaining({ code }));
      expect(str(v.get('c', b('k')))).toBe('v');
      expect(Buffer.from(v.root()).equals(root)).toBe(true);
    });

    it("a value set is copied: changing the caller's bytes afterwards changes nothing", async () => {
      await fresh();
      const v = store.view();
      const value = b('abc');
      v.set('c', b('k'), value);
      value[0] = 0x7a;
      const got = v.get('c', b('k'))!;
      got[1] = 0x7a;
      expect(str(v.get('c', b('k')))).toBe('abc');
    });
  });

  describe('range scans', () => {
    const keys = ['', 'a', 'a\u0000', 'a\u0001', 'ab', 'abc', 'ac', 'b', '\u00ff', '\u00ff\u00ff'];
    const k = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));

    it('returns keys of one contract with the prefix, in byte order, after `after`, up to `limit`', async () => {
      await fresh();
      const v = store.view();
      for (const key of [...keys].reverse()) v.set('c', k(key), b(`v-${key}`));
      v.set('other', k('a'), b('not mine'));
      await commit(kv, store, v, 0);
      const r = store.view();
      expect(keysOf(r.range('c', k(''), 100))).toEqual(keys);
      expect(keysOf(r.range('c', k('a'), 100))).toEqual(['a', 'a\u0000', 'a\u0001', 'ab', 'abc', 'ac']);
      expect(keysOf(r.range('c', k('a'), 2))).toEqual(['a', 'a\u0000']);
      expect(keysOf(r.range('c', k('a'), 100, k('a\u0000')))).toEqual(['a\u0001', 'ab', 'abc', 'ac']);
      expect(keysOf(r.range('c', k('ab'), 100, k('a')))).toEqual(['ab', 'abc']);
      expect(keysOf(r.range('c', k('a'), 100, k('zzz')))).toEqual([]);
      expect(keysOf(r.range('c', k('\u00ff'), 100))).toEqual(['\u00ff', '\u00ff\u00ff']);
      expect(keysOf(r.range('c', k('zz'), 100))).toEqual([]);
      expect(r.range('c', k(''), 0)).toEqual([]);
      expect(r.range('nobody', k(''), 10)).toEqual([]);
      const [first] = r.range('c', k('abc'), 1);
      expect(str(first![1])).toBe('v-abc');
    });

    it('sees the overlay: buffered puts and deletes, and reverts', async () => {
      await fresh();
      const v0 = store.view();
      for (const key of keys) v0.set('c', k(key), b('committed'));
      await commit(kv, store, v0, 0);
      const v = store.view();
      v.delete('c', k('a\u0000'));
      v.delete('c', k('ab'));
      v.set('c', k('aa'), b('new'));
      v.set('c', k('abc'), b('changed'));
      v.checkpoint();
      v.set('c', k('a\u0002'), b('temp'));
      v.delete('c', k('ac'));
      expect(keysOf(v.range('c', k('a'), 100))).toEqual(['a', 'a\u0001', 'a\u0002', 'aa', 'abc']);
      v.revert();
      const r = v.range('c', k('a'), 100);
      expect(keysOf(r)).toEqual(['a', 'a\u0001', 'aa', 'abc', 'ac']);
      expect(r.map(([, val]) => str(val))).toEqual(['committed', 'committed', 'new', 'changed', 'committed']);
      expect(keysOf(v.range('c', k('a'), 2, k('a\u0001')))).toEqual(['aa', 'abc']);
      // The same answer once committed.
      await commit(kv, store, v, 1);
      expect(keysOf(store.view().range('c', k('a'), 100))).toEqual(['a', 'a\u0001', 'aa', 'abc', 'ac']);
    });

    it('pages through 3,000 keys with `after` in order, after a restart', async () => {
      await fresh();
      const v = store.view();
      const all = Array.from({ length: 3000 }, (_, i) => `item/${(i * 7919) % 3000}`).map((s) =>
        s.padEnd(12, '.'),
      );
      for (const key of all) v.set('c', b(key), b('x'));
      await commit(kv, store, v, 0);
      const reopened = await openStateStore(kv, { version: 0 });
      const view = reopened.view();
      view.delete('c', b(all[5]!));
      const seen: string[] = [];
      let after: Bytes | undefined;
      for (;;) {
        const page = view.range('c', b('item/'), 100, after);
        if (page.length === 0) break;
        seen.push(...keysOf(page));
        after = page[page.length - 1]![0];
      }
      const want = all.filter((x) => x !== all[5]).sort();
      expect(seen).toEqual(want);
      expect(hex(view.get('c', b(all[5]!)))).toBeUndefined();
    });
  });

  describe('pruning', () => {
    it('keeps the last K versions readable and provable, and stops the disk from growing', async () => {
      await fresh();
      store = await openStateStore(kv, { retainVersions: 3 });
      const sizes: number[] = [];
      const models: ReferenceModel[] = [];
      const m = new ReferenceModel();
      for (let version = 0; version < 30; version++) {
        const v = store.view();
        for (let i = 0; i < 20; i++) {
          const key = b(`k${(version * 3 + i) % 40}`);
          const val = b(`${version}:${i}`);
          v.set('c', key, val);
          m.set('c', key, val);
        }
        await commit(kv, store, v, version);
        models.push(m.clone());
        // Pruned entries are deleted in a batch of their own.
        await store.settled();
        sizes.push(await countKeys(kv));
      }
      expect(store.oldestVersion).toBe(27);
      for (let version = 0; version < 27; version++) {
        expect(() => store.rootAt(version)).toThrow(expect.objectContaining({ code: 'VERSION_PRUNED' }));
        expect(() => store.prove('c', b('k1'), version)).toThrow(
          expect.objectContaining({ code: 'VERSION_PRUNED' }),
        );
      }
      for (let version = 27; version < 30; version++) {
        expect(Buffer.from(store.rootAt(version)).equals(models[version]!.root())).toBe(true);
        for (let i = 0; i < 41; i++) {
          const key = b(`k${i}`);
          expect(str(store.getAt(version, 'c', key))).toBe(str(models[version]!.get('c', key)));
          expect(str(store.prove('c', key, version).value)).toBe(str(models[version]!.get('c', key)));
        }
      }
      // Steady state: every version adds as many records as pruning removes.
      expect(sizes[29]).toBeLessThanOrEqual(Math.max(...sizes.slice(10, 20)) + 5);
    });

    it('lowering retainVersions on reopen prunes the backlog a bounded number of versions per commit', async () => {
      await fresh();
      store = await openStateStore(kv, { retainVersions: 100 });
      for (let version = 0; version < 40; version++) {
        const v = store.view();
        v.set('c', b(`k${version % 5}`), b(`${version}`));
        await commit(kv, store, v, version);
      }
      expect(store.oldestVersion).toBe(0);
      store = await openStateStore(kv, { retainVersions: 2, version: 39 });
      await commit(kv, store, store.view(), 40);
      expect(store.oldestVersion).toBe(16);
      expect(str(store.getAt(16, 'c', b('k1')))).toBe('16');
      await commit(kv, store, store.view(), 41);
      expect(store.oldestVersion).toBe(32);
      await commit(kv, store, store.view(), 42);
      expect(store.oldestVersion).toBe(41);
      expect(() => store.getAt(40, 'c', b('k0'))).toThrow(
        expect.objectContaining({ code: 'VERSION_PRUNED' }),
      );
      expect(str(store.getAt(41, 'c', b('k4')))).toBe('39');
    });
  });
});
