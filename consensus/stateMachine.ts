import { bytesEqual, compareBytes, toHex, type Bytes } from '../core/bytes.ts';
import {
  hashHeader,
  hashValidators,
  quorumOf,
  type Block,
  type CommitCertificate,
  type Validator,
} from '../core/types.ts';
import {
  resolveConsensusConfig,
  roundTimeoutMs,
  type ConsensusConfig,
  type ConsensusOptions,
} from './config.ts';
import { ConsensusError, type ConsensusErrorCode } from './errors.ts';
import {
  addressKey,
  checkProposalJustification,
  checkRoundChange,
  claimOf,
  createVerifyContext,
  type VerifyContext,
} from './justification.ts';
import {
  decodeConsensusMessage,
  encodeConsensusMessage,
  signedBodyOf,
  type ConsensusMessage,
  type Justification,
  type PreparedCertificate,
  type ProposalMessage,
  type RoundChangeMessage,
  type VoteMessage,
} from './messages.ts';
import { SignStep, type SafetyRecord, type SignOutcome, type SignRequest } from './safetyRules.ts';
import { faultToleranceOf, indexOfValidator, proposerOf } from './validatorSet.ts';

/**
 * The consensus core: PBFT per height in the QBFT style (Moniz, "The Istanbul BFT Consensus
 * Algorithm", 2020; Saltini & Hyland-Wood, "IBFT 2.0", 2019), as a pure, synchronous, total function
 * `step(state, input) → { state, outputs }` (model: cometbft consensus/state.go). It performs no
 * I/O, reads no clock and draws no randomness: messages, timer expiries, execution results,
 * signatures and time arrive as inputs; sending, signing, executing, timers and commits leave as
 * outputs that the driver performs in order. A bad peer message yields a `rejected` output, never
 * a throw. `step` never mutates the state it is given.
 *
 * Protocol per height h (paper algorithm numbers in brackets):
 * - Round r's proposer is validators[(h + r) mod n]. It asks the driver to build and execute a
 *   block (round 0, or a later round whose round-change quorum reports nothing prepared), or
 *   re-proposes the highest prepared block reported by that quorum [Alg. 3, JustifyPrePrepare].
 * - A replica accepts a proposal from the right proposer whose header fits the chain and whose
 *   justification holds, re-executes it ("execute, then vote") and signs PREPARE only if its own
 *   txRoot, stateRoot and receiptsRoot equal the header's [Alg. 2].
 * - On a quorum (2f + 1) of PREPAREs for the accepted proposal it records the prepared certificate
 *   (its lock: pr, pv) and signs COMMIT [Alg. 2].
 * - On a quorum of COMMITs for one block in any kept round it decides: the commit signatures are
 *   the block's commit certificate [Alg. 2].
 * - When the round timer expires it moves to r + 1 and signs ROUND-CHANGE carrying its prepared
 *   certificate; on f + 1 round changes for higher rounds it jumps to the lowest of them [Alg. 3].
 *
 * Pacemaker additions (the round timer is capped, so the paper's argument that replicas' rounds
 * eventually overlap no longer holds by itself):
 * - A replica leaves round r ≥ 1 on timeout only once r is "live": it saw a quorum of round
 *   changes for r or a justified proposal for r. Otherwise it stays and re-broadcasts its round
 *   change, so an isolated replica does not run ahead of the others.
 * - Seeing a validator's message from a lower round of this height, a replica sends that peer the
 *   round changes it holds for the peer's round up to its own, and its current proposal (once per
 *   peer per timer period), so the peer completes its round's quorum, jumps by the f + 1 rule, or
 *   jumps by the justified proposal.
 * - On a timeout, a replica that has seen any validator at a higher height asks the driver for
 *   block sync (a spurious request costs a fetch; a certificate check stops anything false).
 * Neither rule affects safety, which rests on quorum intersection, the justification rules and
 * the safety module.
 */

/** What the driver knows when a height starts: the parent block and the set that certifies h. */
export interface HeightStart {
  readonly height: number;
  /** Hash of the last committed block (genesis hash before height 1). */
  readonly prevHash: Bytes;
  /** Timestamp of the last committed block; a new block's must be strictly greater. */
  readonly prevTimestamp: number;
  /** The validator set that certifies `height`, in proposer order. */
  readonly validators: readonly Validator[];
}

/** The driver's report after executing a proposed block on top of the last committed state. */
export type ExecutionResult =
  | { readonly valid: true; readonly txRoot: Bytes; readonly stateRoot: Bytes; readonly receiptsRoot: Bytes }
  | { readonly valid: false; readonly reason: string };

/** Inputs of {@link step}. */
export type ConsensusInput =
  /** Raw bytes from a peer; decoded (and rejected if bad) here. */
  | { readonly kind: 'message'; readonly from: string; readonly bytes: Bytes }
  /** An already-decoded message (signature still unchecked). */
  | { readonly kind: 'decoded'; readonly from: string; readonly message: ConsensusMessage }
  /** A timer scheduled by a `scheduleTimer` output fired. */
  | { readonly kind: 'timeout'; readonly height: number; readonly round: number }
  /** Answer to an `execute` output. */
  | {
      readonly kind: 'executed';
      readonly height: number;
      readonly blockHash: Bytes;
      readonly result: ExecutionResult;
    }
  /** Answer to a `buildProposal` output: a block the driver built AND executed (its roots are in the header). */
  | { readonly kind: 'proposalBuilt'; readonly height: number; readonly round: number; readonly block: Block }
  /** Answer to a `sign` output, from the safety module. */
  | { readonly kind: 'signed'; readonly outcome: SignOutcome }
  /** A block was durably committed (by this machine's `commit` output or by block sync); start `next`. */
  | { readonly kind: 'committed'; readonly next: HeightStart }
  /** Local wall time, for the proposal timestamp check. */
  | { readonly kind: 'clock'; readonly nowMs: number };

