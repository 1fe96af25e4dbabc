import { bytesEqual, type Bytes } from './bytes.ts';
import { MerkleError } from './errors.ts';
import { sha256 } from './hash.ts';

/**
 * A binary Merkle tree in the shape of RFC 9162 (Certificate Transparency v2) section 2.1:
 * leaves hashed as H(0x00 || data), inner nodes as H(0x01 || left || right), and an uneven tree
 * split at the largest power of two below n, so the last leaf is never duplicated. The distinct
 * prefixes stop a leaf from posing as an inner node (second-preimage).
 */

const LEAF = Buffer.from([0]);
const NODE = Buffer.from([1]);

/** Root of the empty tree: SHA-256 of the empty string. */
export const EMPTY_MERKLE_ROOT: Bytes = sha256(new Uint8Array(0));

/** Hash of one leaf's data. */
export function merkleLeaf(data: Bytes): Bytes {
  return sha256(Buffer.concat([LEAF, data]));
}

function merkleNode(left: Bytes, right: Bytes): Bytes {
  return sha256(Buffer.concat([NODE, left, right]));
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function rootOfLeafHashes(hashes: readonly Bytes[], start: number, end: number): Bytes {
  const n = end - start;
  if (n === 1) return hashes[start]!;
  const k = largestPowerOfTwoBelow(n);
  return merkleNode(rootOfLeafHashes(hashes, start, start + k), rootOfLeafHashes(hashes, start + k, end));
}

/** Merkle root of a list of leaf data. */
export function merkleRoot(leaves: readonly Bytes[]): Bytes {
  if (leaves.length === 0) return EMPTY_MERKLE_ROOT;
  return rootOfLeafHashes(leaves.map(merkleLeaf), 0, leaves.length);
}

/** An inclusion proof: the leaf's index, the tree size and the audit path, bottom-up. */
export interface MerkleProof {
  readonly index: number;
  readonly size: number;
  readonly path: readonly Bytes[];
}

function auditPath(hashes: readonly Bytes[], index: number, start: number, end: number, out: Bytes[]): void {
  const n = end - start;
  if (n === 1) return;
  const k = largestPowerOfTwoBelow(n);
  if (index < start + k) {
    auditPath(hashes, index, start, start + k, out);
    out.push(rootOfLeafHashes(hashes, start + k, end));
  } else {
    auditPath(hashes, index, start + k, end, out);
    out.push(rootOfLeafHashes(hashes, start, start + k));
  }
}

/** Proof that leaves[index] is in the tree of `leaves`. */
export function merkleProof(leaves: readonly Bytes[], index: number): MerkleProof {
  if (leaves.length === 0) throw new MerkleError('EMPTY_TREE', 'no proof in an empty tree', {});
  if (!Number.isSafeInteger(index) || index < 0 || index >= leaves.length) {
    throw new MerkleError('INDEX_OUT_OF_RANGE', `leaf index ${index} outside 0..${leaves.length - 1}`, {
      index,
      size: leaves.length,
    });
  }
  const path: Bytes[] = [];
  auditPath(leaves.map(merkleLeaf), index, 0, leaves.length, path);
  return { index, size: leaves.length, path };
}

/**
 * Verifies an inclusion proof (RFC 9162 section 2.1.3.2). Pure; false for any malformed proof.
 */
export function verifyMerkleProof(root: Bytes, leaf: Bytes, proof: MerkleProof): boolean {
  const { index, size, path } = proof;
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = merkleLeaf(leaf);
  for (const p of path) {
    if (!(p instanceof Uint8Array) || p.length !== 32 || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = merkleNode(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = merkleNode(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && bytesEqual(r, root);
}
