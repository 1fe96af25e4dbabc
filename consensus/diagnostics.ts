import { bytesEqual, toHex } from '../core/bytes.ts';
import { addressKey } from './justification.ts';
import type { ConsensusState, ConsensusStep } from './stateMachine.ts';
import { faultToleranceOf, proposerOf } from './validatorSet.ts';

/**
 * "Why is it stalled?": a plain-data picture of one node's consensus state — where it is, who
 * proposes, who voted what in the current round, who is missing, and the quorum arithmetic —
 * for the CLI, the RPC admin API and logs.
 */

/** One validator's votes as this node has seen them at the current height. */
export interface ValidatorVotes {
  readonly address: string;
  readonly isSelf: boolean;
  /** Block hash this validator PREPAREd in the current round, or null. */
  readonly prepare: string | null;
  /** Block hash this validator COMMITted in the current round, or null. */
  readonly commit: string | null;
  /** True when its ROUND-CHANGE for the current round is held. */
  readonly roundChange: boolean;
  /** Highest round this validator has asked for by ROUND-CHANGE at this height, or null. */
  readonly latestRoundChangeRound: number | null;
  /** Highest height this validator has been seen at beyond ours, or null. */
  readonly aheadAtHeight: number | null;
}

/** Counts toward one quorum, and who has not contributed. */
export interface Tally {
  /** The block hash being counted, or null when nothing is (no accepted proposal). */
  readonly blockHash: string | null;
  readonly count: number;
  readonly needed: number;
  readonly missing: readonly string[];
}

/** The picture returned by {@link describeConsensus}. */
export interface ConsensusDiagnostics {
  readonly height: number;
  readonly round: number;
  readonly step: ConsensusStep;
  readonly self: string;
  readonly isValidator: boolean;
  readonly proposer: string;
  readonly isProposer: boolean;
  readonly validators: number;
  /** Faulty validators tolerated: ⌊(n − 1) / 3⌋. */
  readonly faultTolerance: number;
  /** Signatures a quorum needs (2f + 1). */
  readonly quorum: number;
  /** Round changes from distinct validators for higher rounds that make this node jump (f + 1). */
  readonly roundSkipThreshold: number;
  readonly roundLive: boolean;
  readonly proposal: {
    readonly blockHash: string;
    readonly execution: string;
    readonly reason: string;
  } | null;
  readonly lock: { readonly round: number; readonly blockHash: string } | null;
  readonly decided: { readonly round: number; readonly blockHash: string } | null;
  readonly prepares: Tally;
  readonly commits: Tally;
  readonly roundChanges: Tally;
  readonly votes: readonly ValidatorVotes[];
  readonly futureMessagesBuffered: number;
  readonly halted: string | null;
  /** One sentence: what this node is waiting for. */
  readonly waitingFor: string;
}

/** Describes the state for humans and tools. Pure; cheap enough to call on every request. */
export function describeConsensus(s: ConsensusState): ConsensusDiagnostics {
  const validators = s.ctx.validators;
  const n = validators.length;
  const quorum = s.ctx.quorum;
  const proposer = proposerOf(validators, s.height, s.round);
  const proposal = s.proposals.get(s.round) ?? null;
  const entry = proposal === null ? undefined : s.blocks.get(addressKey(proposal.blockHash));
  const prepares = s.prepares.get(s.round);
  const commits = s.commits.get(s.round);
  const rcs = s.roundChanges.get(s.round);
  const votes: ValidatorVotes[] = validators.map((v) => {
    const k = addressKey(v.address);
    const p = prepares?.get(k);
    const c = commits?.get(k);
    const ahead = s.ahead.get(k);
    return {
      address: toHex(v.address),
      isSelf: bytesEqual(v.address, s.config.self),
      prepare: p === undefined ? null : toHex(p.blockHash),
      commit: c === undefined ? null : toHex(c.blockHash),
      roundChange: rcs?.has(k) === true,
      latestRoundChangeRound: s.latestRoundChange.get(k)?.round ?? null,
      aheadAtHeight: ahead !== undefined && ahead > s.height ? ahead : null,
    };
  });
  const target = proposal === null ? null : toHex(proposal.blockHash);
  const tally = (pick: (v: ValidatorVotes) => string | null): Tally => ({
    blockHash: target,
    count: target === null ? 0 : votes.filter((v) => pick(v) === target).length,
    needed: quorum,
    missing: votes.filter((v) => target === null || pick(v) !== target).map((v) => v.address),
  });
  const prepareTally = tally((v) => v.prepare);
  const commitTally = tally((v) => v.commit);
  const rcTally: Tally = {
    blockHash: null,
    count: rcs?.size ?? 0,
    needed: quorum,
    missing: votes.filter((v) => !v.roundChange).map((v) => v.address),
  };
  const d = {
    height: s.height,
    round: s.round,
    step: s.step,
    self: toHex(s.config.self),
    isValidator: s.selfIndex >= 0,
    proposer: toHex(proposer.address),
    isProposer: bytesEqual(proposer.address, s.config.self),
    validators: n,
    faultTolerance: faultToleranceOf(n),
    quorum,
    roundSkipThreshold: faultToleranceOf(n) + 1,
    roundLive: s.roundLive,
    proposal:
      proposal === null
        ? null
        : {
            blockHash: toHex(proposal.blockHash),
            execution: entry?.exec ?? 'unknown',
            reason: entry?.reason ?? '',
          },
    lock:
      s.lock === null ? null : { round: s.lock.prepared.round, blockHash: toHex(s.lock.prepared.blockHash) },
    decided: s.decided === null ? null : { round: s.decided.round, blockHash: toHex(s.decided.blockHash) },
    prepares: prepareTally,
    commits: commitTally,
    roundChanges: rcTally,
    votes,
    futureMessagesBuffered: s.future.length,
    halted: s.halted,
  };
  return { ...d, waitingFor: explain(d) };
}

