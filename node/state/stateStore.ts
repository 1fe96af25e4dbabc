import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { pack, readArray, readUint, unpackCanonical } from '../../core/codec.ts';
import {
  StateError,
  assertContract,
  assertKey,
  nibbleAt,
  stateKeyHash,
  stateValueHash,
  type StateProof,
  type StateProofLevel,
} from '../../core/stateProof.ts';
import type { BatchOp, KvStore } from '../storage/kv.ts';
import {
  FLAT_END,
  FLAT_START,
  MAX_VERSION,
  META_KEY,
  childAt,
  childHashOffset,
  createNodeReader,
  decodeKeyList,
  decodeUndo,
  encodeKeyList,
  encodeUndo,
  flatKey,
  parseFlatKey,
  staleKey,
  storedNodeHash,
  undoKey,
  type LeafEntry,
  type StoredNode,
  type UndoEntry,
} from './nodeStore.ts';
import { SortedKeySet } from './sortedKeySet.ts';
import { createStateView, viewInternals, type CommittedState, type StateStoreView } from './stateView.ts';
import { createWorkingTree } from './workingTree.ts';

/**
 * The authenticated state store: a versioned Jellyfish-style Merkle tree of every contract's
 * key-values over the node's KvStore, with a flat index of the latest values and an in-memory
 * ordered key index for range scans. The hashing rules are in core/stateProof.ts; the storage
 * layout in nodeStore.ts.
 *
 * Like Aptos's Jellyfish Merkle tree: nodes are keyed by (version, nibble path) and never
 * rewritten, so every retained version stays readable and provable; each version has its own root
 * record; the nodes a version replaces are listed in its stale-node record, and deleted when the
 * version leaves the retention window. Unlike it: a leaf (key hash, value hash) lives inside its
 * parent's record, not in a record of its own, and subtrees of at most 8 leaves are embedded in
 * their parent's record, so a 1,000-key block on a million-key tree writes ~2,200 records
 * instead of ~3,750 (and later prunes as many). Values live in the flat index; a version's undo
 * record keeps the values it overwrote, from which older versions are read.
 *
 * Versions are block heights. Committing never writes by itself: {@link StateStore.commitOps}
 * returns the batch operations of the new version (tree records, flat index changes, the
 * stale-node and undo records, pruning of the versions leaving the retention window, metadata),
 * which the block store appends to the block's one atomic batch; once that batch is written,
 * `finalize()` moves the in-memory state (version, root, key index, node cache) forward. A crash
 * at any instant therefore leaves the state of the old head or of the new one, never a mixture.
 *
 * Memory: the key index holds every (contract, key) of the latest version as a latin1 string in a
 * chunked sorted array: about 16 bytes plus the key length per key (~40 MiB at a million 20-byte
 * keys), loaded by one scan of the flat index at open (~1 s per 200,000 keys here). The node
 * cache is bounded by `cacheNodes`; a million-key tree has ~70,000 records.
 */
/** Options of {@link openStateStore}. */
export interface StateStoreOptions {
  /** Versions kept readable and provable: the latest and the ones before it. At least 1. Default 256. */
  readonly retainVersions?: number;
  /** Tree records kept decoded in memory (~0.5 to 2 KiB each). Default 131,072. */
  readonly cacheNodes?: number;
  /**
   * The version the caller knows is committed (the head height from the block store). Opening
   * fails with VERSION_MISSING unless the stored state is at exactly this version.
   */
  readonly version?: number;
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
   * Reads the latest version's nodes into the node cache, breadth-first from the root, until the
   * cache is full or the tree is read; returns the number of records read. A restarted node calls
   * it once so its first blocks do not pay a disk read per node.
   */
  warmCache(): number;
}

/** Most stale-node records one commit deletes, so lowering `retainVersions` cannot make one huge batch. */
export const MAX_PRUNED_VERSIONS_PER_COMMIT = 16;
const DEFAULT_RETAIN_VERSIONS = 256;
const DEFAULT_CACHE_NODES = 131_072;
const META_FORMAT = 1;

interface Meta {
  readonly latest: number;
  /** Versions below this one are pruned. */
  readonly oldest: number;
}

function encodeMeta(m: Meta): Bytes {
  return pack([META_FORMAT, m.latest, m.oldest]);
}

