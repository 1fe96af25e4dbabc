import type { Bytes } from '../core/bytes.ts';
import { pack, readArray, readBytes, readList, readUint, unpackCanonical } from '../core/codec.ts';
import { CodecError } from '../core/errors.ts';
import { HASH_BYTES } from '../core/hash.ts';
import { ADDRESS_BYTES, SIGNATURE_BYTES } from '../core/keys.ts';
import {
  Limits,
  Tag,
  decodeBlock,
  encodeBlock,
  encodeCommitVote,
  hashHeader,
  type Block,
} from '../core/types.ts';
import { ConsensusError } from './errors.ts';

/**
 * Consensus messages of the QBFT-style protocol (Moniz, "The Istanbul BFT Consensus Algorithm",
 * 2020, Algorithms 1-4; Besu/QBFT wire shape): PROPOSAL (the paper's PRE-PREPARE), PREPARE, COMMIT
 * and ROUND-CHANGE. Every message is signed by its sender over a short canonical body that starts
 * with a domain tag from `Tag` and the chainId, so a signature made for one chain or purpose is
 * worthless for any other. Justifications (prepared certificates, round-change quorums) travel next
 * to the signed body and are self-authenticating: each piece carries its own signature.
 */

/** Largest encoded consensus message accepted by default: a proposal carries a whole block. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/** One validator's signature on a vote whose (height, round, blockHash) is given by context. */
export interface VoteSignature {
  /** The signer's 20-byte address. */
  readonly sender: Bytes;
  readonly signature: Bytes;
}

/**
 * Proof that a block was prepared: a quorum of PREPARE signatures for (height, round, blockHash).
 * The height is the height of the message that carries it.
 */
export interface PreparedCertificate {
  readonly round: number;
  readonly blockHash: Bytes;
  /** Sorted by sender address, one per sender. */
  readonly prepares: readonly VoteSignature[];
}

/**
 * A ROUND-CHANGE as it appears inside a proposal's justification: the signed fields only (height
 * and round are the proposal's), without the prepared certificate or block.
 */
export interface RoundChangeClaim {
  readonly preparedRound: number | null;
  readonly preparedHash: Bytes | null;
  readonly sender: Bytes;
  readonly signature: Bytes;
}

/**
 * Why the proposer of round r > 0 may propose what it proposes (QBFT JustifyPrePrepare): a quorum of
 * ROUND-CHANGE messages for round r, and when any of them reports a prepared block, the prepared
 * certificate of the highest such report, whose block must be the one proposed.
 */
export interface Justification {
  readonly roundChanges: readonly RoundChangeClaim[];
  readonly prepared: PreparedCertificate | null;
}

/** PROPOSAL (pre-prepare): the round's proposer offers a block. */
export interface ProposalMessage {
  readonly type: 'proposal';
  readonly height: number;
  readonly round: number;
  readonly block: Block;
  /** hashHeader(block.header), derived on decode; signed in the body. */
  readonly blockHash: Bytes;
  /** Null in round 0; required in later rounds. */
  readonly justification: Justification | null;
  readonly sender: Bytes;
  readonly signature: Bytes;
}

/** PREPARE or COMMIT: a vote for a block hash at (height, round). */
export interface VoteMessage {
  readonly type: 'prepare' | 'commit';
  readonly height: number;
  readonly round: number;
  readonly blockHash: Bytes;
  readonly sender: Bytes;
  readonly signature: Bytes;
}

/** ROUND-CHANGE: the sender wants round `round` and reports what it has prepared, with proof. */
export interface RoundChangeMessage {
  readonly type: 'roundChange';
  readonly height: number;
  /** The round the sender moves to (at least 1). */
  readonly round: number;
  /** The sender's highest prepared certificate at this height, or null. */
  readonly prepared: PreparedCertificate | null;
  /** The prepared block, so the next proposer can re-propose it; present exactly when `prepared` is. */
  readonly preparedBlock: Block | null;
  readonly sender: Bytes;
  readonly signature: Bytes;
}

/** Any consensus message. */
export type ConsensusMessage = ProposalMessage | VoteMessage | RoundChangeMessage;

/** Wire type codes: the first field of every encoded message. */
const TypeCode = { proposal: 0, prepare: 1, commit: 2, roundChange: 3 } as const;

/** Signed body of a PROPOSAL: [Tag.proposal, chainId, height, round, blockHash]. */
export function encodeProposalBody(chainId: string, height: number, round: number, blockHash: Bytes): Bytes {
  return pack([Tag.proposal, chainId, height, round, blockHash]);
}

/** Signed body of a PREPARE: [Tag.prepareVote, chainId, height, round, blockHash]. */
export function encodePrepareBody(chainId: string, height: number, round: number, blockHash: Bytes): Bytes {
  return pack([Tag.prepareVote, chainId, height, round, blockHash]);
}

