import { hash } from 'node:crypto';
import type { Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import {
  EMPTY_STATE_ROOT,
  StateError,
  nibbleAt,
  writeStateKeyHash,
  type StateProofLevel,
} from '../../core/stateProof.ts';
import { HashLink, startHashThread } from './hashThread.ts';

/**
 * The state tree in memory: the sparse Merkle tree of core/stateProof.ts, its nodes and leaves held
 * as fixed-size records in a few big typed arrays (an arena) instead of as objects and buffers.
 *
 * Why an arena: at a million keys the tree is ~360,000 internal nodes and 1,000,000 leaves. As
 * objects with a buffer each, the garbage collector traced ~1.5 million objects and tracked
 * ~360,000 ArrayBuffers, and every 1,000-key block made ~2 MiB of new buffers whose external-memory
 * pressure forced full collections of the whole heap: 10–25 ms of GC per block on top of ~25 ms of
 * work. Here the collector sees one array per 65,536 records and a block allocates no objects per
 * node: records are taken from and given back to free lists.
 *
 * Nodes of a committed version are never changed, so a version is just its root reference, and the
 * versions a store keeps share every subtree they did not change (a version costs only the records
 * it replaced). A working tree copies the nodes on the paths it changes (copy-on-write, once per
 * node: a record it allocated is its own and is changed in place afterwards) and caches hashes, so
 * asking for the root again after more writes rehashes only the paths changed since.
 *
 * Records are freed explicitly, which the garbage collector did before:
 * - a record a working tree allocated and then dropped (a leaf replaced twice in one block, a node
 *   that collapsed) is freed at once: nothing else can reference it;
 * - a record of an older version that a working tree replaced is "retired" by it; once that tree
 *   is committed as version v, the list goes to the store, which frees it when version v - 1 leaves
 *   memory (no tree in memory references it any more: see {@link TreeArena.adopt});
 * - every other open working tree is abandoned when one is adopted (their views are stale: a view
 *   refuses every call once another version is committed), and its records are freed then, or
 *   earlier once the tree is garbage (a view dropped without a commit);
 * - a tree rebuilt for an old version ({@link TreeArena.keep}) shares records with the tree it was
 *   rebuilt from, so the store drops it ({@link TreeArena.drop}) before that tree leaves memory.
 *
 * Memory at a million keys: a leaf is 108 bytes (leaf hash, key hash, value hash, owner, and the
 * version its value was written at, which names its stored entry: stateLayout.ts), a node 104
 * bytes (hash, 16 child references, owner, valid flag): ~160 MiB in all with the records the
 * versions in memory replaced, where objects and buffers took ~320 MiB.
 */

/**
 * A reference to a subtree: 0 for the empty tree, n > 0 for internal node n, n < 0 for leaf -n.
 * A version's tree is its root reference.
 */
export type TreeRoot = number;

// Records live in chunks of 65,536; a reference's chunk is `id >>> CHUNK_BITS`. The first chunk
// starts small and doubles (a store in a test holds a handful of keys), later ones are full size.
const CHUNK_BITS = 16;
const CHUNK = 1 << CHUNK_BITS;
const MASK = CHUNK - 1;
const FIRST_CHUNK = 64;

// A node record, in 32-bit words: its hash (8 words), 16 child references, the id of the tree that
// owns it, and whether the hash is up to date.
const NODE_INTS = 26;
const KIDS = 8;
const OWNER = 24;
const VALID = 25;
// A leaf record: leaf hash, key hash, value hash (8 words each), owner, and the version at which
// its value was written (two words, high then low; the high word is FRESH until the leaf's version
// is committed: see WorkingTree).
const LEAF_INTS = 27;
const KEY_INTS = 8;
const VALUE_INTS = 16;
const VERSION_HI = 25;
const VERSION_LO = 26;
const FRESH = -1;
/** {@link WorkingTree} outcome: the key had no leaf. */
export const ABSENT = -1;
/** {@link WorkingTree} outcome: the leaf replaced was one the working tree made (no version yet). */
export const UNVERSIONED = -2;
// Owner of a free record. Tree ids start at 1.
const FREE = 0;

/** Records of one kind: chunks of `ints` 32-bit words per record, and a free list. */
class Pool {
  readonly ints: number;
  readonly i32: Int32Array[] = [];
  readonly u8: Buffer[] = [];
  // Free record ids; bounded by the records ever allocated.
  readonly free: number[] = [];
  // Next never-used id; 0 is reserved (a reference 0 means empty).
  next = 1;
  live = 0;

  constructor(ints: number) {
    this.ints = ints;
  }

  /** A record owned by `owner`; its contents are stale (the caller writes them). */
  alloc(owner: number): number {
    let id = this.free.pop();
    if (id === undefined) {
      id = this.next++;
      const c = id >>> CHUNK_BITS;
      if (c >= this.i32.length || ((id & MASK) + 1) * this.ints > this.i32[c]!.length) this.grow(c);
    }
    this.i32[id >>> CHUNK_BITS]![(id & MASK) * this.ints + OWNER] = owner;
    this.live++;
    return id;
  }

  /** Frees record `id`; freeing a free record is a broken invariant (it would be handed out twice). */
  release(id: number): void {
    const words = this.i32[id >>> CHUNK_BITS]!;
    const at = (id & MASK) * this.ints + OWNER;
    if (words[at] === FREE) throw new StateError('CORRUPT', 'state tree: a record freed twice', { id });
    words[at] = FREE;
    this.free.push(id);
    this.live--;
  }

  owner(id: number): number {
    return this.i32[id >>> CHUNK_BITS]![(id & MASK) * this.ints + OWNER]!;
  }

  // Chunk references change only here: callers fetch chunks after allocating, never across it.
  // Chunks are shared memory, so the hashing thread (treeHashWorker.ts) reads and hashes the same
  // records.
  private grow(c: number): void {
    if (c < this.i32.length) {
      const old = this.i32[c]!;
      const words = sharedWords(Math.min(CHUNK * this.ints, 2 * old.length));
      words.set(old);
      this.i32[c] = words;
      this.u8[c] = Buffer.from(words.buffer);
    } else {
      const words = sharedWords((c === 0 ? FIRST_CHUNK : CHUNK) * this.ints);
      this.i32.push(words);
      this.u8.push(Buffer.from(words.buffer));
    }
  }
}

function sharedWords(n: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(n * 4));
}

