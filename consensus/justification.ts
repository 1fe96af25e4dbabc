import { bytesEqual, type Bytes } from '../core/bytes.ts';
import { hashHeader, type Validator } from '../core/types.ts';
import type { VerifyFn } from './config.ts';
import {
  encodePrepareBody,
  encodeRoundChangeBody,
  signedBodyOf,
  type ConsensusMessage,
  type Justification,
  type PreparedCertificate,
  type ProposalMessage,
  type RoundChangeClaim,
  type RoundChangeMessage,
} from './messages.ts';

/**
 * The justification rules of QBFT (Moniz 2020, Algorithm 4: JustifyPrePrepare, JustifyRoundChange,
 * HighestPrepared). Pure checks over self-authenticating evidence: they read no state beyond the
 * validator set of the height in question.
 */

/** What every check needs: the chain, the height and its validator set. */
export interface VerifyContext {
  readonly chainId: string;
  readonly height: number;
  readonly validators: readonly Validator[];
  /** Validators by {@link addressKey} of their address. */
  readonly byAddress: ReadonlyMap<string, Validator>;
  /** 2f + 1 (or the unsafe test override). */
  readonly quorum: number;
  readonly verify: VerifyFn;
}

/** Map key of an address (lowercase hex, no prefix). */
export function addressKey(address: Bytes): string {
  return Buffer.from(address.buffer, address.byteOffset, address.byteLength).toString('hex');
}

/** Builds a {@link VerifyContext}. */
export function createVerifyContext(
  chainId: string,
  height: number,
  validators: readonly Validator[],
  quorum: number,
  verify: VerifyFn,
): VerifyContext {
  return {
    chainId,
    height,
    validators,
    byAddress: new Map(validators.map((v) => [addressKey(v.address), v])),
    quorum,
    verify,
  };
}

/** True when the message's sender is a validator of the context and its signature is valid. */
export function isSignedByValidator(ctx: VerifyContext, message: ConsensusMessage): boolean {
  const v = ctx.byAddress.get(addressKey(message.sender));
  return v !== undefined && ctx.verify(message.signature, signedBodyOf(ctx.chainId, message), v.publicKey);
}

/**
 * Checks a prepared certificate for this height: its round is below `beforeRound` (a certificate
 * can only report the past), and at least a quorum of distinct validators signed PREPARE for its
 * (height, round, blockHash). Returns the reason it fails, or null.
 */
export function checkPreparedCertificate(
  ctx: VerifyContext,
  cert: PreparedCertificate,
  beforeRound: number,
): string | null {
  if (cert.round >= beforeRound) {
    return `prepared round ${cert.round} is not below round ${beforeRound}`;
  }
  const body = encodePrepareBody(ctx.chainId, ctx.height, cert.round, cert.blockHash);
  const seen = new Set<string>();
  for (const p of cert.prepares) {
    const key = addressKey(p.sender);
    const v = ctx.byAddress.get(key);
    if (v === undefined) return `prepare from unknown validator ${key}`;
    if (seen.has(key)) return `prepare from ${key} counted twice`;
    if (!ctx.verify(p.signature, body, v.publicKey)) return `bad prepare signature from ${key}`;
    seen.add(key);
  }
  if (seen.size < ctx.quorum) return `${seen.size} prepares, a quorum needs ${ctx.quorum}`;
  return null;
}

/**
 * Checks a ROUND-CHANGE beyond its signature (JustifyRoundChange): round at least 1, and a reported
 * prepared certificate is valid for this height, below the target round, and comes with the block
 * it certifies.
 */
export function checkRoundChange(ctx: VerifyContext, rc: RoundChangeMessage): string | null {
  if (rc.round < 1) return 'round change to round 0';
  if (rc.prepared === null) return null;
  if (rc.preparedBlock === null) return 'prepared certificate without its block';
  if (!bytesEqual(hashHeader(rc.preparedBlock.header), rc.prepared.blockHash)) {
    return 'prepared block does not match the prepared certificate';
  }
  return checkPreparedCertificate(ctx, rc.prepared, rc.round);
}

/** The claim with the highest prepared round (QBFT HighestPrepared), or null when none prepared. */
export function highestPreparedClaim(claims: readonly RoundChangeClaim[]): RoundChangeClaim | null {
  let best: RoundChangeClaim | null = null;
  for (const c of claims) {
    if (c.preparedRound !== null && (best === null || c.preparedRound > best.preparedRound!)) best = c;
  }
  return best;
}

/** The signed fields of a full ROUND-CHANGE, as carried in a justification. */
export function claimOf(rc: RoundChangeMessage): RoundChangeClaim {
  return {
    preparedRound: rc.prepared?.round ?? null,
    preparedHash: rc.prepared?.blockHash ?? null,
    sender: rc.sender,
    signature: rc.signature,
  };
}

/**
 * JustifyPrePrepare for a proposal of round r ≥ 1: the justification holds ROUND-CHANGE claims for
 * (height, r) from a quorum of distinct validators, each validly signed; and either none reports a
 * prepared block (then any fresh block may be proposed), or the justification's prepared
 * certificate matches the highest reported (round, hash), is valid, and the proposed block is that
 * block. This is what carries a possibly-committed block from one round to the next: a committed
 * block was prepared by a quorum, so every round-change quorum includes an honest validator that
 * reports it (or a later prepared block, which by induction is the same).
 */
export function checkProposalJustification(ctx: VerifyContext, proposal: ProposalMessage): string | null {
  const j: Justification | null = proposal.justification;
  if (proposal.round === 0) return j === null ? null : 'round 0 proposal carries a justification';
  if (j === null) return `round ${proposal.round} proposal without justification`;
  const seen = new Set<string>();
  for (const c of j.roundChanges) {
    const key = addressKey(c.sender);
    const v = ctx.byAddress.get(key);
    if (v === undefined) return `round change from unknown validator ${key}`;
    if (seen.has(key)) return `round change from ${key} counted twice`;
    if ((c.preparedRound === null) !== (c.preparedHash === null)) return 'malformed round change claim';
    if (c.preparedRound !== null && c.preparedRound >= proposal.round) {
      return `round change claims prepared round ${c.preparedRound} ≥ ${proposal.round}`;
    }
    const body = encodeRoundChangeBody(
      ctx.chainId,
      ctx.height,
      proposal.round,
      c.preparedRound,
      c.preparedHash,
    );
    if (!ctx.verify(c.signature, body, v.publicKey)) return `bad round change signature from ${key}`;
    seen.add(key);
  }
  if (seen.size < ctx.quorum) return `${seen.size} round changes, a quorum needs ${ctx.quorum}`;
  const best = highestPreparedClaim(j.roundChanges);
  if (best === null) {
    return j.prepared === null ? null : 'prepared certificate given but no round change reports one';
  }
  if (j.prepared === null)
    return `round changes report prepared round ${best.preparedRound} but no certificate given`;
  if (j.prepared.round !== best.preparedRound || !bytesEqual(j.prepared.blockHash, best.preparedHash!)) {
    return 'prepared certificate is not the highest reported one';
  }
  if (!bytesEqual(proposal.blockHash, j.prepared.blockHash)) {
    return 'proposal must re-propose the highest prepared block';
  }
  return checkPreparedCertificate(ctx, j.prepared, proposal.round);
}
