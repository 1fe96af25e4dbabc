import { hash } from 'node:crypto';
import type { Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { EMPTY_STATE_ROOT, StateError, nibbleAt, type StateProofLevel } from '../../core/stateProof.ts';

/**
 * The state tree in memory: the sparse Merkle tree of core/stateProof.ts as linked nodes. Nodes of
 * a committed version are never changed, so a version is just its root node, and the versions a
 * store keeps share every subtree they did not change (a version costs only the nodes it
 * replaced). A working tree copies the nodes on the paths it changes (copy-on-write, once per
 * node: a node it copied is its own and is changed in place afterwards) and caches hashes, so
 * asking for the root again after more writes rehashes only the paths changed since.
 *
 * Memory is the design constraint: the tree holds every key. A node keeps its leaf children packed
 * in one buffer with its own hash (a leaf is 96 bytes there, no object of its own), and only its
 * internal children as objects: ~235 bytes of heap and buffers per key at a million keys, where an
 * object and a buffer per leaf and per hash took ~380.
 */

/**
 * A leaf outside a node (the root of a one-key tree, or one on its way into a node): 96 bytes, the
 * leaf hash (kept so that rehashing a parent never rehashes its unchanged leaves), the key hash,
 * then the value hash. Inside a node, leaf entries have the same layout.
 */
export type Leaf = Buffer;

const LEAF_BYTES = 3 * HASH_BYTES;
const KEY_AT = HASH_BYTES;
const VALUE_AT = 2 * HASH_BYTES;

/**
 * An internal node: at least two leaves below it. Bit i of `bitmap` set: child i is present; of
 * `leafMask`: child i is a leaf, whose entry is in `data`. `kids` holds the internal children in
 * nibble order. `data` holds the node's hash (bytes 0 to 32, meaningful when `valid`), then a copy
 * of each internal child's hash in nibble order, then the leaf entries in nibble order: hashing a
 * node reads only its own buffer, not sixteen children scattered over the heap. A child's copy is
 * refreshed when its parent rehashes it (children are rehashed only through their parent).
 * `owner` is the working tree that may change the node in place (0 for none: a committed or
 * rebuilt node, never changed again).
 */
export interface Inner {
  bitmap: number;
  leafMask: number;
  data: Buffer;
  kids: Inner[];
  valid: boolean;
  readonly owner: number;
}

/** The root of a version: undefined for the empty tree. */
export type TreeRoot = Leaf | Inner | undefined;

// Shared by the nodes without internal children (most nodes near the bottom: an array each would
// be ~290,000 more objects for the garbage collector at a million keys); never changed, a node
// gets an array of its own when it gains an internal child.
const NO_KIDS: Inner[] = [];

/** True when `c` is a leaf. */
export function isLeaf(c: Leaf | Inner): c is Leaf {
  return c instanceof Uint8Array;
}

// Hashes are written straight into the tree's buffers: node:crypto's one-shot hash returns a
// latin1 string faster than a Buffer (its 'buffer' output takes a slow path and allocates an
// ArrayBuffer per hash), and writing the string copies the 32 bytes where they belong.
function digestInto(input: Bytes, to: Buffer, at: number): void {
  // 'binary' is node's alias of 'latin1'.
  to.write(hash('sha256', input, 'binary'), at, 'latin1');
}

// Hash input of a leaf, H(0x00 || keyHash || valueHash) as core/stateProof.ts defines it
// (stateLeafHash); property tests check the roots against an independent model.
const leafScratch = Buffer.alloc(1 + 2 * HASH_BYTES);

// Writes the leaf hash of the entry at `at` of `b` (key and value hashes in place).
function writeLeafHash(b: Buffer, at: number): void {
  b.copy(leafScratch, 1, at + KEY_AT, at + LEAF_BYTES);
  digestInto(leafScratch, b, at);
}

/** The leaf of `keyHash` holding `value`. */
export function makeLeaf(keyHash: Bytes, value: Bytes): Leaf {
  const leaf = Buffer.allocUnsafe(LEAF_BYTES);
  leaf.set(keyHash, KEY_AT);
  digestInto(value, leaf, VALUE_AT);
  writeLeafHash(leaf, 0);
  return leaf;
}

/** The key hash of a leaf (a view). */
export function leafKeyHash(leaf: Leaf): Bytes {
  return leaf.subarray(KEY_AT, VALUE_AT);
}

/** The value hash of a leaf (a view). */
export function leafValueHash(leaf: Leaf): Bytes {
  return leaf.subarray(VALUE_AT, LEAF_BYTES);
}

/** True when `leaf` holds `keyHash`. */
export function leafHolds(leaf: Leaf, keyHash: Bytes): boolean {
  return holdsAt(leaf, 0, keyHash);
}

function popcount16(x: number): number {
  let v = x - ((x >> 1) & 0x5555);
  v = (v & 0x3333) + ((v >> 2) & 0x3333);
  v = (v + (v >> 4)) & 0x0f0f;
  return (v + (v >> 8)) & 0x1f;
}

// True when the leaf entry at `at` of `b` holds the key hash `kh`.
function holdsAt(b: Buffer, at: number, kh: Bytes): boolean {
  for (let i = 0; i < HASH_BYTES; i++) if (b[at + KEY_AT + i] !== kh[i]) return false;
  return true;
}

// True when the entries at `a[ai]` and `b[bi]` have equal bytes over [from, to).
function sameBytes(a: Buffer, ai: number, b: Buffer, bi: number, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (a[ai + i] !== b[bi + i]) return false;
  return true;
}

// Nibble `depth` of the key hash of the leaf entry at `at` of `b`.
function nibbleOf(b: Buffer, at: number, depth: number): number {
  const byte = b[at + KEY_AT + (depth >> 1)]!;
  return depth & 1 ? byte & 0x0f : byte >> 4;
}

// Offset in `data` of the entry of leaf child `bit`.
function leafAt(node: Inner, bit: number): number {
  return HASH_BYTES * (1 + node.kids.length) + popcount16(node.leafMask & (bit - 1)) * LEAF_BYTES;
}

// Index in `kids` of internal child `bit`.
function kidAt(node: Inner, bit: number): number {
  return popcount16(node.bitmap & ~node.leafMask & (bit - 1));
}

// Hash input of an internal node, H(0x01 || child_0 || … || child_15) as core/stateProof.ts defines
// it (stateInternalHash). Hashing is synchronous, so one scratch buffer serves every node.
const INTERNAL_INPUT = 1 + 16 * HASH_BYTES;
const internalScratch = Buffer.alloc(INTERNAL_INPUT);
internalScratch[0] = 0x01;

function copy32(from: Buffer, at: number, to: Buffer, toAt: number): void {
  for (let j = 0; j < HASH_BYTES; j++) to[toAt + j] = from[at + j]!;
}

// Makes `node`'s hash valid, hashing its changed internal children first.
function rehash(node: Inner): void {
  if (node.valid) return;
  const kids = node.kids;
  const data = node.data;
  for (let j = 0; j < kids.length; j++) {
    const kid = kids[j]!;
    if (kid.valid) continue;
    rehash(kid);
    copy32(kid.data, 0, data, HASH_BYTES * (1 + j));
  }
  // Children are hashed first: the shared scratch is filled only once they all are.
  for (let i = 0, leaf = HASH_BYTES * (1 + kids.length), kid = HASH_BYTES; i < 16; i++) {
    const at = 1 + i * HASH_BYTES;
    const bit = 1 << i;
    if (!(node.bitmap & bit)) internalScratch.set(EMPTY_STATE_ROOT, at);
    else if (node.leafMask & bit) {
      copy32(data, leaf, internalScratch, at);
      leaf += LEAF_BYTES;
    } else {
      copy32(data, kid, internalScratch, at);
      kid += HASH_BYTES;
    }
  }
  digestInto(internalScratch, node.data, 0);
  node.valid = true;
}

/** The hash of a tree, computing (and caching) the hashes of changed internal nodes. */
export function hashOf(node: TreeRoot): Bytes {
  if (node === undefined) return EMPTY_STATE_ROOT;
  if (isLeaf(node)) return Buffer.from(node.subarray(0, HASH_BYTES));
  rehash(node);
  return Buffer.from(node.data.subarray(0, HASH_BYTES));
}

/**
 * Walks the tree along `keyHash`: the leaf on its path (the key's own, or another key's occupying
 * its place; a view, valid while the tree is), or undefined when the path ends at an empty child.
 * With `levels`, records each internal node passed as a proof level (sibling hashes copied into
 * one buffer per level).
 */
export function walk(root: TreeRoot, keyHash: Bytes, levels?: StateProofLevel[]): Leaf | undefined {
  let node = root;
  for (let depth = 0; node !== undefined; depth++) {
    if (isLeaf(node)) return node;
    rehash(node);
    const n = nibbleAt(keyHash, depth);
    const bit = 1 << n;
    if (levels !== undefined) {
      const bitmap = node.bitmap & ~bit;
      const all = Buffer.allocUnsafe(popcount16(bitmap) * HASH_BYTES);
      const siblings: Bytes[] = [];
      for (let i = 0, leaf = HASH_BYTES * (1 + node.kids.length), kid = HASH_BYTES, s = 0; i < 16; i++) {
        const b = 1 << i;
        if (!(node.bitmap & b)) continue;
        const at = node.leafMask & b ? leaf : kid;
        if (node.leafMask & b) leaf += LEAF_BYTES;
        else kid += HASH_BYTES;
        if (i === n) continue;
        copy32(node.data, at, all, s * HASH_BYTES);
        siblings.push(all.subarray(s * HASH_BYTES, ++s * HASH_BYTES));
      }
      levels.push({ bitmap, siblings });
    }
    if (!(node.bitmap & bit)) return undefined;
    if (node.leafMask & bit) {
      const at = leafAt(node, bit);
      return node.data.subarray(at, at + LEAF_BYTES);
    }
    node = node.kids[kidAt(node, bit)];
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

  const own = (n: Inner): Inner => {
    if (n.owner === owner) return n;
    const data = Buffer.allocUnsafeSlow(n.data.length);
    n.data.copy(data);
    const kids = n.kids.length === 0 ? NO_KIDS : n.kids.slice();
    return { bitmap: n.bitmap, leafMask: n.leafMask, data, kids, valid: false, owner };
  };

  // Leaf entries are added and removed by resizing `data` (nodes change a few times a block).
  const insertLeaf = (o: Inner, bit: number, leaf: Buffer, leafOffset: number): void => {
    const at = leafAt(o, bit);
    const data = Buffer.allocUnsafeSlow(o.data.length + LEAF_BYTES);
    o.data.copy(data, 0, 0, at);
    leaf.copy(data, at, leafOffset, leafOffset + LEAF_BYTES);
    o.data.copy(data, at + LEAF_BYTES, at);
    o.data = data;
    o.leafMask |= bit;
    o.bitmap |= bit;
  };
  const removeLeaf = (o: Inner, bit: number): void => {
    const at = leafAt(o, bit);
    const data = Buffer.allocUnsafeSlow(o.data.length - LEAF_BYTES);
    o.data.copy(data, 0, 0, at);
    o.data.copy(data, at, at + LEAF_BYTES);
    o.data = data;
    o.leafMask &= ~bit;
    o.bitmap &= ~bit;
  };
  // An internal child also has a hash slot in `data`: filled when the parent next rehashes (the
  // child is new, so not yet hashed).
  const insertKid = (o: Inner, bit: number, kid: Inner): void => {
    const k = kidAt(o, bit);
    const at = HASH_BYTES * (1 + k);
    const data = Buffer.allocUnsafeSlow(o.data.length + HASH_BYTES);
    o.data.copy(data, 0, 0, at);
    o.data.copy(data, at + HASH_BYTES, at);
    o.data = data;
    if (o.kids === NO_KIDS) o.kids = [];
    o.kids.splice(k, 0, kid);
    o.bitmap |= bit;
  };
  const removeKid = (o: Inner, bit: number): void => {
    const k = kidAt(o, bit);
    const at = HASH_BYTES * (1 + k);
    const data = Buffer.allocUnsafeSlow(o.data.length - HASH_BYTES);
    o.data.copy(data, 0, 0, at);
    o.data.copy(data, at, at + HASH_BYTES);
    o.data = data;
    o.kids.splice(k, 1);
    if (o.kids.length === 0) o.kids = NO_KIDS;
    o.bitmap &= ~bit;
  };

  // The smallest subtree at `depth` holding two leaves with distinct keys (entries at a[ai], b[bi]).
  const split = (a: Buffer, ai: number, b: Buffer, bi: number, depth: number): Inner => {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two leaves with one key hash', {});
    const na = nibbleOf(a, ai, depth);
    const nb = nibbleOf(b, bi, depth);
    if (na === nb) {
      return {
        bitmap: 1 << na,
        leafMask: 0,
        data: Buffer.allocUnsafeSlow(2 * HASH_BYTES),
        kids: [split(a, ai, b, bi, depth + 1)],
        valid: false,
        owner,
      };
    }
    const data = Buffer.allocUnsafeSlow(HASH_BYTES + 2 * LEAF_BYTES);
    const [first, fi, second, si] = na < nb ? [a, ai, b, bi] : [b, bi, a, ai];
    first.copy(data, HASH_BYTES, fi, fi + LEAF_BYTES);
    second.copy(data, HASH_BYTES + LEAF_BYTES, si, si + LEAF_BYTES);
    const bits = (1 << na) | (1 << nb);
    return { bitmap: bits, leafMask: bits, data, kids: NO_KIDS, valid: false, owner };
  };

  // A node unchanged by a recursive call: the same object, still hashed. A working tree's own
  // node changed in place comes back as the same object with its hash invalid.
  const putInto = (node: Inner, depth: number, leaf: Leaf): Inner => {
    const bit = 1 << nibbleOf(leaf, 0, depth);
    if (!(node.bitmap & bit)) {
      const o = own(node);
      insertLeaf(o, bit, leaf, 0);
      o.valid = false;
      return o;
    }
    if (node.leafMask & bit) {
      const at = leafAt(node, bit);
      if (sameBytes(node.data, at, leaf, 0, KEY_AT, VALUE_AT)) {
        // The leaf hash commits to key and value: an equal hash means nothing changes.
        if (sameBytes(node.data, at, leaf, 0, 0, HASH_BYTES)) return node;
        const o = own(node);
        leaf.copy(o.data, at);
        o.valid = false;
        return o;
      }
      // Another key's leaf sits on this path: both move down to where their hashes differ.
      const kid = split(node.data, at, leaf, 0, depth + 1);
      const o = own(node);
      removeLeaf(o, bit);
      insertKid(o, bit, kid);
      o.valid = false;
      return o;
    }
    const k = kidAt(node, bit);
    const before = node.kids[k]!;
    const after = putInto(before, depth + 1, leaf);
    if (after === before && after.valid) return node;
    const o = own(node);
    o.kids[k] = after;
    o.valid = false;
    return o;
  };

  // After a child went away: a node left with no child vanishes, and one left with a single leaf
  // hands the leaf up (it moves to the shortest unique prefix).
  const normalize = (o: Inner): Inner | Leaf | undefined => {
    if (o.bitmap === 0) return undefined;
    if (o.leafMask === o.bitmap && popcount16(o.bitmap) === 1) {
      return o.data.subarray(HASH_BYTES, HASH_BYTES + LEAF_BYTES);
    }
    return o;
  };

  const deleteFrom = (node: Inner, depth: number, kh: Bytes): Inner | Leaf | undefined => {
    const bit = 1 << nibbleAt(kh, depth);
    if (!(node.bitmap & bit)) return node;
    if (node.leafMask & bit) {
      if (!holdsAt(node.data, leafAt(node, bit), kh)) return node;
      const o = own(node);
      removeLeaf(o, bit);
      o.valid = false;
      return normalize(o);
    }
    const k = kidAt(node, bit);
    const before = node.kids[k]!;
    const after = deleteFrom(before, depth + 1, kh);
    if (after === before && before.valid) return node;
    const o = own(node);
    if (after === undefined) removeKid(o, bit);
    else if (isLeaf(after)) {
      removeKid(o, bit);
      insertLeaf(o, bit, after, 0);
    } else o.kids[k] = after;
    o.valid = false;
    return normalize(o);
  };

  const check = (): void => {
    if (finished) throw new StateError('VIEW_CLOSED', 'state tree: already finished', {});
  };

  return {
    put(keyHash, value) {
      check();
      const leaf = makeLeaf(keyHash, value);
      if (root === undefined) root = leaf;
      else if (!isLeaf(root)) root = putInto(root, 0, leaf);
      else if (!sameBytes(root, 0, leaf, 0, KEY_AT, VALUE_AT)) root = split(root, 0, leaf, 0, 0);
      else if (!sameBytes(root, 0, leaf, 0, 0, HASH_BYTES)) root = leaf;
    },
    delete(keyHash) {
      check();
      if (root === undefined) return;
      if (isLeaf(root)) {
        if (leafHolds(root, keyHash)) root = undefined;
      } else {
        const r = deleteFrom(root, 0, keyHash);
        // A leaf handed up to the root is a view into a node being dropped: copy it out.
        root = r !== undefined && isLeaf(r) ? Buffer.from(r) : r;
      }
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
  const writeLeaf = (i: number, to: Buffer, at: number): void => {
    keyHashes.copy(to, at + KEY_AT, i * HASH_BYTES, (i + 1) * HASH_BYTES);
    valueHashes.copy(to, at + VALUE_AT, i * HASH_BYTES, (i + 1) * HASH_BYTES);
    writeLeafHash(to, at);
  };
  if (count === 0) return undefined;
  if (count === 1) {
    const leaf = Buffer.alloc(LEAF_BYTES);
    writeLeaf(0, leaf, 0);
    return leaf;
  }
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
    let bitmap = 0;
    let leafMask = 0;
    let kids = NO_KIDS;
    for (let n = 0; n < 16; n++) {
      const size = starts[n + 1]! - starts[n]!;
      if (size === 0) continue;
      bitmap |= 1 << n;
      if (size === 1) leafMask |= 1 << n;
      else {
        if (kids === NO_KIDS) kids = [];
        kids.push(build(lo + starts[n]!, lo + starts[n + 1]!, depth + 1));
      }
    }
    const data = Buffer.allocUnsafeSlow(HASH_BYTES * (1 + kids.length) + popcount16(leafMask) * LEAF_BYTES);
    for (let k = 0; k < kids.length; k++) copy32(kids[k]!.data, 0, data, HASH_BYTES * (1 + k));
    for (let n = 0, at = HASH_BYTES * (1 + kids.length); n < 16; n++) {
      if (!((leafMask >> n) & 1)) continue;
      writeLeaf(order[lo + starts[n]!]!, data, at);
      at += LEAF_BYTES;
    }
    const node: Inner = { bitmap, leafMask, data, kids, valid: false, owner: 0 };
    rehash(node);
    return node;
  };
  return build(0, count, 0);
}