// Hash inputs are assembled in scratch buffers laid out so that every 32-byte hash in them starts
// on a 4-byte boundary (the domain byte sits at offset 3): hashes are copied as eight 32-bit words.
// Hashing is synchronous, so one scratch per shape serves every tree.
// (plus a last word, outside the input, that rehash writes to keep its prefetching reads.)
const internalWords = new Int32Array(1 + 16 * 8 + 1);
const internalInput = Buffer.from(internalWords.buffer, 3, 1 + 16 * HASH_BYTES);
internalInput[0] = 0x01;
const leafWords = new Int32Array(1 + 2 * 8);
const leafInput = Buffer.from(leafWords.buffer, 3, 1 + 2 * HASH_BYTES);
leafInput[0] = 0x00;
const emptyWords = new Int32Array(Uint8Array.from(EMPTY_STATE_ROOT).buffer);

// Hashes are written straight into the arena: node:crypto's one-shot hash returns a latin1 string
// faster than a Buffer (its 'buffer' output allocates an ArrayBuffer per hash), and writing the
// string copies the 32 bytes where they belong. 'binary' is node's alias of 'latin1'.
function digestInto(input: Bytes, to: Buffer, at: number): void {
  to.write(hash('sha256', input, 'binary'), at, 'latin1');
}

/** The record chunks of one kind, as the hashing code reads them (a Pool, or the worker's copy). */
export interface RecordChunks {
  readonly i32: readonly Int32Array[];
  readonly u8: readonly Buffer[];
}

/**
 * Makes node `x`'s hash valid, hashing its changed internal children first. Runs on the main
 * thread and, for part of a large tree, on the hashing thread (treeHashWorker.ts), which shares
 * the chunks: the two never work on the same subtree at once.
 */
export function rehashRecords(N: RecordChunks, L: RecordChunks, x: number): void {
  const words = N.i32[x >>> CHUNK_BITS]!;
  const b = (x & MASK) * NODE_INTS;
  if (words[b + VALID] !== 0) return;
  for (let k = 0; k < 16; k++) {
    const c = words[b + KIDS + k]!;
    if (c > 0 && N.i32[c >>> CHUNK_BITS]![(c & MASK) * NODE_INTS + VALID] === 0) rehashRecords(N, L, c);
  }
  // Children are hashed first: the shared scratch is filled only once they all are.
  // Touching each child's record first lets the CPU fetch all of them at once (they lie far apart
  // in the arena); copying child by child waited on each in turn.
  let touch = 0;
  for (let k = 0; k < 16; k++) {
    const c = words[b + KIDS + k]!;
    if (c > 0) touch ^= N.i32[c >>> CHUNK_BITS]![(c & MASK) * NODE_INTS]!;
    else if (c < 0) touch ^= L.i32[-c >>> CHUNK_BITS]![(-c & MASK) * LEAF_INTS]!;
  }
  internalWords[1 + 16 * 8] = touch;
  for (let k = 0, t = 1; k < 16; k++, t += 8) {
    const c = words[b + KIDS + k]!;
    let from: Int32Array;
    let f: number;
    if (c === 0) {
      from = emptyWords;
      f = 0;
    } else if (c > 0) {
      from = N.i32[c >>> CHUNK_BITS]!;
      f = (c & MASK) * NODE_INTS;
    } else {
      from = L.i32[-c >>> CHUNK_BITS]!;
      f = (-c & MASK) * LEAF_INTS;
    }
    for (let j = 0; j < 8; j++) internalWords[t + j] = from[f + j]!;
  }
  digestInto(internalInput, N.u8[x >>> CHUNK_BITS]!, b * 4);
  words[b + VALID] = 1;
}

// The version of leaf `l`, or UNVERSIONED for a leaf a working tree made.
function versionOf(L: RecordChunks, l: number): number {
  const words = L.i32[l >>> CHUNK_BITS]!;
  const b = (l & MASK) * LEAF_INTS;
  const hi = words[b + VERSION_HI]!;
  return hi === FRESH ? UNVERSIONED : hi * 0x1_0000_0000 + (words[b + VERSION_LO]! >>> 0);
}

function setVersion(L: RecordChunks, l: number, version: number): void {
  const words = L.i32[l >>> CHUNK_BITS]!;
  const b = (l & MASK) * LEAF_INTS;
  words[b + VERSION_HI] = version < 0 ? FRESH : Math.floor(version / 0x1_0000_0000);
  words[b + VERSION_LO] = version < 0 ? 0 : version | 0;
}