/** Outputs of {@link step}, to be performed by the driver in order. */
export type ConsensusOutput =
  | { readonly kind: 'broadcast'; readonly message: ConsensusMessage; readonly bytes: Bytes }
  /** Send to the one peer an input came `from`. */
  | {
      readonly kind: 'send';
      readonly peer: string;
      readonly message: ConsensusMessage;
      readonly bytes: Bytes;
    }
  /** Ask the safety module to sign; feed its outcome back as a `signed` input. */
  | { readonly kind: 'sign'; readonly request: SignRequest }
  /** Execute this block on the last committed state; answer with `executed`. */
  | { readonly kind: 'execute'; readonly height: number; readonly blockHash: Bytes; readonly block: Block }
  /** Build and execute a candidate block with these header fields; answer with `proposalBuilt`. */
  | {
      readonly kind: 'buildProposal';
      readonly height: number;
      readonly round: number;
      readonly prevHash: Bytes;
      readonly proposer: Bytes;
      readonly validatorsHash: Bytes;
      /** The header timestamp must be at least this (parent timestamp + 1). */
      readonly minTimestamp: number;
    }
  /** Fire a `timeout` input for (height, round) after `delayMs`. */
  | {
      readonly kind: 'scheduleTimer';
      readonly height: number;
      readonly round: number;
      readonly delayMs: number;
    }
  /** Decided: persist block + certificate + executed state atomically, then feed `committed`. */
  | {
      readonly kind: 'commit';
      readonly height: number;
      readonly block: Block;
      readonly blockHash: Bytes;
      readonly certificate: CommitCertificate;
    }
  /** f + 1 validators are at higher heights: fetch blocks from `height` on (block sync). */
  | {
      readonly kind: 'syncNeeded';
      readonly height: number;
      readonly targetHeight: number;
      readonly peers: readonly Bytes[];
    }
  /** A peer message was refused; the driver may score the peer. */
  | {
      readonly kind: 'rejected';
      readonly from: string;
      readonly code: ConsensusErrorCode;
      readonly detail: string;
    }
  /** Two validly signed, conflicting messages from one validator. */
  | {
      readonly kind: 'evidence';
      readonly sender: Bytes;
      readonly first: ConsensusMessage;
      readonly second: ConsensusMessage;
    }
  /** Structured log line: constant event name, values in fields. */
  | {
      readonly kind: 'log';
      readonly level: 'debug' | 'info' | 'warn' | 'error';
      readonly event: string;
      readonly fields: Readonly<Record<string, unknown>>;
    };

/**
 * Where the current round stands: `propose` (waiting for the proposal, or building it), `prepare`
 * (proposal accepted, collecting prepares), `commit` (prepared, collecting commits), `committing`
 * (decided, waiting for the driver to persist), `halted` (a quorum committed a block this node
 * cannot execute: operator attention needed).
 */
export type ConsensusStep = 'propose' | 'prepare' | 'commit' | 'committing' | 'halted';

/** Execution status of a known block. */
export type ExecutionStatus = 'unknown' | 'pending' | 'valid' | 'invalid';

/** A block this height has seen, with what local execution said about it. */
export interface BlockEntry {
  readonly block: Block;
  readonly hash: Bytes;
  readonly exec: ExecutionStatus;
  readonly reason: string;
}

/** The lock (QBFT pr, pv): the highest prepared certificate seen at this height, with its block. */
export interface Lock {
  readonly prepared: PreparedCertificate;
  readonly block: Block;
}

/** What has been requested in the current round, so nothing is requested twice. */
export interface RoundFlags {
  readonly build: boolean;
  readonly proposal: boolean;
  readonly prepare: boolean;
  readonly commit: boolean;
  readonly roundChange: boolean;
}

/** A message for a later height, kept for replay when that height starts. */
export interface FutureEntry {
  readonly from: string;
  readonly message: ConsensusMessage;
  /** Hex of the validators hash its signature was checked against. */
  readonly checkedWith: string;
}

/**
 * The whole consensus state. Treat as opaque and immutable; read it through `describeConsensus`.
 *
 * Bounds (n validators, F = maxFutureRounds, P = maxPastRounds, B = maxFutureMessagesPerValidator):
 * - prepares: rounds [round, round + F], one per validator per round → n·(F + 1).
 * - commits and roundChanges: rounds [round − P, round + F] → n·(P + F + 1) each;
 *   latestRoundChange: one per validator → n.
 * - proposals: one per round in [round − P, ∞) that was justified; pruned to [round − P, round]
 *   on every round change, since a proposal for a higher round moves this replica to it.
 * - blocks: those of kept proposals plus the lock.
 * - future: at most B per validator (only validators of the current set, after a signature check).
 * - ahead, helped: one entry per validator.
 */
export interface ConsensusState {
  readonly config: ConsensusConfig;
  readonly ctx: VerifyContext;
  readonly validatorsHash: Bytes;
  /** Index of this node in the set, or −1 for an observer (never signs). */
  readonly selfIndex: number;
  readonly height: number;
  readonly prevHash: Bytes;
  readonly prevTimestamp: number;
  readonly round: number;
  readonly step: ConsensusStep;
  /** A quorum of round changes or a justified proposal was seen for this round (round 0 always). */
  readonly roundLive: boolean;
  readonly nowMs: number;
  readonly lock: Lock | null;
  readonly proposals: ReadonlyMap<number, ProposalMessage>;
  readonly blocks: ReadonlyMap<string, BlockEntry>;
  readonly prepares: ReadonlyMap<number, ReadonlyMap<string, VoteMessage>>;
  readonly commits: ReadonlyMap<number, ReadonlyMap<string, VoteMessage>>;
  readonly roundChanges: ReadonlyMap<number, ReadonlyMap<string, RoundChangeMessage>>;
  readonly latestRoundChange: ReadonlyMap<string, RoundChangeMessage>;
  readonly flags: RoundFlags;
  readonly helped: ReadonlySet<string>;
  readonly future: readonly FutureEntry[];
  readonly ahead: ReadonlyMap<string, number>;
  /** Height at which a `syncNeeded` was last emitted from the buffering path (0: never). */
  readonly syncHintHeight: number;
  readonly decided: { readonly round: number; readonly blockHash: Bytes } | null;
  readonly halted: string | null;
  readonly missingBlockReported: boolean;
}

