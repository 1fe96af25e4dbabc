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
import { ABSENT, type WorkingTree } from './memoryTree.ts';
import { encodeStateKey } from './stateLayout.ts';

/**
 * The state view one block executes against: an overlay of buffered writes over the committed
 * state, with nested checkpoints. Reads fall through the overlay to the committed version (one
 * synchronous read); range scans merge the overlay with the ordered key index; `root()` folds the
 * writes made since the last call into a copy-on-write working tree and rehashes only their paths.
 *
 * The working tree also tells the commit what it needs of each written key without reading the
 * database: whether the key was in the committed version, the version its committed value was
 * written at (the entry the write supersedes), and whether the write changed the value.
 */

/** The committed state a view reads through to; supplied by the state store. */
export interface CommittedState {
  /** The version committed right now (it moves when a commit is finalised). */
  readonly version: number | undefined;
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
   * The version the key's committed value was written at, ABSENT when the key is not in the
   * committed version, as the working tree found it on the slot's first change (no other slot
   * changes that key, so the tree then still held the committed state); undefined until then.
   */
  baseVersion: number | undefined;
  /**
   * Whether the slot's last put gave the tree a new leaf: false when the value put was the one the
   * tree held (the committed leaf stays, and the commit writes nothing for the key).
   */
  fresh: boolean;
  /** (contract, key) in the encoding the key hash and the stored entries take, once built. */
  encoded: Bytes | undefined;
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
  /** Brings the working tree up to date and returns it with its root hash. */
  sync(): { tree: WorkingTree; root: Bytes };
  /** Every slot with a write that survived (value not undefined). */
  writes(): Slot[];
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

// A copy the caller owns (its own buffer).
function copy(b: Bytes): Bytes {
  return Uint8Array.prototype.slice.call(b);
}

// A copy the view keeps (a written key or value): small ones share node's buffer pool, where a
// buffer each cost an allocation and a free across threads (~0.5 ms per 1,000-key block).
function keep(b: Bytes): Bytes {
  return Buffer.from(b);
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
        key: keep(key),
        keyStr,
        value: undefined,
        keyHash: undefined,
        baseVersion: undefined,
        fresh: false,
        encoded: undefined,
      };
      m.set(keyStr, slot);
    }
    if (marks.length > 0) journal.push({ slot, prev: slot.value });
    slot.value = value;
    dirty.add(slot);
    rootCache = undefined;
  };

  const sync = (): { tree: WorkingTree; root: Bytes } => {
    tree ??= committed.workingTree();
    if (rootCache !== undefined && dirty.size === 0) return { tree, root: rootCache };
    // Deletes and restores one by one; puts together, so their leaves are hashed on two threads
    // when there are many (memoryTree.ts). The keys are distinct, and a tree's root depends only on
    // the keys and values it holds, not on the order they went in.
    const puts: Slot[] = [];
    const encodedKeys: Bytes[] = [];
    const values: Bytes[] = [];
    for (const slot of dirty) {
      const value = slot.value;
      if (value === undefined) {
        // Reverted back to no write. Never in the tree: nothing to undo. Else the tree must hold
        // the committed leaf again (its value, and the version it was written at).
        if (slot.baseVersion === undefined) continue;
        slot.keyHash ??= stateKeyHash(slot.contract, slot.key);
        if (slot.baseVersion === ABSENT) tree.delete(slot.keyHash);
        else {
          const committedValue = committed.read(slot.contract, slot.key);
          if (committedValue === undefined) {
            throw new StateError('CORRUPT', 'state: a committed key has no value', {
              contract: slot.contract,
            });
          }
          tree.put(slot.keyHash, committedValue, slot.baseVersion);
        }
      } else if (value === null) {
        slot.keyHash ??= stateKeyHash(slot.contract, slot.key);
        // Deleted in any case; what it found counts on the slot's first change only.
        const had = tree.delete(slot.keyHash);
        slot.baseVersion ??= had;
      } else {
        puts.push(slot);
        encodedKeys.push((slot.encoded ??= encodeStateKey(slot.contract, slot.key)));
        values.push(value);
      }
    }
    dirty.clear();
    const out = { previous: new Array<number>(puts.length), fresh: new Array<boolean>(puts.length) };
    tree.putMany(encodedKeys, values, out);
    for (let i = 0; i < puts.length; i++) {
      const slot = puts[i]!;
      slot.baseVersion ??= out.previous[i]!;
      slot.fresh = out.fresh[i]!;
    }
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
            throw new StateError('CORRUPT', 'state: key index and stored values disagree', {
              contract,
              key: c,
            });
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
      write(contract, key, keep(value));
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
      return sync().root;
    },

    close() {
      closed = true;
    },
  };

  internals.set(view, {
    committed,
    sync: () => {
      live();
      return sync();
    },
    writes: () => {
      const out: Slot[] = [];
      for (const m of overlay.values()) for (const s of m.values()) if (s.value !== undefined) out.push(s);
      return out;
    },
    close: () => {
      closed = true;
    },
  });
  return view;
}