/** Computes the leaf hash of leaf `l` from its key and value hashes. */
export function hashLeafRecord(L: RecordChunks, l: number): void {
  const words = L.i32[l >>> CHUNK_BITS]!;
  const b = (l & MASK) * LEAF_INTS;
  for (let j = 0; j < 16; j++) leafWords[1 + j] = words[b + KEY_INTS + j]!;
  digestInto(leafInput, L.u8[l >>> CHUNK_BITS]!, b * 4);
}

/**
 * Fills leaf `l` for a put: its key hash (from the (contract, key) encoding that
 * writeStateKeyHash takes), the hash of `value`, and its leaf hash. Runs on either thread (see
 * {@link TreeArena} and hashThread.ts); each leaf is filled by one of them.
 */
export function fillLeafRecord(L: RecordChunks, l: number, encodedKey: Bytes, value: Bytes): void {
  const u8 = L.u8[l >>> CHUNK_BITS]!;
  const at = (l & MASK) * LEAF_INTS * 4;
  writeStateKeyHash(encodedKey, u8, at + KEY_INTS * 4);
  digestInto(value, u8, at + VALUE_INTS * 4);
  hashLeafRecord(L, l);
  setVersion(L, l, UNVERSIONED);
}

/**
 * The indices of leaves `ids` in the order of their key hashes' first 32 bits: put in that order,
 * consecutive leaves share the upper part of their paths, whose nodes are then still in the CPU's
 * caches. (The tree is the same in any order.)
 */
function pathOrder(L: RecordChunks, ids: readonly number[]): Iterable<number> {
  const n = ids.length;
  if (n < 2 || n >= 1 << 21) return ids.keys();
  // Key prefix and index packed in one number, so a numeric sort of typed-array values orders them.
  const keys = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const l = ids[i]!;
    const u8 = L.u8[l >>> CHUNK_BITS]!;
    const at = (l & MASK) * LEAF_INTS * 4 + KEY_INTS * 4;
    const prefix = ((u8[at]! << 24) | (u8[at + 1]! << 16) | (u8[at + 2]! << 8) | u8[at + 3]!) >>> 0;
    keys[i] = prefix * (1 << 21) + i;
  }
  keys.sort();
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = keys[i]! % (1 << 21);
  return order;
}

function popcount16(x: number): number {
  let v = x - ((x >> 1) & 0x5555);
  v = (v & 0x3333) + ((v >> 2) & 0x3333);
  v = (v + (v >> 4)) & 0x0f0f;
  return (v + (v >> 8)) & 0x1f;
}

/** A copy-on-write working tree over a committed root (see the module comment). */
export interface WorkingTree {
  /**
   * Sets the leaf of `keyHash` to the hash of `value`, a value written at `version` (default: by
   * this tree, versioned when committed); true when the key was there before.
   */
  put(keyHash: Bytes, value: Bytes, version?: number): boolean;
  /**
   * Sets many leaves at once: key i is given by its (contract, key) encoding (what
   * writeStateKeyHash takes) and gets the hash of `values[i]`; the hashing is shared with the
   * hashing thread when there are many. Returns, per key, whether it was there before. The keys
   * must be distinct. With `out`, also per key: the version of the leaf it replaced (or of the
   * leaf it left in place), {@link ABSENT} or {@link UNVERSIONED}; and whether the tree now holds a
   * leaf of its own for the key (false when it already held that key with that value in a
   * committed leaf, which stays).
   */
  putMany(
    encodedKeys: readonly Bytes[],
    values: readonly Bytes[],
    out?: { previous: number[]; fresh: boolean[] },
  ): boolean[];
  /**
   * Removes the leaf of `keyHash` (nothing happens when it is absent): the version of the leaf
   * removed, {@link UNVERSIONED}, or {@link ABSENT} when there was none.
   */
  delete(keyHash: Bytes): number;
  /**
   * Gives the leaves this tree made for its writes (those put without a version) the version they
   * are committed as.
   */
  stamp(version: number): void;
  /** The root hash, rehashing only the paths changed since the last call. */
  rootHash(): Bytes;
  /**
   * Ends the working tree: its root, hashed throughout, can become a committed version's (the tree
   * refuses every call afterwards, so nothing changes its records again).
   */
  finish(): { root: Bytes; node: TreeRoot };
}

/** Records in use, for memory accounting and tests. */
export interface ArenaStats {
  readonly nodes: number;
  readonly leaves: number;
  readonly openTrees: number;
  /**
   * Bytes of the record chunks (shared memory, which process.memoryUsage() counts in neither the
   * heap nor the buffers).
   */
  readonly bytes: number;
}

/**
 * The records of one state store's trees (see the module comment): every version in memory, the
 * working trees of its views and the trees rebuilt for old versions.
 */
