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
  createTreeArena,
  type ArenaStats,
  type ParallelHashing,
  type TreeRoot,
  type WorkingTree,
} from './memoryTree.ts';
import { SortedKeySet } from './sortedKeySet.ts';
import {
  FLAT_ENCODED_AT,
  FLAT_END,
  FLAT_START,
  MAX_VERSION,
  META_KEY,
  decodeUndo,
  encodeUndo,
  flatKey,
  parseFlatKey,
  undoKey,
  type UndoEntry,
  type UndoRecord,
} from './stateLayout.ts';
import { createStateView, viewInternals, type CommittedState, type StateStoreView } from './stateView.ts';

/**
 * The authenticated state store: a versioned Jellyfish-style Merkle tree of every contract's
 * key-values, with a flat index of the latest values in the node's KvStore and an in-memory
 * ordered key index for range scans. The hashing rules are in core/stateProof.ts; the storage
 * layout in stateLayout.ts, the tree in memoryTree.ts.
 *
 * Like Aptos's Jellyfish Merkle tree, committed nodes are never rewritten, so each version's tree
 * stays readable and provable; a version is its root node and shares every unchanged subtree with
 * the version before it. A leaf (key hash, value hash) lives inside its parent node. Unlike it, the
 * nodes live in memory, not in the database: the database holds the values (flat index), and per
 * version an undo record (the values the version overwrote and the root before it) and the
 * metadata (latest version and root). A block's batch is therefore its ~1,000 value writes and
 * one undo record (~110 KiB), instead of the ~2,200 node records (and as many deletes when pruned,
 * ~2 MiB in all) a 1,000-key block on a million-key tree wrote as Jellyfish does, which LevelDB on
 * a small machine cannot sustain at tens of thousands of updates per second.
 *
 * - Opening rebuilds the latest tree from the flat index (one scan, which also loads the key
 *   index; two hashes per key) and checks its root against the stored one.
 * - The trees of the last `memoryVersions` versions are held in memory (they share all unchanged
 *   subtrees); an older retained version's tree is rebuilt on demand from the nearest newer one
 *   held, by undoing the versions in between with their undo records (a few are kept).
 * - Values of older versions come from the undo records; roots from the undo records too.
 *
 * Versions are block heights. Committing never writes by itself: {@link StateStore.commitOps}
 * returns the batch operations of the new version (flat index changes, the undo record, pruning of
 * the versions leaving the retention window, metadata), which the block store appends to the
 * block's one atomic batch; once that batch is written, `finalize()` moves the in-memory state
 * (version, root, tree, key index) forward. A crash at any instant therefore leaves the values of
 * the old head or of the new one, never a mixture, and the tree rebuilt from them has that head's
 * root.
 *
 * The undo record needs the value each written key had, which the view knows only for keys it read
 * first. The others are fetched with one `KvStore.getMany` when the view's root is computed (at the
 * end of execution), on LevelDB's thread pool while the tree is updated and hashed (on a large tree
 * by two threads: memoryTree.ts, hashThread.ts); `prepareCommit` awaits
 * them, so `commitOps` reads none of them on the main thread (one by one they cost ~5 µs each).
 * The fetch reads from a snapshot taken while the view is current, so the values are those of its
 * base version; a view that another commit made stale is refused as before.
 *
 * Memory grows with the state, as the key index already does: the key index holds every
 * (contract, key) as a latin1 string in a chunked sorted array (~16 bytes plus the key length per
 * key), and the tree ~155 bytes per key (at a million keys: 1,000,000 leaf records of 100 bytes
 * and ~400,000 node records of 104 bytes, in typed-array chunks of 65,536 records; see
 * memoryTree.ts), plus the records the `memoryVersions` latest versions replaced (~0.3 MiB per
 * 1,000-key block at a million keys). A million 20-byte keys thus take ~210 MiB.
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
   * Fetch the committed values a block overwrites (for its undo record) with one asynchronous
   * multi-get started when the view's root is first computed, so LevelDB reads them on its thread
   * pool while the main thread hashes; {@link StateStore.prepareCommit} awaits them. Default true.
   * Off, `commitOps` reads them one by one on the main thread; the batches are the same either way.
   */
  readonly prefetch?: boolean;
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
   * Computes the view's root if it is not yet current (so every written key's committed value is
   * being fetched) and resolves once those values have arrived: `commitOps` then reads none of them
   * on the main thread. Optional (without it `commitOps` reads what has not arrived) and writes
   * nothing; call it right before `commitOps`. Rejects as the view's calls do (STALE_VIEW,
   * VIEW_CLOSED), or BAD_OPTIONS for a view of another store.
   */
  prepareCommit(view: StateStoreView): Promise<void>;
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
}