/**
 * Signed body of a COMMIT: exactly core's `encodeCommitVote`, so the signatures of a commit quorum
 * form a `CommitCertificate` that anyone can check with `checkCertificate`.
 */
export function encodeCommitBody(chainId: string, height: number, round: number, blockHash: Bytes): Bytes {
  return encodeCommitVote(chainId, height, round, blockHash);
}

/** Signed body of a ROUND-CHANGE: [Tag.roundChange, chainId, height, round, preparedRound, preparedHash]. */
export function encodeRoundChangeBody(
  chainId: string,
  height: number,
  round: number,
  preparedRound: number | null,
  preparedHash: Bytes | null,
): Bytes {
  return pack([Tag.roundChange, chainId, height, round, preparedRound, preparedHash]);
}

/**
 * The fields a signature covers: those of a message, and equally of a safety-module sign request,
 * so both sides build the signed bytes in one place.
 */
export type SignedFields =
  | {
      readonly type: 'proposal' | 'prepare' | 'commit';
      readonly height: number;
      readonly round: number;
      readonly blockHash: Bytes;
    }
  | {
      readonly type: 'roundChange';
      readonly height: number;
      readonly round: number;
      readonly prepared: PreparedCertificate | null;
    };

/** The exact bytes `message.signature` must verify over (or a sign request will be signed over). */
export function signedBodyOf(chainId: string, message: SignedFields): Bytes {
  switch (message.type) {
    case 'proposal':
      return encodeProposalBody(chainId, message.height, message.round, message.blockHash);
    case 'prepare':
      return encodePrepareBody(chainId, message.height, message.round, message.blockHash);
    case 'commit':
      return encodeCommitBody(chainId, message.height, message.round, message.blockHash);
    case 'roundChange':
      return encodeRoundChangeBody(
        chainId,
        message.height,
        message.round,
        message.prepared?.round ?? null,
        message.prepared?.blockHash ?? null,
      );
  }
}

function certificateFields(c: PreparedCertificate): unknown[] {
  return [c.round, c.blockHash, c.prepares.map((p) => [p.sender, p.signature])];
}

/** Canonical wire bytes of a consensus message. */
export function encodeConsensusMessage(m: ConsensusMessage): Bytes {
  switch (m.type) {
    case 'proposal':
      return pack([
        TypeCode.proposal,
        m.height,
        m.round,
        encodeBlock(m.block),
        m.justification === null
          ? null
          : [
              m.justification.roundChanges.map((c) => [
                c.preparedRound,
                c.preparedHash,
                c.sender,
                c.signature,
              ]),
              m.justification.prepared === null ? null : certificateFields(m.justification.prepared),
            ],
        m.sender,
        m.signature,
      ]);
    case 'prepare':
    case 'commit':
      return pack([TypeCode[m.type], m.height, m.round, m.blockHash, m.sender, m.signature]);
    case 'roundChange':
      return pack([
        TypeCode.roundChange,
        m.height,
        m.round,
        m.prepared === null ? null : certificateFields(m.prepared),
        m.preparedBlock === null ? null : encodeBlock(m.preparedBlock),
        m.sender,
        m.signature,
      ]);
  }
}

/** Outcome of decoding peer bytes: a message, or the reason they were refused. Never throws. */
export type DecodeResult =
  | { readonly ok: true; readonly message: ConsensusMessage }
  | { readonly ok: false; readonly error: ConsensusError };

function readCertificate(v: unknown, path: string): PreparedCertificate {
  const f = readArray(v, 3, path);
  const prepares = readSignatures(f[2], `${path}.prepares`);
  return {
    round: readUint(f[0], `${path}.round`),
    blockHash: readBytes(f[1], `${path}.blockHash`, HASH_BYTES),
    prepares,
  };
}

function readSignatures(v: unknown, path: string): VoteSignature[] {
  const list = readList(v, Limits.maxValidators, path).map((s, i) => {
    const p = readArray(s, 2, `${path}[${i}]`);
    return {
      sender: readBytes(p[0], `${path}[${i}].sender`, ADDRESS_BYTES),
      signature: readBytes(p[1], `${path}[${i}].signature`, SIGNATURE_BYTES),
    };
  });
  // Sorted and distinct, so a certificate has one encoding and no signer counts twice.
  for (let i = 1; i < list.length; i++) {
    if (Buffer.compare(list[i - 1]!.sender, list[i]!.sender) >= 0) {
      throw new CodecError('NON_CANONICAL', `${path}: signatures must be sorted by sender, no duplicates`, {
        path,
      });
    }
  }
  return list;
}

function readNullableRound(v: unknown, path: string): number | null {
  return v === null ? null : readUint(v, path);
}

function readNullableHash(v: unknown, path: string): Bytes | null {
  return v === null ? null : readBytes(v, path, HASH_BYTES);
}