export interface TreeArena {
  /**
   * The tree holding `count` leaves, leaf i being key hash `keyHashes[32i .. 32i+32)`, value
   * hash `valueHashes[32i .. 32i+32)` and version `versions[i]`: radix partitioning by nibble, top
   * down, needs no sort.
   */
  build(keyHashes: Buffer, valueHashes: Buffer, versions: Float64Array, count: number): TreeRoot;
  /** The hash of a tree (hashing its changed nodes first). */
  hashOf(root: TreeRoot): Bytes;
  /**
   * Walks the tree along `keyHash`: the leaf on its path (the key's own, or another key's occupying
   * its place), or 0 when the path ends at an empty child. With `levels`, records each internal
   * node passed as a proof level.
   */
  walk(root: TreeRoot, keyHash: Bytes, levels?: StateProofLevel[]): number;
  /** True when leaf `leaf` holds `keyHash`. */
  leafHolds(leaf: number, keyHash: Bytes): boolean;
  /** A copy of the key hash of leaf `leaf`. */
  leafKeyHash(leaf: number): Bytes;
  /** A copy of the value hash of leaf `leaf`. */
  leafValueHash(leaf: number): Bytes;
  /** The version at which leaf `leaf`'s value was written ({@link UNVERSIONED} for a working tree's). */
  leafVersion(leaf: number): number;
  /** Opens a working tree over `base`, a tree in memory. */
  open(base: TreeRoot): WorkingTree;
  /**
   * Makes `tree` (finished) a committed version's: its records stay until freed through the list
   * returned, the records of older versions it replaced. Free that list ({@link release}) once no
   * tree in memory is older than this one. Every other open tree is abandoned and its records
   * freed: callers adopt a tree only when every other is stale.
   */
  adopt(tree: WorkingTree): number[];
  /** Keeps `tree` (finished, rebuilt for an old version) past {@link adopt} until {@link drop}. */
  keep(tree: WorkingTree): void;
  /** Frees the records `tree` allocated (an abandoned or a kept tree). */
  drop(tree: WorkingTree): void;
  /** Frees retired records (a list {@link adopt} returned). */
  release(retired: readonly number[]): void;
  stats(): ArenaStats;
}

/**
 * Whether a root is hashed on two threads (see hashThread.ts): 'auto' for large trees only (at
 * least {@link PARALLEL_MIN_LEAVES} leaves, and at least 16 changed subtrees two levels down),
 * 'always' whenever there are 2 such subtrees (for tests), 'off' never.
 */
export type ParallelHashing = 'auto' | 'always' | 'off';

/** Puts one root must fold in before 'auto' fills their leaves on two threads. */
export const PARALLEL_MIN_PUTS = 128;

/**
 * Leaves a tree needs before 'auto' uses the hashing thread (on smaller trees a job's ~40 µs of
 * handing over is not worth it).
 */
export const PARALLEL_MIN_LEAVES = 65_536;

/** A new, empty arena. */
export function createTreeArena(options: { readonly parallelHashing?: ParallelHashing } = {}): TreeArena {
  return new Arena(options.parallelHashing ?? 'auto');
}

class Arena implements TreeArena {
  readonly nodes = new Pool(NODE_INTS);
  readonly leaves = new Pool(LEAF_INTS);
  // Records of the working trees opened since the last adopt (the views executed per committed
  // block: the proposals of one height), and of trees kept for old versions, by tree id.
  readonly opened = new Map<number, Records>();
  // A view dropped without a commit (a proposal that never committed, while no block commits for a
  // long time) gives its tree's records back once the tree is garbage, not only at the next adopt.
  readonly collected = new FinalizationRegistry<Records>((rec) => this.dropRecords(rec));
  lastId = 0;
  readonly parallel: ParallelHashing;
  // The link to the hashing thread, made when the arena first uses it.
  link: HashLink | null = null;

  constructor(parallel: ParallelHashing) {
    if (parallel !== 'auto' && parallel !== 'always' && parallel !== 'off') {
      throw new StateError('BAD_OPTIONS', `parallelHashing: expected auto, always or off`, {});
    }
    this.parallel = parallel;
    if (parallel === 'always') startHashThread();
  }

  // Ids are never reused (a reused id would make a new tree the owner of an old tree's records):
  // 2^31 - 1 trees is decades of blocks.
  newId(): number {
    if (this.lastId >= 0x7fff_ffff) {
      throw new StateError('CORRUPT', 'state tree: tree ids exhausted; restart the node', {});
    }
    return ++this.lastId;
  }

  // A node owned by `owner` with no children and no valid hash.
  newNode(owner: number): number {
    const x = this.nodes.alloc(owner);
    const w = this.nodes.i32[x >>> CHUNK_BITS]!;
    const b = (x & MASK) * NODE_INTS;
    w.fill(0, b + KIDS, b + KIDS + 16);
    w[b + VALID] = 0;
    return x;
  }

  // Makes node `x`'s hash valid, hashing its changed internal children first.
  rehash(x: number): void {
    rehashRecords(this.nodes, this.leaves, x);
  }

  // Rehashes node `x` (a root), its changed subtrees split between this thread and the hashing
  // thread when that pays (see ParallelHashing).
  rehashTop(x: number): void {
    const words = this.nodes.i32[x >>> CHUNK_BITS]!;
    const b = (x & MASK) * NODE_INTS;
    if (
      words[b + VALID] !== 0 ||
      this.parallel === 'off' ||
      (this.parallel === 'auto' && this.leaves.live < PARALLEL_MIN_LEAVES)
    ) {
      this.rehash(x);
      return;
    }
    // The changed subtrees two levels down (up to 256, ~10 nodes each for 1,000 keys in a
    // million): small pieces, so that when the other thread is slow to get a core the main thread
    // takes nearly all of them and waits at most for the one piece that thread holds.
    const changed = this.changedKids(x);
    const pieces: number[] = [];
    for (const c of changed) pieces.push(...this.changedKids(c));
    if (pieces.length < (this.parallel === 'auto' ? 16 : 2)) {
      this.rehash(x);
      return;
    }
    this.link ??= new HashLink(this);
    // Failed on the thread (it has stopped by now): what is not done yet is hashed here.
    if (!this.link.run(this.nodes, this.leaves, pieces)) for (const c of pieces) this.rehash(c);
    for (const c of changed) this.rehash(c);
    this.rehash(x);
  }

