import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import { hash } from 'node:crypto';
import { HASH_BYTES } from '../../core/hash.ts';
import { pack, readArray, readBytes, readUint, unpackCanonical } from '../../core/codec.ts';
import {
  EMPTY_STATE_ROOT,
  StateError,
  assertContract,
  assertKey,
  stateKeyHash,
  stateValueHash,
  writeStateKeyHash,
  type StateProof,
  type StateProofLevel,
} from '../../core/stateProof.ts';
import type { BatchOp, KvStore } from '../storage/kv.ts';
import {
  ABSENT,
  createTreeArena,
  type ArenaStats,
  type ParallelHashing,
  type TreeRoot,
  type WorkingTree,
} from './memoryTree.ts';
import { SortedKeySet } from './sortedKeySet.ts';
import {
  MAX_VERSION,
  META_KEY,
  NO_ENTRY,
  VALUE_END,
  VALUE_START,
  decodeStale,
  encodeStale,
  encodeStateKey,
  isTombstone,
  parseValueKey,
  putEntry,
  parseStaleKey,
  staleKey,
  tombstoneEntry,
  valueKey,
  staleGarbage,
  type DecodedStaleEntry,
  type StaleEntry,
  type StaleRecord,
} from './stateLayout.ts';
import { createStateView, viewInternals, type CommittedState, type StateStoreView } from './stateView.ts';

/**
 * The authenticated state store: a versioned Jellyfish-style Merkle tree of every contract's
 * key-values, with every value stored per version in the node's KvStore and an in-memory ordered
 * key index for range scans. The hashing rules are in core/stateProof.ts; the storage layout in
 * stateLayout.ts, the tree in memoryTree.ts.
 *
 * Like Aptos's Jellyfish Merkle tree, committed nodes are never rewritten, so each version's tree
 * stays readable and provable; a version is its root node and shares every unchanged subtree with
 * the version before it. Values are stored as Jellyfish stores them: a write at version v adds an
 * entry (key, v) and overwrites nothing, so the values older versions need stay where they are.
 * Unlike it, the nodes live in memory, not in the database: writing every version's changed nodes
 * cost ~2 MiB of LevelDB writes per 1,000-key block on a million-key tree (and as many deletes
 * when pruned), which LevelDB on a small machine cannot sustain at tens of thousands of updates per
 * second. A leaf records the version its value was written at, which says which entry holds it.
 *
 * - A block's batch is its new entries (a value, or a tombstone for a delete), its stale record
 *   (for each key it wrote, the entry it superseded, found in the tree: ~25 bytes a key) and the
 *   metadata. Committing reads nothing from the database (an earlier design kept undo records of
 *   the overwritten values, and reading those values cost LevelDB ~5 µs a key).
 * - When a version leaves the retention window, the entries its stale record names and its
 *   tombstones are garbage: no retained version reads them. They are deleted, with the record, in a
 *   batch of their own, built while the next commit's batch is written ({@link StateStore.settled}),
 *   so a block's batch does not carry the deletes of an older one and the main thread builds them
 *   while it would wait; a collection a crash interrupts is done again after the next open.
 * - Opening rebuilds the latest tree from the latest entry of each key (one scan, which also loads
 *   the key index; two hashes per key) and checks its root against the stored one.
 * - The trees of the last `memoryVersions` versions are held in memory (they share all unchanged
 *   subtrees); an older retained version's tree is rebuilt on demand from the nearest newer one
 *   held, by undoing the versions in between with their stale records (a few are kept).
 * - A value of an older version is the entry named by the first later version's stale record that
 *   wrote the key, else the latest; its root is in the next version's stale record.
 *
 * Versions are block heights. Committing never writes by itself: {@link StateStore.commitOps}
 * returns the batch operations of the new version, which the block store appends to the block's
 * one atomic batch; once that batch is written, `finalize()` moves the in-memory state (version,
 * root, tree, key index) forward. A crash at any instant therefore leaves the entries of the old
 * head or of the new one, never a mixture, and the tree rebuilt from them has that head's root.
 *
 * Memory grows with the state, as the key index already does: the key index holds every
 * (contract, key) as a latin1 string in a chunked sorted array (~16 bytes plus the key length per
 * key), and the tree ~160 bytes per key (at a million keys: 1,000,000 leaf records of 108 bytes
 * and ~400,000 node records of 104 bytes, in typed-array chunks of 65,536 records; see
 * memoryTree.ts), plus the records the `memoryVersions` latest versions replaced (~0.3 MiB per
 * 1,000-key block at a million keys). A million 20-byte keys thus take ~215 MiB.
 */
