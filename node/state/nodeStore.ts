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
 * - `m` → metadata: format, latest committed version, oldest readable version.
 */

/** First byte of every key the state store writes. Equal to `Bucket.state` in node/storage. */
export const STATE_BUCKET = 0x20;
const SUB_NODE = 0x6e; // 'n'
const SUB_FLAT = 0x66; // 'f'
const SUB_STALE = 0x73; // 's'
const SUB_META = 0x6d; // 'm'

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

/** A committed child: the node at (version, parent path + nibble), its hash, and its kind. */
export interface ChildRef {
  readonly t: 'ref';
  readonly version: number;
  readonly hash: Bytes;
  readonly leaf: boolean;
}

/** The root of an empty version. */
export interface NullNode {
  readonly kind: 'null';
}

/** A leaf: the key hash, the value hash and the value itself (so old versions stay readable). */
export interface LeafNode {
  readonly kind: 'leaf';
  readonly keyHash: Bytes;
  readonly valueHash: Bytes;
  readonly value: Bytes;
}

/**
 * An internal node, kept as its stored bytes plus the two bitmaps: a decoded child costs a
 * JavaScript object and a typed-array view (~150 bytes), so children are read out only on demand
 * ({@link childAt}, {@link childrenOf}) and a cached full node costs ~0.75 KiB instead of ~3 KiB.
 */
export interface InternalNode {
  readonly kind: 'internal';
  readonly bytes: Buffer;
  /** Bit i set: child i is present. */
  readonly bitmap: number;
  /** Bit i set: child i is a leaf. */
  readonly leaves: number;
}

/** A decoded tree node. An internal node has at least two leaves below it. */
export type StoredNode = NullNode | LeafNode | InternalNode;

const NODE_NULL = 0;
const NODE_INTERNAL = 1;
const NODE_LEAF = 2;
const CHILD_BYTES = 6 + HASH_BYTES;

/** The one null node: the root of an empty version. */
export const NULL_NODE: NullNode = { kind: 'null' };

/** Null node bytes. */
export const NULL_NODE_BYTES: Buffer = Buffer.of(NODE_NULL);

/**
 * Node bytes use a fixed custom layout, not MessagePack: nodes are decoded on every tree walk and
 * never leave the node. Leaf: 0x02, key hash, value hash, value.
 */
export function encodeLeaf(keyHash: Bytes, valueHash: Bytes, value: Bytes): Buffer {
  const buf = Buffer.allocUnsafe(1 + 2 * HASH_BYTES + value.length);
  buf[0] = NODE_LEAF;
  buf.set(keyHash, 1);
  buf.set(valueHash, 1 + HASH_BYTES);
  buf.set(value, 1 + 2 * HASH_BYTES);
  return buf;
}

/**
 * Internal node bytes: 0x01, child bitmap (u16), leaf bitmap (u16), then per present child in
 * nibble order its version (6 bytes, big-endian) and hash.
 */
export function encodeInternal(children: ArrayLike<ChildRef | undefined>): Buffer {
  let bitmap = 0;
  let leaves = 0;
  let n = 0;
  for (let i = 0; i < 16; i++) {
    const c = children[i];
    if (c === undefined) continue;
    bitmap |= 1 << i;
    if (c.leaf) leaves |= 1 << i;
    n++;
  }
  const buf = Buffer.allocUnsafe(5 + n * CHILD_BYTES);
  buf[0] = NODE_INTERNAL;
  buf.writeUInt16BE(bitmap, 1);
  buf.writeUInt16BE(leaves, 3);
  let o = 5;
  for (let i = 0; i < 16; i++) {
    const c = children[i];
    if (c === undefined) continue;
    buf.writeUIntBE(c.version, o, 6);
    buf.set(c.hash, o + 6);
    o += CHILD_BYTES;
  }
  return buf;
}

function popcount(x: number): number {
  let n = 0;
  for (let v = x; v !== 0; v &= v - 1) n++;
  return n;
}