  // The children of node `x` that are internal nodes with no valid hash.
  changedKids(x: number): number[] {
    const N = this.nodes;
    const words = N.i32[x >>> CHUNK_BITS]!;
    const b = (x & MASK) * NODE_INTS;
    const out: number[] = [];
    for (let k = 0; k < 16; k++) {
      const c = words[b + KIDS + k]!;
      if (c > 0 && N.i32[c >>> CHUNK_BITS]![(c & MASK) * NODE_INTS + VALID] === 0) out.push(c);
    }
    return out;
  }

  // Computes the leaf hash of leaf `l` from its key and value hashes.
  hashLeaf(l: number): void {
    hashLeafRecord(this.leaves, l);
  }

  // Fills the leaves `ids` for puts (see fillLeafRecord), on both threads when there are many.
  fillLeaves(ids: readonly number[], encodedKeys: readonly Bytes[], values: readonly Bytes[]): void {
    const n = ids.length;
    if (
      this.parallel === 'off' ||
      n < (this.parallel === 'auto' ? PARALLEL_MIN_PUTS : 2) ||
      (this.parallel === 'auto' && this.leaves.live < PARALLEL_MIN_LEAVES)
    ) {
      for (let i = 0; i < n; i++) fillLeafRecord(this.leaves, ids[i]!, encodedKeys[i]!, values[i]!);
      return;
    }
    this.link ??= new HashLink(this);
    // Failed on the thread (it has stopped by now): every leaf is filled here (filling is idempotent).
    if (!this.link.fillLeaves(this.leaves, ids, encodedKeys, values)) {
      for (let i = 0; i < n; i++) fillLeafRecord(this.leaves, ids[i]!, encodedKeys[i]!, values[i]!);
    }
  }

  // Frees a reference's record.
  free(ref: number): void {
    if (ref > 0) this.nodes.release(ref);
    else this.leaves.release(-ref);
  }

  build(keyHashes: Buffer, valueHashes: Buffer, versions: Float64Array, count: number): TreeRoot {
    const owner = this.newId();
    const L = this.leaves;
    // Hashes are copied as 32-bit words (a native copy per hash cost more than the copying).
    const words = (b: Buffer): Int32Array => {
      if (b.byteOffset % 4 === 0) return new Int32Array(b.buffer, b.byteOffset, count * 8);
      const aligned = new Int32Array(count * 8);
      Buffer.from(aligned.buffer).set(b.subarray(0, count * HASH_BYTES));
      return aligned;
    };
    const keyWords = words(keyHashes);
    const valueWords = words(valueHashes);
    const leaf = (i: number): number => {
      const l = L.alloc(owner);
      const to = L.i32[l >>> CHUNK_BITS]!;
      const at = (l & MASK) * LEAF_INTS;
      for (let j = 0; j < 8; j++) {
        to[at + KEY_INTS + j] = keyWords[i * 8 + j]!;
        to[at + VALUE_INTS + j] = valueWords[i * 8 + j]!;
      }
      setVersion(L, l, versions[i]!);
      this.hashLeaf(l);
      return -l;
    };
    if (count === 0) return 0;
    if (count === 1) return leaf(0);
    const order = new Uint32Array(count);
    for (let i = 0; i < count; i++) order[i] = i;
    const scratch = new Uint32Array(count);
    const nibble = (i: number, depth: number): number => {
      const byte = keyHashes[i * HASH_BYTES + (depth >> 1)]!;
      return depth & 1 ? byte & 0x0f : byte >> 4;
    };
    // The subtree of order[lo, hi): at least two leaves sharing their first `depth` nibbles.
    const build = (lo: number, hi: number, depth: number): number => {
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
      const kids = new Int32Array(16);
      for (let n = 0; n < 16; n++) {
        const size = starts[n + 1]! - starts[n]!;
        if (size === 1) kids[n] = leaf(order[lo + starts[n]!]!);
        else if (size > 1) kids[n] = build(lo + starts[n]!, lo + starts[n + 1]!, depth + 1);
      }
      const x = this.newNode(owner);
      this.nodes.i32[x >>> CHUNK_BITS]!.set(kids, (x & MASK) * NODE_INTS + KIDS);
      this.rehash(x);
      return x;
    };
    const root = build(0, count, 0);
    // A tree this large will use the hashing thread: it starts loading now, not at the first block.
    if (this.parallel === 'auto' && this.leaves.live >= PARALLEL_MIN_LEAVES) startHashThread();
    return root;
  }

  hashOf(root: TreeRoot): Bytes {
    if (root === 0) return EMPTY_STATE_ROOT;
    if (root < 0) {
      const at = (-root & MASK) * LEAF_INTS * 4;
      return Buffer.from(this.leaves.u8[-root >>> CHUNK_BITS]!.subarray(at, at + HASH_BYTES));
    }
    this.rehashTop(root);
    const at = (root & MASK) * NODE_INTS * 4;
    return Buffer.from(this.nodes.u8[root >>> CHUNK_BITS]!.subarray(at, at + HASH_BYTES));
  }

