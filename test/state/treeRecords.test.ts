// Goal: the tree's records are freed as versions leave memory, views are abandoned and rebuilt old
// versions are dropped, never while a version in memory still uses them: after many blocks the
// store holds exactly the records a freshly opened store needs, and every root and proof on the
// way agrees with the reference model.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { verifyStateProof } from '../../core/stateProof.ts';
import { createMemoryStore } from '../../node/storage/kv.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { seededRandom } from '../seededRandom.ts';
import { b, commit, deepKeys } from './backends.ts';
import { ReferenceModel } from './referenceModel.ts';

const KEYS = [...deepKeys('c', 3, 6), ...Array.from({ length: 150 }, (_, i) => b(`k/${i}`))];

describe('tree records', () => {
  it.each([1, 3])(
    'after 120 blocks (memoryVersions %i) the store holds the records of its tree and no more',
    async (memoryVersions) => {
      const kv = createMemoryStore();
      const store = await openStateStore(kv, { retainVersions: 8, memoryVersions });
      const models: ReferenceModel[] = [];
      let model = new ReferenceModel();
      const random = seededRandom(7);
      const rnd = (n: number): number => Math.floor(random() * n);
      for (let version = 0; version < 120; version++) {
        // An abandoned view with writes and a root: its records must go at the next commit.
        const stray = store.view();
        for (let i = 0; i < 5; i++) stray.set('c', KEYS[rnd(KEYS.length)]!, b(`stray ${version}`));
        stray.root();
        const view = store.view();
        const next = model.clone();
        for (let i = 0; i < 12; i++) {
          const key = KEYS[rnd(KEYS.length)]!;
          if (rnd(3) === 0) {
            view.delete('c', key);
            next.delete('c', key);
          } else {
            const value = b(`v ${version}.${i}`);
            view.set('c', key, value);
            next.set('c', key, value);
          }
        }
        expect(Buffer.from(view.root()).equals(next.root())).toBe(true);
        expect(Buffer.from(await commit(kv, store, view, version)).equals(next.root())).toBe(true);
        model = next;
        models[version] = model;
        // A proof against an old retained version rebuilds its tree (shares records with the
        // oldest tree in memory until that one goes).
        const old = Math.max(store.oldestVersion!, version - 1 - rnd(6));
        const key = KEYS[rnd(KEYS.length)]!;
        const p = store.prove('c', key, old);
        expect(Buffer.from(p.root).equals(models[old]!.root())).toBe(true);
        expect(verifyStateProof(p.root, 'c', key, models[old]!.get('c', key), p.proof)).toBe(true);
      }
      // Empty blocks until only the latest tree (and the last rebuilt one, dropped on the way) is left.
      let version = 120;
      for (let i = 0; i < memoryVersions + 1; i++) await commit(kv, store, store.view(), version++);
      const fresh = await openStateStore(kv, { retainVersions: 8, memoryVersions });
      expect(Buffer.from(fresh.root).equals(model.root())).toBe(true);
      // (Chunks never shrink, so the bytes they take are not compared.)
      expect({ ...store.treeRecords, bytes: 0 }).toEqual({ ...fresh.treeRecords, openTrees: 0, bytes: 0 });
      expect(store.treeRecords.leaves).toBe(model.entries.size);
      expect(model.entries.size).toBeGreaterThan(60);
    },
  );

  it('a view dropped without a commit gives its records back once it is garbage', async () => {
    setFlagsFromString('--expose-gc');
    const collectGarbage = runInNewContext('gc') as () => void;
    const kv = createMemoryStore();
    const store = await openStateStore(kv);
    const base = store.view();
    for (const key of KEYS) base.set('c', key, b('v'));
    await commit(kv, store, base, 0);
    const committed = store.treeRecords;
    expect(committed.openTrees).toBe(0);
    (() => {
      const stray = store.view();
      for (const key of KEYS.slice(0, 40)) stray.set('c', key, b('w'));
      stray.root();
    })();
    expect(store.treeRecords.openTrees).toBe(1);
    expect(store.treeRecords.leaves).toBeGreaterThan(committed.leaves);
    // Finalization callbacks run in a later task after a collection.
    for (let i = 0; i < 50 && store.treeRecords.openTrees > 0; i++) {
      collectGarbage();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect({ ...store.treeRecords, bytes: 0 }).toEqual({ ...committed, bytes: 0 });
  });
});