/** What {@link step} returns. */
export interface StepResult {
  readonly state: ConsensusState;
  readonly outputs: readonly ConsensusOutput[];
}

type Draft = { -readonly [K in keyof ConsensusState]: ConsensusState[K] };
type Out = ConsensusOutput[];
/** How far an incoming message is already trusted: not at all, signature checked, or our own. */
type Trust = 'none' | 'signature' | 'own';

const NO_FLAGS: RoundFlags = {
  build: false,
  proposal: false,
  prepare: false,
  commit: false,
  roundChange: false,
};
const EMPTY_MAP: ReadonlyMap<never, never> = new Map<never, never>();
const EMPTY_SET: ReadonlySet<string> = new Set();

function setIn<K, V>(m: ReadonlyMap<K, V>, k: K, v: V): Map<K, V> {
  const n = new Map(m);
  n.set(k, v);
  return n;
}

function setInRound<V>(
  m: ReadonlyMap<number, ReadonlyMap<string, V>>,
  round: number,
  key: string,
  v: V,
): Map<number, ReadonlyMap<string, V>> {
  return setIn(m, round, setIn(m.get(round) ?? new Map<string, V>(), key, v));
}

function keepRounds<V>(m: ReadonlyMap<number, V>, min: number): Map<number, V> {
  const n = new Map<number, V>();
  for (const [r, v] of m) if (r >= min) n.set(r, v);
  return n;
}

function hashKey(hash: Bytes): string {
  return addressKey(hash);
}

function quorumFor(config: ConsensusConfig, n: number): number {
  return config.unsafeQuorumForTesting ?? quorumOf(n);
}

function weakQuorum(s: ConsensusState): number {
  return faultToleranceOf(s.ctx.validators.length) + 1;
}

function selfKey(s: ConsensusState): string {
  return addressKey(s.config.self);
}

function log(
  out: Out,
  level: 'debug' | 'info' | 'warn' | 'error',
  event: string,
  fields: Record<string, unknown>,
): void {
  out.push({ kind: 'log', level, event, fields });
}

function reject(out: Out, from: string, code: ConsensusErrorCode, detail: string): void {
  out.push({ kind: 'rejected', from, code, detail });
}

function broadcast(out: Out, message: ConsensusMessage): void {
  out.push({ kind: 'broadcast', message, bytes: encodeConsensusMessage(message) });
}

function sigValid(s: ConsensusState, m: ConsensusMessage): boolean {
  const v = s.ctx.byAddress.get(addressKey(m.sender));
  return (
    v !== undefined && s.config.verifySignature(m.signature, signedBodyOf(s.config.chainId, m), v.publicKey)
  );
}

function describeMessage(m: ConsensusMessage): Record<string, unknown> {
  return { type: m.type, height: m.height, round: m.round, sender: toHex(m.sender) };
}

// ---------------------------------------------------------------------------------------------
// Height and round lifecycle

function freshHeight(config: ConsensusConfig, start: HeightStart, nowMs: number): Draft {
  // The driver supplies these from its own committed chain; a bad value is a driver bug, not peer input.
  if (!Number.isSafeInteger(start.height) || start.height < 1) {
    throw new ConsensusError(
      'BAD_CONFIG',
      `height start: height must be a positive integer, got ${start.height}`,
    );
  }
  if (start.validators.length === 0) {
    throw new ConsensusError('BAD_CONFIG', `height start: empty validator set at height ${start.height}`);
  }
  const quorum = quorumFor(config, start.validators.length);
  return {
    config,
    ctx: createVerifyContext(config.chainId, start.height, start.validators, quorum, config.verifySignature),
    validatorsHash: hashValidators(start.validators),
    selfIndex: indexOfValidator(start.validators, config.self),
    height: start.height,
    prevHash: start.prevHash,
    prevTimestamp: start.prevTimestamp,
    round: 0,
    step: 'propose',
    roundLive: true,
    nowMs,
    lock: null,
    proposals: EMPTY_MAP,
    blocks: EMPTY_MAP,
    prepares: EMPTY_MAP,
    commits: EMPTY_MAP,
    roundChanges: EMPTY_MAP,
    latestRoundChange: EMPTY_MAP,
    flags: NO_FLAGS,
    helped: EMPTY_SET,
    future: [],
    ahead: EMPTY_MAP,
    syncHintHeight: 0,
    decided: null,
    halted: null,
    missingBlockReported: false,
  };
}

function updateLive(s: Draft): void {
  if (s.roundLive) return;
  if (s.round === 0 || (s.roundChanges.get(s.round)?.size ?? 0) >= s.ctx.quorum) s.roundLive = true;
}

/** Moves to round r (> current, or 0 at a fresh height): prunes, arms the timer. */
function enterRound(s: Draft, out: Out, round: number): void {
  s.round = round;
  s.step = 'propose';
  s.flags = NO_FLAGS;
  s.helped = EMPTY_SET;
  s.roundLive = false;
  s.prepares = keepRounds(s.prepares, round);
  const pastFloor = round - s.config.maxPastRounds;
  s.roundChanges = keepRounds(s.roundChanges, pastFloor);
  s.commits = keepRounds(s.commits, pastFloor);
  s.proposals = keepRounds(s.proposals, pastFloor);
  const referenced = new Set<string>([...s.proposals.values()].map((p) => hashKey(p.blockHash)));
  if (s.lock !== null) referenced.add(hashKey(s.lock.prepared.blockHash));
  const blocks = new Map<string, BlockEntry>();
  for (const [k, e] of s.blocks) if (referenced.has(k)) blocks.set(k, e);
  s.blocks = blocks;
  // Round changes that arrived beyond the window are remembered per sender; bring them back.
  for (const [k, rc] of s.latestRoundChange) {
    if (rc.round === round && s.roundChanges.get(round)?.has(k) !== true) {
      s.roundChanges = setInRound(s.roundChanges, round, k, rc);
    }
  }
  updateLive(s);
  out.push({ kind: 'scheduleTimer', height: s.height, round, delayMs: roundTimeoutMs(s.config, round) });
  log(out, 'debug', 'ROUND_STARTED', { height: s.height, round });
}

