import type { Bytes } from '../../core/bytes.ts';
import {
  MAX_STATE_RANGE_LIMIT,
  StateError,
  assertContract,
  assertKey,
  assertValue,
  stateKeyHash,
} from '../../core/stateProof.ts';
import type { StateView } from '../../core/stateView.ts';
import type { KeyCursor } from './sortedKeySet.ts';
import type { WorkingTree } from './memoryTree.ts';
import { FLAT_ENCODED_AT, flatKey } from './stateLayout.ts';

/**
 * The state view one block executes against: an overlay of buffered writes over the committed
 * state, with nested checkpoints. Reads fall through the overlay to the committed version (the flat
 * index, one synchronous read); range scans merge the overlay with the ordered key index; `root()`
 * folds the writes made since the last call into a copy-on-write working tree and rehashes only
 * their paths.
 *
 * The commit needs the committed value of every key the block overwrote (for the undo record).
 * Read one by one on the main thread they cost ~5 µs each, ~5 ms per 1,000-key block; so `root()`
 * starts one asynchronous multi-get of them (LevelDB reads them on a thread-pool thread, from a
 * snapshot taken at the call) before it updates the tree and hashes, and the commit awaits it
 * ({@link ViewInternals.fetched}). The values are the base version's: the view is live when the
 * fetch starts (no other version committed), and a view is refused once another version commits.
 */

/** The committed state a view reads through to; supplied by the state store. */
export interface CommittedState {
  /** The version committed right now (it moves when a commit is finalised). */
  readonly version: number | undefined;
  /**
   * Starts reading the committed values of flat-index keys (one snapshot, taken at the call), or
   * undefined when the store reads them at commit instead.
   */
  readonly fetch: ((keys: readonly Bytes[]) => Promise<Array<Bytes | undefined>>) | undefined;
  /** Latest committed value of (contract, key). */
  read(contract: string, key: Bytes): Bytes | undefined;
  /** True when (contract, key as latin1) is in the latest committed version. */
  has(contract: string, keyStr: string): boolean;
  /** Ordered committed keys of `contract` from `start`, or undefined when it has none. */
  cursor(contract: string, start: string, exclusive: boolean): KeyCursor | undefined;
  /** A working tree over the latest committed version. */
  workingTree(): WorkingTree;
}

/** One key the view has written: `value` is null for a delete, undefined once reverted away. */
export interface Slot {
  readonly contract: string;
  readonly key: Bytes;
  readonly keyStr: string;
  value: Bytes | null | undefined;
  keyHash: Bytes | undefined;
  /**
   * Whether the key is in the committed version, as the working tree found it on the slot's first
   * change (no other slot changes that key, so the tree then still held the committed state);
   * undefined until then. Spares the commit a flat-index read for a new key.
   */
  inBase: boolean | undefined;
  /** The key in the flat index, once built (for the fetch, then the commit's batch op). */
  flat: Bytes | undefined;
  /** True once a fetch of the committed value was started. */
  fetching: boolean;
  /** The committed value (null: absent) once the fetch returned; undefined until then. */
  previous: Bytes | null | undefined;
}

/** A state view of the state store: the core interface plus the version it executes on. */
export interface StateStoreView extends StateView {
  /** The committed version this view reads (undefined on an empty store). */
  readonly baseVersion: number | undefined;
  /** True once the view was committed (finalised) or closed; it then refuses every call. */
  readonly closed: boolean;
  /** Discards the view. */
  close(): void;
}

/** What the state store needs from a view to commit it. */
export interface ViewInternals {
  readonly committed: CommittedState;
  /**
   * Brings the working tree up to date and returns it with its root hash; starts no fetch (the
   * caller reads what has not been fetched).
   */
  sync(): { tree: WorkingTree; root: Bytes };
  /** Every slot with a write that survived (value not undefined). */
  writes(): Slot[];
  /** The committed value of a key the view read (null: read as absent), undefined if never read. */
  readValue(contract: string, keyStr: string): Bytes | null | undefined;
  /**
   * Brings the working tree up to date (starting a fetch of the committed values of written keys
   * not yet fetched) and resolves once every fetch started has returned: each written key then has
   * its committed value in `previous`, unless it was read (`readValue`), is new (`inBase` false),
   * or was written after this call. Never rejects for a failed fetch (the commit then reads those
   * values itself, and meets the error there).
   */
  fetched(): Promise<void>;
  /** Marks the view closed. */
  close(): void;
}

