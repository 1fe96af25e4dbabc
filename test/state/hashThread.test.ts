// Goal: hashing a root on two threads (node/state/hashThread.ts) gives exactly the roots and proofs
// of hashing on one: a store with the thread forced on agrees with the reference model and with a
// store that never uses it, block after block, through deletes, restarts and old-version proofs,
// and the thread did run (its job count grows). A wrong hash written by the thread, or a subtree
// hashed by both threads from half-written children, would show as a root that differs.
import { describe, expect, it } from 'vitest';
import { verifyStateProof } from '../../core/stateProof.ts';
import { createMemoryStore } from '../../node/storage/kv.ts';
import { hashThreadJobs, hashThreadReady } from '../../node/state/hashThread.ts';
import { createTreeArena } from '../../node/state/memoryTree.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { seededRandom } from '../seededRandom.ts';
import { b, commit } from './backends.ts';
import { ReferenceModel } from './referenceModel.ts';

const KEYS = Array.from({ length: 3000 }, (_, i) => b(`acct/${i}`));

describe('hashing on two threads', () => {
  it('gives the roots and proofs of one thread over 60 blocks, a restart and old versions', async () => {
    const kvA = createMemoryStore();
    const kvB = createMemoryStore();
    let parallel = await openStateStore(kvA, { retainVersions: 8, parallelHashing: 'always' });
    const single = await openStateStore(kvB, { retainVersions: 8, parallelHashing: 'off' });
    let model = new ReferenceModel();
    const models: ReferenceModel[] = [];
    const random = seededRandom(11);
    const rnd = (n: number): number => Math.floor(random() * n);
    // Until the thread runs, the main thread does every job alone.
    expect(await hashThreadReady()).toBe(true);
    const jobs0 = hashThreadJobs();
    for (let version = 0; version < 60; version++) {
      if (version === 30)
        parallel = await openStateStore(kvA, { retainVersions: 8, parallelHashing: 'always' });
      const va = parallel.view();
      const vb = single.view();
      const next = model.clone();
      // The first block writes many keys (a full tree under the root), later ones a few to a few hundred.
      const writes = version === 0 ? KEYS.length : 1 + rnd(300);
      for (let i = 0; i < writes; i++) {
        const key = version === 0 ? KEYS[i]! : KEYS[rnd(KEYS.length)]!;
        if (version > 0 && rnd(4) === 0) {
          va.delete('c', key);
          vb.delete('c', key);
          next.delete('c', key);
        } else {
          const value = b(`v ${version}.${i}`);
          va.set('c', key, value);
          vb.set('c', key, value);
          next.set('c', key, value);
        }
      }
      const want = next.root();
      expect(Buffer.from(va.root()).equals(want)).toBe(true);
      expect(Buffer.from(await commit(kvA, parallel, va, version)).equals(want)).toBe(true);
      expect(Buffer.from(await commit(kvB, single, vb, version)).equals(want)).toBe(true);
      model = next;
      models[version] = model;
      const old = Math.max(parallel.oldestVersion!, version - rnd(6));
      const key = KEYS[rnd(KEYS.length)]!;
      const p = parallel.prove('c', key, old);
      expect(p.proof).toEqual(single.prove('c', key, old).proof);
      expect(verifyStateProof(p.root, 'c', key, models[old]!.get('c', key), p.proof)).toBe(true);
    }
    // The thread filled part of every block's leaves and hashed part of (nearly) every root.
    expect(hashThreadJobs() - jobs0).toBeGreaterThanOrEqual(100);
  });

  it('builds and rehashes a large tree to the same root with the thread on and off', async () => {
    expect(await hashThreadReady()).toBe(true);
    const n = 70_000;
    const keyHashes = Buffer.alloc(n * 32);
    const valueHashes = Buffer.alloc(n * 32);
    const random = seededRandom(5);
    for (let i = 0; i < keyHashes.length; i++) keyHashes[i] = Math.floor(random() * 256);
    for (let i = 0; i < valueHashes.length; i++) valueHashes[i] = Math.floor(random() * 256);
    const roots: string[] = [];
    const jobs0 = hashThreadJobs();
    for (const mode of ['auto', 'off'] as const) {
      const arena = createTreeArena({ parallelHashing: mode });
      let root = arena.build(keyHashes, valueHashes, new Float64Array(n), n);
      const r = seededRandom(9);
      const hex: string[] = [Buffer.from(arena.hashOf(root)).toString('hex')];
      for (let block = 0; block < 5; block++) {
        const tree = arena.open(root);
        for (let i = 0; i < 500; i++) {
          const k = Math.floor(r() * n);
          tree.put(keyHashes.subarray(k * 32, k * 32 + 32), Buffer.from(`value ${block}.${i}`));
        }
        const done = tree.finish();
        arena.release(arena.adopt(tree));
        root = done.node;
        hex.push(Buffer.from(done.root).toString('hex'));
      }
      roots.push(hex.join(','));
    }
    expect(roots[0]).toBe(roots[1]);
    // 'auto' used the thread for this tree (65,536 leaves or more).
    expect(hashThreadJobs() - jobs0).toBe(5);
  });

  it('refuses an unknown mode', async () => {
    await expect(
      openStateStore(createMemoryStore(), { parallelHashing: 'sometimes' as 'auto' }),
    ).rejects.toMatchObject({ code: 'BAD_OPTIONS' });
  });
});