/** After entering a round: anything already collected for it may now complete a step. */
function afterRoundEntered(s: Draft, out: Out): void {
  tryPropose(s, out);
  tryPrepare(s, out);
  tryCommitVote(s, out);
  tryDecide(s, out);
}

function signRoundChange(s: Draft, out: Out): void {
  if (s.selfIndex < 0 || s.round === 0 || s.flags.roundChange) return;
  s.flags = { ...s.flags, roundChange: true };
  out.push({
    kind: 'sign',
    request: {
      type: 'roundChange',
      height: s.height,
      round: s.round,
      prepared: s.lock?.prepared ?? null,
      preparedBlock: s.lock?.block ?? null,
    },
  });
}

function halt(s: Draft, out: Out, reason: string): void {
  s.step = 'halted';
  s.halted = reason;
  log(out, 'error', 'CONSENSUS_HALTED', { height: s.height, round: s.round, reason });
}

// ---------------------------------------------------------------------------------------------
// Proposing

function isProposer(s: ConsensusState, round: number): boolean {
  return s.selfIndex >= 0 && bytesEqual(proposerOf(s.ctx.validators, s.height, round).address, s.config.self);
}

/** The justification for proposing in the current round, from the round changes held for it. */
function justificationOf(s: ConsensusState): { justification: Justification; block: Block | null } {
  const rcs = [...(s.roundChanges.get(s.round)?.values() ?? [])].sort((a, b) =>
    compareBytes(a.sender, b.sender),
  );
  let best: RoundChangeMessage | null = null;
  for (const rc of rcs) {
    if (rc.prepared !== null && (best === null || rc.prepared.round > best.prepared!.round)) best = rc;
  }
  return {
    justification: { roundChanges: rcs.map(claimOf), prepared: best?.prepared ?? null },
    block: best?.preparedBlock ?? null,
  };
}

function addBlock(s: Draft, hash: Bytes, block: Block, exec: ExecutionStatus): BlockEntry {
  const k = hashKey(hash);
  const existing = s.blocks.get(k);
  if (existing !== undefined && (existing.exec !== 'unknown' || exec === 'unknown')) return existing;
  const entry: BlockEntry = { block, hash, exec, reason: '' };
  s.blocks = setIn(s.blocks, k, entry);
  return entry;
}

function signProposal(
  s: Draft,
  out: Out,
  block: Block,
  blockHash: Bytes,
  justification: Justification | null,
): void {
  addBlock(s, blockHash, block, 'unknown');
  s.flags = { ...s.flags, proposal: true, build: false };
  out.push({
    kind: 'sign',
    request: { type: 'proposal', height: s.height, round: s.round, block, blockHash, justification },
  });
}

function tryPropose(s: Draft, out: Out): void {
  if (s.step === 'committing' || s.step === 'halted' || !isProposer(s, s.round)) return;
  if (s.flags.proposal || s.flags.build || s.proposals.has(s.round)) return;
  if (s.round > 0) {
    if ((s.roundChanges.get(s.round)?.size ?? 0) < s.ctx.quorum) return;
    const { justification, block } = justificationOf(s);
    if (justification.prepared !== null && block !== null) {
      // QBFT: a round-change quorum that reports a prepared block obliges us to re-propose it.
      signProposal(s, out, block, justification.prepared.blockHash, justification);
      return;
    }
  }
  s.flags = { ...s.flags, build: true };
  out.push({
    kind: 'buildProposal',
    height: s.height,
    round: s.round,
    prevHash: s.prevHash,
    proposer: s.config.self,
    validatorsHash: s.validatorsHash,
    minTimestamp: s.prevTimestamp + 1,
  });
}

function builtHeaderFault(s: ConsensusState, block: Block, round: number): string | null {
  const h = block.header;
  if (h.chainId !== s.config.chainId) return 'chainId';
  if (h.height !== s.height) return 'height';
  if (h.round !== round) return 'round';
  if (!bytesEqual(h.prevHash, s.prevHash)) return 'prevHash';
  if (!bytesEqual(h.proposer, s.config.self)) return 'proposer';
  if (!bytesEqual(h.validatorsHash, s.validatorsHash)) return 'validatorsHash';
  if (h.timestamp <= s.prevTimestamp) return 'timestamp';
  return null;
}

function onProposalBuilt(s: Draft, out: Out, height: number, round: number, block: Block): void {
  if (height !== s.height || round !== s.round || !s.flags.build || s.flags.proposal) {
    log(out, 'debug', 'STALE_BUILT_PROPOSAL', {
      height,
      round,
      currentHeight: s.height,
      currentRound: s.round,
    });
    return;
  }
  if (s.step === 'committing' || s.step === 'halted') return;
  const fault = builtHeaderFault(s, block, round);
  if (fault !== null) {
    s.flags = { ...s.flags, build: false };
    log(out, 'error', 'BUILT_PROPOSAL_INVALID', { height, round, field: fault });
    return;
  }
  const hash = hashHeader(block.header);
  let justification: Justification | null = null;
  if (round > 0) {
    const j = justificationOf(s);
    if (j.justification.prepared !== null && j.block !== null) {
      // A prepared block surfaced while the driver was building: it must be re-proposed instead.
      signProposal(s, out, j.block, j.justification.prepared.blockHash, j.justification);
      return;
    }
    justification = j.justification;
  }
  // The driver built and executed this block itself: its roots are in the header.
  addBlock(s, hash, block, 'valid');
  signProposal(s, out, block, hash, justification);
}