/** Options of {@link openStateStore}. */
export interface StateStoreOptions {
  /** Versions kept readable and provable: the latest and the ones before it. At least 1. Default 256. */
  readonly retainVersions?: number;
  /**
   * Versions whose trees are held in memory, for proofs without a rebuild: the latest and the ones
   * before it (at most `retainVersions` count). At least 1. Default 16. Proofs against older
   * retained versions rebuild the version's tree (cost grows with the writes of the versions in
   * between: ~1 s for 250 blocks of 1,000 keys).
   */
  readonly memoryVersions?: number;
  /**
   * The version the caller knows is committed (the head height from the block store). Opening
   * fails with VERSION_MISSING unless the stored state is at exactly this version.
   */
  readonly version?: number;
  /**
   * Whether a block's root is hashed on two threads (memoryTree.ts ParallelHashing): by default
   * 'auto', for trees of at least 65,536 keys.
   */
  readonly parallelHashing?: ParallelHashing;
}

/** The writes of one committed version. */
export interface StateCommit {
  readonly version: number;
  /** The state root of the version: the header's stateRoot. */
  readonly root: Bytes;
  /** Operations to append to the block's atomic batch. */
  readonly ops: readonly BatchOp[];
  /**
   * Call once the batch holding `ops` is written: the store then serves the new version and the
   * committed view closes. Until then the store serves the old version; if the batch fails, drop
   * the commit and nothing has changed.
   */
  finalize(): void;
}

/** A value and its proof against the root of a version. */
export interface StateProofResult {
  readonly version: number;
  readonly root: Bytes;
  /** The value, or undefined when the key is absent (the proof then proves absence). */
  readonly value: Bytes | undefined;
  readonly proof: StateProof;
}

/** The authenticated state of a node (see the module comment). */
export interface StateStore {
  /** The latest committed version; undefined before the first commit. */
  readonly version: number | undefined;
  /** The root of the latest committed version (the empty root before the first commit). */
  readonly root: Bytes;
  /** The oldest version still readable and provable; undefined before the first commit. */
  readonly oldestVersion: number | undefined;
  /** Number of keys in the latest version. */
  readonly keyCount: number;
  /**
   * Tree records in memory (nodes and leaves of every version in memory, of working trees and of
   * rebuilt old versions; ~100 bytes each) and the working trees holding some.
   */
  readonly treeRecords: ArenaStats;
  /** A new view over the latest committed version, for executing the next block. */
  view(): StateStoreView;
  /**
   * The batch operations and root of `version`, the view's writes on top of the latest version.
   * `version` must be the latest plus one (any version for the first commit), and the view must
   * have no open checkpoint. Writes nothing.
   */
  commitOps(view: StateStoreView, version: number): StateCommit;
  /** The root of a retained version. */
  rootAt(version: number): Bytes;
  /** The value of (contract, key) at a retained version. */
  getAt(version: number, contract: string, key: Bytes): Bytes | undefined;
  /** The value of (contract, key) with a proof against the root of `version` (default: the latest). */
  prove(contract: string, key: Bytes, version?: number): StateProofResult;
  /**
   * Resolves once no collection of pruned entries is being written (they are deleted in a batch of
   * their own after the commit that pruned them: see the module comment). Await it before closing
   * the KvStore; whatever a close interrupts is collected after the next open.
   */
  settled(): Promise<void>;
}

