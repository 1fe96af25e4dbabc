import { bytesEqual, type Bytes } from '../../core/bytes.ts';
import {
  EMPTY_STATE_ROOT,
  StateError,
  nibbleAt,
  stateInternalHashAt,
  stateValueHash,
} from '../../core/stateProof.ts';
import type { BatchOp } from '../storage/kv.ts';
import {
  EMBED_MAX_LEAVES,
  NULL_NODE_BYTES,
  childAt,
  childHashOffset,
  decodeOwnNode,
  encodeInternalFrom,
  encodeRootLeaf,
  makeLeafEntry,
  nodeKey,
  storedNodeHash,
  leafCount,
  type EmbeddedChild,
  type InternalNode,
  type InternalRef,
  type LeafEntry,
  type NodeReader,
  type StoredChild,
  type StoredNode,
} from './nodeStore.ts';

/**
 * The tree of one block being executed: a copy-on-write layer over a committed version. Changed
 * paths are held as working nodes; everything else stays a reference to a committed node, read
 * through the shared node cache only when a change reaches it. Hashes of working nodes are cached
 * and cleared along the path of each change, so asking for the root again after more writes
 * rehashes only the paths those writes touched. Nothing is written until `serialize`.
 */

/**
 * An internal node to be written; `hash` is undefined while something below it changed. A node
 * copied from a committed one keeps that node as `base`, and the children it has not changed are
 * read from there on demand (bit i of `inherited` set) rather than all decoded at the copy: most
 * nodes on a block's paths change one child of sixteen.
 */
interface WorkingInternal {
  readonly t: 'internal';
  readonly base: InternalNode | undefined;
  inherited: number;
  readonly children: Array<Child | undefined>;
  hash: Bytes | undefined;
}

function childOf(node: WorkingInternal, i: number): Child | undefined {
  return (node.inherited >> i) & 1 ? childAt(node.base!, i) : node.children[i];
}

function setChild(node: WorkingInternal, i: number, child: Child | undefined): void {
  node.children[i] = child;
  node.inherited &= ~(1 << i);
  node.hash = undefined;
}

// A working node changed in place below its parent: its parent's hash must be cleared too (every
// node on the path of a change is dirty, so a dirty child always means a changed subtree).
function isDirty(child: Child | undefined): boolean {
  return child !== undefined && child.t === 'internal' && child.hash === undefined;
}

function copyOf(base: InternalNode): WorkingInternal {
  return {
    t: 'internal',
    base,
    inherited: base.bitmap,
    children: new Array<Child | undefined>(16),
    hash: undefined,
  };
}

type Child = StoredChild | WorkingInternal;

/** What `serialize` produces for one version. */
export interface SerializedTree {
  readonly root: Bytes;
  /** Puts of the new nodes. */
  readonly ops: BatchOp[];
  /** Keys of committed nodes that are not part of the new version. */
  readonly stale: Buffer[];
  /** The same keys as latin1 strings (the node cache's keys). */
  readonly staleIds: string[];
  /** The new nodes decoded, by latin1 node key, for the cache once the batch is written. */
  readonly nodes: Array<[string, StoredNode]>;
}

/** A copy-on-write working tree (see the module comment). */
export interface WorkingTree {
  /** Sets the leaf of `keyHash` to the hash of `value`. */
  put(keyHash: Bytes, value: Bytes): void;
  /** Removes the leaf of `keyHash` (nothing happens when it is absent). */
  delete(keyHash: Bytes): void;
  /** The root hash, rehashing only the paths changed since the last call. */
  rootHash(): Bytes;
  /** The node writes of version `version` (the working tree must not be used afterwards). */
  serialize(version: number): SerializedTree;
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
  // Committed internal nodes replaced so far, by latin1 node key (a Map, so each is listed once).
  const stale = new Map<string, Buffer>();
  let root: Child | undefined;
  if (baseVersion !== undefined) {
    if (baseRoot.kind === 'leaf') root = baseRoot.leaf;
    else if (baseRoot.kind === 'internal')
      root = { t: 'ref', version: baseVersion, hash: storedNodeHash(baseRoot) };
  }
  let serialized = false;