// ---------------------------------------------------------------------------------------------
// Receiving

function headerFault(s: ConsensusState, p: ProposalMessage): string | null {
  const h = p.block.header;
  if (h.chainId !== s.config.chainId) return `header chainId "${h.chainId}", expected "${s.config.chainId}"`;
  if (h.height !== p.height) return `header height ${h.height}, expected ${p.height}`;
  if (!bytesEqual(h.prevHash, s.prevHash)) return 'header prevHash is not the last committed block';
  if (!bytesEqual(h.validatorsHash, s.validatorsHash)) return 'header validatorsHash is not the current set';
  const prepared = p.justification?.prepared ?? null;
  if (prepared === null) {
    if (h.round !== p.round) return `a fresh block must carry round ${p.round}, has ${h.round}`;
  } else if (h.round > prepared.round) {
    return `re-proposed block from round ${h.round} cannot have been prepared in round ${prepared.round}`;
  }
  if (!bytesEqual(h.proposer, proposerOf(s.ctx.validators, s.height, h.round).address)) {
    return `header proposer is not the proposer of round ${h.round}`;
  }
  if (h.timestamp <= s.prevTimestamp) return `timestamp ${h.timestamp} not after parent ${s.prevTimestamp}`;
  if (prepared === null && s.nowMs > 0 && h.timestamp > s.nowMs + s.config.maxClockDriftMs) {
    return `timestamp ${h.timestamp} is more than ${s.config.maxClockDriftMs} ms ahead of local time ${s.nowMs}`;
  }
  return null;
}

/** Sends a lagging peer what it needs to catch up with our round (pacemaker rule, see top). */
function maybeHelp(s: Draft, out: Out, from: string, senderKey: string, peerRound: number): void {
  if (from === '' || s.helped.has(senderKey) || senderKey === selfKey(s)) return;
  s.helped = new Set(s.helped).add(senderKey);
  for (const [round, rcs] of [...s.roundChanges].sort((a, b) => a[0] - b[0])) {
    if (round < peerRound || round > s.round) continue;
    for (const rc of rcs.values()) {
      if (addressKey(rc.sender) !== senderKey)
        out.push({ kind: 'send', peer: from, message: rc, bytes: encodeConsensusMessage(rc) });
    }
  }
  const p = s.proposals.get(s.round);
  if (p !== undefined) out.push({ kind: 'send', peer: from, message: p, bytes: encodeConsensusMessage(p) });
}

function onProposal(s: Draft, out: Out, from: string, p: ProposalMessage, trust: Trust): void {
  const senderKey = addressKey(p.sender);
  if (!bytesEqual(p.sender, proposerOf(s.ctx.validators, s.height, p.round).address)) {
    reject(
      out,
      from,
      'WRONG_PROPOSER',
      `proposal for round ${p.round} from a validator that is not its proposer`,
    );
    return;
  }
  const existing = s.proposals.get(p.round);
  if (existing !== undefined && bytesEqual(existing.blockHash, p.blockHash)) {
    if (p.round < s.round) maybeHelp(s, out, from, senderKey, p.round);
    return;
  }
  if (trust === 'none' && !sigValid(s, p)) {
    reject(out, from, 'BAD_SIGNATURE', 'proposal signature does not verify');
    return;
  }
  if (existing !== undefined) {
    out.push({ kind: 'evidence', sender: p.sender, first: existing, second: p });
    log(out, 'warn', 'EQUIVOCATION', describeMessage(p));
    return;
  }
  if (p.round < s.round) {
    maybeHelp(s, out, from, senderKey, p.round);
    return;
  }
  if (trust !== 'own') {
    const fault = headerFault(s, p);
    if (fault !== null) {
      reject(out, from, 'BAD_BLOCK', fault);
      return;
    }
    const jf = checkProposalJustification(s.ctx, p);
    if (jf !== null) {
      reject(out, from, 'BAD_JUSTIFICATION', jf);
      return;
    }
  }
  if (p.round > s.round) {
    // A justified proposal proves a quorum moved to its round (QBFT: accept a future-round proposal).
    enterRound(s, out, p.round);
  }
  s.proposals = setIn(s.proposals, p.round, p);
  s.roundLive = true;
  addBlock(s, p.blockHash, p.block, 'unknown');
  if (s.step === 'propose') s.step = 'prepare';
  afterRoundEntered(s, out);
}

/** Requests execution once; returns the block's current status. */
function ensureExecuted(s: Draft, out: Out, e: BlockEntry): ExecutionStatus {
  if (e.exec !== 'unknown') return e.exec;
  s.blocks = setIn(s.blocks, hashKey(e.hash), { ...e, exec: 'pending' });
  out.push({ kind: 'execute', height: s.height, blockHash: e.hash, block: e.block });
  return 'pending';
}

function tryPrepare(s: Draft, out: Out): void {
  if (s.step === 'committing' || s.step === 'halted' || s.flags.prepare) return;
  const p = s.proposals.get(s.round);
  if (p === undefined) return;
  const e = s.blocks.get(hashKey(p.blockHash));
  if (e === undefined || ensureExecuted(s, out, e) !== 'valid' || s.selfIndex < 0) return;
  s.flags = { ...s.flags, prepare: true };
  out.push({
    kind: 'sign',
    request: { type: 'prepare', height: s.height, round: s.round, blockHash: p.blockHash },
  });
}

