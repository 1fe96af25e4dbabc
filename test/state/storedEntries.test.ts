// Goal: the stored layout (a value entry per version written, stale records, stateLayout.ts) holds
// exactly what the retained versions need. Committing reads no stored value (only a write reverted
// after the root was computed reads its committed value back into the tree); what a version
// supersedes and its tombstones go once it leaves the window, and nothing else does; writing a key
// the value it already has writes nothing; and a store of the older layout is refused at open.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Bytes } from '../../core/bytes.ts';
import { verifyStateProof } from '../../core/stateProof.ts';
import { pack } from '../../core/codec.ts';
import type { BatchOp, KvStore } from '../../node/storage/kv.ts';
import {
  META_KEY,
  STALE_END,
  STALE_START,
  VALUE_END,
  VALUE_START,
  parseStaleKey,
  parseValueKey,
} from '../../node/state/stateLayout.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { BACKENDS, b, commit, type Backend } from './backends.ts';

const VALUE_SUB = 0x76;

/** A KvStore that counts reads of stored values while `counting` is on. */
function counted(kv: KvStore): KvStore & { counting: boolean; valueReads: number } {
  const isValue = (k: Bytes): boolean => k[1] === VALUE_SUB;
  const out = {
    counting: false,
    valueReads: 0,
    get: (k: Bytes) => {
      if (out.counting && isValue(k)) out.valueReads++;
      return kv.get(k);
    },
    getSync: (k: Bytes) => {
      if (out.counting && isValue(k)) out.valueReads++;
      return kv.getSync(k);
    },
    getMany: (keys: readonly Bytes[]) => {
      if (out.counting) out.valueReads += keys.filter(isValue).length;
      return kv.getMany(keys);
    },
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

async function keysIn(kv: KvStore, gte: Bytes, lt: Bytes): Promise<Bytes[]> {
  const out: Bytes[] = [];
  for await (const [k] of kv.scan({ gte, lt })) out.push(k);
  return out;
}

describe.each(BACKENDS)('stored entries (%s)', (_name, make) => {
  let backend: Backend;
  beforeAll(async () => {
    backend = await make();
  });
  afterAll(() => backend.close());

  it('are exactly those the retained versions need, and committing reads none of them', async () => {
    const RETAIN = 5;
    const kv = counted(backend.fresh());
    let store = await openStateStore(kv, { retainVersions: RETAIN, memoryVersions: 2 });
    const random = rng(0xe17e);
    const KEYS = 40;
    const keyOf = (i: number): Uint8Array => b(`k${i}`);
    // The model: each key's writes, as (version, value or null for a delete), only those that
    // changed something (a delete of an absent key, or a put of the value it has, changes nothing).
    const history = new Map<number, Array<{ version: number; value: string | null }>>();
    const current = (i: number): string | null => history.get(i)?.at(-1)?.value ?? null;
    let blindBlocks = 0;
    // Checks where every collection due had been written.
    let exact = 0;

    for (let version = 0; version < 40; version++) {
      const view = store.view();
      const block = new Map<number, string | null>();
      let revertedAfterRoot = false;
      // One step per key and block: a key changed and changed back within a block may or may not
      // get an entry (whether the root was computed in between decides), which the model leaves out.
      const touched = new Set<number>();
      const writes = 3 + Math.floor(random() * 12);
      for (let w = 0; w < writes; w++) {
        const i = Math.floor(random() * KEYS);
        if (touched.has(i)) continue;
        touched.add(i);
        const r = random();
        if (r < 0.25) {
          view.delete('c', keyOf(i));
          block.set(i, null);
        } else if (r < 0.35 && current(i) !== null) {
          // The value the key already has.
          view.set('c', keyOf(i), b(current(i)!));
          block.set(i, current(i));
        } else if (r < 0.45) {
          // Written, the root computed, then reverted away.
          view.checkpoint();
          view.set('c', keyOf(i), b(`reverted ${version}`));
          view.root();
          view.revert();
          revertedAfterRoot = true;
        } else {
          const value = `v${version}.${w}`;
          view.set('c', keyOf(i), b(value));
          block.set(i, value);
        }
        if (random() < 0.2) view.root();
      }
      // What the versions pruned by the last commit need is collected while this one is written.
      let collectedTo = store.oldestVersion ?? 0;
      kv.counting = true;
      view.root();
      const c = store.commitOps(view, version);
      kv.counting = false;
      if (!revertedAfterRoot) expect(kv.valueReads).toBe(0);
      blindBlocks += revertedAfterRoot ? 0 : 1;
      kv.valueReads = 0;
      await kv.batch(c.ops);
      c.finalize();
      for (const [i, value] of block) {
        if (value === current(i)) continue;
        let h = history.get(i);
        if (h === undefined) history.set(i, (h = []));
        h.push({ version, value });
      }
      if (version % 13 === 12) {
        store = await openStateStore(kv, { retainVersions: RETAIN, memoryVersions: 2 });
        // Opening collects whatever is due.
        collectedTo = store.oldestVersion!;
      }

      // The entries versions from `from` on need: the value each key has at each of them (the
      // entry of the write that gave it), and the tombstones of deletes younger than `from` (once
      // it is the oldest, nothing older can see the value it deleted).
      const needed = (from: number): Set<string> => {
        const out = new Set<string>();
        for (const [i, h] of history) {
          for (let v = from; v <= version; v++) {
            const w = h.filter((x) => x.version <= v).at(-1);
            if (w !== undefined && w.value !== null) out.add(`k${i}@${2 * w.version}`);
          }
          for (const x of h) if (x.value === null && x.version > from) out.add(`k${i}@${2 * x.version + 1}`);
        }
        return out;
      };
      await store.settled();
      const stored = new Set<string>();
      for (const k of await keysIn(kv, VALUE_START, VALUE_END)) {
        const p = parseValueKey(k);
        stored.add(`${p.keyStr}@${p.entry}`);
      }
      const staleVersions = (await keysIn(kv, STALE_START, STALE_END)).map(parseStaleKey);
      const oldest = store.oldestVersion!;
      // Whatever the retained versions need is there; of what they do not, at most what the
      // versions pruned by this commit need is left (its collection may run while the next commit
      // is written); and with everything due collected, exactly what they need.
      const lower = [...needed(oldest)];
      const upper = needed(collectedTo);
      for (const e of lower) expect(stored.has(e)).toBe(true);
      for (const e of stored) expect(upper.has(e)).toBe(true);
      // Stale records: every version's from some first one on, kept for each retained version.
      const first = staleVersions[0] ?? version + 1;
      expect(staleVersions).toEqual(Array.from({ length: version + 1 - first }, (_, j) => first + j));
      expect(first).toBeGreaterThan(collectedTo);
      expect(first).toBeLessThanOrEqual(oldest + 1);
      if (stored.size === lower.length) exact++;
      if (version % 13 === 12) {
        expect([...stored].sort()).toEqual(lower.sort());
        expect(staleVersions).toEqual(Array.from({ length: version - oldest }, (_, j) => oldest + 1 + j));
      }
    }

    expect(blindBlocks).toBeGreaterThan(5);
    expect(exact).toBeGreaterThan(3);
    // Every retained version reads and proves as the model says.
    for (let v = store.oldestVersion!; v <= store.version!; v++) {
      for (let i = 0; i < KEYS; i++) {
        const w = history
          .get(i)
          ?.filter((x) => x.version <= v)
          .at(-1);
        const want = w?.value ?? null;
        const got = store.getAt(v, 'c', keyOf(i));
        expect(got === undefined ? null : Buffer.from(got).toString()).toBe(want);
        const p = store.prove('c', keyOf(i), v);
        expect(p.value === undefined ? null : Buffer.from(p.value).toString()).toBe(want);
        expect(verifyStateProof(p.root, 'c', keyOf(i), p.value, p.proof)).toBe(true);
      }
    }
  });

  it('a deleted key stays deleted across a reopen, and its older versions readable', async () => {
    const kv = backend.fresh();
    let store = await openStateStore(kv);
    const v0 = store.view();
    v0.set('c', b('gone'), b('0'));
    v0.set('c', b('kept'), b('0'));
    await commit(kv, store, v0, 0);
    const v1 = store.view();
    v1.delete('c', b('gone'));
    await commit(kv, store, v1, 1);
    store = await openStateStore(kv, { version: 1 });
    expect(store.keyCount).toBe(1);
    expect(store.getAt(1, 'c', b('gone'))).toBeUndefined();
    expect(Buffer.from(store.getAt(0, 'c', b('gone'))!).toString()).toBe('0');
    const v2 = store.view();
    expect(v2.get('c', b('gone'))).toBeUndefined();
    v2.set('c', b('gone'), b('2'));
    await commit(kv, store, v2, 2);
    store = await openStateStore(kv, { version: 2 });
    expect(Buffer.from(store.getAt(2, 'c', b('gone'))!).toString()).toBe('2');
    expect(store.getAt(1, 'c', b('gone'))).toBeUndefined();
    expect(Buffer.from(store.getAt(0, 'c', b('gone'))!).toString()).toBe('0');
  });

  it('a new key given one value twice in a block, the root computed in between, is written once', async () => {
    // The second put finds the tree's own new leaf with the same hash: the key is still new.
    const kv = backend.fresh();
    const store = await openStateStore(kv, { retainVersions: 1, memoryVersions: 1 });
    const v0 = store.view();
    v0.set('c', b('k'), new Uint8Array(0));
    v0.root();
    v0.set('c', b('k'), new Uint8Array(0));
    const c = store.commitOps(v0, 0);
    expect(c.ops.filter((op) => op.key[1] === VALUE_SUB)).toHaveLength(1);
    await kv.batch(c.ops);
    c.finalize();
    expect(store.view().get('c', b('k'))?.length).toBe(0);
    expect((await openStateStore(kv)).root).toEqual(store.root);
  });

  it('a key given the value it has writes no entry', async () => {
    const kv = backend.fresh();
    const store = await openStateStore(kv);
    const v0 = store.view();
    v0.set('c', b('k'), b('same'));
    await commit(kv, store, v0, 0);
    const v1 = store.view();
    v1.set('c', b('k'), b('same'));
    const c = store.commitOps(v1, 1);
    // The stale record (empty) and the metadata only.
    expect(c.ops.filter((op) => op.key[1] === VALUE_SUB)).toEqual([]);
    await kv.batch(c.ops);
    c.finalize();
    expect(Buffer.from(store.view().get('c', b('k'))!).toString()).toBe('same');
  });

  it('a store of the older layout is refused at open with a clear error', async () => {
    const kv = backend.fresh();
    await kv.batch([{ type: 'put', key: META_KEY, value: pack([2, 7, 0, Buffer.alloc(32)]) }]);
    await expect(openStateStore(kv)).rejects.toMatchObject({
      code: 'CORRUPT',
      message: expect.stringMatching(/format 2/) as unknown,
    });
  });
});