  walk(root: TreeRoot, keyHash: Bytes, levels?: StateProofLevel[]): number {
    let x = root;
    for (let depth = 0; x !== 0; depth++) {
      if (x < 0) return -x;
      this.rehash(x);
      const words = this.nodes.i32[x >>> CHUNK_BITS]!;
      const b = (x & MASK) * NODE_INTS + KIDS;
      const n = nibbleAt(keyHash, depth);
      if (levels !== undefined) {
        let bitmap = 0;
        for (let i = 0; i < 16; i++) if (i !== n && words[b + i] !== 0) bitmap |= 1 << i;
        const all = Buffer.allocUnsafe(popcount16(bitmap) * HASH_BYTES);
        const siblings: Bytes[] = [];
        for (let i = 0, s = 0; i < 16; i++) {
          if (!((bitmap >> i) & 1)) continue;
          const c = words[b + i]!;
          if (c > 0) this.rehash(c);
          // The hash a reference stands for is the first 32 bytes of its record.
          const from = c > 0 ? this.nodes.u8[c >>> CHUNK_BITS]! : this.leaves.u8[-c >>> CHUNK_BITS]!;
          const at = c > 0 ? (c & MASK) * NODE_INTS * 4 : (-c & MASK) * LEAF_INTS * 4;
          for (let j = 0; j < HASH_BYTES; j++) all[s * HASH_BYTES + j] = from[at + j]!;
          siblings.push(all.subarray(s * HASH_BYTES, ++s * HASH_BYTES));
        }
        levels.push({ bitmap, siblings });
      }
      x = words[b + n]!;
    }
    return 0;
  }

  leafHolds(leaf: number, keyHash: Bytes): boolean {
    const u8 = this.leaves.u8[leaf >>> CHUNK_BITS]!;
    const at = (leaf & MASK) * LEAF_INTS * 4 + KEY_INTS * 4;
    for (let i = 0; i < HASH_BYTES; i++) if (u8[at + i] !== keyHash[i]) return false;
    return true;
  }

  leafKeyHash(leaf: number): Bytes {
    const at = (leaf & MASK) * LEAF_INTS * 4 + KEY_INTS * 4;
    return Buffer.from(this.leaves.u8[leaf >>> CHUNK_BITS]!.subarray(at, at + HASH_BYTES));
  }

  leafValueHash(leaf: number): Bytes {
    const at = (leaf & MASK) * LEAF_INTS * 4 + VALUE_INTS * 4;
    return Buffer.from(this.leaves.u8[leaf >>> CHUNK_BITS]!.subarray(at, at + HASH_BYTES));
  }

  leafVersion(leaf: number): number {
    return versionOf(this.leaves, leaf);
  }

  open(base: TreeRoot): WorkingTree {
    const rec: Records = { id: this.newId(), allocs: [], retired: [], kept: false, dead: false };
    const tree = new Tree(this, rec, base);
    this.opened.set(rec.id, rec);
    this.collected.register(tree, rec, tree);
    return tree;
  }

  adopt(tree: WorkingTree): number[] {
    const t = asTree(this, tree);
    if (!t.finished || this.opened.get(t.rec.id) !== t.rec) {
      throw new StateError('BAD_OPTIONS', 'state tree: only a finished, open tree can be adopted', {});
    }
    this.opened.delete(t.rec.id);
    this.collected.unregister(t);
    for (const other of this.opened.values()) if (!other.kept) this.dropRecords(other);
    const retired = t.rec.retired;
    t.rec.allocs = [];
    t.rec.retired = [];
    return retired;
  }

  keep(tree: WorkingTree): void {
    const t = asTree(this, tree);
    if (!t.finished) throw new StateError('BAD_OPTIONS', 'state tree: only a finished tree can be kept', {});
    t.rec.kept = true;
  }

  drop(tree: WorkingTree): void {
    const t = asTree(this, tree);
    this.collected.unregister(t);
    this.dropRecords(t.rec);
  }

  // Frees what an open tree allocated; the tree refuses every call afterwards.
  dropRecords(rec: Records): void {
    if (this.opened.get(rec.id) !== rec) return;
    this.opened.delete(rec.id);
    rec.dead = true;
    // A record it allocated and freed may have gone to another tree since: free only its own.
    for (const ref of rec.allocs) {
      if (ref > 0 ? this.nodes.owner(ref) === rec.id : this.leaves.owner(-ref) === rec.id) this.free(ref);
    }
    rec.allocs = [];
    rec.retired = [];
  }

  release(retired: readonly number[]): void {
    for (const ref of retired) this.free(ref);
  }

  stats(): ArenaStats {
    let bytes = 0;
    for (const c of this.nodes.i32) bytes += c.byteLength;
    for (const c of this.leaves.i32) bytes += c.byteLength;
    return { nodes: this.nodes.live, leaves: this.leaves.live, openTrees: this.opened.size, bytes };
  }
}

function asTree(arena: Arena, tree: WorkingTree): Tree {
  if (!(tree instanceof Tree) || tree.arena !== arena) {
    throw new StateError('BAD_OPTIONS', 'state tree: the tree belongs to another arena', {});
  }
  return tree;
}

