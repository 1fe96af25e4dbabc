import type { Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { EMPTY_STATE_ROOT, StateError, stateInternalHash, stateLeafHash } from '../../core/stateProof.ts';
import type { KvStore } from '../storage/kv.ts';

/**
 * Storage layout of the state tree inside the node's one KvStore, and a cached reader of tree
 * nodes. Every state key starts with the state bucket byte (0x20, `Bucket.state` of the block
 * store's bucket table), then one sub-bucket letter:
 *
 * - `n` version(8, big-endian) depth(1) path(⌈depth/2⌉) → a tree node (Jellyfish's NodeKey:
 *   version first, so one version's new nodes are written side by side and LevelDB appends them);
 * - `f` contractLength(1) contract key → the latest value (the flat index: fast reads, range scans);
 * - `s` version(8) → the node keys that stopped being part of the tree at that version (the stale
 *   node index, read back when the version falls out of the retention window);
 * - `u` version(8) → the undo record of that version: the previous value of every key it wrote,
 *   from which older versions' values are read (leaves hold only value hashes);
 * - `m` → metadata: format, latest committed version, oldest readable version.
 */

/** First byte of every key the state store writes. Equal to `Bucket.state` in node/storage. */
export const STATE_BUCKET = 0x20;
const SUB_NODE = 0x6e; // 'n'
const SUB_FLAT = 0x66; // 'f'
const SUB_STALE = 0x73; // 's'
const SUB_META = 0x6d; // 'm'
const SUB_UNDO = 0x75; // 'u'

/** Largest version (block height) the 6-byte child references can hold. */
export const MAX_VERSION = 2 ** 48 - 1;

/** Key of the metadata record. */
export const META_KEY: Bytes = Uint8Array.of(STATE_BUCKET, SUB_META);
/** Bounds of the flat index, for scanning it. */
export const FLAT_START: Bytes = Uint8Array.of(STATE_BUCKET, SUB_FLAT);
export const FLAT_END: Bytes = Uint8Array.of(STATE_BUCKET, SUB_FLAT + 1);

function writeVersion(buf: Buffer, offset: number, version: number): void {
  buf.writeUInt32BE(Math.floor(version / 0x1_0000_0000), offset);
  buf.writeUInt32BE(version >>> 0, offset + 4);
}

/**
 * Key of the node at (version, the first `depth` nibbles of `path`). Nibbles of `path` past
 * `depth` are ignored, so any key hash below the node names it.
 */
export function nodeKey(version: number, path: Bytes, depth: number): Buffer {
  const pathBytes = (depth + 1) >> 1;
  const buf = Buffer.allocUnsafe(11 + pathBytes);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_NODE;
  writeVersion(buf, 2, version);
  buf[10] = depth;
  for (let i = 0; i < pathBytes; i++) buf[11 + i] = path[i]!;
  if (depth & 1) buf[10 + pathBytes] = buf[10 + pathBytes]! & 0xf0;
  return buf;
}

/** Key of the stale-node record of `version`. */
export function staleKey(version: number): Buffer {
  const buf = Buffer.allocUnsafe(10);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_STALE;
  writeVersion(buf, 2, version);
  return buf;
}

/** Key of the undo record of `version`. */
export function undoKey(version: number): Buffer {
  const buf = Buffer.allocUnsafe(10);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_UNDO;
  writeVersion(buf, 2, version);
  return buf;
}

/** One entry of an undo record: the value (contract, key) had before the version, null if none. */
export interface UndoEntry {
  readonly contract: string;
  readonly key: Bytes;
  readonly previous: Bytes | null;
}

/**
 * Undo record bytes: per entry, contract length (1) and name, key length (2) and key, then 0 for
 * no previous value or 1, value length (4) and value.
 */
export function encodeUndo(entries: readonly UndoEntry[]): Buffer {
  let size = 0;
  for (const e of entries)
    size += 1 + e.contract.length + 2 + e.key.length + 1 + (e.previous === null ? 0 : 4 + e.previous.length);
  const buf = Buffer.allocUnsafe(size);
  let o = 0;
  for (const e of entries) {
    buf[o++] = e.contract.length;
    o += buf.write(e.contract, o, 'latin1');
    buf.writeUInt16BE(e.key.length, o);
    buf.set(e.key, o + 2);
    o += 2 + e.key.length;
    if (e.previous === null) buf[o++] = 0;
    else {
      buf[o] = 1;
      buf.writeUInt32BE(e.previous.length, o + 1);
      buf.set(e.previous, o + 5);
      o += 5 + e.previous.length;
    }
  }
  return buf;
}

/** Decodes an undo record into a map from `contract + "\0" + latin1 key` to the previous value. */
export function decodeUndo(bytes: Bytes, version: number): Map<string, Bytes | null> {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, Bytes | null>();
  const bad = (): never => {
    throw new StateError('CORRUPT', `undo record of version ${version}: truncated`, { version });
  };
  let o = 0;
  while (o < b.length) {
    const cl = b[o]!;
    if (o + 1 + cl + 2 > b.length) bad();
    const contract = b.toString('latin1', o + 1, o + 1 + cl);
    o += 1 + cl;
    const kl = b.readUInt16BE(o);
    if (o + 2 + kl + 1 > b.length) bad();
    const keyStr = b.toString('latin1', o + 2, o + 2 + kl);
    o += 2 + kl;
    if (b[o] === 0) {
      out.set(contract + '\0' + keyStr, null);
      o += 1;
    } else {
      if (o + 5 > b.length) bad();
      const vl = b.readUInt32BE(o + 1);
      if (o + 5 + vl > b.length) bad();
      out.set(contract + '\0' + keyStr, b.subarray(o + 5, o + 5 + vl));
      o += 5 + vl;
    }
  }
  return out;
}

/** Key of (contract, key) in the flat index. */
export function flatKey(contract: string, key: Bytes): Buffer {
  const buf = Buffer.allocUnsafe(3 + contract.length + key.length);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_FLAT;
  buf[2] = contract.length;
  buf.write(contract, 3, 'latin1');
  buf.set(key, 3 + contract.length);
  return buf;
}

/** Splits a flat-index key back into (contract, key as a latin1 string). */
export function parseFlatKey(k: Bytes): { contract: string; keyStr: string } {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  if (b.length < 3 || b[0] !== STATE_BUCKET || b[1] !== SUB_FLAT || b.length < 3 + b[2]!) {
    throw new StateError('CORRUPT', 'flat index: malformed key', { key: b.toString('hex') });
  }
  const n = b[2]!;
  return { contract: b.toString('latin1', 3, 3 + n), keyStr: b.toString('latin1', 3 + n) };
}

/** Encodes a list of node keys (stale-node record): each as one length byte then the key. */
export function encodeKeyList(keys: Iterable<Bytes>): Buffer {
  const parts: Buffer[] = [];
  for (const k of keys) {
    parts.push(Buffer.of(k.length), Buffer.from(k.buffer, k.byteOffset, k.byteLength));
  }
  return Buffer.concat(parts);
}

/** Decodes a stale-node record. */
export function decodeKeyList(bytes: Bytes): Buffer[] {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Buffer[] = [];
  let i = 0;
  while (i < b.length) {
    const n = b[i]!;
    if (i + 1 + n > b.length) throw new StateError('CORRUPT', 'stale-node record: truncated', {});
    out.push(b.subarray(i + 1, i + 1 + n));
    i += 1 + n;
  }
  return out;
}

/** A committed internal child: the node at (version, parent path + nibble) and its hash. */
export interface InternalRef {
  readonly t: 'ref';
  readonly version: number;
  readonly hash: Bytes;
}

/**
 * A leaf, stored inside its parent's record (or as the root record of a one-key version): the key
 * hash, the value hash and the leaf hash. The value itself lives in the flat index (latest) and in
 * the per-version undo records (older versions), so a leaf costs no record of its own, and moving
 * a leaf to another depth rewrites only its parent.
 */
export interface LeafEntry {
  readonly t: 'leaf';
  readonly keyHash: Bytes;
  readonly valueHash: Bytes;
  readonly hash: Bytes;
}

/**
 * A small subtree stored inside its parent's record rather than as a record of its own: an
 * internal node with at most {@link EMBED_MAX_LEAVES} leaves below it. Below the level where the
 * tree is dense, most internal nodes hold two or three keys that share a prefix; giving each its
 * own record would cost a read, a write and a prune for every update beneath it.
 */
export interface EmbeddedChild {
  readonly t: 'emb';
  readonly node: InternalNode;
  readonly hash: Bytes;
}

/** Largest subtree (in leaves) stored inside its parent's record. */
export const EMBED_MAX_LEAVES = 8;

/** A child of a committed internal node. */
export type StoredChild = InternalRef | LeafEntry | EmbeddedChild;

/** The root of an empty version. */
export interface NullNode {
  readonly kind: 'null';
}

/** A version whose tree is a single leaf. */
export interface LeafNode {
  readonly kind: 'leaf';
  readonly leaf: LeafEntry;
}

/**
 * An internal node, kept as a window of its stored bytes plus its bitmaps: a decoded child costs a
 * JavaScript object and typed-array views (~150 bytes each), so children are read out only on
 * demand ({@link childAt}, {@link childrenOf}).
 */
export interface InternalNode {
  readonly kind: 'internal';
  readonly bytes: Buffer;
  /** Offset of the node's header in `bytes`; its entries follow the 7-byte header. */
  readonly start: number;
  /** Offset just past the node's last entry. */
  readonly end: number;
  /** Bit i set: child i is present. */
  readonly bitmap: number;
  /** Bit i set: child i is a leaf. */
  readonly leaves: number;
  /** Bit i set: child i is an embedded subtree. */
  readonly embedded: number;
  /** Entry offsets by nibble, filled on first use when embedded entries make them vary. */
  offsets?: Int32Array;
}

/** A decoded tree node. An internal node has at least two leaves below it. */
export type StoredNode = NullNode | LeafNode | InternalNode;

const NODE_NULL = 0;
const NODE_INTERNAL = 1;
const NODE_LEAF = 2;
const HEADER_BYTES = 7;
const REF_BYTES = 6 + HASH_BYTES;
const LEAF_BYTES = 3 * HASH_BYTES;
// An embedded entry: its hash, its encoded length (u16), then its encoding (header and entries).
const EMB_FIXED = HASH_BYTES + 2;

/** The one null node: the root of an empty version. */
export const NULL_NODE: NullNode = { kind: 'null' };

/** Null node bytes. */
export const NULL_NODE_BYTES: Buffer = Buffer.of(NODE_NULL);

/** Builds a leaf entry, computing its hash. */
export function makeLeafEntry(keyHash: Bytes, valueHash: Bytes): LeafEntry {
  return { t: 'leaf', keyHash, valueHash, hash: stateLeafHash(keyHash, valueHash) };
}

/**
 * Node bytes use a fixed custom layout, not MessagePack: nodes are decoded on every tree walk and
 * never leave the node. A root leaf: 0x02, key hash, value hash.
 */
export function encodeRootLeaf(leaf: LeafEntry): Buffer {
  const buf = Buffer.allocUnsafe(1 + 2 * HASH_BYTES);
  buf[0] = NODE_LEAF;
  buf.set(leaf.keyHash, 1);
  buf.set(leaf.valueHash, 1 + HASH_BYTES);
  return buf;
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

// Size of the entry at `o` of child `i`.
function entrySize(node: InternalNode, i: number, o: number): number {
  if ((node.leaves >> i) & 1) return LEAF_BYTES;
  if ((node.embedded >> i) & 1) return EMB_FIXED + node.bytes.readUInt16BE(o + HASH_BYTES);
  return REF_BYTES;
}

/** Offset of child `i`'s entry in the node's bytes (the child must be present). */
export function childOffset(node: InternalNode, i: number): number {
  const below = (1 << i) - 1;
  if ((node.embedded & below) === 0) {
    const leavesBelow = popcount(node.leaves & below);
    return (
      node.start +
      HEADER_BYTES +
      leavesBelow * LEAF_BYTES +
      (popcount(node.bitmap & below) - leavesBelow) * REF_BYTES
    );
  }
  // Embedded entries vary in length: walk the entries once and keep their offsets.
  let offsets = node.offsets;
  if (offsets === undefined) {
    offsets = new Int32Array(16);
    let o = node.start + HEADER_BYTES;
    for (let j = 0; j < 16; j++) {
      offsets[j] = o;
      if ((node.bitmap >> j) & 1) o += entrySize(node, j, o);
    }
    node.offsets = offsets;
  }
  return offsets[i]!;
}

/** Offset of child `i`'s hash in the node's bytes (the child must be present). */
export function childHashOffset(node: InternalNode, i: number): number {
  const o = childOffset(node, i);
  if ((node.leaves >> i) & 1) return o + 2 * HASH_BYTES;
  if ((node.embedded >> i) & 1) return o;
  return o + 6;
}

/** Leaves below a stored internal node; a child kept as its own record counts as too many. */
export function leafCount(node: InternalNode): number {
  let n = 0;
  for (let i = 0; i < 16; i++) {
    if (!((node.bitmap >> i) & 1)) continue;
    if ((node.leaves >> i) & 1) n++;
    else if ((node.embedded >> i) & 1) n += leafCount((childAt(node, i) as EmbeddedChild).node);
    else return Infinity;
  }
  return n;
}

/**
 * Internal node bytes: 0x01, child bitmap (u16), leaf bitmap (u16), embedded bitmap (u16), then
 * per present child in nibble order: for a record, its version (6 bytes, big-endian) and hash;
 * for a leaf, its key hash, value hash and leaf hash (stored so that rehashing a parent never
 * rehashes its unchanged leaves); for an embedded subtree, its hash, length (u16) and encoding.
 *
 * Child i comes from `base` (its stored entry copied as is) when bit i of `inherited` is set, and
 * from `children[i]` otherwise, so a changed node is encoded without decoding its other children.
 */
export function encodeInternalFrom(
  base: InternalNode | undefined,
  inherited: number,
  children: ArrayLike<StoredChild | undefined>,
): Buffer {
  let bitmap = 0;
  let leaves = 0;
  let embedded = 0;
  let size = HEADER_BYTES;
  for (let i = 0; i < 16; i++) {
    if ((inherited >> i) & 1) {
      const b = base!;
      bitmap |= 1 << i;
      leaves |= b.leaves & (1 << i);
      embedded |= b.embedded & (1 << i);
      size += entrySize(b, i, childOffset(b, i));
      continue;
    }
    const c = children[i];
    if (c === undefined) continue;
    bitmap |= 1 << i;
    if (c.t === 'leaf') {
      leaves |= 1 << i;
      size += LEAF_BYTES;
    } else if (c.t === 'emb') {
      embedded |= 1 << i;
      size += EMB_FIXED + (c.node.end - c.node.start);
    } else size += REF_BYTES;
  }
  const buf = Buffer.allocUnsafe(size);
  buf[0] = NODE_INTERNAL;
  buf.writeUInt16BE(bitmap, 1);
  buf.writeUInt16BE(leaves, 3);
  buf.writeUInt16BE(embedded, 5);
  let o = HEADER_BYTES;
  for (let i = 0; i < 16; i++) {
    if ((inherited >> i) & 1) {
      // Inherited entries next to each other in the base are copied in one call.
      const b = base!;
      const from = childOffset(b, i);
      let to = from + entrySize(b, i, from);
      while (i + 1 < 16 && (inherited >> (i + 1)) & 1) {
        i++;
        to += entrySize(b, i, to);
      }
      b.bytes.copy(buf, o, from, to);
      o += to - from;
      continue;
    }
    const c = children[i];
    if (c === undefined) continue;
    if (c.t === 'leaf') {
      buf.set(c.keyHash, o);
      buf.set(c.valueHash, o + HASH_BYTES);
      buf.set(c.hash, o + 2 * HASH_BYTES);
      o += LEAF_BYTES;
    } else if (c.t === 'emb') {
      const len = c.node.end - c.node.start;
      buf.set(c.hash, o);
      buf.writeUInt16BE(len, o + HASH_BYTES);
      c.node.bytes.copy(buf, o + EMB_FIXED, c.node.start, c.node.end);
      o += EMB_FIXED + len;
    } else {
      buf.writeUIntBE(c.version, o, 6);
      buf.set(c.hash, o + 6);
      o += REF_BYTES;
    }
  }
  return buf;
}

/** Internal node bytes from 16 children (see {@link encodeInternalFrom}). */
export function encodeInternal(children: ArrayLike<StoredChild | undefined>): Buffer {
  return encodeInternalFrom(undefined, 0, children);
}

/** Child `i` of an internal node, or undefined when that child is empty. */
export function childAt(node: InternalNode, i: number): StoredChild | undefined {
  if (!((node.bitmap >> i) & 1)) return undefined;
  const o = childOffset(node, i);
  const b = node.bytes;
  if ((node.leaves >> i) & 1) {
    return {
      t: 'leaf',
      keyHash: b.subarray(o, o + HASH_BYTES),
      valueHash: b.subarray(o + HASH_BYTES, o + 2 * HASH_BYTES),
      hash: b.subarray(o + 2 * HASH_BYTES, o + LEAF_BYTES),
    };
  }
  if ((node.embedded >> i) & 1) {
    const len = b.readUInt16BE(o + HASH_BYTES);
    return {
      t: 'emb',
      node: parseInternal(b, o + EMB_FIXED, o + EMB_FIXED + len, undefined),
      hash: b.subarray(o, o + HASH_BYTES),
    };
  }
  return { t: 'ref', version: b.readUIntBE(o, 6), hash: b.subarray(o + 6, o + REF_BYTES) };
}

/** All 16 children of an internal node (undefined where empty). */
export function childrenOf(node: InternalNode): Array<StoredChild | undefined> {
  const out = new Array<StoredChild | undefined>(16);
  for (let i = 0; i < 16; i++) out[i] = childAt(node, i);
  return out;
}

function corrupt(what: string, key: Bytes): never {
  throw new StateError('CORRUPT', `state node ${Buffer.from(key).toString('hex')}: ${what}`, {
    key: Buffer.from(key).toString('hex'),
  });
}

// Reads the internal node encoded in b[start, end). With `key` (a record), its entries are
// checked to fill the window exactly, embedded ones recursively; embedded nodes read back from a
// checked record need no second check.
function parseInternal(b: Buffer, start: number, end: number, key: Bytes | undefined): InternalNode {
  if (key !== undefined && (end - start < HEADER_BYTES || b[start] !== NODE_INTERNAL)) {
    corrupt('malformed internal node', key);
  }
  const node: InternalNode = {
    kind: 'internal',
    bytes: b,
    start,
    end,
    bitmap: b.readUInt16BE(start + 1),
    leaves: b.readUInt16BE(start + 3),
    embedded: b.readUInt16BE(start + 5),
  };
  if (key !== undefined) {
    if (
      node.bitmap === 0 ||
      (node.leaves & ~node.bitmap) !== 0 ||
      (node.embedded & ~node.bitmap) !== 0 ||
      (node.leaves & node.embedded) !== 0
    ) {
      corrupt('malformed internal node', key);
    }
    let o = start + HEADER_BYTES;
    for (let i = 0; i < 16; i++) {
      if (!((node.bitmap >> i) & 1)) continue;
      if (o + ((node.embedded >> i) & 1 ? EMB_FIXED : 0) > end) corrupt('truncated internal node', key);
      const n = entrySize(node, i, o);
      if (o + n > end) corrupt('truncated internal node', key);
      if ((node.embedded >> i) & 1) parseInternal(b, o + EMB_FIXED, o + n, key);
      o += n;
    }
    if (o !== end) corrupt('malformed internal node', key);
  }
  return node;
}

/** Decodes node bytes read under `key` (named in the error if they are malformed). */
export function decodeNode(bytes: Bytes, key: Bytes): StoredNode {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (b[0]) {
    case NODE_NULL:
      if (b.length !== 1) corrupt('null node with trailing bytes', key);
      return NULL_NODE;
    case NODE_LEAF:
      if (b.length !== 1 + 2 * HASH_BYTES) corrupt('malformed root leaf', key);
      return {
        kind: 'leaf',
        leaf: makeLeafEntry(b.subarray(1, 1 + HASH_BYTES), b.subarray(1 + HASH_BYTES, 1 + 2 * HASH_BYTES)),
      };
    case NODE_INTERNAL:
      return parseInternal(b, 0, b.length, key);
    default:
      return corrupt(`unknown node type ${b[0]}`, key);
  }
}

/**
 * Decodes node bytes this process has just encoded, skipping the checks {@link decodeNode} makes
 * on bytes read from storage.
 */
export function decodeOwnNode(bytes: Buffer): StoredNode {
  return bytes[0] === NODE_INTERNAL
    ? parseInternal(bytes, 0, bytes.length, undefined)
    : decodeNode(bytes, bytes);
}

/** Hash of a stored node (the root hash when it is a version's root). */
export function storedNodeHash(node: StoredNode): Bytes {
  switch (node.kind) {
    case 'null':
      return EMPTY_STATE_ROOT;
    case 'leaf':
      return node.leaf.hash;
    case 'internal':
      return stateInternalHash(childrenOf(node).map((c) => c?.hash));
  }
}

/** Reads nodes synchronously through a bounded cache of decoded nodes. */
export interface NodeReader {
  /** The node at (version, first `depth` nibbles of `path`); throws CORRUPT when it is missing. */
  load(version: number, path: Bytes, depth: number): StoredNode;
  /** The raw bytes of a node, for copying a root to a new version. */
  loadBytes(version: number, path: Bytes, depth: number): Bytes;
  /** Adds nodes just written (so the next block need not read them back). */
  remember(entries: Iterable<[string, StoredNode]>): void;
  /** Drops nodes that left the latest version (by latin1 node key), so the cache holds live nodes. */
  forget(ids: Iterable<string>): void;
  /** Number of decoded nodes held. */
  readonly cached: number;
}

/**
 * A node reader over `kv` with a cache of at most `cacheNodes` decoded nodes (~0.5 to 1 KiB each),
 * bounded because a node serving many proofs would otherwise grow without limit. Eviction is
 * second-chance (CLOCK): a hit only sets a flag, and the oldest entry is evicted unless flagged, in
 * which case it moves to the back with its flag cleared; hits on the hot upper levels thus cost one
 * map lookup. Nodes are immutable (a node key names one version's node forever), so a cached node
 * never goes stale; nodes replaced by a commit are dropped to leave the room to live ones.
 */
export function createNodeReader(kv: KvStore, cacheNodes: number): NodeReader {
  interface Entry {
    readonly node: StoredNode;
    hot: boolean;
  }
  // A Map iterates in insertion order: its first entries are the oldest.
  const cache = new Map<string, Entry>();
  const evictOne = (): void => {
    for (const [k, e] of cache) {
      cache.delete(k);
      if (!e.hot) return;
      e.hot = false;
      cache.set(k, e);
    }
  };
  const put = (k: string, node: StoredNode): void => {
    cache.set(k, { node, hot: false });
    if (cache.size > cacheNodes) evictOne();
  };
  const get = (key: Buffer): StoredNode => {
    const k = key.toString('latin1');
    const e = cache.get(k);
    if (e !== undefined) {
      e.hot = true;
      return e.node;
    }
    const bytes = kv.getSync(key);
    if (bytes === undefined) corrupt('missing', key);
    const node = decodeNode(bytes, key);
    put(k, node);
    return node;
  };
  return {
    load: (version, path, depth) => get(nodeKey(version, path, depth)),
    loadBytes: (version, path, depth) => {
      const key = nodeKey(version, path, depth);
      const bytes = kv.getSync(key);
      if (bytes === undefined) corrupt('missing', key);
      return bytes;
    },
    remember: (entries) => {
      for (const [k, n] of entries) put(k, n);
    },
    forget: (ids) => {
      for (const id of ids) cache.delete(id);
    },
    get cached() {
      return cache.size;
    },
  };
}
