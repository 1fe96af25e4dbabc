import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import {
  EMPTY_STATE_ROOT,
  StateError,
  nibbleAt,
  stateInternalHash,
  stateLeafHash,
  stateValueHash,
} from '../../core/stateProof.ts';
import type { BatchOp } from '../storage/kv.ts';
import {
  NULL_NODE_BYTES,
  childAt,
  childrenOf,
  decodeNode,
  encodeInternal,
  encodeLeaf,
  nodeKey,
  storedNodeHash,
  type ChildRef,
  type InternalNode,
  type NodeReader,
  type StoredNode,
} from './nodeStore.ts';

/**
 * The tree of one block being executed: a copy-on-write layer over a committed version. Changed
 * paths are held as working nodes; everything else stays a reference to a committed node, read
 * through the shared node cache only when a change reaches it. Hashes of working nodes are cached
 * and cleared along the path of each change, so asking for the root again after more writes
 * rehashes only the paths those writes touched. Nothing is written until `serialize`.
 */

/** A leaf to be written (new, changed, or moved to another depth). */
interface WorkingLeaf {
  readonly t: 'leaf';
  readonly keyHash: Bytes;
  readonly valueHash: Bytes;
  readonly value: Bytes;
  readonly hash: Bytes;
}

/** An internal node to be written; `hash` is undefined while something below it changed. */
interface WorkingInternal {
  readonly t: 'internal';
  readonly children: Array<Child | undefined>;
  hash: Bytes | undefined;
}

type Child = ChildRef | WorkingLeaf | WorkingInternal;

/** What `serialize` produces for one version. */
export interface SerializedTree {
  readonly root: Bytes;
  /** Puts of the new nodes. */
  readonly ops: BatchOp[];
  /** Keys of committed nodes that are not part of the new version. */
  readonly stale: Buffer[];
  /** The new nodes decoded, by latin1 node key, for the cache once the batch is written. */
  readonly nodes: Array<[string, StoredNode]>;
}

/** A copy-on-write working tree (see the module comment). */
export interface WorkingTree {
  /**
   * Sets keyHash to value. `inBase` says whether the key is in the committed version: when it
   * is, a committed leaf met on its path must be its own and need not be read to be replaced.
   */
  put(keyHash: Bytes, value: Bytes, inBase: boolean): void;
  /** Removes keyHash (nothing happens when it is absent). */
  delete(keyHash: Bytes, inBase: boolean): void;
  /** The root hash, rehashing only the paths changed since the last call. */
  rootHash(): Bytes;
  /** The node writes of version `version` (the working tree must not be used afterwards). */
  serialize(version: number): SerializedTree;
}

function withNibble(path: Bytes, depth: number, nibble: number): Buffer {
  const out = Buffer.from(path);
  const i = depth >> 1;
  out[i] = depth & 1 ? (out[i]! & 0xf0) | nibble : (nibble << 4) | (out[i]! & 0x0f);
  return out;
}

function makeLeaf(keyHash: Bytes, value: Bytes): WorkingLeaf {
  const valueHash = stateValueHash(value);
  return { t: 'leaf', keyHash, valueHash, value, hash: stateLeafHash(keyHash, valueHash) };
}

/**
 * Opens a working tree over the committed root of `baseVersion` (undefined for an empty store).
 * `reader` reads committed nodes; `baseRoot` is the decoded root node of the base version.
 */