/**
 * What the arena knows of an open tree, apart from the tree itself (which it does not hold, so a
 * dropped one can be collected): the references it allocated (bounded by the writes of its view),
 * to free them if it is abandoned, and the references of older versions it replaced, to free once
 * they leave memory.
 */
interface Records {
  readonly id: number;
  allocs: number[];
  retired: number[];
  kept: boolean;
  // Abandoned and freed: the tree must never be used again.
  dead: boolean;
}

class Tree implements WorkingTree {
  readonly arena: Arena;
  readonly rec: Records;
  readonly id: number;
  root: TreeRoot;
  finished = false;
  // Set by putInto and deleteFrom when they meet the key's own leaf: its version, and whether the
  // new leaf went in.
  private found = false;
  private previous = ABSENT;
  private fresh = true;

  constructor(arena: Arena, rec: Records, base: TreeRoot) {
    this.arena = arena;
    this.rec = rec;
    this.id = rec.id;
    this.root = base;
  }

  private check(): void {
    if (this.finished) throw new StateError('VIEW_CLOSED', 'state tree: already finished', {});
    if (this.rec.dead) {
      throw new StateError('STALE_VIEW', 'state tree: abandoned when another version was committed', {});
    }
  }

  // The leaf of `keyHash` holding `value` written at `version`, owned by this tree.
  private newLeaf(keyHash: Bytes, value: Bytes, version: number): number {
    const L = this.arena.leaves;
    const l = L.alloc(this.id);
    this.rec.allocs.push(-l);
    const u8 = L.u8[l >>> CHUNK_BITS]!;
    const at = (l & MASK) * LEAF_INTS * 4;
    u8.set(keyHash, at + KEY_INTS * 4);
    digestInto(value, u8, at + VALUE_INTS * 4);
    this.arena.hashLeaf(l);
    setVersion(L, l, version);
    return l;
  }

  private newNode(): number {
    const x = this.arena.newNode(this.id);
    this.rec.allocs.push(x);
    return x;
  }

  // This tree no longer references `ref`: free it if this tree made it, else retire it.
  private forget(ref: number): void {
    const a = this.arena;
    const owner = ref > 0 ? a.nodes.owner(ref) : a.leaves.owner(-ref);
    if (owner === this.id) a.free(ref);
    else this.rec.retired.push(ref);
  }

  // Node `x`, or this tree's copy of it (its hash invalid either way: the caller changes it).
  private own(x: number): number {
    const N = this.arena.nodes;
    let words = N.i32[x >>> CHUNK_BITS]!;
    const b = (x & MASK) * NODE_INTS;
    if (words[b + OWNER] === this.id) {
      words[b + VALID] = 0;
      return x;
    }
    const y = N.alloc(this.id);
    this.rec.allocs.push(y);
    // Allocating may have replaced x's chunk (the first one grows): fetch it again.
    words = N.i32[x >>> CHUNK_BITS]!;
    const to = N.i32[y >>> CHUNK_BITS]!;
    const t = (y & MASK) * NODE_INTS;
    for (let k = KIDS; k < KIDS + 16; k++) to[t + k] = words[b + k]!;
    to[t + VALID] = 0;
    this.rec.retired.push(x);
    return y;
  }

  private kid(x: number, n: number): number {
    return this.arena.nodes.i32[x >>> CHUNK_BITS]![(x & MASK) * NODE_INTS + KIDS + n]!;
  }

  private setKid(x: number, n: number, ref: number): void {
    this.arena.nodes.i32[x >>> CHUNK_BITS]![(x & MASK) * NODE_INTS + KIDS + n] = ref;
  }

  private valid(x: number): boolean {
    return this.arena.nodes.i32[x >>> CHUNK_BITS]![(x & MASK) * NODE_INTS + VALID] !== 0;
  }

  // True when leaves `a` and `b` have equal words over [from, to) (key hash, or leaf hash).
  private sameWords(a: number, b: number, from: number, to: number): boolean {
    const L = this.arena.leaves;
    const wa = L.i32[a >>> CHUNK_BITS]!;
    const wb = L.i32[b >>> CHUNK_BITS]!;
    const ia = (a & MASK) * LEAF_INTS;
    const ib = (b & MASK) * LEAF_INTS;
    for (let j = from; j < to; j++) if (wa[ia + j] !== wb[ib + j]) return false;
    return true;
  }

  private leafNibble(l: number, depth: number): number {
    const u8 = this.arena.leaves.u8[l >>> CHUNK_BITS]!;
    const byte = u8[(l & MASK) * LEAF_INTS * 4 + KEY_INTS * 4 + (depth >> 1)]!;
    return depth & 1 ? byte & 0x0f : byte >> 4;
  }

  // The smallest subtree at `depth` holding leaves `a` and `b` (distinct keys).
  private split(a: number, b: number, depth: number): number {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two leaves with one key hash', {});
    const na = this.leafNibble(a, depth);
    const nb = this.leafNibble(b, depth);
    if (na === nb) {
      const below = this.split(a, b, depth + 1);
      const x = this.newNode();
      this.setKid(x, na, below);
      return x;
    }
    const x = this.newNode();
    this.setKid(x, na, -a);
    this.setKid(x, nb, -b);
    return x;
  }

