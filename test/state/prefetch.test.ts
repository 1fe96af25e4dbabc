// Goal: fetching a block's overwritten values ahead of the commit (root() starts it, prepareCommit
// awaits it) changes no byte: batches, undo records, old-version reads and proofs equal those of a
// store that reads the values at commit, for keys read before written, deleted, new, reverted and
// written after the fetch started.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bytes } from '../../core/bytes.ts';
import { encodeStateProof, verifyStateProof } from '../../core/stateProof.ts';
import type { BatchOp, KvStore } from '../../node/storage/kv.ts';
import { openStateStore, type StateStore } from '../../node/state/stateStore.ts';
import type { StateStoreView } from '../../node/state/stateView.ts';
import { BACKENDS, b, commit, type Backend } from './backends.ts';

const FLAT = 0x66;

/** A KvStore that counts flat-index reads made by getSync while `counting` is on. */
function counted(kv: KvStore): KvStore & { counting: boolean; flatReads: number } {
  const out = {
    counting: false,
    flatReads: 0,
    get: (k: Bytes) => kv.get(k),
    getSync: (k: Bytes) => {
      if (out.counting && k[1] === FLAT) out.flatReads++;
      return kv.getSync(k);
    },
    getMany: (keys: readonly Bytes[]) => kv.getMany(keys),
    batch: (ops: readonly BatchOp[]) => kv.batch(ops),
    scan: kv.scan.bind(kv),
    close: () => kv.close(),
  };
  return out;
}

// Deterministic pseudo-random numbers (xorshift32), so a failure replays.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const hexOps = (ops: readonly BatchOp[]): string[] =>
  ops.map((o) =>
    o.type === 'put'
      ? `put ${Buffer.from(o.key).toString('hex')} ${Buffer.from(o.value).toString('hex')}`
      : `del ${Buffer.from(o.key).toString('hex')}`,
  );

async function dump(kv: KvStore): Promise<string[]> {
  const out: string[] = [];
  for await (const [k, v] of kv.scan({}))
    out.push(`${Buffer.from(k).toString('hex')}=${Buffer.from(v).toString('hex')}`);
  return out;
}

describe.each(BACKENDS)('prefetched previous values (%s)', (_name, make) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await make();
  });
  afterAll(() => backend.close());

  it('give byte-identical batches, undo records, old-version reads and proofs', async () => {
    const kvOn = counted(backend.fresh());
    const kvOff = counted(backend.fresh());
    const on = await openStateStore(kvOn, { retainVersions: 8 });
    const off = await openStateStore(kvOff, { retainVersions: 8, prefetch: false });
    const random = rng(0x5eed);
    const keyOf = (i: number): Uint8Array => b(`k${i}`);
    const KEYS = 120;
    let prefetchedReads = 0;
    let plainReads = 0;

    // The same block on both stores: `act` is called once per view with the same random choices.
    for (let version = 0; version < 14; version++) {
      const script: Array<(v: StateStoreView) => void> = [];
      const writes = 10 + Math.floor(random() * 40);
      for (let i = 0; i < writes; i++) {
        const k = keyOf(Math.floor(random() * KEYS));
        const r = random();
        const value = b(`v${version}.${i}.${Math.floor(random() * 1000)}`);
        if (r < 0.15) {
          // Read before written: the view already knows the previous value.
          script.push((v) => {
            v.get('c', k);
            v.set('c', k, value);
          });
        } else if (r < 0.3) {
          // Deleted (present or absent).
          script.push((v) => v.delete('c', k));
        } else if (r < 0.4) {
          // Written, then reverted away.
          script.push((v) => {
            v.checkpoint();
            v.set('c', k, value);
            v.revert();
          });
        } else if (r < 0.5) {
          // The root asked for mid-block: the fetch starts with the writes so far.
          script.push((v) => {
            v.set('c', k, value);
            v.root();
          });
        } else if (r < 0.55) {
          // Another contract, a new key at first.
          script.push((v) => v.set('d', k, value));
        } else {
          script.push((v) => v.set('c', k, value));
        }
      }
      const askRoot = random() < 0.7;
      const run = async (
        store: StateStore,
        kv: ReturnType<typeof counted>,
      ): Promise<{ ops: string[]; root: Bytes }> => {
        const view = store.view();
        for (const step of script) step(view);
        if (askRoot) view.root();
        await store.prepareCommit(view);
        kv.counting = true;
        const c = store.commitOps(view, version);
        kv.counting = false;
        await kv.batch(c.ops);
        c.finalize();
        return { ops: hexOps(c.ops), root: c.root };
      };
      const a = await run(on, kvOn);
      const z = await run(off, kvOff);
      expect(a.root).toEqual(z.root);
      expect(a.ops).toEqual(z.ops);
      prefetchedReads += kvOn.flatReads;
      plainReads += kvOff.flatReads;
      kvOn.flatReads = kvOff.flatReads = 0;
    }
    // Every previous value the plain store read at commit came from the fetch instead.
    expect(plainReads).toBeGreaterThan(100);
    expect(prefetchedReads).toBe(0);
    expect(await dump(kvOn)).toEqual(await dump(kvOff));

    // Old versions, read and proved through the undo records, agree key by key.
    for (let version = on.oldestVersion!; version <= on.version!; version++) {
      expect(on.rootAt(version)).toEqual(off.rootAt(version));
      for (let i = 0; i < KEYS; i++) {
        for (const contract of ['c', 'd']) {
          expect(on.getAt(version, contract, keyOf(i))).toEqual(off.getAt(version, contract, keyOf(i)));
        }
      }
      for (let i = 0; i < KEYS; i += 7) {
        const p = on.prove('c', keyOf(i), version);
        const q = off.prove('c', keyOf(i), version);
        expect(encodeStateProof(p.proof)).toEqual(encodeStateProof(q.proof));
        expect(p.value).toEqual(q.value);
        expect(verifyStateProof(p.root, 'c', keyOf(i), p.value, p.proof)).toBe(true);
      }
    }
  });

  it('a view whose base moved is refused by prepareCommit as by commitOps', async () => {
    const kv = backend.fresh();
    const store = await openStateStore(kv);
    const v0 = store.view();
    v0.set('c', b('k'), b('0'));
    await commit(kv, store, v0, 0);

    const stale = store.view();
    stale.set('c', b('k'), b('stale'));
    stale.root();
    const next = store.view();
    next.set('c', b('k'), b('1'));
    await commit(kv, store, next, 1);
    await expect(store.prepareCommit(stale)).rejects.toMatchObject({ code: 'STALE_VIEW' });
    expect(() => store.commitOps(stale, 2)).toThrow(expect.objectContaining({ code: 'STALE_VIEW' }));
    const other = await openStateStore(backend.fresh());
    await expect(other.prepareCommit(store.view())).rejects.toMatchObject({ code: 'BAD_OPTIONS' });
    // The undo record of version 1 holds the value fetched for it.
    expect(Buffer.from(store.getAt(0, 'c', b('k'))!).toString()).toBe('0');
  });
});