export function createWorkingTree(
  reader: NodeReader,
  baseVersion: number | undefined,
  baseRoot: StoredNode,
): WorkingTree {
  const ZERO = Buffer.alloc(32);
  // Committed nodes replaced so far, by latin1 node key (a Map, so each is listed once).
  const stale = new Map<string, Buffer>();
  let root: Child | undefined;
  if (baseVersion !== undefined && baseRoot.kind !== 'null') {
    root =
      baseRoot.kind === 'leaf'
        ? {
            t: 'ref',
            version: baseVersion,
            hash: stateLeafHash(baseRoot.keyHash, baseRoot.valueHash),
            leaf: true,
          }
        : { t: 'ref', version: baseVersion, hash: storedNodeHash(baseRoot), leaf: false };
  }
  let serialized = false;

  const markStale = (version: number, path: Bytes, depth: number): void => {
    const k = nodeKey(version, path, depth);
    stale.set(k.toString('latin1'), k);
  };

  const loadInternal = (ref: ChildRef, path: Bytes, depth: number): InternalNode => {
    const n = reader.load(ref.version, path, depth);
    if (n.kind !== 'internal') {
      throw new StateError('CORRUPT', 'state tree: expected an internal node', {
        version: ref.version,
        depth,
      });
    }
    return n;
  };

  const loadLeaf = (ref: ChildRef, path: Bytes, depth: number): WorkingLeaf => {
    const n = reader.load(ref.version, path, depth);
    if (n.kind !== 'leaf') {
      throw new StateError('CORRUPT', 'state tree: expected a leaf', { version: ref.version, depth });
    }
    return { t: 'leaf', keyHash: n.keyHash, valueHash: n.valueHash, value: n.value, hash: ref.hash };
  };

  // Builds the smallest subtree at `depth` holding two distinct leaves.
  const split = (a: WorkingLeaf, b: WorkingLeaf, depth: number): WorkingInternal => {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two leaves with one key hash', {});
    const node: WorkingInternal = {
      t: 'internal',
      children: new Array<Child | undefined>(16),
      hash: undefined,
    };
    const na = nibbleAt(a.keyHash, depth);
    const nb = nibbleAt(b.keyHash, depth);
    if (na === nb) node.children[na] = split(a, b, depth + 1);
    else {
      node.children[na] = a;
      node.children[nb] = b;
    }
    return node;
  };

  const putAt = (node: Child | undefined, depth: number, leaf: WorkingLeaf, inBase: boolean): Child => {
    if (node === undefined) return leaf;
    const kh = leaf.keyHash;
    switch (node.t) {
      case 'leaf':
        if (bytesEqual(node.keyHash, kh)) return bytesEqual(node.hash, leaf.hash) ? node : leaf;
        return split(node, leaf, depth);
      case 'internal': {
        const n = nibbleAt(kh, depth);
        const before = node.children[n];
        const after = putAt(before, depth + 1, leaf, inBase);
        if (after !== before) {
          node.children[n] = after;
          node.hash = undefined;
        }
        return node;
      }
      case 'ref': {
        if (node.leaf) {
          // The leaf hash commits to key and value: equal hashes mean nothing changes.
          if (bytesEqual(node.hash, leaf.hash)) return node;
          if (inBase) {
            markStale(node.version, kh, depth);
            return leaf;
          }
          const existing = loadLeaf(node, kh, depth);
          markStale(node.version, kh, depth);
          if (bytesEqual(existing.keyHash, kh)) return leaf;
          // Another key's leaf sits on this path: it moves down to make room.
          return split(existing, leaf, depth);
        }
        const stored = loadInternal(node, kh, depth);
        const n = nibbleAt(kh, depth);
        const before = childAt(stored, n);
        const after = putAt(before, depth + 1, leaf, inBase);
        if (after === before) return node;
        markStale(node.version, kh, depth);
        const copy: WorkingInternal = { t: 'internal', children: childrenOf(stored), hash: undefined };
        copy.children[n] = after;
        return copy;
      }
    }
  };

  // After a child of an internal node went away: an internal node left with no child vanishes,
  // and one left with a single leaf hands the leaf up (it moves to the shortest unique prefix).
  const normalize = (node: WorkingInternal, path: Bytes, depth: number): Child | undefined => {
    let only = -1;
    let count = 0;
    for (let i = 0; i < 16; i++) {
      if (node.children[i] !== undefined) {
        count++;
        only = i;
      }
    }
    if (count === 0) return undefined;
    if (count > 1) return node;
    const child = node.children[only]!;
    if (child.t === 'leaf') return child;
    if (child.t === 'ref' && child.leaf) {
      const childPath = withNibble(path, depth, only);
      const moved = loadLeaf(child, childPath, depth + 1);
      markStale(child.version, childPath, depth + 1);
      return moved;
    }
    return node;
  };

  const deleteAt = (
    node: Child | undefined,
    depth: number,
    kh: Bytes,
    inBase: boolean,
  ): Child | undefined => {
    if (node === undefined) return undefined;
    switch (node.t) {
      case 'leaf':
        return bytesEqual(node.keyHash, kh) ? undefined : node;
      case 'internal': {
        const n = nibbleAt(kh, depth);
        const before = node.children[n];
        const after = deleteAt(before, depth + 1, kh, inBase);
        if (after === before) return node;
        node.children[n] = after;
        node.hash = undefined;
        return normalize(node, kh, depth);
      }
      case 'ref': {
        if (node.leaf) {
          // A key in the committed version owns the committed leaf on its path (see `put`).
          if (!inBase && !bytesEqual(loadLeaf(node, kh, depth).keyHash, kh)) return node;
          markStale(node.version, kh, depth);
          return undefined;
        }
        const stored = loadInternal(node, kh, depth);
        const n = nibbleAt(kh, depth);
        const before = childAt(stored, n);
        const after = deleteAt(before, depth + 1, kh, inBase);
        if (after === before) return node;
        markStale(node.version, kh, depth);
        const copy: WorkingInternal = { t: 'internal', children: childrenOf(stored), hash: undefined };
        copy.children[n] = after;
        return normalize(copy, kh, depth);
      }
    }
  };

  const hashOf = (node: Child | undefined): Bytes => {
    if (node === undefined) return EMPTY_STATE_ROOT;
    if (node.t !== 'internal') return node.hash;
    if (node.hash === undefined) {
      const hashes = new Array<Bytes | undefined>(16);
      for (let i = 0; i < 16; i++) {
        const c = node.children[i];
        hashes[i] = c === undefined ? undefined : hashOf(c);
      }
      node.hash = stateInternalHash(hashes);
    }
    return node.hash;
  };

  const check = (): void => {
    if (serialized) throw new StateError('VIEW_CLOSED', 'state tree: already serialized', {});
  };

  return {
    put(keyHash, value, inBase) {
      check();
      root = putAt(root, 0, makeLeaf(keyHash, value), inBase);
    },
    delete(keyHash, inBase) {
      check();
      root = deleteAt(root, 0, keyHash, inBase);
    },
    rootHash() {
      return hashOf(root);
    },
    serialize(version) {
      check();
      const rootHash = hashOf(root);
      serialized = true;
      const ops: BatchOp[] = [];
      const nodes: Array<[string, StoredNode]> = [];
      const write = (key: Buffer, bytes: Buffer): void => {
        ops.push({ type: 'put', key, value: bytes });
        nodes.push([key.toString('latin1'), decodeNode(bytes, key)]);
      };
      const emit = (node: Child, path: Buffer, depth: number): ChildRef => {
        if (node.t === 'ref') return node;
        if (node.t === 'leaf') {
          write(nodeKey(version, path, depth), encodeLeaf(node.keyHash, node.valueHash, node.value));
          return { t: 'ref', version, hash: node.hash, leaf: true };
        }
        const children = new Array<ChildRef | undefined>(16);
        const d = depth >> 1;
        const saved = path[d]!;
        for (let i = 0; i < 16; i++) {
          const c = node.children[i];
          if (c === undefined) children[i] = undefined;
          else {
            path[d] = depth & 1 ? (saved & 0xf0) | i : (i << 4) | (saved & 0x0f);
            children[i] = emit(c, path, depth + 1);
          }
        }
        path[d] = saved;
        write(nodeKey(version, path, depth), encodeInternal(children));
        return { t: 'ref', version, hash: hashOf(node), leaf: false };
      };
      // Every version has its own root node, so a version is readable from its root key alone.
      if (baseVersion !== undefined) markStale(baseVersion, ZERO, 0);
      if (root === undefined) write(nodeKey(version, ZERO, 0), NULL_NODE_BYTES);
      else if (root.t === 'ref')
        write(nodeKey(version, ZERO, 0), Buffer.from(reader.loadBytes(root.version, ZERO, 0)));
      else emit(root, Buffer.alloc(32), 0);
      return { root: rootHash, ops, stale: [...stale.values()], nodes };
    },
  };
}