function tryCommitVote(s: Draft, out: Out): void {
  if (s.step === 'committing' || s.step === 'halted' || s.flags.commit) return;
  const p = s.proposals.get(s.round);
  if (p === undefined) return;
  const e = s.blocks.get(hashKey(p.blockHash));
  if (e === undefined || e.exec !== 'valid') return;
  const votes = [...(s.prepares.get(s.round)?.values() ?? [])].filter((v) =>
    bytesEqual(v.blockHash, p.blockHash),
  );
  if (votes.length < s.ctx.quorum) return;
  const prepared: PreparedCertificate = {
    round: s.round,
    blockHash: p.blockHash,
    prepares: votes
      .sort((a, b) => compareBytes(a.sender, b.sender))
      .map((v) => ({ sender: v.sender, signature: v.signature })),
  };
  if (s.lock === null || s.lock.prepared.round < s.round) s.lock = { prepared, block: e.block };
  s.step = 'commit';
  if (s.selfIndex < 0) return;
  s.flags = { ...s.flags, commit: true };
  out.push({
    kind: 'sign',
    request: {
      type: 'commit',
      height: s.height,
      round: s.round,
      blockHash: p.blockHash,
      prepared,
      block: e.block,
    },
  });
}

function tryDecide(s: Draft, out: Out): void {
  if (s.step === 'committing' || s.step === 'halted') return;
  for (const [round, votes] of s.commits) {
    const byHash = new Map<string, VoteMessage[]>();
    for (const v of votes.values()) {
      const k = hashKey(v.blockHash);
      const list = byHash.get(k);
      if (list === undefined) byHash.set(k, [v]);
      else list.push(v);
    }
    for (const [k, list] of byHash) {
      if (list.length < s.ctx.quorum) continue;
      const e = s.blocks.get(k);
      if (e === undefined) {
        if (!s.missingBlockReported) {
          s.missingBlockReported = true;
          log(out, 'warn', 'COMMIT_QUORUM_FOR_UNKNOWN_BLOCK', {
            height: s.height,
            round,
            blockHash: '0x' + k,
          });
          out.push({
            kind: 'syncNeeded',
            height: s.height,
            targetHeight: s.height,
            peers: list.map((v) => v.sender),
          });
        }
        continue;
      }
      const status = ensureExecuted(s, out, e);
      if (status === 'invalid') {
        halt(
          s,
          out,
          `a quorum committed block 0x${k} at height ${s.height}, which fails local execution: ${e.reason}`,
        );
        return;
      }
      if (status !== 'valid') continue;
      const certificate: CommitCertificate = {
        height: s.height,
        round,
        blockHash: e.hash,
        signatures: list
          .sort((a, b) => compareBytes(a.sender, b.sender))
          .map((v) => ({ validator: v.sender, signature: v.signature })),
      };
      s.step = 'committing';
      s.decided = { round, blockHash: e.hash };
      out.push({ kind: 'commit', height: s.height, block: e.block, blockHash: e.hash, certificate });
      log(out, 'info', 'BLOCK_DECIDED', {
        height: s.height,
        round,
        blockHash: '0x' + k,
        signatures: list.length,
      });
      return;
    }
  }
}

function onVote(s: Draft, out: Out, from: string, v: VoteMessage, trust: Trust): void {
  const senderKey = addressKey(v.sender);
  const isPrepare = v.type === 'prepare';
  const floor = isPrepare ? s.round : s.round - s.config.maxPastRounds;
  if (v.round < floor || v.round > s.round + s.config.maxFutureRounds) {
    if (v.round < s.round && (trust !== 'none' || sigValid(s, v)))
      maybeHelp(s, out, from, senderKey, v.round);
    return;
  }
  const store = isPrepare ? s.prepares : s.commits;
  const existing = store.get(v.round)?.get(senderKey);
  if (
    existing !== undefined &&
    bytesEqual(existing.signature, v.signature) &&
    bytesEqual(existing.blockHash, v.blockHash)
  ) {
    return;
  }
  if (trust === 'none' && !sigValid(s, v)) {
    reject(out, from, 'BAD_SIGNATURE', `${v.type} signature does not verify`);
    return;
  }
  if (existing !== undefined) {
    if (!bytesEqual(existing.blockHash, v.blockHash)) {
      out.push({ kind: 'evidence', sender: v.sender, first: existing, second: v });
      log(out, 'warn', 'EQUIVOCATION', describeMessage(v));
    }
    return;
  }
  if (v.round < s.round) maybeHelp(s, out, from, senderKey, v.round);
  if (isPrepare) {
    s.prepares = setInRound(s.prepares, v.round, senderKey, v);
    if (v.round === s.round) tryCommitVote(s, out);
  } else {
    s.commits = setInRound(s.commits, v.round, senderKey, v);
    tryDecide(s, out);
  }
}

function trySkipRound(s: Draft, out: Out): void {
  const weak = weakQuorum(s);
  const higher = [...s.latestRoundChange.values()]
    .map((rc) => rc.round)
    .filter((r) => r > s.round)
    .sort((a, b) => b - a);
  if (higher.length < weak) return;
  // QBFT Alg. 3: f + 1 round changes for rounds above ours → move to the smallest round among the
  // f + 1 highest, so at least one honest validator is at or above it.
  const target = higher[weak - 1]!;
  enterRound(s, out, target);
  signRoundChange(s, out);
  afterRoundEntered(s, out);
}