/** Most versions one commit prunes, so lowering `retainVersions` cannot make one huge batch. */
export const MAX_PRUNED_VERSIONS_PER_COMMIT = 16;
const DEFAULT_RETAIN_VERSIONS = 256;
/** Versions whose trees stay in memory unless `memoryVersions` says otherwise. */
export const DEFAULT_MEMORY_VERSIONS = 16;
// Trees of old versions rebuilt on demand, kept (first rebuilt first out) until the tree they were
// rebuilt from leaves memory; each costs the records that differ from the trees in memory.
const MAX_REBUILT_TREES = 4;
// Versions one collection batch covers at most (a version's garbage is its writes: ~1,000 deletes
// for a 1,000-key block).
const MAX_COLLECTED_PER_BATCH = 16;
// The value of a tombstone entry (the entry's key says it is one).
const TOMBSTONE = new Uint8Array(0);
// Format 3: values stored per version (stateLayout.ts). Format 2 kept undo records of overwritten
// values, and is not read any more.
const META_FORMAT = 3;

interface Meta {
  readonly latest: number;
  /** Versions below this one are pruned. */
  readonly oldest: number;
  /** Root of the latest version. */
  readonly root: Bytes;
}

function encodeMeta(m: Meta): Bytes {
  return pack([META_FORMAT, m.latest, m.oldest, m.root]);
}

function decodeMeta(bytes: Bytes): Meta {
  try {
    const v = readArray(unpackCanonical(bytes, 'state meta'), 4, 'state meta');
    if (v[0] === 2) {
      throw new StateError(
        'CORRUPT',
        'state meta: format 2 (undo records) is not read by this node, which stores a value per version (format 3); re-create the data directory',
        {},
      );
    }
    if (v[0] !== META_FORMAT)
      throw new StateError('CORRUPT', `state meta: unknown format ${String(v[0])}`, {});
    return {
      latest: readUint(v[1], 'state meta.latest'),
      oldest: readUint(v[2], 'state meta.oldest'),
      root: readBytes(v[3], 'state meta.root', HASH_BYTES),
    };
  } catch (err) {
    if (err instanceof StateError) throw err;
    throw new StateError('CORRUPT', `state meta: ${(err as Error).message}`, {});
  }
}

function checkVersionNumber(version: unknown, what: string): asserts version is number {
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0 || version > MAX_VERSION) {
    throw new StateError('BAD_VERSION', `${what}: expected an integer in 0..${MAX_VERSION}`, { version });
  }
}

function checkCount(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new StateError('BAD_OPTIONS', `${what}: expected an integer >= 1`, { [what]: value });
  }
}

/**
 * Opens the state kept in `kv` (creating nothing until the first commit). Scans the stored values
 * to load the key index and rebuild the latest tree, so it is async; every read afterwards is
 * synchronous.
 */
