import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bytes } from '../../core/bytes.ts';
import { stateKeyHash } from '../../core/stateProof.ts';
import {
  createMemoryStore,
  openLevelStore,
  type BatchOp,
  type KvStore,
  type ScanOptions,
} from '../../node/storage/kv.ts';
import { openStateStore, type StateStore, type StateStoreOptions } from '../../node/state/stateStore.ts';
import type { StateStoreView } from '../../node/state/stateView.ts';

/**
 * The two KvStore backends every state test runs against (STYLE.md: interfaces below
 * implementations, one shared test table). The LevelDB backend opens one database per test file
 * and gives each store its own key prefix, so thousands of property-test cases need not each
 * open a database.
 */
export interface Backend {
  readonly name: string;
  /** A fresh, empty KvStore. */
  fresh(): KvStore;
  /** Closes whatever the backend opened. */
  close(): Promise<void>;
}

function concat(a: Bytes, b: Bytes): Buffer {
  return Buffer.concat([a, b]);
}

function prefixEnd(prefix: Bytes): Buffer {
  const out = Buffer.from(prefix);
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i]! < 0xff) {
      out[i]!++;
      return out.subarray(0, i + 1);
    }
  }
  throw new Error('prefix has no end');
}

/** A KvStore that keeps its keys under `prefix` inside `kv`. */
export function prefixedStore(kv: KvStore, prefix: Bytes): KvStore {
  const add = (k: Bytes): Buffer => concat(prefix, k);
  return {
    get: (k) => kv.get(add(k)),
    getSync: (k) => kv.getSync(add(k)),
    getMany: (keys) => kv.getMany(keys.map(add)),
    batch: (ops) =>
      kv.batch(
        ops.map((op): BatchOp =>
          op.type === 'put' ? { ...op, key: add(op.key) } : { type: 'del', key: add(op.key) },
        ),
      ),
    scan: async function* (o: ScanOptions) {
      const bounds: ScanOptions = {
        ...(o.gte !== undefined
          ? { gte: add(o.gte) }
          : o.gt !== undefined
            ? { gt: add(o.gt) }
            : { gte: Buffer.from(prefix) }),
        ...(o.lt !== undefined
          ? { lt: add(o.lt) }
          : o.lte !== undefined
            ? { lte: add(o.lte) }
            : { lt: prefixEnd(prefix) }),
        ...(o.reverse === undefined ? {} : { reverse: o.reverse }),
        ...(o.limit === undefined ? {} : { limit: o.limit }),
      };
      for await (const [k, v] of kv.scan(bounds)) yield [k.subarray(prefix.length), v] as [Bytes, Bytes];
    },
    close: () => Promise.resolve(),
  };
}

/** The in-memory backend. */
export function memoryBackend(): Backend {
  return { name: 'memory', fresh: () => createMemoryStore(), close: () => Promise.resolve() };
}

/** The LevelDB backend: one database in a temporary folder, one prefix per fresh store. */
export async function levelBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-state-'));
  const db = await openLevelStore(dir, { syncWrites: false });
  let next = 0;
  return {
    name: 'leveldb',
    fresh: () => {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(next++);
      return prefixedStore(db, p);
    },
    close: async () => {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Both backends, for describe.each. */
export const BACKENDS: ReadonlyArray<[string, () => Promise<Backend>]> = [
  ['memory', () => Promise.resolve(memoryBackend())],
  ['leveldb', levelBackend],
];

/** Commits `view` as `version`: the ops are written as the block store would, then finalised. */
export async function commit(
  kv: KvStore,
  store: StateStore,
  view: StateStoreView,
  version: number,
): Promise<Bytes> {
  const c = store.commitOps(view, version);
  await kv.batch(c.ops);
  c.finalize();
  return c.root;
}

/** Opens a state store on `kv` at whatever version it holds. */
export function reopen(kv: KvStore, options: StateStoreOptions = {}): Promise<StateStore> {
  return openStateStore(kv, options);
}

/** Bytes of a string. */
export function b(s: string): Uint8Array {
  return Uint8Array.from(Buffer.from(s, 'utf8'));
}

/**
 * Keys of `contract` whose hashes share long prefixes (runs of neighbours in hash order among many
 * candidates), so trees built from them have deep paths, chains of one-child internal nodes, and
 * leaves that move down on insert and up on delete.
 */
export function deepKeys(
  contract: string,
  runs: number,
  runLength: number,
  candidates = 60_000,
): Uint8Array[] {
  const all = Array.from({ length: candidates }, (_, i) => {
    const key = b(`deep/${i}`);
    return { key, h: Buffer.from(stateKeyHash(contract, key)) };
  }).sort((x, y) => Buffer.compare(x.h, y.h));
  // Score each run by how many leading bits its first and last key share; keep the deepest.
  const shared = (x: Buffer, y: Buffer): number => {
    let n = 0;
    while (n < 256 && ((x[n >> 3]! >> (7 - (n & 7))) & 1) === ((y[n >> 3]! >> (7 - (n & 7))) & 1)) n++;
    return n;
  };
  const starts = Array.from({ length: all.length - runLength }, (_, i) => i)
    .map((i) => ({ i, s: shared(all[i]!.h, all[i + runLength - 1]!.h) }))
    .sort((x, y) => y.s - x.s);
  const out: Uint8Array[] = [];
  const used = new Set<number>();
  for (const { i } of starts) {
    if (out.length >= runs * runLength) break;
    if (used.has(i)) continue;
    for (let j = i; j < i + runLength; j++) {
      if (!used.has(j)) {
        used.add(j);
        out.push(all[j]!.key);
      }
    }
  }
  return out;
}