function decodeFields(bytes: Bytes): ConsensusMessage {
  const top = unpackCanonical(bytes, 'consensus message');
  if (!Array.isArray(top) || top.length === 0) {
    throw new CodecError('WRONG_SHAPE', 'consensus message: expected a non-empty array', {});
  }
  const code: unknown = top[0];
  switch (code) {
    case TypeCode.proposal: {
      const f = readArray(top, 7, 'proposal');
      const block = decodeBlock(readBytes(f[3], 'proposal.block'));
      let justification: Justification | null = null;
      if (f[4] !== null) {
        const j = readArray(f[4], 2, 'proposal.justification');
        const roundChanges = readList(j[0], Limits.maxValidators, 'proposal.justification.roundChanges').map(
          (c, i) => {
            const p = readArray(c, 4, `proposal.justification.roundChanges[${i}]`);
            const preparedRound = readNullableRound(p[0], `roundChanges[${i}].preparedRound`);
            const preparedHash = readNullableHash(p[1], `roundChanges[${i}].preparedHash`);
            if ((preparedRound === null) !== (preparedHash === null)) {
              throw new CodecError(
                'WRONG_SHAPE',
                `roundChanges[${i}]: preparedRound and preparedHash go together`,
                {},
              );
            }
            return {
              preparedRound,
              preparedHash,
              sender: readBytes(p[2], `roundChanges[${i}].sender`, ADDRESS_BYTES),
              signature: readBytes(p[3], `roundChanges[${i}].signature`, SIGNATURE_BYTES),
            };
          },
        );
        justification = {
          roundChanges,
          prepared: j[1] === null ? null : readCertificate(j[1], 'proposal.justification.prepared'),
        };
      }
      return {
        type: 'proposal',
        height: readUint(f[1], 'proposal.height'),
        round: readUint(f[2], 'proposal.round'),
        block,
        blockHash: hashHeader(block.header),
        justification,
        sender: readBytes(f[5], 'proposal.sender', ADDRESS_BYTES),
        signature: readBytes(f[6], 'proposal.signature', SIGNATURE_BYTES),
      };
    }
    case TypeCode.prepare:
    case TypeCode.commit: {
      const type = code === TypeCode.prepare ? 'prepare' : 'commit';
      const f = readArray(top, 6, type);
      return {
        type,
        height: readUint(f[1], `${type}.height`),
        round: readUint(f[2], `${type}.round`),
        blockHash: readBytes(f[3], `${type}.blockHash`, HASH_BYTES),
        sender: readBytes(f[4], `${type}.sender`, ADDRESS_BYTES),
        signature: readBytes(f[5], `${type}.signature`, SIGNATURE_BYTES),
      };
    }
    case TypeCode.roundChange: {
      const f = readArray(top, 7, 'roundChange');
      const prepared = f[3] === null ? null : readCertificate(f[3], 'roundChange.prepared');
      const preparedBlock = f[4] === null ? null : decodeBlock(readBytes(f[4], 'roundChange.preparedBlock'));
      if ((prepared === null) !== (preparedBlock === null)) {
        throw new CodecError('WRONG_SHAPE', 'roundChange: a prepared certificate travels with its block', {});
      }
      return {
        type: 'roundChange',
        height: readUint(f[1], 'roundChange.height'),
        round: readUint(f[2], 'roundChange.round'),
        prepared,
        preparedBlock,
        sender: readBytes(f[5], 'roundChange.sender', ADDRESS_BYTES),
        signature: readBytes(f[6], 'roundChange.signature', SIGNATURE_BYTES),
      };
    }
    default:
      throw new CodecError('WRONG_TAG', 'consensus message: unknown message type', {});
  }
}

/**
 * Decodes peer bytes into a consensus message, checking size, canonical encoding and shape (not
 * signatures: that needs the validator set, see the state machine). Never throws: bad bytes give
 * `{ ok: false, error }` with code MALFORMED_MESSAGE and the codec's reason.
 */
export function decodeConsensusMessage(bytes: Bytes, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): DecodeResult {
  if (!(bytes instanceof Uint8Array)) {
    return { ok: false, error: new ConsensusError('MALFORMED_MESSAGE', 'consensus message: expected bytes') };
  }
  if (bytes.length > maxBytes) {
    return {
      ok: false,
      error: new ConsensusError(
        'MALFORMED_MESSAGE',
        `consensus message: at most ${maxBytes} bytes, got ${bytes.length}`,
        {
          size: bytes.length,
          maxBytes,
        },
      ),
    };
  }
  try {
    return { ok: true, message: decodeFields(bytes) };
  } catch (err) {
    const reason = err instanceof CodecError ? err.code : 'MALFORMED';
    return {
      ok: false,
      error: new ConsensusError('MALFORMED_MESSAGE', `consensus message: ${(err as Error).message}`, {
        reason,
      }),
    };
  }
}
