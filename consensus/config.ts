import type { Bytes } from '../core/bytes.ts';
import { verify } from '../core/keys.ts';
import { ConsensusError } from './errors.ts';
import { DEFAULT_MAX_MESSAGE_BYTES } from './messages.ts';

/**
 * Checks an Ed25519 signature. Must be a pure function of its arguments (same answer every time);
 * a memoising wrapper such as {@link createMemoizedVerifier} qualifies.
 */
export type VerifyFn = (signature: Bytes, message: Bytes, publicKey: Bytes) => boolean;

/** Options of the consensus state machine: plain data with defaults (plus a pure verifier). */
export interface ConsensusOptions {
  readonly chainId: string;
  /** This node's validator address; a node outside the set follows along but never signs. */
  readonly self: Bytes;
  /** Round 0 timeout. Default 2000 ms. */
  readonly roundTimeoutBaseMs?: number;
  /** Each round's timeout is base × growth^round. Default 1.5. */
  readonly roundTimeoutGrowth?: number;
  /** Cap on a round's timeout. Default 30 000 ms. */
  readonly roundTimeoutMaxMs?: number;
  /**
   * Rounds ahead of the current one whose PREPARE, COMMIT and ROUND-CHANGE messages are kept.
   * Bounds the vote store at n × (maxFutureRounds + 1) messages per kind. Default 8.
   */
  readonly maxFutureRounds?: number;
  /**
   * Rounds behind the current one whose COMMIT and ROUND-CHANGE messages are kept: a commit quorum
   * from an earlier round still decides the height (QBFT: "upon a quorum of COMMIT for any round"),
   * and earlier round-change quorums are what a lagging peer needs to catch up. Default 4.
   */
  readonly maxPastRounds?: number;
  /** Heights ahead of the current one whose messages are buffered for replay. Default 2. */
  readonly maxFutureHeights?: number;
  /**
   * Buffered future-height messages per validator. A lagging node needs only the next height's
   * proposal, votes and round changes from each peer; more would let one peer fill memory. Default 16.
   */
  readonly maxFutureMessagesPerValidator?: number;
  /** Largest consensus message decoded from the wire. Default 16 MiB. */
  readonly maxMessageBytes?: number;
  /** A fresh proposal's timestamp may be at most this far ahead of local time. Default 15 000 ms. */
  readonly maxClockDriftMs?: number;
  /** Signature check; default core's Ed25519 `verify`. */
  readonly verifySignature?: VerifyFn;
  /**
   * UNSAFE, tests only: overrides the quorum (2f + 1). The simulation's negative control sets it
   * to 2f to show the checker finds the forks that follow. Never set it in a node.
   */
  readonly unsafeQuorumForTesting?: number;
}

/** Options with every default filled in. */
export interface ConsensusConfig {
  readonly chainId: string;
  readonly self: Bytes;
  readonly roundTimeoutBaseMs: number;
  readonly roundTimeoutGrowth: number;
  readonly roundTimeoutMaxMs: number;
  readonly maxFutureRounds: number;
  readonly maxPastRounds: number;
  readonly maxFutureHeights: number;
  readonly maxFutureMessagesPerValidator: number;
  readonly maxMessageBytes: number;
  readonly maxClockDriftMs: number;
  readonly verifySignature: VerifyFn;
  readonly unsafeQuorumForTesting: number | null;
}

function positiveInt(name: string, v: number, min: number): number {
  if (!Number.isSafeInteger(v) || v < min) {
    throw new ConsensusError(
      'BAD_CONFIG',
      `consensus option ${name}: expected an integer ≥ ${min}, got ${v}`,
      {
        name,
        value: v,
      },
    );
  }
  return v;
}

/** Fills defaults and checks ranges; throws ConsensusError BAD_CONFIG on a bad option. */
export function resolveConsensusConfig(o: ConsensusOptions): ConsensusConfig {
  const growth = o.roundTimeoutGrowth ?? 1.5;
  if (!Number.isFinite(growth) || growth < 1 || growth > 4) {
    throw new ConsensusError(
      'BAD_CONFIG',
      `consensus option roundTimeoutGrowth: expected 1..4, got ${growth}`,
    );
  }
  if (typeof o.chainId !== 'string' || o.chainId.length === 0) {
    throw new ConsensusError('BAD_CONFIG', 'consensus option chainId: expected a non-empty string');
  }
  if (!(o.self instanceof Uint8Array))
    throw new ConsensusError('BAD_CONFIG', 'consensus option self: expected an address');
  const base = positiveInt('roundTimeoutBaseMs', o.roundTimeoutBaseMs ?? 2000, 1);
  const max = positiveInt('roundTimeoutMaxMs', o.roundTimeoutMaxMs ?? 30_000, base);
  return {
    chainId: o.chainId,
    self: o.self,
    roundTimeoutBaseMs: base,
    roundTimeoutGrowth: growth,
    roundTimeoutMaxMs: max,
    maxFutureRounds: positiveInt('maxFutureRounds', o.maxFutureRounds ?? 8, 1),
    maxPastRounds: positiveInt('maxPastRounds', o.maxPastRounds ?? 4, 0),
    maxFutureHeights: positiveInt('maxFutureHeights', o.maxFutureHeights ?? 2, 1),
    maxFutureMessagesPerValidator: positiveInt(
      'maxFutureMessagesPerValidator',
      o.maxFutureMessagesPerValidator ?? 16,
      1,
    ),
    maxMessageBytes: positiveInt('maxMessageBytes', o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES, 1024),
    maxClockDriftMs: positiveInt('maxClockDriftMs', o.maxClockDriftMs ?? 15_000, 0),
    verifySignature: o.verifySignature ?? verify,
    unsafeQuorumForTesting:
      o.unsafeQuorumForTesting === undefined
        ? null
        : positiveInt('unsafeQuorumForTesting', o.unsafeQuorumForTesting, 1),
  };
}

/**
 * Timeout of a round: base × growth^round, capped (QBFT t(r), exponential so that replicas in
 * different rounds eventually overlap; capped so a long outage does not leave minutes-long rounds).
 * The cap alone would let round numbers drift apart for ever; the state machine's pacemaker rules
 * (stay in a round until it has a quorum, forward round changes to laggards) close that gap.
 */
export function roundTimeoutMs(config: ConsensusConfig, round: number): number {
  // Growth^round overflows to Infinity for large rounds; the cap then applies, which is what we want.
  const raw = config.roundTimeoutBaseMs * config.roundTimeoutGrowth ** round;
  return Math.min(config.roundTimeoutMaxMs, Math.floor(raw));
}

/**
 * Wraps a verifier with a bounded memo of recent answers. Signature checks are pure, so the memo
 * changes nothing but cost; it pays off because round changes and proposals repeat the same
 * prepares and round-change signatures. Entries are dropped wholesale at `maxEntries`.
 */
export function createMemoizedVerifier(inner: VerifyFn = verify, maxEntries = 65_536): VerifyFn {
  const memo = new Map<string, boolean>();
  return (signature, message, publicKey) => {
    const key =
      Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('latin1') +
      Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('latin1') +
      Buffer.from(message.buffer, message.byteOffset, message.byteLength).toString('latin1');
    const known = memo.get(key);
    if (known !== undefined) return known;
    const ok = inner(signature, message, publicKey);
    if (memo.size >= maxEntries) memo.clear();
    memo.set(key, ok);
    return ok;
  };
}
