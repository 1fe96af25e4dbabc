import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import {
  EMPTY_STATE_ROOT,
  StateError,
  nibbleAt,
  stateInternalHashAt,
  stateLeafHash,
  stateValueHash,
  type StateProofLevel,
} from '../../core/stateProof.ts';

/**
 * The state tree in memory: the sparse Merkle tree of core/stateProof.ts as linked nodes. Nodes of
 * a committed version are never changed, so a version is just its root node, and the versions a
 * store keeps share every subtree they did not change (a version costs only the nodes it
 * replaced). A working tree copies the nodes on the paths it changes (copy-on-write, once per
 * node: a node it copied is its own and is changed in place afterwards) and caches hashes, so
 * asking for the root again after more writes rehashes only the paths changed since.
 */

/**
 * A leaf: 96 bytes, key hash, value hash, then the leaf hash (kept so that rehashing a parent never
 * rehashes its unchanged leaves). One allocation per key, the bulk of the tree's memory.
 */
export type Leaf = Buffer;

const LEAF_BYTES = 3 * HASH_BYTES;
const LEAF_HASH = 2 * HASH_BYTES;

/**
 * An internal node: at least two leaves below it. `kids` holds the present children in nibble
 * order (bit i of `bitmap` set: child i is present); most nodes near the bottom have two or three,
 * so a dense array saves the 16 slots. `hash` is undefined while the node is a working tree's own
 * and something below it changed; `owner` is the working tree that may change it in place (0 for
 * none: a committed or rebuilt node).
 */
export interface Inner {
  bitmap: number;
  readonly kids: Child[];
  hash: Bytes | undefined;
  readonly owner: number;
}

/** A child of an internal node. */
export type Child = Leaf | Inner;

/** The root of a version: undefined for the empty tree. */
export type TreeRoot = Child | undefined;

/** True when `c` is a leaf. */
export function isLeaf(c: Child): c is Leaf {
  return c instanceof Uint8Array;
}

/** The leaf of (key hash, value hash). */
export function makeLeaf(keyHash: Bytes, valueHash: Bytes): Leaf {
  const leaf = Buffer.allocUnsafe(LEAF_BYTES);
  leaf.set(keyHash, 0);
  leaf.set(valueHash, HASH_BYTES);
  leaf.set(stateLeafHash(keyHash, valueHash), LEAF_HASH);
  return leaf;
}

/** The key hash of a leaf (a view). */
export function leafKeyHash(leaf: Leaf): Bytes {
  return leaf.subarray(0, HASH_BYTES);
}

/** The value hash of a leaf (a view). */
export function leafValueHash(leaf: Leaf): Bytes {
  return leaf.subarray(HASH_BYTES, LEAF_HASH);
}

function popcount16(x: number): number {
  let v = x - ((x >> 1) & 0x5555);
  v = (v & 0x3333) + ((v >> 2) & 0x3333);
  v = (v + (v >> 4)) & 0x0f0f;
  return (v + (v >> 8)) & 0x1f;
}