  const markStale = (version: number, path: Bytes, depth: number): void => {
    const k = nodeKey(version, path, depth);
    stale.set(k.toString('latin1'), k);
  };

  const load = (ref: InternalRef, path: Bytes, depth: number): InternalNode => {
    const n = reader.load(ref.version, path, depth);
    if (n.kind !== 'internal') {
      throw new StateError('CORRUPT', 'state tree: expected an internal node', {
        version: ref.version,
        depth,
      });
    }
    return n;
  };

  // The smallest subtree at `depth` holding two leaves with distinct keys.
  const split = (a: LeafEntry, b: LeafEntry, depth: number): WorkingInternal => {
    if (depth >= 64) throw new StateError('CORRUPT', 'state tree: two leaves with one key hash', {});
    const node: WorkingInternal = {
      t: 'internal',
      base: undefined,
      inherited: 0,
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

  const putAt = (node: Child | undefined, depth: number, leaf: LeafEntry): Child => {
    if (node === undefined) return leaf;
    switch (node.t) {
      case 'leaf':
        // The leaf hash commits to key and value: an equal hash means nothing changes.
        if (bytesEqual(node.keyHash, leaf.keyHash)) return bytesEqual(node.hash, leaf.hash) ? node : leaf;
        // Another key's leaf sits on this path: both move down to where their hashes differ.
        return split(node, leaf, depth);
      case 'internal': {
        const n = nibbleAt(leaf.keyHash, depth);
        const before = childOf(node, n);
        const after = putAt(before, depth + 1, leaf);
        if (after !== before || isDirty(after)) setChild(node, n, after);
        return node;
      }
      case 'ref':
      case 'emb': {
        const stored = node.t === 'emb' ? node.node : load(node, leaf.keyHash, depth);
        const n = nibbleAt(leaf.keyHash, depth);
        const before = childAt(stored, n);
        const after = putAt(before, depth + 1, leaf);
        if (after === before) return node;
        if (node.t === 'ref') markStale(node.version, leaf.keyHash, depth);
        const copy = copyOf(stored);
        setChild(copy, n, after);
        return copy;
      }
    }
  };

  // After a child of an internal node went away: an internal node left with no child vanishes,
  // and one left with a single leaf hands the leaf up (it moves to the shortest unique prefix).
  const normalize = (node: WorkingInternal): Child | undefined => {
    let only = -1;
    let count = 0;
    for (let i = 0; i < 16; i++) {
      if ((node.inherited >> i) & 1 || node.children[i] !== undefined) {
        count++;
        only = i;
      }
    }
    if (count === 0) return undefined;
    if (count === 1) {
      const c = childOf(node, only)!;
      if (c.t === 'leaf') return c;
    }
    return node;
  };

  const deleteAt = (node: Child | undefined, depth: number, kh: Bytes): Child | undefined => {
    if (node === undefined) return undefined;
    switch (node.t) {
      case 'leaf':
        return bytesEqual(node.keyHash, kh) ? undefined : node;
      case 'internal': {
        const n = nibbleAt(kh, depth);
        const before = childOf(node, n);
        const after = deleteAt(before, depth + 1, kh);
        if (after === before && !isDirty(after)) return node;
        setChild(node, n, after);
        return normalize(node);
      }
      case 'ref':
      case 'emb': {
        const stored = node.t === 'emb' ? node.node : load(node, kh, depth);
        const n = nibbleAt(kh, depth);
        const before = childAt(stored, n);
        const after = deleteAt(before, depth + 1, kh);
        if (after === before) return node;
        if (node.t === 'ref') markStale(node.version, kh, depth);
        const copy = copyOf(stored);
        setChild(copy, n, after);
        return normalize(copy);
      }
    }
  };

  const buffers = new Array<Bytes | undefined>(16);
  const offsets = new Array<number>(16).fill(0);
  const hashOf = (node: Child | undefined): Bytes => {
    if (node === undefined) return EMPTY_STATE_ROOT;
    if (node.t !== 'internal') return node.hash;
    if (node.hash === undefined) {
      // Children first: the shared scratch arrays are filled only once they are all known.
      for (let i = 0; i < 16; i++) {
        const c = node.children[i];
        if (c !== undefined && c.t === 'internal' && !((node.inherited >> i) & 1)) hashOf(c);
      }
      for (let i = 0; i < 16; i++) {
        if ((node.inherited >> i) & 1) {
          buffers[i] = node.base!.bytes;
          offsets[i] = childHashOffset(node.base!, i);
        } else {
          buffers[i] = node.children[i]?.hash;
          offsets[i] = 0;
        }
      }
      node.hash = stateInternalHashAt(buffers, offsets);
    }
    return node.hash;
  };

  const check = (): void => {
    if (serialized) throw new StateError('VIEW_CLOSED', 'state tree: already serialized', {});
  };

  return {
    put(keyHash, value) {
      check();
      root = putAt(root, 0, makeLeafEntry(keyHash, stateValueHash(value)));
    },
    delete(keyHash) {
      check();
      root = deleteAt(root, 0, keyHash);
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
        nodes.push([key.toString('latin1'), decodeOwnNode(bytes)]);
      };
      // Writes a changed node (its changed descendants first) as a record of its own, or returns
      // it embedded for its parent's record when its subtree is small; also returns its leaves.
      const emit = (
        node: WorkingInternal,
        path: Buffer,
        depth: number,
      ): { child: InternalRef | EmbeddedChild; leaves: number } => {
        const children = new Array<StoredChild | undefined>(16);
        let leaves = 0;
        const d = depth >> 1;
        const saved = path[d]!;
        for (let i = 0; i < 16; i++) {
          if ((node.inherited >> i) & 1) {
            const b = node.base!;
            if ((b.leaves >> i) & 1) leaves++;
            else if ((b.embedded >> i) & 1) leaves += leafCount((childAt(b, i) as EmbeddedChild).node);
            else leaves = Infinity;
            continue;
          }
          const c = node.children[i];
          if (c === undefined) continue;
          if (c.t === 'leaf') {
            children[i] = c;
            leaves++;
          } else if (c.t === 'ref') {
            children[i] = c;
            leaves = Infinity;
          } else if (c.t === 'emb') {
            children[i] = c;
            leaves += leafCount(c.node);
          } else {
            path[d] = depth & 1 ? (saved & 0xf0) | i : (i << 4) | (saved & 0x0f);
            const r = emit(c, path, depth + 1);
            children[i] = r.child;
            leaves += r.leaves;
          }
        }
        path[d] = saved;
        const bytes = encodeInternalFrom(node.base, node.inherited, children);
        const hash = hashOf(node);
        if (depth > 0 && leaves <= EMBED_MAX_LEAVES) {
          return { child: { t: 'emb', node: decodeOwnNode(bytes) as InternalNode, hash }, leaves };
        }
        write(nodeKey(version, path, depth), bytes);
        return { child: { t: 'ref', version, hash }, leaves };
      };
      // Every version has its own root node, so a version is readable from its root key alone.
      if (baseVersion !== undefined) markStale(baseVersion, ZERO, 0);
      const rootKey = nodeKey(version, ZERO, 0);
      if (root === undefined) write(rootKey, NULL_NODE_BYTES);
      else if (root.t === 'leaf') write(rootKey, encodeRootLeaf(root));
      else if (root.t === 'ref') write(rootKey, Buffer.from(reader.loadBytes(root.version, ZERO, 0)));
      else if (root.t === 'emb')
        throw new StateError('CORRUPT', 'state tree: the root cannot be embedded', {});
      else emit(root, Buffer.alloc(32), 0);
      return { root: rootHash, ops, stale: [...stale.values()], staleIds: [...stale.keys()], nodes };
    },
  };
}
