// Goal: Merkle roots and inclusion proofs are sound: every leaf proves, nothing else does.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import {
  EMPTY_MERKLE_ROOT,
  merkleLeaf,
  merkleProof,
  merkleRoot,
  verifyMerkleProof,
} from '../../core/merkle.ts';

const leavesArb = fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 70 });

describe('Merkle tree (RFC 9162 shape)', () => {
  it('matches the RFC 9162 definition on small trees', () => {
    const h = (...parts: Uint8Array[]): Uint8Array => sha256(Buffer.concat(parts));
    const a = Buffer.from('a');
    const b = Buffer.from('b');
    const c = Buffer.from('c');
    const la = h(Buffer.from([0]), a);
    const lb = h(Buffer.from([0]), b);
    const lc = h(Buffer.from([0]), c);
    expect(toHex(merkleRoot([a]))).toBe(toHex(la));
    expect(toHex(merkleRoot([a, b, c]))).toBe(toHex(h(Buffer.from([1]), h(Buffer.from([1]), la, lb), lc)));
    expect(toHex(merkleRoot([]))).toBe(toHex(EMPTY_MERKLE_ROOT));
  });

  it('does not duplicate the last leaf: [a,b,c] and [a,b,c,c] differ', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((s) => Buffer.from(s)) as [Buffer, Buffer, Buffer];
    expect(toHex(merkleRoot([a, b, c]))).not.toBe(toHex(merkleRoot([a, b, c, c])));
  });

  it('a leaf cannot pose as an inner node (second preimage)', () => {
    const leaves = ['w', 'x', 'y', 'z'].map((s) => Buffer.from(s));
    const inner = Buffer.concat([merkleLeaf(leaves[0]!), merkleLeaf(leaves[1]!)]);
    const forged = [inner, Buffer.concat([merkleLeaf(leaves[2]!), merkleLeaf(leaves[3]!)])];
    expect(toHex(merkleRoot(forged))).not.toBe(toHex(merkleRoot(leaves)));
  });

  it('every leaf has a proof that verifies, and a tampered leaf, path or root fails', () => {
    fc.assert(
      fc.property(leavesArb, fc.nat(), fc.nat(), (leaves, pick, flip) => {
        const root = merkleRoot(leaves);
        const i = pick % leaves.length;
        const proof = merkleProof(leaves, i);
        expect(verifyMerkleProof(root, leaves[i]!, proof)).toBe(true);
        const tamperedLeaf = Buffer.concat([leaves[i]!, Buffer.from([1])]);
        expect(verifyMerkleProof(root, tamperedLeaf, proof)).toBe(false);
        const badRoot = Uint8Array.from(root);
        badRoot[flip % 32]! ^= 1;
        expect(verifyMerkleProof(badRoot, leaves[i]!, proof)).toBe(false);
        if (proof.path.length > 0) {
          const path = proof.path.map((p) => Uint8Array.from(p));
          path[flip % path.length]![flip % 32]! ^= 0x80;
          expect(verifyMerkleProof(root, leaves[i]!, { ...proof, path })).toBe(false);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('rejects malformed proofs without throwing', () => {
    const leaves = [Buffer.from('a'), Buffer.from('b')];
    const root = merkleRoot(leaves);
    expect(verifyMerkleProof(root, leaves[0]!, { index: 5, size: 2, path: [] })).toBe(false);
    expect(verifyMerkleProof(root, leaves[0]!, { index: 0, size: 2, path: [new Uint8Array(3)] })).toBe(false);
    expect(verifyMerkleProof(root, leaves[0]!, { index: 0, size: 2, path: [] })).toBe(false);
    expect(() => merkleProof(leaves, 2)).toThrow(/outside/);
    expect(() => merkleProof([], 0)).toThrow(/empty/);
  });
});