  // Returns the reference replacing `x` (x itself when unchanged, or changed in place).
  private putInto(x: number, depth: number, leaf: number): number {
    const n = this.leafNibble(leaf, depth);
    const c = this.kid(x, n);
    if (c === 0) {
      const o = this.own(x);
      this.setKid(o, n, -leaf);
      return o;
    }
    if (c < 0) {
      if (this.sameWords(-c, leaf, KEY_INTS, VALUE_INTS)) {
        this.found = true;
        this.previous = versionOf(this.arena.leaves, -c);
        // The leaf hash commits to key and value: an equal hash means nothing changes.
        if (this.sameWords(-c, leaf, 0, KEY_INTS)) {
          this.forget(-leaf);
          // The leaf kept is new all the same when this tree made it.
          this.fresh = this.previous === UNVERSIONED;
          return x;
        }
        const o = this.own(x);
        this.setKid(o, n, -leaf);
        this.forget(c);
        return o;
      }
      // Another key's leaf sits on this path: both move down to where their hashes differ.
      const sub = this.split(-c, leaf, depth + 1);
      const o = this.own(x);
      this.setKid(o, n, sub);
      return o;
    }
    const after = this.putInto(c, depth + 1, leaf);
    if (after === c && this.valid(c)) return x;
    const o = this.own(x);
    this.setKid(o, n, after);
    return o;
  }

  // After a child went away: a node left with no child vanishes, and one left with a single leaf
  // hands the leaf up (it moves to the shortest unique prefix).
  private normalize(o: number): number {
    let only = 0;
    let count = 0;
    for (let k = 0; k < 16 && count < 2; k++) {
      const c = this.kid(o, k);
      if (c !== 0) {
        only = c;
        count++;
      }
    }
    if (count === 0 || (count === 1 && only < 0)) {
      this.forget(o);
      return only;
    }
    return o;
  }

  private deleteFrom(x: number, depth: number, kh: Bytes): number {
    const n = nibbleAt(kh, depth);
    const c = this.kid(x, n);
    if (c === 0) return x;
    if (c < 0) {
      if (!this.arena.leafHolds(-c, kh)) return x;
      this.found = true;
      this.previous = versionOf(this.arena.leaves, -c);
      const o = this.own(x);
      this.setKid(o, n, 0);
      this.forget(c);
      return this.normalize(o);
    }
    const after = this.deleteFrom(c, depth + 1, kh);
    if (after === c && this.valid(c)) return x;
    const o = this.own(x);
    this.setKid(o, n, after);
    return this.normalize(o);
  }

  put(keyHash: Bytes, value: Bytes, version = UNVERSIONED): boolean {
    this.check();
    return this.putLeaf(this.newLeaf(keyHash, value, version));
  }

  putMany(
    encodedKeys: readonly Bytes[],
    values: readonly Bytes[],
    out?: { previous: number[]; fresh: boolean[] },
  ): boolean[] {
    this.check();
    const n = encodedKeys.length;
    if (values.length !== n) throw new StateError('BAD_OPTIONS', 'putMany: one value per key', {});
    const L = this.arena.leaves;
    const ids = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const l = L.alloc(this.id);
      this.rec.allocs.push(-l);
      ids[i] = l;
    }
    this.arena.fillLeaves(ids, encodedKeys, values);
    const had = new Array<boolean>(n);
    for (const i of pathOrder(L, ids)) {
      had[i] = this.putLeaf(ids[i]!);
      if (out !== undefined) {
        out.previous[i] = this.previous;
        out.fresh[i] = this.fresh;
      }
    }
    return had;
  }

  // Puts leaf `leaf` (this tree's, filled) in its key's place; true when the key was there before.
  private putLeaf(leaf: number): boolean {
    const r = this.root;
    this.found = false;
    this.previous = ABSENT;
    this.fresh = true;
    if (r === 0) this.root = -leaf;
    else if (r > 0) this.root = this.putInto(r, 0, leaf);
    else if (!this.sameWords(-r, leaf, KEY_INTS, VALUE_INTS)) this.root = this.split(-r, leaf, 0);
    else {
      this.found = true;
      this.previous = versionOf(this.arena.leaves, -r);
      if (!this.sameWords(-r, leaf, 0, KEY_INTS)) {
        this.forget(r);
        this.root = -leaf;
      } else {
        this.forget(-leaf);
        this.fresh = this.previous === UNVERSIONED;
      }
    }
    return this.found;
  }

  delete(keyHash: Bytes): number {
    this.check();
    const r = this.root;
    this.found = false;
    this.previous = ABSENT;
    if (r === 0) return ABSENT;
    if (r < 0) {
      if (!this.arena.leafHolds(-r, keyHash)) return ABSENT;
      const version = versionOf(this.arena.leaves, -r);
      this.forget(r);
      this.root = 0;
      return version;
    }
    this.root = this.deleteFrom(r, 0, keyHash);
    return this.found ? this.previous : ABSENT;
  }

  stamp(version: number): void {
    this.check();
    const L = this.arena.leaves;
    // A leaf this tree made and dropped was freed (its owner is no longer this tree).
    for (const ref of this.rec.allocs) {
      if (ref < 0 && L.owner(-ref) === this.id && versionOf(L, -ref) === UNVERSIONED)
        setVersion(L, -ref, version);
    }
  }

  rootHash(): Bytes {
    this.check();
    return this.arena.hashOf(this.root);
  }

  finish(): { root: Bytes; node: TreeRoot } {
    this.check();
    const root = this.arena.hashOf(this.root);
    this.finished = true;
    return { root, node: this.root };
  }
}