function decodeMeta(bytes: Bytes): Meta {
  try {
    const v = readArray(unpackCanonical(bytes, 'state meta'), 3, 'state meta');
    if (v[0] !== META_FORMAT)
      throw new StateError('CORRUPT', `state meta: unknown format ${String(v[0])}`, {});
    return { latest: readUint(v[1], 'state meta.latest'), oldest: readUint(v[2], 'state meta.oldest') };
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

const ZERO_PATH = Buffer.alloc(32);

function popcount16(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

/**
 * Opens the state kept in `kv` (creating nothing until the first commit). Loads the ordered key
 * index by scanning the flat index, so it is async; every read afterwards is synchronous.
 */
export async function openStateStore(kv: KvStore, options: StateStoreOptions = {}): Promise<StateStore> {
  const retain = options.retainVersions ?? DEFAULT_RETAIN_VERSIONS;
  if (!Number.isSafeInteger(retain) || retain < 1) {
    throw new StateError('BAD_OPTIONS', 'retainVersions: expected an integer >= 1', {
      retainVersions: retain,
    });
  }
  const cacheNodes = options.cacheNodes ?? DEFAULT_CACHE_NODES;
  if (!Number.isSafeInteger(cacheNodes) || cacheNodes < 2) {
    throw new StateError('BAD_OPTIONS', 'cacheNodes: expected an integer >= 2', { cacheNodes });
  }
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

  const reader = createNodeReader(kv, cacheNodes);
  // contract → its keys in byte order (latin1 strings).
  const index = new Map<string, SortedKeySet>();
  let keyCount = 0;
  for await (const [k] of kv.scan({ gte: FLAT_START, lt: FLAT_END })) {
    const { contract, keyStr } = parseFlatKey(k);
    let set = index.get(contract);
    if (set === undefined) index.set(contract, (set = new SortedKeySet()));
    if (set.add(keyStr)) keyCount++;
  }

  let rootNode: StoredNode = meta === undefined ? { kind: 'null' } : reader.load(meta.latest, ZERO_PATH, 0);
  // Roots of retained versions, computed on demand; entries below the window are dropped.
  const roots = new Map<number, Bytes>();
  let root = storedNodeHash(rootNode);
  if (meta !== undefined) roots.set(meta.latest, root);
  // Bumped on every finalised commit, so a StateCommit can only be finalised on the state it was built on.
  let generation = 0;

  const committed: CommittedState = {
    get version() {
      return meta?.latest;
    },
    read: (contract, key) => kv.getSync(flatKey(contract, key)),
    has: (contract, keyStr) => index.get(contract)?.has(keyStr) ?? false,
    cursor: (contract, start, exclusive) => index.get(contract)?.seek(start, exclusive),
    workingTree: () => createWorkingTree(reader, meta?.latest, rootNode),
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

  const rootAt = (version: number): Bytes => {
    checkRetained(version);
    let r = roots.get(version);
    if (r === undefined) {
      r = storedNodeHash(reader.load(version, ZERO_PATH, 0));
      roots.set(version, r);
    }
    return r;
  };

  // Walks version `version` along keyHash: the leaf found on its path (if any), recording the
  // levels passed when asked to (for a proof).
  const walk = (
    version: number,
    keyHash: Bytes,
    levels: StateProofLevel[] | undefined,
  ): LeafEntry | undefined => {
    let node = reader.load(version, ZERO_PATH, 0);
    for (let depth = 0; ; depth++) {
      switch (node.kind) {
        case 'null':
          return undefined;
        case 'leaf':
          return node.leaf;
        case 'internal': {
          const n = nibbleAt(keyHash, depth);
          if (levels !== undefined) {
            // Sibling hashes are copied straight from the node's bytes into one buffer per level.
            const bitmap = node.bitmap & ~(1 << n);
            const all = Buffer.allocUnsafe(popcount16(bitmap) * HASH_BYTES);
            const siblings: Bytes[] = [];
            for (let i = 0, j = 0; i < 16; i++) {
              if (!((bitmap >> i) & 1)) continue;
              const o = childHashOffset(node, i);
              node.bytes.copy(all, j * HASH_BYTES, o, o + HASH_BYTES);
              siblings.push(all.subarray(j * HASH_BYTES, ++j * HASH_BYTES));
            }
            levels.push({ bitmap, siblings });
          }
          const child = childAt(node, n);
          if (child === undefined || child.t === 'leaf') return child;
          node = child.t === 'emb' ? child.node : reader.load(child.version, keyHash, depth + 1);
          if (node.kind !== 'internal') {
            throw new StateError('CORRUPT', 'state tree: an internal child is not an internal node', {
              version,
              depth,
            });
          }
        }
      }
    }
  };

  // Decoded undo records of recent versions, for reads of old versions. Bounded: each holds one
  // block's writes, and walking back through more than a few is rare (old-version proofs).
  const undoCache = new Map<number, Map<string, Bytes | null>>();
  const MAX_UNDO_CACHE = 32;
  const undoAt = (version: number): Map<string, Bytes | null> | undefined => {
    let rec = undoCache.get(version);
    if (rec === undefined) {
      const bytes = kv.getSync(undoKey(version));
      if (bytes === undefined) return undefined;
      rec = decodeUndo(bytes, version);
      if (undoCache.size >= MAX_UNDO_CACHE) undoCache.delete(undoCache.keys().next().value!);
      undoCache.set(version, rec);
    }
    return rec;
  };

  // The value of (contract, key) at a retained version. Leaves hold value hashes; the value is
  // the latest one unless a later version wrote the key, in which case the first such version's
  // undo record holds it. Each value found is checked against the leaf's hash.
  const valueAt = (version: number, contract: string, key: Bytes): Bytes | undefined => {
    if (version === meta!.latest) return kv.getSync(flatKey(contract, key));
    const keyHash = stateKeyHash(contract, key);
    const leaf = walk(version, keyHash, undefined);
    if (leaf === undefined || !bytesEqual(leaf.keyHash, keyHash)) return undefined;
    const id = contract + '\0' + Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
    let value: Bytes | null | undefined;
    for (let u = version + 1; u <= meta!.latest && value === undefined; u++) value = undoAt(u)?.get(id);
    if (value === undefined) value = kv.getSync(flatKey(contract, key)) ?? null;
    if (value === null || !bytesEqual(stateValueHash(value), leaf.valueHash)) {
      throw new StateError(
        'CORRUPT',
        `state: the value of a key at version ${version} does not match its leaf`,
        {
          version,
          contract,
        },
      );
    }
    return value;
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
      const built = tree.serialize(version);
      const ops: BatchOp[] = built.ops;

      // The flat index, the undo record (previous values, for reading older versions), and the
      // key-index changes to apply once the batch is written.
      const added: Array<[string, string]> = [];
      const removed: Array<[string, string]> = [];
      const undo: UndoEntry[] = [];
      for (const s of writes) {
        const inBase = committed.has(s.contract, s.keyStr);
        if (s.value === null && !inBase) continue;
        const previous = inBase
          ? (internals.readValue(s.contract, s.keyStr) ?? committed.read(s.contract, s.key) ?? null)
          : null;
        if (previous === null && inBase) {
          throw new StateError('CORRUPT', 'state: key index and flat index disagree', {
            contract: s.contract,
          });
        }
        undo.push({ contract: s.contract, key: s.key, previous });
        if (s.value === null) {
          ops.push({ type: 'del', key: flatKey(s.contract, s.key) });
          removed.push([s.contract, s.keyStr]);
        } else if (s.value !== undefined) {
          ops.push({ type: 'put', key: flatKey(s.contract, s.key), value: s.value });
          if (!inBase) added.push([s.contract, s.keyStr]);
        }
      }

      // Stale nodes of this version, then pruning: every version below `version - retain + 1`
      // leaves the window, so the nodes that went stale up to that version can go, and so can
      // the undo records only those versions needed.
      const oldest0 = meta?.oldest ?? version;
      const target = Math.max(oldest0, version - retain + 1);
      let oldest = oldest0;
      let ownPruned = false;
      for (let s = oldest0 + 1; s <= target && s <= oldest0 + MAX_PRUNED_VERSIONS_PER_COMMIT; s++) {
        if (s === version) {
          for (const k of built.stale) ops.push({ type: 'del', key: k });
          ownPruned = true;
        } else {
          const key = staleKey(s);
          const record = kv.getSync(key);
          if (record !== undefined) {
            for (const k of decodeKeyList(record)) ops.push({ type: 'del', key: k });
            ops.push({ type: 'del', key });
          }
          ops.push({ type: 'del', key: undoKey(s) });
        }
        oldest = s;
      }
      if (!ownPruned) {
        if (built.stale.length > 0)
          ops.push({ type: 'put', key: staleKey(version), value: encodeKeyList(built.stale) });
        if (undo.length > 0) ops.push({ type: 'put', key: undoKey(version), value: encodeUndo(undo) });
      }
      const newMeta: Meta = { latest: version, oldest };
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
          reader.remember(built.nodes);
          reader.forget(built.staleIds);
          rootNode = reader.load(version, ZERO_PATH, 0);
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

    warmCache() {
      if (meta === undefined) return 0;
      let read = 0;
      // Breadth-first: the upper levels, touched by every block, come first.
      let level: Array<{ version: number; path: Buffer; depth: number }> = [
        { version: meta.latest, path: ZERO_PATH, depth: 0 },
      ];
      while (level.length > 0 && read < cacheNodes) {
        const next: typeof level = [];
        for (const { version, path, depth } of level) {
          if (read >= cacheNodes) break;
          const node = reader.load(version, path, depth);
          read++;
          if (node.kind !== 'internal') continue;
          for (let i = 0; i < 16; i++) {
            const c = childAt(node, i);
            if (c === undefined || c.t !== 'ref') continue;
            const p = Buffer.from(path);
            const d = depth >> 1;
            p[d] = depth & 1 ? (p[d]! & 0xf0) | i : (i << 4) | (p[d]! & 0x0f);
            next.push({ version: c.version, path: p, depth: depth + 1 });
          }
        }
        level = next;
      }
      return read;
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
      const leaf = walk(v, keyHash, levels);
      const present = leaf !== undefined && bytesEqual(leaf.keyHash, keyHash);
      const value = present ? valueAt(v, contract, key) : undefined;
      return {
        version: v,
        root: rootAt(v),
        value: value === undefined ? undefined : Buffer.from(value),
        proof: {
          leaf:
            leaf === undefined
              ? null
              : { keyHash: Buffer.from(leaf.keyHash), valueHash: Buffer.from(leaf.valueHash) },
          levels,
        },
      };
    },
  };
  return store;
}
