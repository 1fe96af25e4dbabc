// Goal: the chaos audit catches each violation it claims to check (forked blocks, diverging state
// roots, certificates for different blocks, forged or short certificates) and passes a sound height.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { generateKeyPair, sign } from '../../core/keys.ts';
import { compareBytes } from '../../core/bytes.ts';
import { encodeCommitVote, validatorOf } from '../../core/types.ts';
import { auditHeight, type WireBlock, type WireCommit } from './chaos.ts';

const CHAIN = 'chaos-audit';
const keys = Array.from({ length: 4 }, () => generateKeyPair());
const validators = keys.map((k) => validatorOf(k.publicKey));

/** A block and its certificate signed by the validators `signers` (indexes), as RPC serves them. */
function entry(
  height: number,
  tag: string,
  signers: number[],
  stateRoot = 'a',
): { block: WireBlock; commit: WireCommit } {
  const hash = sha256(new TextEncoder().encode(tag));
  const msg = encodeCommitVote(CHAIN, height, 0, hash);
  const signatures = signers
    .map((i) => ({ validator: validators[i]!.address, signature: sign(msg, keys[i]!.secretKey) }))
    .sort((a, b) => compareBytes(a.validator, b.validator))
    .map((s) => ({ validator: toHex(s.validator), signature: toHex(s.signature) }));
  const root = toHex(sha256(new TextEncoder().encode(stateRoot)));
  return {
    block: { hash: toHex(hash), header: { height, stateRoot: root, prevHash: toHex(new Uint8Array(32)) } },
    commit: {
      header: { height, stateRoot: root },
      certificate: { height, round: 0, blockHash: toHex(hash), signatures },
    },
  };
}

function audit(perNode: Parameters<typeof auditHeight>[1]): string[] {
  const found: string[] = [];
  auditHeight(7, perNode, CHAIN, validators, (v) => found.push(v));
  return found;
}

describe('auditHeight', () => {
  it('passes one block with quorum certificates (different signer subsets) on every node', () => {
    const a = entry(7, 'b', [0, 1, 2]);
    const b = entry(7, 'b', [1, 2, 3]);
    const found: string[] = [];
    const checks = auditHeight(7, [a, b, a, b], CHAIN, validators, (v) => found.push(v));
    expect(found).toEqual([]);
    expect(checks['certificate signatures verify']).toBe(4);
  });

  it('reports two blocks at one height, with their certificates for different blocks', () => {
    expect(audit([entry(7, 'b', [0, 1, 2]), entry(7, 'c', [1, 2, 3])])).toEqual([
      'height 7: different blocks across nodes',
      'height 7: certificates for different blocks (conflicting votes)',
    ]);
  });

  it('reports diverging state roots for one block', () => {
    expect(audit([entry(7, 'b', [0, 1, 2], 'x'), entry(7, 'b', [0, 1, 2], 'y')])).toEqual([
      'height 7: different state roots across nodes',
    ]);
  });

  it('reports a certificate short of quorum, a forged signature and a certificate for another block', () => {
    const short = entry(7, 'b', [0, 1]);
    const forged = entry(7, 'b', [0, 1, 2]);
    const sig = forged.commit.certificate.signatures[0]!;
    sig.signature = sig.signature.slice(0, -2) + (sig.signature.endsWith('00') ? '01' : '00');
    const other = entry(7, 'b', [0, 1, 2]);
    other.commit.certificate.blockHash = entry(7, 'c', []).block.hash;
    expect(audit([short, forged, other])).toEqual([
      'height 7: certificates for different blocks (conflicting votes)',
      'node 0 height 7: certificate NO_QUORUM',
      'node 1 height 7: certificate BAD_SIGNATURE',
      'node 2 height 7: certificate WRONG_BLOCK',
    ]);
  });
});