function onRoundChange(s: Draft, out: Out, from: string, rc: RoundChangeMessage, trust: Trust): void {
  const senderKey = addressKey(rc.sender);
  if (rc.round === 0) {
    reject(out, from, 'BAD_ROUND_CHANGE', 'round change to round 0');
    return;
  }
  const latest = s.latestRoundChange.get(senderKey);
  const stored =
    s.roundChanges.get(rc.round)?.get(senderKey) ?? (latest?.round === rc.round ? latest : undefined);
  if (stored !== undefined && bytesEqual(stored.signature, rc.signature)) {
    if (rc.round < s.round) maybeHelp(s, out, from, senderKey, rc.round);
    return;
  }
  if (trust === 'none' && !sigValid(s, rc)) {
    reject(out, from, 'BAD_SIGNATURE', 'round change signature does not verify');
    return;
  }
  if (stored !== undefined) {
    // Two different round changes for one round: a different prepared claim, i.e. equivocation.
    out.push({ kind: 'evidence', sender: rc.sender, first: stored, second: rc });
    log(out, 'warn', 'EQUIVOCATION', describeMessage(rc));
    return;
  }
  if (rc.round < s.round) maybeHelp(s, out, from, senderKey, rc.round);
  if (rc.round < s.round - s.config.maxPastRounds) return;
  if (trust !== 'own') {
    const fault = checkRoundChange(s.ctx, rc);
    if (fault !== null) {
      reject(out, from, 'BAD_ROUND_CHANGE', fault);
      return;
    }
  }
  if (latest === undefined || rc.round > latest.round)
    s.latestRoundChange = setIn(s.latestRoundChange, senderKey, rc);
  if (rc.round <= s.round + s.config.maxFutureRounds) {
    // Past rounds are kept too: they are what a lagging peer needs (see maybeHelp).
    s.roundChanges = setInRound(s.roundChanges, rc.round, senderKey, rc);
  }
  if (rc.round === s.round) {
    updateLive(s);
    tryPropose(s, out);
  } else if (rc.round > s.round) {
    trySkipRound(s, out);
  }
}

function aheadHeights(s: ConsensusState): number[] {
  return [...s.ahead.values()].filter((h) => h > s.height).sort((a, b) => b - a);
}

function aheadPeers(s: ConsensusState): Bytes[] {
  const peers: Bytes[] = [];
  for (const [k, h] of s.ahead) {
    if (h > s.height) {
      const v = s.ctx.byAddress.get(k);
      if (v !== undefined) peers.push(v.address);
    }
  }
  return peers;
}

function noteAhead(s: Draft, out: Out, senderKey: string, height: number): void {
  if ((s.ahead.get(senderKey) ?? 0) < height) s.ahead = setIn(s.ahead, senderKey, height);
  const heights = aheadHeights(s);
  const weak = weakQuorum(s);
  if (heights.length < weak) return;
  const target = heights[weak - 1]!;
  // One height ahead is the normal race at a commit; two or more means we fell behind.
  if (target >= s.height + 2 && s.syncHintHeight < s.height) {
    s.syncHintHeight = s.height;
    out.push({ kind: 'syncNeeded', height: s.height, targetHeight: target, peers: aheadPeers(s) });
  }
}

function bufferFuture(s: Draft, out: Out, from: string, m: ConsensusMessage, senderKey: string): void {
  // Only validators of the current set are buffered: their signatures can be checked now, which
  // keeps a peer from filling the buffer under other validators' names.
  if (!s.ctx.byAddress.has(senderKey)) return;
  const inWindow = m.height <= s.height + s.config.maxFutureHeights;
  let count = 0;
  if (inWindow) {
    for (const e of s.future) {
      if (addressKey(e.message.sender) !== senderKey) continue;
      count++;
      if (
        e.message.type === m.type &&
        e.message.height === m.height &&
        e.message.round === m.round &&
        bytesEqual(e.message.signature, m.signature)
      ) {
        return;
      }
    }
  }
  if (!sigValid(s, m)) {
    reject(out, from, 'BAD_SIGNATURE', `${m.type} for height ${m.height}: signature does not verify`);
    return;
  }
  noteAhead(s, out, senderKey, m.height);
  if (inWindow && count < s.config.maxFutureMessagesPerValidator) {
    s.future = [...s.future, { from, message: m, checkedWith: toHex(s.validatorsHash) }];
  }
}