export async function openStateStore(kv: KvStore, options: StateStoreOptions = {}): Promise<StateStore> {
  const retain = options.retainVersions ?? DEFAULT_RETAIN_VERSIONS;
  checkCount(retain, 'retainVersions');
  const memoryVersions = options.memoryVersions ?? DEFAULT_MEMORY_VERSIONS;
  checkCount(memoryVersions, 'memoryVersions');
  if (options.version !== undefined) checkVersionNumber(options.version, 'version');

  const metaBytes = await kv.get(META_KEY);
  let meta: Meta | undefined = metaBytes === undefined ? undefined : decodeMeta(metaBytes);
  if (options.version !== undefined && meta?.latest !== options.version) {
    throw new StateError(
      'VERSION_MISSING',
      `state: asked to open at version ${options.version}, but the stored state is at ${meta === undefined ? 'no version' : String(meta.latest)}`,
      { version: options.version, stored: meta?.latest },
    );
  }

  // contract → its keys in byte order (latin1 strings).
  const index = new Map<string, SortedKeySet>();
  let keyCount = 0;
  // Key hashes, value hashes and versions of every key, for rebuilding the tree; grown by doubling
  // (unpooled, so the tree can read them as 32-bit words).
  let keyHashes = Buffer.allocUnsafeSlow(0);
  let valueHashes = Buffer.allocUnsafeSlow(0);
  let versions = new Float64Array(0);
  // Each key's entries lie together, oldest first: the last one of each run is its latest.
  let run: Bytes | undefined;
  let last: [Bytes, Bytes] | undefined;
  const take = (k: Bytes, v: Bytes): void => {
    const p = parseValueKey(k);
    if (meta === undefined || Math.floor(p.entry / 2) > meta.latest) {
      throw new StateError('CORRUPT', 'state: a stored value is newer than the latest version', {
        contract: p.contract,
      });
    }
    if (isTombstone(p.entry)) return;
    let set = index.get(p.contract);
    if (set === undefined) index.set(p.contract, (set = new SortedKeySet()));
    if (!set.add(p.keyStr))
      throw new StateError('CORRUPT', 'state: a key stored twice', { contract: p.contract });
    if ((keyCount + 1) * HASH_BYTES > keyHashes.length) {
      const size = Math.max(1024, 2 * keyHashes.length);
      const kh = Buffer.allocUnsafeSlow(size);
      const vh = Buffer.allocUnsafeSlow(size);
      const vs = new Float64Array(size / HASH_BYTES);
      keyHashes.copy(kh);
      valueHashes.copy(vh);
      vs.set(versions);
      keyHashes = kh;
      valueHashes = vh;
      versions = vs;
    }
    writeStateKeyHash(
      encodeStateKey(p.contract, Buffer.from(p.keyStr, 'latin1')),
      keyHashes,
      keyCount * HASH_BYTES,
    );
    // 'binary' is node's alias of 'latin1': the hash comes back as a string, written in place.
    valueHashes.write(hash('sha256', v, 'binary'), keyCount * HASH_BYTES, 'latin1');
    versions[keyCount] = p.entry / 2;
    keyCount++;
  };
  for await (const [k, v] of kv.scan({ gte: VALUE_START, lt: VALUE_END })) {
    // The bytes naming (contract, key): all but the 8 of the entry.
    const id = k.subarray(0, k.length - 8);
    if (last !== undefined && (run === undefined || !bytesEqual(run, id))) take(last[0], last[1]);
    run = id;
    last = [k, v];
  }
  if (last !== undefined) take(last[0], last[1]);

  // Every tree's records: the versions in memory, the views' working trees, rebuilt trees.
  const arena = createTreeArena({ parallelHashing: options.parallelHashing ?? 'auto' });
  // Root nodes of the versions whose trees are in memory: memoryOldest to the latest.
  const trees = new Map<number, TreeRoot>();
  // Records each version in memory replaced from the version before it: freed when that one
  // leaves memory.
  const retiredBy = new Map<number, number[]>();
  let rootNode: TreeRoot = 0;
  let root = EMPTY_STATE_ROOT;
  let memoryOldest = 0;
  if (meta !== undefined) {
    rootNode = arena.build(keyHashes, valueHashes, versions, keyCount);
    root = arena.hashOf(rootNode);
    if (!bytesEqual(root, meta.root)) {
      throw new StateError(
        'CORRUPT',
        `state: the tree rebuilt from the stored values does not match the root of version ${meta.latest}`,
        { version: meta.latest },
      );
    }
    trees.set(meta.latest, rootNode);
    memoryOldest = meta.latest;
  }
  keyHashes = valueHashes = Buffer.allocUnsafe(0);
  versions = new Float64Array(0);
  // Roots of retained versions, read on demand; entries below the window are dropped.
  const roots = new Map<number, Bytes>();
  if (meta !== undefined) roots.set(meta.latest, root);
  // Trees of old versions rebuilt on demand, and the version in memory each was rebuilt from (it
  // shares that tree's records, so it goes when that tree leaves memory).
  const rebuilt = new Map<number, { tree: WorkingTree; node: TreeRoot; from: number }>();
  const dropRebuilt = (version: number): void => {
    const r = rebuilt.get(version);
    if (r === undefined) return;
    rebuilt.delete(version);
    arena.drop(r.tree);
  };
  // Bumped on every finalised commit, so a StateCommit can only be finalised on the state it was built on.
  let generation = 0;

  // The stored value of an entry of (contract, key), given in its encoding; `what` names where the
  // entry was found, for the error when it is missing.
  const entryValue = (contract: string, encoded: Bytes, entry: number, what: string): Bytes => {
    const value = kv.getSync(valueKey(encoded, entry));
    if (value === undefined) {
      throw new StateError('CORRUPT', `state: the value ${what} names is missing`, { contract });
    }
    return value;
  };

  // The stored value of leaf `leaf` of (contract, key): the leaf says at which version it was
  // written, and so which entry holds it.
  const leafValue = (leaf: number, contract: string, key: Bytes): Bytes =>
    entryValue(contract, encodeStateKey(contract, key), putEntry(arena.leafVersion(leaf)), 'a leaf');

  const committed: CommittedState = {
    get version() {
      return meta?.latest;
    },
    read: (contract, key) => {
      const keyHash = stateKeyHash(contract, key);
      const leaf = arena.walk(rootNode, keyHash);
      return leaf === 0 || !arena.leafHolds(leaf, keyHash) ? undefined : leafValue(leaf, contract, key);
    },
    has: (contract, keyStr) => index.get(contract)?.has(keyStr) ?? false,
    cursor: (contract, start, exclusive) => index.get(contract)?.seek(start, exclusive),
    workingTree: () => arena.open(rootNode),
  };

  const checkRetained = (version: unknown): number => {
    checkVersionNumber(version, 'version');
    if (meta === undefined || version > meta.latest) {
      throw new StateError('VERSION_MISSING', `state: version ${version} is not committed`, {
        version,
        latest: meta?.latest,
      });
    }
    if (version < meta.oldest) {
      throw new StateError(
        'VERSION_PRUNED',
        `state: version ${version} was pruned (oldest kept: ${meta.oldest})`,
        {
          version,
          oldest: meta.oldest,
        },
      );
    }
    return version;
  };

  // Decoded stale records of recent versions, for reads of old versions, with their entries by
  // `contract + "\0" + latin1 key`. Bounded: each holds one block's writes, and walking back
  // through more than a few is rare (old-version proofs).
  const staleCache = new Map<number, StaleRecord & { byId: Map<string, DecodedStaleEntry> }>();
  const MAX_STALE_CACHE = 32;
  const staleAt = (version: number): StaleRecord & { byId: Map<string, DecodedStaleEntry> } => {
    let rec = staleCache.get(version);
    if (rec === undefined) {
      const bytes = kv.getSync(staleKey(version));
      if (bytes === undefined) {
        throw new StateError('CORRUPT', `state: the stale record of version ${version} is missing`, {
          version,
        });
      }
      const decoded = decodeStale(bytes, version);
      const byId = new Map<string, DecodedStaleEntry>();
      for (const e of decoded.entries) {
        byId.set(
          e.contract +
            '\0' +
            Buffer.from(e.key.buffer, e.key.byteOffset, e.key.byteLength).toString('latin1'),
          e,
        );
      }
      rec = { ...decoded, byId };
      if (staleCache.size >= MAX_STALE_CACHE) staleCache.delete(staleCache.keys().next().value!);
      staleCache.set(version, rec);
    }
    return rec;
  };

  const rootAt = (version: number): Bytes => {
    checkRetained(version);
    let r = roots.get(version);
    if (r === undefined) {
      // The stale record of the next version holds this version's root.
      r = staleAt(version + 1).previousRoot;
      roots.set(version, r);
    }
    return r;
  };

  // The tree of a retained version: in memory, or rebuilt from the oldest tree in memory by
  // undoing, newest first, the versions after it. A rebuilt tree is kept until that tree leaves
  // memory (it shares its records), so proofs of one old version in a row rebuild once per block.
  const treeAt = (version: number): TreeRoot => {
    if (version >= memoryOldest) return trees.get(version) ?? 0;
    const kept = rebuilt.get(version);
    if (kept !== undefined) return kept.node;
    const from = memoryOldest;
    const tree = arena.open(trees.get(from) ?? 0);
    for (let u = from; u > version; u--) {
      for (const e of staleAt(u).entries) {
        const keyHash = stateKeyHash(e.contract, e.key);
        if (e.previous === NO_ENTRY || isTombstone(e.previous)) tree.delete(keyHash);
        else
          tree.put(keyHash, entryValue(e.contract, e.encoded, e.previous, 'a stale record'), e.previous / 2);
      }
    }
    const done = tree.finish();
    if (!bytesEqual(done.root, rootAt(version))) {
      arena.drop(tree);
      throw new StateError(
        'CORRUPT',
        `state: the tree rebuilt for version ${version} does not match its root`,
        {
          version,
        },
      );
    }
    if (rebuilt.size >= MAX_REBUILT_TREES) dropRebuilt(rebuilt.keys().next().value!);
    arena.keep(tree);
    rebuilt.set(version, { tree, node: done.node, from });
    return done.node;
  };

  // The value of (contract, key) at a retained version: the latest one unless a later version
  // wrote the key, in which case the first such version's stale record names the entry holding it.
  const valueAt = (version: number, contract: string, key: Bytes): Bytes | undefined => {
    const id = contract + '\0' + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
    for (let u = version + 1; u <= meta!.latest; u++) {
      const e = staleAt(u).byId.get(id);
      if (e === undefined) continue;
      return e.previous === NO_ENTRY || isTombstone(e.previous)
        ? undefined
        : entryValue(contract, e.encoded, e.previous, 'a stale record');
    }
    return committed.read(contract, key);
  };

  // Collection of pruned versions: the entries their stale records name, and the records, deleted
  // in batches of their own (started by the next commit: see commitOps), so that a block's batch
  // holds its writes only (a 1,000-key block's collection is ~1,000 deletes). One batch at a time;
  // what is due meanwhile waits for the next. Versions up to `collected` are collected; those above
  // it and up to the oldest kept are due. A crash or a close before a collection is written leaves
  // it due: opening finds the stale records still there up to the oldest version.
  let collected = meta?.oldest ?? 0;
  let collecting: Promise<void> | undefined;
  const collect = (): void => {
    if (collecting !== undefined || meta === undefined || collected >= meta.oldest) return;
    const upTo = Math.min(meta.oldest, collected + MAX_COLLECTED_PER_BATCH);
    const ops: BatchOp[] = [];
    let written: Promise<void>;
    try {
      for (let s = collected + 1; s <= upTo; s++) {
        const bytes = kv.getSync(staleKey(s));
        if (bytes === undefined) continue;
        for (const key of staleGarbage(decodeStale(bytes, s), s)) ops.push({ type: 'del', key });
        ops.push({ type: 'del', key: staleKey(s) });
      }
      written = ops.length === 0 ? Promise.resolve() : kv.batch(ops);
    } catch {
      // A closed store, or a stale record that does not decode: left due, as a failed batch is.
      return;
    }
    collecting = written.then(
      () => {
        collected = upTo;
        collecting = undefined;
        collect();
      },
      () => {
        // Left due (a closed store, a failing disk): the next commit or open tries again.
        collecting = undefined;
      },
    );
  };
  if (meta !== undefined) {
    // Stale records below the oldest kept version are collections a crash or close interrupted.
    for await (const [k] of kv.scan({ gte: staleKey(0), lt: staleKey(meta.oldest + 1), limit: 1 })) {
      collected = parseStaleKey(k) - 1;
    }
    collect();
  }

  const store: StateStore = {
    get version() {
      return meta?.latest;
    },
    get root() {
      return root;
    },
    get oldestVersion() {
      return meta?.oldest;
    },
    get keyCount() {
      return keyCount;
    },
    get treeRecords() {
      return arena.stats();
    },
    view: () => createStateView(committed),

    commitOps(view, version) {
      const internals = viewInternals(view);
      if (internals === undefined || internals.committed !== committed) {
        throw new StateError('BAD_OPTIONS', 'commitOps: the view was not made by this state store', {});
      }
      if (view.depth !== 0) {
        throw new StateError('OPEN_CHECKPOINT', `commitOps: the view has ${view.depth} open checkpoint(s)`, {
          depth: view.depth,
        });
      }
      checkVersionNumber(version, 'commitOps version');
      if (meta !== undefined && version !== meta.latest + 1) {
        throw new StateError(
          'BAD_VERSION',
          `commitOps: expected version ${meta.latest + 1}, got ${version}`,
          {
            version,
            expected: meta.latest + 1,
          },
        );
      }
      const { tree } = internals.sync();
      // In key order: the batch lists the writes in one deterministic order.
      const writes = internals
        .writes()
        .sort((a, b) =>
          a.contract !== b.contract
            ? a.contract < b.contract
              ? -1
              : 1
            : a.keyStr < b.keyStr
              ? -1
              : a.keyStr > b.keyStr
                ? 1
                : 0,
        );

      // Pruning: every version below `version - retain + 1` leaves the window. The stale records
      // that led to them, and the entries those name, are collected after the commit.
      const oldest0 = meta?.oldest ?? version;
      const target = Math.max(oldest0, version - retain + 1);
      let oldest = oldest0;
      let ownPruned = false;
      const ops: BatchOp[] = [];
      for (let s = oldest0 + 1; s <= target && s <= oldest0 + MAX_PRUNED_VERSIONS_PER_COMMIT; s++) {
        if (s === version) ownPruned = true;
        oldest = s;
      }

      // Each write becomes a new entry, and the stale record names the entry it supersedes: what
      // the tree found of the key (in the committed version or not, the version of its value)
      // says which, so nothing is read. A version pruned at once (a window of one) keeps no stale
      // record: what its writes supersede goes now, and its deletes need no tombstones.
      const added: Array<[string, string]> = [];
      const removed: Array<[string, string]> = [];
      const stale: StaleEntry[] = [];
      for (const s of writes) {
        const base = s.baseVersion;
        if (base === undefined || (base !== ABSENT && base < 0)) {
          throw new StateError('CORRUPT', 'state: a written key was not placed in the tree', {
            contract: s.contract,
          });
        }
        const inBase = base !== ABSENT;
        const encoded = (s.encoded ??= encodeStateKey(s.contract, s.key));
        const previous = inBase ? putEntry(base) : NO_ENTRY;
        if (s.value === null) {
          if (!inBase) continue;
          removed.push([s.contract, s.keyStr]);
          if (ownPruned) ops.push({ type: 'del', key: valueKey(encoded, previous) });
          else {
            ops.push({ type: 'put', key: valueKey(encoded, tombstoneEntry(version)), value: TOMBSTONE });
            stale.push({ contract: s.contract, key: s.key, previous, deleted: true });
          }
        } else if (s.value !== undefined) {
          // The value the key already had: the tree kept its leaf, and nothing is written.
          if (!s.fresh) continue;
          ops.push({ type: 'put', key: valueKey(encoded, putEntry(version)), value: s.value });
          if (!inBase) added.push([s.contract, s.keyStr]);
          if (ownPruned) {
            if (previous !== NO_ENTRY) ops.push({ type: 'del', key: valueKey(encoded, previous) });
          } else stale.push({ contract: s.contract, key: s.key, previous, deleted: false });
        }
      }
      if (meta !== undefined && !ownPruned) {
        ops.push({ type: 'put', key: staleKey(version), value: encodeStale(meta.root, stale) });
      }
      // A view commits once: its working tree becomes this version's nodes, its new leaves
      // written at this version.
      internals.close();
      tree.stamp(version);
      const built = tree.finish();
      const newMeta: Meta = { latest: version, oldest, root: built.root };
      ops.push({ type: 'put', key: META_KEY, value: encodeMeta(newMeta) });
      // What the committed versions pruned is collected once the caller has handed these ops to be
      // written (a microtask runs when it awaits that write): building the collection's batch then
      // overlaps the write instead of following it. Only versions the last written metadata prunes
      // are collected, so the outcome of this batch does not matter.
      queueMicrotask(collect);

      const builtOn = generation;
      let done = false;
      return {
        version,
        root: built.root,
        ops,
        finalize() {
          if (done) return;
          if (generation !== builtOn) {
            throw new StateError(
              'STALE_VIEW',
              'finalize: another commit was finalised since these ops were built',
              {
                version,
              },
            );
          }
          done = true;
          generation++;
          meta = newMeta;
          root = built.root;
          rootNode = built.node;
          trees.set(version, rootNode);
          // Every other working tree is stale now (its view refuses every call): its records go.
          retiredBy.set(version, arena.adopt(tree));
          // Trees leaving memory: the records only they held are freed, and so are the trees
          // rebuilt from them (which share their records).
          const keep = Math.max(oldest, version - Math.min(memoryVersions, retain) + 1);
          for (; memoryOldest < keep; memoryOldest++) {
            trees.delete(memoryOldest);
            const retired = retiredBy.get(memoryOldest + 1);
            if (retired !== undefined) arena.release(retired);
            retiredBy.delete(memoryOldest + 1);
          }
          for (const [r, t] of rebuilt) if (r < oldest || t.from < memoryOldest) dropRebuilt(r);
          for (const r of roots.keys()) if (r < oldest) roots.delete(r);
          for (const u of staleCache.keys()) if (u <= oldest) staleCache.delete(u);
          roots.set(version, root);
          for (const [contract, keyStr] of removed) {
            if (index.get(contract)?.delete(keyStr) === true) keyCount--;
          }
          for (const [contract, keyStr] of added) {
            let set = index.get(contract);
            if (set === undefined) index.set(contract, (set = new SortedKeySet()));
            if (set.add(keyStr)) keyCount++;
          }
        },
      };
    },

    rootAt,

    async settled() {
      // A collection that ends starts the next one due.
      while (collecting !== undefined) await collecting;
    },

    getAt(version, contract, key) {
      checkRetained(version);
      assertContract(contract);
      assertKey(key);
      return valueAt(version, contract, key);
    },

    prove(contract, key, version) {
      const v = checkRetained(version ?? meta?.latest ?? 0);
      const keyHash = stateKeyHash(contract, key);
      const levels: StateProofLevel[] = [];
      const leaf = arena.walk(treeAt(v), keyHash, levels);
      const present = leaf !== 0 && arena.leafHolds(leaf, keyHash);
      const value = present ? leafValue(leaf, contract, key) : undefined;
      if (value !== undefined && !bytesEqual(stateValueHash(value), arena.leafValueHash(leaf))) {
        throw new StateError('CORRUPT', `state: the value of a key at version ${v} does not match its leaf`, {
          version: v,
          contract,
        });
      }
      return {
        version: v,
        root: rootAt(v),
        value: value === undefined ? undefined : Buffer.from(value),
        proof: {
          leaf:
            leaf === 0 ? null : { keyHash: arena.leafKeyHash(leaf), valueHash: arena.leafValueHash(leaf) },
          levels,
        },
      };
    },
  };
  return store;
}
