// Goal: an operator asking "why is it stalled?" sees the height, round, step, proposer, who voted
// what, who is missing and the quorum arithmetic, with a one-line explanation.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { hashHeader } from '../../core/types.ts';
import { encodeConsensusMessage, type ConsensusMessage } from '../../consensus/messages.ts';
import { describeConsensus, formatDiagnostics } from '../../consensus/diagnostics.ts';
import {
  startConsensus,
  step,
  type ConsensusInput,
  type ConsensusState,
} from '../../consensus/stateMachine.ts';
import { proposerOf } from '../../consensus/validatorSet.ts';
import {
  blockFor,
  executionOf,
  keyOf,
  optionsFor,
  proposal,
  roundChange,
  startOf,
  validatorsOf,
  vote,
} from './helpers.ts';

const vs = validatorsOf(4);
const self = vs[3]!;
const msg = (m: ConsensusMessage): ConsensusInput => ({
  kind: 'message',
  from: 'p',
  bytes: encodeConsensusMessage(m),
});

function feed(state: ConsensusState, ...inputs: ConsensusInput[]): ConsensusState {
  for (const i of inputs) state = step(state, i).state;
  return state;
}

describe('describeConsensus', () => {
  const block = blockFor(vs, 1, 0);
  const hash = hashHeader(block.header);
  const proposer = proposerOf(vs, 1, 0);

  it('at start: waiting for the round-0 proposer, with the quorum arithmetic', () => {
    const d = describeConsensus(startConsensus(optionsFor(self), startOf(vs)).state);
    expect(d).toMatchObject({
      height: 1,
      round: 0,
      step: 'propose',
      validators: 4,
      faultTolerance: 1,
      quorum: 3,
      roundSkipThreshold: 2,
    });
    expect(d.proposer).toBe(toHex(proposer.address));
    expect(d.isProposer).toBe(false);
    expect(d.waitingFor).toBe(`waiting for the proposal of round 0 from ${toHex(proposer.address)}`);
  });

  it('shows who prepared what and who is missing', () => {
    let s = startConsensus(optionsFor(self), startOf(vs)).state;
    s = feed(
      s,
      msg(proposal(keyOf(proposer), 1, 0, block, hash)),
      { kind: 'executed', height: 1, blockHash: hash, result: executionOf(block) },
      msg(vote(keyOf(vs[0]!), 'prepare', 1, 0, hash)),
    );
    const d = describeConsensus(s);
    expect(d.step).toBe('prepare');
    expect(d.proposal).toEqual({ blockHash: toHex(hash), execution: 'valid', reason: '' });
    // Our own prepare is not counted until the safety module signed it (no driver here).
    expect(d.prepares.count).toBe(1);
    expect(d.prepares.needed).toBe(3);
    expect(d.prepares.missing).toEqual([vs[1]!, vs[2]!, vs[3]!].map((v) => toHex(v.address)));
    expect(d.votes.find((v) => v.address === toHex(vs[0]!.address))?.prepare).toBe(toHex(hash));
    expect(d.waitingFor).toMatch(/^1\/3 prepares for 0x[0-9a-f]{64}; missing: /);
    const text = formatDiagnostics(d);
    expect(text).toContain('height 1  round 0  step prepare');
    expect(text).toContain('validators 4  f=1  quorum=3');
    expect(text).toContain(`waiting for: ${d.waitingFor}`);
  });

  it('in a later round without quorum, lists the missing round changes; shows pending execution', () => {
    let s = startConsensus(optionsFor(self), startOf(vs)).state;
    s = feed(s, { kind: 'timeout', height: 1, round: 0 }, msg(roundChange(keyOf(vs[0]!), 1, 1)));
    const d = describeConsensus(s);
    expect(d.round).toBe(1);
    expect(d.roundChanges.count).toBe(1);
    expect(d.roundChanges.missing).toHaveLength(3);
    expect(d.waitingFor).toMatch(/^round 1: 1\/3 round changes; missing: /);
    expect(d.votes.find((v) => v.address === toHex(vs[0]!.address))?.latestRoundChangeRound).toBe(1);
    let p = startConsensus(optionsFor(self), startOf(vs)).state;
    p = feed(p, msg(proposal(keyOf(proposer), 1, 0, block, hash)));
    expect(describeConsensus(p).waitingFor).toBe(`proposal ${toHex(hash)} execution is pending`);
  });

  it('says when other validators are at higher heights', () => {
    let s = startConsensus(optionsFor(self), startOf(vs)).state;
    const h = new Uint8Array(32).fill(1);
    s = feed(s, msg(vote(keyOf(vs[0]!), 'prepare', 2, 0, h)), msg(vote(keyOf(vs[1]!), 'prepare', 2, 0, h)));
    const d = describeConsensus(s);
    expect(d.futureMessagesBuffered).toBe(2);
    expect(d.waitingFor).toMatch(/^2 validators are at higher heights \(block sync needed\); /);
  });
});