const internals = new WeakMap<StateStoreView, ViewInternals>();

/** The internals of a view made by {@link createStateView}, or undefined for any other object. */
export function viewInternals(view: unknown): ViewInternals | undefined {
  return typeof view === 'object' && view !== null ? internals.get(view as StateStoreView) : undefined;
}

function latin1(key: Bytes): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

function copy(b: Bytes): Bytes {
  return Uint8Array.prototype.slice.call(b);
}

/** Orders slots as their flat-index keys: by contract (its length first), then key bytes. */
function byKey(a: Slot, b: Slot): number {
  if (a.contract !== b.contract) {
    if (a.contract.length !== b.contract.length) return a.contract.length - b.contract.length;
    return a.contract < b.contract ? -1 : 1;
  }
  return a.keyStr < b.keyStr ? -1 : a.keyStr > b.keyStr ? 1 : 0;
}

/**
 * A view over `committed` at its current version. Every call checks that the committed version has
 * not moved since: once another block commits, the view's reads would mix two versions.
 */
export function createStateView(committed: CommittedState): StateStoreView {
  const baseVersion = committed.version;
  // contract → latin1 key → slot. Grows with the block's writes, which gas bounds.
  const overlay = new Map<string, Map<string, Slot>>();
  // Undo log of the open checkpoints: the slot and its value before the write.
  const journal: Array<{ slot: Slot; prev: Bytes | null | undefined }> = [];
  const marks: number[] = [];
  // Slots written since the working tree last caught up.
  const dirty = new Set<Slot>();
  let tree: WorkingTree | undefined;
  let rootCache: Bytes | undefined;
  let closed = false;
  // Committed values this view read, so committing need not read them again for the undo record.
  // Grows with the block's reads, which gas bounds.
  const reads = new Map<string, Map<string, Bytes | null>>();
  // Fetches of committed values started (see the module comment); one per root() with new writes,
  // each bounded by the block's writes.
  const fetches: Array<Promise<void>> = [];

  // Starts one fetch of the committed values of `slots` (keys in the committed version that the
  // view wrote without reading them first).
  const fetchPrevious = (slots: Slot[]): void => {
    if (committed.fetch === undefined || slots.length === 0) return;
    const keys: Bytes[] = [];
    for (const s of slots) keys.push((s.flat ??= flatKey(s.contract, s.key)));
    let pending: Promise<Array<Bytes | undefined>>;
    try {
      pending = committed.fetch(keys);
    } catch {
      // A store that cannot start the fetch (closed): the commit reads the values itself and
      // reports the error there.
      return;
    }
    for (const s of slots) s.fetching = true;
    fetches.push(
      pending.then(
        (values) => {
          for (let i = 0; i < slots.length; i++) slots[i]!.previous = values[i] ?? null;
        },
        // Not swallowed: slots without a value are read by the commit, which then meets the error.
        () => undefined,
      ),
    );
  };

  const live = (): void => {
    if (closed) throw new StateError('VIEW_CLOSED', 'state view: already committed or closed', {});
    if (committed.version !== baseVersion) {
      throw new StateError(
        'STALE_VIEW',
        `state view: opened at version ${String(baseVersion)}, but version ${String(committed.version)} is committed now`,
        { baseVersion, version: committed.version },
      );
    }
  };

  const slotOf = (contract: string, keyStr: string): Slot | undefined => overlay.get(contract)?.get(keyStr);

  const write = (contract: string, key: Bytes, value: Bytes | null): void => {
    const keyStr = latin1(key);
    let m = overlay.get(contract);
    if (m === undefined) overlay.set(contract, (m = new Map<string, Slot>()));
    let slot = m.get(keyStr);
    if (slot === undefined) {
      slot = {
        contract,
        key: copy(key),
        keyStr,
        value: undefined,
        keyHash: undefined,
        inBase: undefined,
        flat: undefined,
        fetching: false,
        previous: undefined,
      };
      m.set(keyStr, slot);
    }
    if (marks.length > 0) journal.push({ slot, prev: slot.value });
    slot.value = value;
    dirty.add(slot);
    rootCache = undefined;
  };

  // `fetch`: start fetching the committed values of keys written since (not when the caller is
  // about to read them itself).
  const sync = (fetch: boolean): { tree: WorkingTree; root: Bytes } => {
    tree ??= committed.workingTree();
    if (rootCache !== undefined && dirty.size === 0) return { tree, root: rootCache };
    // Started before the tree's work, which is most of the work here: LevelDB reads on its thread
    // pool while this thread updates the tree, and is mostly done before the root is hashed on two
    // threads (memoryTree.ts). Whether a key is new is known only once the tree has it, so a key
    // not known yet is fetched too (a new key's read finds nothing, which is its committed value).
    // A key known to be new has no committed value, and one read before it was written has it.
    if (fetch) {
      const toFetch: Slot[] = [];
      for (const slot of dirty) {
        if (slot.inBase !== false && !slot.fetching && slot.value !== undefined) {
          if (reads.get(slot.contract)?.get(slot.keyStr) === undefined) toFetch.push(slot);
        }
      }
      // In key order (the flat index's order, as latin1 strings compare): LevelDB then reads
      // neighbouring blocks one after another. Measured on a million keys: 1,000 reads cost its
      // threads 5.2 ms of CPU sorted against 11.0 ms unsorted while its block cache is cold (after
      // an open or a compaction), 2.4 against 2.7 ms warm; sorting costs this thread ~0.3 ms.
      toFetch.sort(byKey);
      fetchPrevious(toFetch);
    }
    // Deletes one by one; puts together, so their leaves are hashed on two threads when there are
    // many (memoryTree.ts). The keys are distinct, and a tree's root depends only on the keys and
    // values it holds, not on the order they went in.
    const puts: Slot[] = [];
    const encodedKeys: Bytes[] = [];
    const values: Bytes[] = [];
    for (const slot of dirty) {
      let value = slot.value;
      // Reverted back to no write: the tree must hold the committed value again.
      if (value === undefined) value = committed.read(slot.contract, slot.key) ?? null;
      if (value === null) {
        slot.keyHash ??= stateKeyHash(slot.contract, slot.key);
        const had = tree.delete(slot.keyHash);
        slot.inBase ??= had;
      } else {
        puts.push(slot);
        encodedKeys.push((slot.flat ??= flatKey(slot.contract, slot.key)).subarray(FLAT_ENCODED_AT));
        values.push(value);
      }
    }
    dirty.clear();
    const had = tree.putMany(encodedKeys, values);
    for (let i = 0; i < puts.length; i++) puts[i]!.inBase ??= had[i]!;
    rootCache = tree.rootHash();
    return { tree, root: rootCache };
  };

  const view: StateStoreView = {
    get baseVersion() {
      return baseVersion;
    },
    get closed() {
      return closed;
    },
    get depth() {
      return marks.length;
    },

    get(contract, key) {
      live();
      assertContract(contract);
      assertKey(key);
      const keyStr = latin1(key);
      const slot = slotOf(contract, keyStr);
      if (slot !== undefined && slot.value !== undefined)
        return slot.value === null ? undefined : copy(slot.value);
      const value = committed.read(contract, key);
      // Kept for the undo record: a contract that reads a key before writing it spares the commit
      // a second read of the previous value.
      let m = reads.get(contract);
      if (m === undefined) reads.set(contract, (m = new Map<string, Bytes | null>()));
      m.set(keyStr, value ?? null);
      return value === undefined ? undefined : copy(value);
    },

    has(contract, key) {
      live();
      assertContract(contract);
      assertKey(key);
      const keyStr = latin1(key);
      const slot = slotOf(contract, keyStr);
      if (slot !== undefined && slot.value !== undefined) return slot.value !== null;
      return committed.has(contract, keyStr);
    },

    range(contract, prefix, limit, after) {
      live();
      assertContract(contract);
      assertKey(prefix);
      if (after !== undefined) assertKey(after);
      if (!Number.isSafeInteger(limit) || limit < 0 || limit > MAX_STATE_RANGE_LIMIT) {
        throw new StateError('BAD_LIMIT', `range: limit must be an integer in 0..${MAX_STATE_RANGE_LIMIT}`, {
          limit,
        });
      }
      const out: Array<[Bytes, Bytes]> = [];
      if (limit === 0) return out;
      const prefixStr = latin1(prefix);
      const afterStr = after === undefined ? undefined : latin1(after);
      // Every key with the prefix is >= the prefix, so start there unless `after` is further on.
      const exclusive = afterStr !== undefined && afterStr >= prefixStr;
      const start = exclusive ? afterStr : prefixStr;
      const inRange = (k: string): boolean => k.startsWith(prefixStr) && (exclusive ? k > start : k >= start);

      const slots = overlay.get(contract);
      const pending: Slot[] = [];
      if (slots !== undefined) {
        for (const s of slots.values())
          if (s.value !== undefined && s.value !== null && inRange(s.keyStr)) pending.push(s);
        pending.sort((a, b) => (a.keyStr < b.keyStr ? -1 : a.keyStr > b.keyStr ? 1 : 0));
      }
      const cursor = committed.cursor(contract, start, exclusive);
      const nextCommitted = (): string | undefined => {
        if (cursor === undefined) return undefined;
        for (;;) {
          const k = cursor.next();
          if (k === undefined || !k.startsWith(prefixStr)) return undefined;
          // A key the overlay wrote is decided by the overlay (its value, or its delete).
          const s = slots?.get(k);
          if (s === undefined || s.value === undefined) return k;
        }
      };
      let c = nextCommitted();
      let p = 0;
      while (out.length < limit && (c !== undefined || p < pending.length)) {
        const s = pending[p];
        if (s !== undefined && (c === undefined || s.keyStr < c)) {
          out.push([copy(s.key), copy(s.value!)]);
          p++;
        } else {
          const key = Buffer.from(c!, 'latin1');
          const value = committed.read(contract, key);
          if (value === undefined) {
            throw new StateError('CORRUPT', 'state: key index and flat index disagree', { contract, key: c });
          }
          out.push([new Uint8Array(key.buffer, key.byteOffset, key.byteLength), value]);
          c = nextCommitted();
        }
      }
      return out;
    },

    set(contract, key, value) {
      live();
      assertContract(contract);
      assertKey(key);
      assertValue(value);
      write(contract, key, copy(value));
    },

    delete(contract, key) {
      live();
      assertContract(contract);
      assertKey(key);
      write(contract, key, null);
    },

    checkpoint() {
      live();
      marks.push(journal.length);
    },

    commit() {
      live();
      if (marks.length === 0)
        throw new StateError('NO_CHECKPOINT', 'state view: commit without a checkpoint', {});
      marks.pop();
      // The outermost checkpoint closed: nothing can be reverted any more.
      if (marks.length === 0) journal.length = 0;
    },

    revert() {
      live();
      const mark = marks.pop();
      if (mark === undefined)
        throw new StateError('NO_CHECKPOINT', 'state view: revert without a checkpoint', {});
      for (let i = journal.length - 1; i >= mark; i--) {
        const { slot, prev } = journal[i]!;
        slot.value = prev;
        dirty.add(slot);
      }
      if (journal.length > mark) rootCache = undefined;
      journal.length = mark;
    },

    root() {
      live();
      return sync(true).root;
    },

    close() {
      closed = true;
    },
  };

  internals.set(view, {
    committed,
    sync: () => {
      live();
      return sync(false);
    },
    writes: () => {
      const out: Slot[] = [];
      for (const m of overlay.values()) for (const s of m.values()) if (s.value !== undefined) out.push(s);
      return out;
    },
    readValue: (contract, keyStr) => reads.get(contract)?.get(keyStr),
    fetched: async () => {
      live();
      sync(true);
      await Promise.all(fetches);
    },
    close: () => {
      closed = true;
    },
  });
  return view;
}