function sameKey(a: Bytes, b: Bytes): boolean {
  for (let i = 0; i < HASH_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameLeafHash(a: Leaf, b: Leaf): boolean {
  for (let i = LEAF_HASH; i < LEAF_BYTES; i++) if (a[i] !== b[i]) return false;
  return true;
}

// Scratch for hashing: hashing is synchronous, and children are hashed before these are filled.
const buffers = new Array<Bytes | undefined>(16);
const offsets = new Array<number>(16).fill(0);

/** The hash of a node, computing (and caching) the hashes of changed internal nodes below it. */
export function hashOf(node: TreeRoot): Bytes {
  if (node === undefined) return EMPTY_STATE_ROOT;
  if (isLeaf(node)) return node.subarray(LEAF_HASH, LEAF_BYTES);
  return innerHash(node);
}

function innerHash(node: Inner): Bytes {
  if (node.hash !== undefined) return node.hash;
  const kids = node.kids;
  for (let j = 0; j < kids.length; j++) {
    const c = kids[j]!;
    if (!isLeaf(c) && c.hash === undefined) innerHash(c);
  }
  for (let i = 0, j = 0; i < 16; i++) {
    if ((node.bitmap >> i) & 1) {
      const c = kids[j++]!;
      if (isLeaf(c)) {
        buffers[i] = c;
        offsets[i] = LEAF_HASH;
      } else {
        buffers[i] = c.hash;
        offsets[i] = 0;
      }
    } else buffers[i] = undefined;
  }
  node.hash = stateInternalHashAt(buffers, offsets);
  return node.hash;
}

/**
 * Walks the tree along `keyHash`: the leaf on its path (the key's own, or another key's occupying
 * its place), or undefined when the path ends at an empty child. With `levels`, records each
 * internal node passed as a proof level (sibling hashes copied into one buffer per level).
 */
export function walk(root: TreeRoot, keyHash: Bytes, levels?: StateProofLevel[]): Leaf | undefined {
  let node = root;
  for (let depth = 0; node !== undefined; depth++) {
    if (isLeaf(node)) return node;
    const n = nibbleAt(keyHash, depth);
    const bit = 1 << n;
    if (levels !== undefined) {
      const bitmap = node.bitmap & ~bit;
      const all = Buffer.allocUnsafe(popcount16(bitmap) * HASH_BYTES);
      const siblings: Bytes[] = [];
      for (let i = 0, j = 0, s = 0; i < 16; i++) {
        if (!((node.bitmap >> i) & 1)) continue;
        const c = node.kids[j++]!;
        if (i === n) continue;
        if (isLeaf(c)) c.copy(all, s * HASH_BYTES, LEAF_HASH, LEAF_BYTES);
        else all.set(innerHash(c), s * HASH_BYTES);
        siblings.push(all.subarray(s * HASH_BYTES, ++s * HASH_BYTES));
      }
      levels.push({ bitmap, siblings });
    }
    node = node.bitmap & bit ? node.kids[popcount16(node.bitmap & (bit - 1))] : undefined;
  }
  return undefined;
}

/** A copy-on-write working tree over a committed root (see the module comment). */
export interface WorkingTree {
  /** Sets the leaf of `keyHash` to the hash of `value`. */
  put(keyHash: Bytes, value: Bytes): void;
  /** Removes the leaf of `keyHash` (nothing happens when it is absent). */
  delete(keyHash: Bytes): void;
  /** The root hash, rehashing only the paths changed since the last call. */
  rootHash(): Bytes;
  /**
   * Ends the working tree: its root node, hashed throughout, becomes a committed version's (the
   * tree refuses every call afterwards, so nothing changes the nodes again).
   */
  finish(): { root: Bytes; node: TreeRoot };
}

let nextOwner = 1;

/** Opens a working tree over `base` (a committed version's root). */
export function createWorkingTree(base: TreeRoot): WorkingTree {
  const owner = nextOwner++;
  let root = base;
  let finished = false;

  const own = (n: Inner): Inner =>
    n.owner === owner ? n : { bitmap: n.bitmap, kids: n.kids.slice(), hash: undefined, owner };

  // The smallest subtree at `depth` holding two leaves with distinct keys.
  const split = (a: Leaf, b: Leaf, depth: number): Inner => {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two leaves with one key hash', {});
    const na = nibbleAt(a, depth);
    const nb = nibbleAt(b, depth);
    if (na === nb) return { bitmap: 1 << na, kids: [split(a, b, depth + 1)], hash: undefined, owner };
    return {
      bitmap: (1 << na) | (1 << nb),
      kids: na < nb ? [a, b] : [b, a],
      hash: undefined,
      owner,
    };
  };

  // A child unchanged by a recursive call: the same object, and (if internal) still hashed. A
  // working tree's own node changed in place comes back as the same object with its hash cleared.
  const unchanged = (before: Child | undefined, after: Child | undefined): boolean =>
    after === before && (after === undefined || isLeaf(after) || after.hash !== undefined);

  const putAt = (node: Child | undefined, depth: number, leaf: Leaf): Child => {
    if (node === undefined) return leaf;
    if (isLeaf(node)) {
      // The leaf hash commits to key and value: an equal hash means nothing changes.
      if (sameKey(node, leaf)) return sameLeafHash(node, leaf) ? node : leaf;
      // Another key's leaf sits on this path: both move down to where their hashes differ.
      return split(node, leaf, depth);
    }
    const bit = 1 << nibbleAt(leaf, depth);
    const idx = popcount16(node.bitmap & (bit - 1));
    if (node.bitmap & bit) {
      const before = node.kids[idx]!;
      const after = putAt(before, depth + 1, leaf);
      if (unchanged(before, after)) return node;
      const o = own(node);
      o.kids[idx] = after;
      o.hash = undefined;
      return o;
    }
    const o = own(node);
    o.kids.splice(idx, 0, leaf);
    o.bitmap |= bit;
    o.hash = undefined;
    return o;
  };

  const deleteAt = (node: Child | undefined, depth: number, kh: Bytes): Child | undefined => {
    if (node === undefined) return undefined;
    if (isLeaf(node)) return sameKey(node, kh) ? undefined : node;
    const bit = 1 << nibbleAt(kh, depth);
    if (!(node.bitmap & bit)) return node;
    const idx = popcount16(node.bitmap & (bit - 1));
    const before = node.kids[idx]!;
    const after = deleteAt(before, depth + 1, kh);
    if (unchanged(before, after)) return node;
    const o = own(node);
    o.hash = undefined;
    if (after !== undefined) o.kids[idx] = after;
    else {
      o.kids.splice(idx, 1);
      o.bitmap &= ~bit;
    }
    // An internal node left with no child vanishes, and one left with a single leaf hands the
    // leaf up (it moves to the shortest unique prefix).
    if (o.kids.length === 0) return undefined;
    if (o.kids.length === 1 && isLeaf(o.kids[0]!)) return o.kids[0];
    return o;
  };

  const check = (): void => {
    if (finished) throw new StateError('VIEW_CLOSED', 'state tree: already finished', {});
  };

  return {
    put(keyHash, value) {
      check();
      root = putAt(root, 0, makeLeaf(keyHash, stateValueHash(value)));
    },
    delete(keyHash) {
      check();
      root = deleteAt(root, 0, keyHash);
    },
    rootHash() {
      return hashOf(root);
    },
    finish() {
      check();
      const hash = hashOf(root);
      finished = true;
      return { root: hash, node: root };
    },
  };
}

/**
 * Builds the tree holding `count` leaves, leaf i being key hash `keyHashes[32i .. 32i+32)` and
 * value hash `valueHashes[32i .. 32i+32)`. The state store rebuilds its tree this way when it opens:
 * radix partitioning by nibble, top down, needs neither a sort nor a copy per inserted key.
 */
export function buildTree(keyHashes: Buffer, valueHashes: Buffer, count: number): TreeRoot {
  const leafAt = (i: number): Leaf =>
    makeLeaf(
      keyHashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES),
      valueHashes.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES),
    );
  if (count === 0) return undefined;
  if (count === 1) return leafAt(0);
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const scratch = new Uint32Array(count);
  const nibble = (i: number, depth: number): number => {
    const byte = keyHashes[i * HASH_BYTES + (depth >> 1)]!;
    return depth & 1 ? byte & 0x0f : byte >> 4;
  };
  // The subtree of order[lo, hi): at least two leaves sharing their first `depth` nibbles.
  const build = (lo: number, hi: number, depth: number): Inner => {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two keys with one key hash', {});
    const starts = new Int32Array(17);
    for (let i = lo; i < hi; i++) starts[nibble(order[i]!, depth) + 1]!++;
    for (let n = 0; n < 16; n++) starts[n + 1]! += starts[n]!;
    const fill = starts.slice(0, 16);
    for (let i = lo; i < hi; i++) {
      const x = order[i]!;
      scratch[lo + fill[nibble(x, depth)]!++] = x;
    }
    order.set(scratch.subarray(lo, hi), lo);
    const node: Inner = { bitmap: 0, kids: [], hash: undefined, owner: 0 };
    for (let n = 0; n < 16; n++) {
      const a = lo + starts[n]!;
      const b = lo + starts[n + 1]!;
      if (a === b) continue;
      node.bitmap |= 1 << n;
      node.kids.push(b - a === 1 ? leafAt(order[a]!) : build(a, b, depth + 1));
    }
    innerHash(node);
    return node;
  };
  return build(0, count, 0);
}

/** True when `leaf` holds `keyHash`. */
export function leafHolds(leaf: Leaf, keyHash: Bytes): boolean {
  return bytesEqual(leaf.subarray(0, HASH_BYTES), keyHash);
}