/** Child `i` of an internal node, or undefined when that child is empty. */
export function childAt(node: InternalNode, i: number): ChildRef | undefined {
  if (!((node.bitmap >> i) & 1)) return undefined;
  const o = 5 + popcount(node.bitmap & ((1 << i) - 1)) * CHILD_BYTES;
  return {
    t: 'ref',
    version: node.bytes.readUIntBE(o, 6),
    hash: node.bytes.subarray(o + 6, o + CHILD_BYTES),
    leaf: ((node.leaves >> i) & 1) === 1,
  };
}

/** All 16 children of an internal node (undefined where empty). */
export function childrenOf(node: InternalNode): Array<ChildRef | undefined> {
  const out = new Array<ChildRef | undefined>(16);
  for (let i = 0; i < 16; i++) out[i] = childAt(node, i);
  return out;
}

function corrupt(what: string, key: Bytes): never {
  throw new StateError('CORRUPT', `state node ${Buffer.from(key).toString('hex')}: ${what}`, {
    key: Buffer.from(key).toString('hex'),
  });
}

/** Decodes node bytes read under `key` (named in the error if they are malformed). */
export function decodeNode(bytes: Bytes, key: Bytes): StoredNode {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (b[0]) {
    case NODE_NULL:
      if (b.length !== 1) corrupt('null node with trailing bytes', key);
      return NULL_NODE;
    case NODE_LEAF:
      if (b.length < 1 + 2 * HASH_BYTES) corrupt('truncated leaf', key);
      return {
        kind: 'leaf',
        keyHash: b.subarray(1, 1 + HASH_BYTES),
        valueHash: b.subarray(1 + HASH_BYTES, 1 + 2 * HASH_BYTES),
        value: b.subarray(1 + 2 * HASH_BYTES),
      };
    case NODE_INTERNAL: {
      if (b.length < 5) corrupt('truncated internal node', key);
      const bitmap = b.readUInt16BE(1);
      const leaves = b.readUInt16BE(3);
      if (
        b.length !== 5 + popcount(bitmap) * CHILD_BYTES ||
        (leaves & ~bitmap) !== 0 ||
        popcount(bitmap) < 1
      ) {
        corrupt('malformed internal node', key);
      }
      return { kind: 'internal', bytes: b, bitmap, leaves };
    }
    default:
      return corrupt(`unknown node type ${b[0]}`, key);
  }
}

/** Hash of a stored node (the root hash when it is a version's root). */
export function storedNodeHash(node: StoredNode): Bytes {
  switch (node.kind) {
    case 'null':
      return EMPTY_STATE_ROOT;
    case 'leaf':
      return stateLeafHash(node.keyHash, node.valueHash);
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
  /** Number of decoded nodes held. */
  readonly cached: number;
}

/**
 * A node reader over `kv`. Nodes are immutable (a node key names one version's node forever), so
 * a cached node never goes stale; pruned ones are simply never asked for again. The cache is two
 * generations of at most `cacheNodes / 2` entries each: a hit in the old generation is promoted,
 * and when the young one fills, the old one is dropped. Bounded at `cacheNodes` decoded nodes
 * (~0.7 KiB each when full) because a node serving many proofs would otherwise grow without limit.
 */
export function createNodeReader(kv: KvStore, cacheNodes: number): NodeReader {
  const half = Math.max(1, Math.floor(cacheNodes / 2));
  let young = new Map<string, StoredNode>();
  let old = new Map<string, StoredNode>();
  const put = (k: string, n: StoredNode): void => {
    if (young.size >= half) {
      old = young;
      young = new Map();
    }
    young.set(k, n);
  };
  const get = (key: Buffer): StoredNode => {
    const k = key.toString('latin1');
    let n = young.get(k);
    if (n !== undefined) return n;
    n = old.get(k);
    if (n === undefined) {
      const bytes = kv.getSync(key);
      if (bytes === undefined) corrupt('missing', key);
      n = decodeNode(bytes, key);
    }
    put(k, n);
    return n;
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
    get cached() {
      return young.size + old.size;
    },
  };
}