function onMessage(s: Draft, out: Out, from: string, m: ConsensusMessage, trust: Trust): void {
  if (m.height < s.height) return; // the sender is behind; block sync serves it
  const senderKey = addressKey(m.sender);
  if (m.height > s.height) {
    bufferFuture(s, out, from, m, senderKey);
    return;
  }
  if (!s.ctx.byAddress.has(senderKey)) {
    reject(
      out,
      from,
      'UNKNOWN_SENDER',
      `${m.type} from ${toHex(m.sender)}, not a validator at height ${s.height}`,
    );
    return;
  }
  if (s.step === 'committing' || s.step === 'halted') return;
  switch (m.type) {
    case 'proposal':
      onProposal(s, out, from, m, trust);
      return;
    case 'prepare':
    case 'commit':
      onVote(s, out, from, m, trust);
      return;
    case 'roundChange':
      onRoundChange(s, out, from, m, trust);
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Other inputs

function onTimeout(s: Draft, out: Out, height: number, round: number): void {
  if (height !== s.height || round !== s.round || s.step === 'committing' || s.step === 'halted') return;
  updateLive(s);
  if (s.roundLive) {
    enterRound(s, out, s.round + 1);
    signRoundChange(s, out);
    afterRoundEntered(s, out);
  } else {
    // Not live: stay, and re-broadcast our round change so the others can form the quorum; peers
    // may be helped again, since what we sent them last period may have been lost.
    s.helped = EMPTY_SET;
    const own = s.roundChanges.get(s.round)?.get(selfKey(s));
    if (own !== undefined) broadcast(out, own);
    else signRoundChange(s, out);
    out.push({
      kind: 'scheduleTimer',
      height: s.height,
      round: s.round,
      delayMs: roundTimeoutMs(s.config, s.round),
    });
  }
  // Stuck while some validator is already at a later height: the quorum may have moved on
  // without us, and only block sync brings us there.
  const heights = aheadHeights(s);
  if (heights.length > 0) {
    out.push({ kind: 'syncNeeded', height: s.height, targetHeight: heights[0]!, peers: aheadPeers(s) });
  }
}

function onExecuted(s: Draft, out: Out, height: number, blockHash: Bytes, result: ExecutionResult): void {
  if (height !== s.height) return;
  const k = hashKey(blockHash);
  const e = s.blocks.get(k);
  if (e === undefined || e.exec === 'valid' || e.exec === 'invalid') return;
  let reason = '';
  if (!result.valid) reason = result.reason;
  else if (!bytesEqual(result.txRoot, e.block.header.txRoot)) reason = 'txRoot differs from local execution';
  else if (!bytesEqual(result.stateRoot, e.block.header.stateRoot))
    reason = 'stateRoot differs from local execution';
  else if (!bytesEqual(result.receiptsRoot, e.block.header.receiptsRoot)) {
    reason = 'receiptsRoot differs from local execution';
  }
  s.blocks = setIn(s.blocks, k, { ...e, exec: reason === '' ? 'valid' : 'invalid', reason });
  if (reason !== '') {
    log(out, 'warn', 'BLOCK_FAILED_EXECUTION', { height, blockHash: '0x' + k, reason });
  }
  tryPrepare(s, out);
  tryCommitVote(s, out);
  tryDecide(s, out);
}

function onSigned(s: Draft, out: Out, outcome: SignOutcome): void {
  if (!outcome.ok) {
    log(out, 'warn', 'SIGN_REFUSED', {
      code: outcome.error.code,
      type: outcome.request.type,
      height: outcome.request.height,
      round: outcome.request.round,
      reason: outcome.error.message,
    });
    return;
  }
  const m = outcome.message;
  broadcast(out, m);
  if (m.height !== s.height || s.step === 'committing' || s.step === 'halted') return;
  onMessage(s, out, '', m, 'own');
}

function onCommitted(s: Draft, out: Out, next: HeightStart): void {
  if (next.height <= s.height) {
    log(out, 'debug', 'STALE_COMMITTED', { height: next.height, current: s.height });
    return;
  }
  const buffered = s.future;
  const fresh = freshHeight(s.config, next, s.nowMs);
  fresh.ahead = s.ahead;
  Object.assign(s, fresh);
  s.future = buffered.filter((e) => e.message.height > next.height);
  log(out, 'info', 'HEIGHT_STARTED', { height: next.height });
  enterRound(s, out, 0);
  tryPropose(s, out);
  const checked = toHex(s.validatorsHash);
  for (const e of buffered) {
    if (e.message.height === next.height)
      onMessage(s, out, e.from, e.message, e.checkedWith === checked ? 'signature' : 'none');
  }
}

// ---------------------------------------------------------------------------------------------
// Entry points

/**
 * Creates the state for `start.height` and returns the first outputs (round timer, and a build
 * request if this node proposes round 0). After a restart, pass the safety module's record: the
 * machine resumes at the round it last signed in, re-announces its round change if that was its
 * last act, and restores its lock, so the lock survives crashes (QBFT safety needs it).
 */
export function startConsensus(
  options: ConsensusOptions,
  start: HeightStart,
  restored: SafetyRecord | null = null,
  nowMs = 0,
): StepResult {
  const config = resolveConsensusConfig(options);
  const s = freshHeight(config, start, nowMs);
  const out: Out = [];
  if (restored !== null && restored.height === start.height) {
    const resumedAfterRoundChange = restored.step === SignStep.roundChange;
    const round = resumedAfterRoundChange ? restored.round + 1 : restored.round;
    if (restored.lock !== null && restored.lock.height === start.height) {
      s.lock = { prepared: restored.lock.prepared, block: restored.lock.block };
      addBlock(s, restored.lock.prepared.blockHash, restored.lock.block, 'unknown');
    }
    enterRound(s, out, round);
    // Having signed a proposal, prepare or commit in this round proves it was justified (live).
    if (!resumedAfterRoundChange) {
      s.roundLive = true;
      // Never build a second, different proposal for a round we already proposed in.
      s.flags = { ...s.flags, build: true, proposal: true };
    }
    log(out, 'info', 'RESUMED', { height: start.height, round, step: restored.step });
    if (resumedAfterRoundChange) signRoundChange(s, out);
    afterRoundEntered(s, out);
  } else {
    if (restored !== null && restored.height > start.height) {
      log(out, 'warn', 'SAFETY_RECORD_AHEAD_OF_CHAIN', {
        recordHeight: restored.height,
        chainHeight: start.height - 1,
      });
    }
    enterRound(s, out, 0);
    tryPropose(s, out);
  }
  return { state: s, outputs: out };
}

/**
 * The consensus transition function: pure, synchronous and total. Returns the next state and the
 * outputs to perform in order. Never throws on peer input; a state it cannot continue from (a
 * quorum committed a block that fails local execution) becomes step `halted`. It throws only on a
 * driver bug: a `committed` input whose HeightStart has no validators or a bad height.
 */
export function step(state: ConsensusState, input: ConsensusInput): StepResult {
  const s: Draft = { ...state };
  const out: Out = [];
  switch (input.kind) {
    case 'message': {
      const decoded = decodeConsensusMessage(input.bytes, s.config.maxMessageBytes);
      if (!decoded.ok) reject(out, input.from, 'MALFORMED_MESSAGE', decoded.error.message);
      else onMessage(s, out, input.from, decoded.message, 'none');
      break;
    }
    case 'decoded':
      onMessage(s, out, input.from, input.message, 'none');
      break;
    case 'timeout':
      onTimeout(s, out, input.height, input.round);
      break;
    case 'executed':
      onExecuted(s, out, input.height, input.blockHash, input.result);
      break;
    case 'proposalBuilt':
      onProposalBuilt(s, out, input.height, input.round, input.block);
      break;
    case 'signed':
      onSigned(s, out, input.outcome);
      break;
    case 'committed':
      onCommitted(s, out, input.next);
      break;
    case 'clock':
      if (Number.isSafeInteger(input.nowMs) && input.nowMs > s.nowMs) s.nowMs = input.nowMs;
      break;
  }
  return { state: s, outputs: out };
}

/** The proposer of the state's current round. */
export function currentProposer(state: ConsensusState): Validator {
  return proposerOf(state.ctx.validators, state.height, state.round);
}