function explain(d: Omit<ConsensusDiagnostics, 'waitingFor'>): string {
  const missing = (t: Tally): string => (t.missing.length === 0 ? 'none' : t.missing.join(', '));
  const behind = d.votes.filter((v) => v.aheadAtHeight !== null).length;
  const prefix =
    behind >= d.roundSkipThreshold ? `${behind} validators are at higher heights (block sync needed); ` : '';
  switch (d.step) {
    case 'halted':
      return `halted: ${d.halted ?? 'unknown reason'}`;
    case 'committing':
      return `${prefix}decided; waiting for the driver to persist height ${d.height}`;
    case 'commit':
      return `${prefix}prepared; ${d.commits.count}/${d.quorum} commits for ${d.commits.blockHash}; missing: ${missing(d.commits)}`;
    case 'prepare':
      if (d.proposal !== null && d.proposal.execution !== 'valid') {
        return `${prefix}proposal ${d.proposal.blockHash} execution is ${d.proposal.execution}${d.proposal.reason === '' ? '' : ` (${d.proposal.reason})`}`;
      }
      return `${prefix}${d.prepares.count}/${d.quorum} prepares for ${d.prepares.blockHash}; missing: ${missing(d.prepares)}`;
    case 'propose':
      if (d.round > 0 && d.roundChanges.count < d.quorum) {
        return `${prefix}round ${d.round}: ${d.roundChanges.count}/${d.quorum} round changes; missing: ${missing(d.roundChanges)}`;
      }
      return d.isProposer
        ? `${prefix}building this node's proposal for round ${d.round}`
        : `${prefix}waiting for the proposal of round ${d.round} from ${d.proposer}`;
  }
}

/** Multi-line text of a diagnostics picture, for the CLI. */
export function formatDiagnostics(d: ConsensusDiagnostics): string {
  const lines = [
    `height ${d.height}  round ${d.round}  step ${d.step}${d.roundLive ? '' : ' (round not live yet)'}`,
    `proposer ${d.proposer}${d.isProposer ? ' (this node)' : ''}`,
    `validators ${d.validators}  f=${d.faultTolerance}  quorum=${d.quorum}  round-skip=${d.roundSkipThreshold}`,
    `proposal ${d.proposal === null ? 'none' : `${d.proposal.blockHash} (${d.proposal.execution})`}`,
    `lock ${d.lock === null ? 'none' : `round ${d.lock.round} ${d.lock.blockHash}`}`,
    `prepares ${d.prepares.count}/${d.quorum}  commits ${d.commits.count}/${d.quorum}  round changes ${d.roundChanges.count}/${d.quorum}`,
    'validator                                   prepare  commit  rc  latest-rc  ahead',
    ...d.votes.map(
      (v) =>
        `${v.address}${v.isSelf ? '*' : ' '} ${v.prepare === null ? '   -   ' : v.prepare.slice(0, 7)}  ${v.commit === null ? '   -  ' : v.commit.slice(0, 6)}  ${v.roundChange ? 'y ' : '- '}  ${String(v.latestRoundChangeRound ?? '-').padStart(9)}  ${v.aheadAtHeight ?? '-'}`,
    ),
    `waiting for: ${d.waitingFor}`,
  ];
  return lines.join('\n');
}