/** Most versions one commit prunes, so lowering `retainVersions` cannot make one huge batch. */
export const MAX_PRUNED_VERSIONS_PER_COMMIT = 16;
const DEFAULT_RETAIN_VERSIONS = 256;
/** Versions whose trees stay in memory unless `memoryVersions` says otherwise. */
export const DEFAULT_MEMORY_VERSIONS = 16;
// Trees of old versions rebuilt on demand, kept (first rebuilt first out) until the tree they were
// rebuilt from leaves memory; each costs the records that differ from the trees in memory.
const MAX_REBUILT_TREES = 4;
const META_FORMAT = 2;

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
 * Opens the state kept in `kv` (creating nothing until the first commit). Scans the flat index to
 * load the key index and rebuild the latest tree, so it is async; every read afterwards is
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
  // Key and value hashes of every key, for rebuilding the tree; grown by doubling (unpooled, so
  // the tree can read them as 32-bit words).
  let keyHashes = Buffer.allocUnsafeSlow(0);
  let valueHashes = Buffer.allocUnsafeSlow(0);
  for await (const [k, v] of kv.scan({ gte: FLAT_START, lt: FLAT_END })) {
    const { contract, keyStr } = parseFlatKey(k);
    let set = index.get(contract);
    if (set === undefined) index.set(contract, (set = new SortedKeySet()));
    if (!set.add(keyStr)) continue;
    if ((keyCount + 1) * HASH_BYTES > keyHashes.length) {
      const size = Math.max(1024, 2 * keyHashes.length);
      const kh = Buffer.allocUnsafeSlow(size);
      const vh = Buffer.allocUnsafeSlow(size);
      keyHashes.copy(kh);
      valueHashes.copy(vh);
      keyHashes = kh;
      valueHashes = vh;
    }
    // A flat-index key ends with the (contract, key) encoding the key hash hashes.
    writeStateKeyHash(k.subarray(FLAT_ENCODED_AT), keyHashes, keyCount * HASH_BYTES);
    // 'binary' is node's alias of 'latin1': the hash comes back as a string, written in place.
    valueHashes.write(hash('sha256', v, 'binary'), keyCount * HASH_BYTES, 'latin1');
    keyCount++;
  }

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
    rootNode = arena.build(keyHashes, valueHashes, keyCount);
    root = arena.hashOf(rootNode);
    if (!bytesEqual(root, meta.root)) {
      throw new StateError(
        'CORRUPT',
        `state: the tree rebuilt from the flat index does not match the root of version ${meta.latest}`,
        { version: meta.latest },
      );
    }
    trees.set(meta.latest, rootNode);
    memoryOldest = meta.latest;
  }
  keyHashes = valueHashes = Buffer.allocUnsafe(0);
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

  const committed: CommittedState = {
    get version() {
      return meta?.latest;
    },
    fetch: options.prefetch === false ? undefined : (keys) => kv.getMany(keys),
    read: (contract, key) => kv.getSync(flatKey(contract, key)),
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

  // Decoded undo records of recent versions, for reads of old versions. Bounded: each holds one
  // block's writes, and walking back through more than a few is rare (old-version proofs).
  const undoCache = new Map<number, UndoRecord>();
  const MAX_UNDO_CACHE = 32;
  const undoAt = (version: number): UndoRecord => {
    let rec = undoCache.get(version);
    if (rec === undefined) {
      const bytes = kv.getSync(undoKey(version));
      if (bytes === undefined) {
        throw new StateError('CORRUPT', `state: the undo record of version ${version} is missing`, {
          version,
        });
      }
      rec = decodeUndo(bytes, version);
      if (undoCache.size >= MAX_UNDO_CACHE) undoCache.delete(undoCache.keys().next().value!);
      undoCache.set(version, rec);
    }
    return rec;
  };

  const rootAt = (version: number): Bytes => {
    checkRetained(version);
    let r = roots.get(version);
    if (r === undefined) {
      // The undo record of the next version holds this version's root.
      r = undoAt(version + 1).previousRoot;
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
      for (const [id, previous] of undoAt(u).values) {
        const cut = id.indexOf('\0');
        const keyHash = stateKeyHash(id.slice(0, cut), Buffer.from(id.slice(cut + 1), 'latin1'));
        if (previous === null) tree.delete(keyHash);
        else tree.put(keyHash, previous);
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
  // wrote the key, in which case the first such version's undo record holds it.
  const valueAt = (version: number, contract: string, key: Bytes): Bytes | undefined => {
    if (version === meta!.latest) return kv.getSync(flatKey(contract, key));
    const id = contract + '\0' + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
    let value: Bytes | null | undefined;
    for (let u = version + 1; u <= meta!.latest && value === undefined; u++) value = undoAt(u).values.get(id);
    if (value === undefined) return kv.getSync(flatKey(contract, key));
    return value ?? undefined;
  };

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

    async prepareCommit(view) {
      const internals = viewInternals(view);
      if (internals === undefined || internals.committed !== committed) {
        throw new StateError('BAD_OPTIONS', 'prepareCommit: the view was not made by this state store', {});
      }
      await internals.fetched();
    },

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
      // In key order: the previous values are then read from LevelDB in order (warmer blocks), and
      // the batch lists the flat index writes in one deterministic order.
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
      // A view commits once: its working tree becomes this version's nodes.
      internals.close();
      const built = tree.finish();
      const ops: BatchOp[] = [];

      // The flat index, the undo record (previous values, for reading older versions), and the
      // key-index changes to apply once the batch is written.
      const added: Array<[string, string]> = [];
      const removed: Array<[string, string]> = [];
      const undo: UndoEntry[] = [];
      for (const s of writes) {
        // The previous value, which also says whether the key was there: the one the block read,
        // none when the tree found no such key, the one fetched ahead (prepareCommit), or else one
        // flat-index read.
        const read = internals.readValue(s.contract, s.keyStr);
        const key = s.flat ?? flatKey(s.contract, s.key);
        const previous =
          read !== undefined
            ? read
            : s.inBase === false
              ? null
              : s.previous !== undefined
                ? s.previous
                : (kv.getSync(key) ?? null);
        const inBase = previous !== null;
        if (!inBase && s.inBase === true) {
          // The tree holds the key but the flat index has no value for it.
          throw new StateError('CORRUPT', 'state: key index and flat index disagree', {
            contract: s.contract,
          });
        }
        if (s.value === null && !inBase) continue;
        undo.push({ contract: s.contract, key: s.key, previous });
        if (s.value === null) {
          ops.push({ type: 'del', key });
          removed.push([s.contract, s.keyStr]);
        } else if (s.value !== undefined) {
          ops.push({ type: 'put', key, value: s.value });
          if (!inBase) added.push([s.contract, s.keyStr]);
        }
      }

      // Pruning: every version below `version - retain + 1` leaves the window, and with it the
      // undo record that led to it from the version before.
      const oldest0 = meta?.oldest ?? version;
      const target = Math.max(oldest0, version - retain + 1);
      let oldest = oldest0;
      let ownPruned = false;
      for (let s = oldest0 + 1; s <= target && s <= oldest0 + MAX_PRUNED_VERSIONS_PER_COMMIT; s++) {
        if (s === version) ownPruned = true;
        else ops.push({ type: 'del', key: undoKey(s) });
        oldest = s;
      }
      if (meta !== undefined && !ownPruned) {
        ops.push({ type: 'put', key: undoKey(version), value: encodeUndo(meta.root, undo) });
      }
      const newMeta: Meta = { latest: version, oldest, root: built.root };
      ops.push({ type: 'put', key: META_KEY, value: encodeMeta(newMeta) });

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
          for (const u of undoCache.keys()) if (u <= oldest) undoCache.delete(u);
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
      const value = present ? valueAt(v, contract, key) : undefined;
      if (present && (value === undefined || !bytesEqual(stateValueHash(value), arena.leafValueHash(leaf)))) {
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
