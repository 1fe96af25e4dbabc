// Goal: the consensus state machine commits one certified block per height, votes only for blocks
// it re-executed, carries locks across rounds, rejects bad peer input without changing state, and
// never mutates the state it was given.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import {
  checkCertificate,
  hashHeader,
  hashValidators,
  validatorOf,
  type Validator,
} from '../../core/types.ts';
import { sha256 } from '../../core/hash.ts';
import { keyPairFromSecret } from '../../core/keys.ts';
import { encodeConsensusMessage, type ConsensusMessage } from '../../consensus/messages.ts';
import { claimOf } from '../../consensus/justification.ts';
import {
  createKeySigner,
  createMemorySafetyStore,
  openSafetyRules,
  type SafetyRules,
} from '../../consensus/safetyRules.ts';
import {
  startConsensus,
  step,
  type ConsensusInput,
  type ConsensusOutput,
  type ConsensusState,
} from '../../consensus/stateMachine.ts';
import {
  applyValidatorChange,
  createValidatorSchedule,
  proposerOf,
  validatorsAt,
} from '../../consensus/validatorSet.ts';
import { Cluster } from './cluster.ts';
import {
  CHAIN,
  GENESIS_TIME,
  KEYS,
  blockFor,
  executionOf,
  fingerprint,
  keyOf,
  optionsFor,
  outputsOf,
  preparedCertificate,
  proposal,
  roundChange,
  startOf,
  validatorsOf,
  vote,
} from './helpers.ts';

const vs = validatorsOf(4);
const keyAt = (i: number) => keyOf(vs[i]!);
const proposerIndex = (height: number, round: number) => vs.indexOf(proposerOf(vs, height, round));

/** One node driven directly: a real safety module answers its sign requests. */
class Solo {
  state: ConsensusState;
  readonly all: ConsensusOutput[] = [];
  private readonly rules: SafetyRules;
  private readonly autoExecute: boolean;

  private constructor(state: ConsensusState, rules: SafetyRules, autoExecute: boolean) {
    this.state = state;
    this.rules = rules;
    this.autoExecute = autoExecute;
  }

  static async create(
    index: number,
    opts: { autoExecute?: boolean; validators?: readonly Validator[] } = {},
  ) {
    const set = opts.validators ?? vs;
    const self =
      index < 0 ? validatorOf(keyPairFromSecret(sha256(Buffer.from('observer'))).publicKey) : set[index]!;
    const rules = await openSafetyRules(
      { chainId: CHAIN },
      {
        signer: createKeySigner(index < 0 ? new Uint8Array(32).fill(7) : keyOf(self).secretKey),
        store: createMemorySafetyStore(),
      },
    );
    const r = startConsensus(optionsFor(self), startOf(set));
    const solo = new Solo(r.state, rules, opts.autoExecute ?? true);
    await solo.perform(r.outputs, []);
    return solo;
  }

  private async perform(outputs: readonly ConsensusOutput[], pending: ConsensusInput[]): Promise<void> {
    for (const o of outputs) {
      this.all.push(o);
      if (o.kind === 'sign') pending.push({ kind: 'signed', outcome: await this.rules.sign(o.request) });
      if (o.kind === 'execute' && this.autoExecute) {
        pending.push({
          kind: 'executed',
          height: o.height,
          blockHash: o.blockHash,
          result: executionOf(o.block),
        });
      }
    }
  }

  /** Feeds inputs through the driver loop; returns every output produced. */
  async feed(...inputs: ConsensusInput[]): Promise<ConsensusOutput[]> {
    const start = this.all.length;
    const pending = [...inputs];
    while (pending.length > 0) {
      const r = step(this.state, pending.shift()!);
      this.state = r.state;
      await this.perform(r.outputs, pending);
    }
    return this.all.slice(start);
  }

  msg(m: ConsensusMessage, from = 'peer'): ConsensusInput {
    return { kind: 'message', from, bytes: encodeConsensusMessage(m) };
  }
}

const block0 = blockFor(vs, 1, 0);
const hash0 = hashHeader(block0.header);
const proposal0 = proposal(keyAt(proposerIndex(1, 0)), 1, 0, block0, hash0);
// Node 3 is never the proposer of (1, 0) with four validators: proposer index is (1 + 0) % 4 = 1.
const REPLICA = 3;

describe('a four-validator cluster', () => {
  it('commits the same blocks with valid commit certificates on a perfect network', async () => {
    const c = await Cluster.create(vs);
    await c.runUntilHeight(5);
    expect(c.nodes.every((n) => n.head.height >= 5)).toBe(true);
    expect(c.agree()).toBe(true);
    for (const n of c.nodes) {
      for (const { block, hash, certificate } of n.commits) {
        expect(checkCertificate(certificate, CHAIN, hash, block.header.height, vs)).toBeNull();
        expect(certificate.round).toBe(0);
      }
    }
    const heights = c.nodes[0]!.commits.map((x) => x.block.header.height);
    expect(heights).toEqual([1, 2, 3, 4, 5]);
  });

  it('changes round past a silent proposer and commits in round 1', async () => {
    const c = await Cluster.create(vs, {}, { [proposerIndex(1, 0)]: ['proposal'] });
    await c.runUntilHeight(1);
    expect(c.agree()).toBe(true);
    const first = c.nodes[0]!.commits[0]!;
    expect(first.certificate.round).toBe(1);
    expect(Buffer.compare(first.block.header.proposer, proposerOf(vs, 1, 1).address)).toBe(0);
  });

  it('carries on across a validator-set change: a fifth validator joins at height 3', async () => {
    const five = validatorsOf(5);
    const change = applyValidatorChange(
      createValidatorSchedule(vs),
      { effectiveHeight: 3, validators: five },
      { currentHeight: 0, reachable: new Set(five.map((v) => toHex(v.address))), minDelayHeights: 2 },
    );
    if (!change.ok) throw change.error;
    // All five nodes run; the fifth is an observer until height 3.
    const c = await Cluster.create(five, {}, {}, change.schedule);
    await c.runUntilHeight(5);
    expect(c.agree()).toBe(true);
    const joiner = toHex(five[4]!.address);
    for (const { block, hash, certificate } of c.nodes[0]!.commits) {
      const h = block.header.height;
      const set = validatorsAt(change.schedule, h);
      expect(checkCertificate(certificate, CHAIN, hash, h, set)).toBeNull();
      expect(Buffer.compare(block.header.validatorsHash, hashValidators(set))).toBe(0);
      const signers = certificate.signatures.map((x) => toHex(x.validator));
      if (h < 3) expect(signers).not.toContain(joiner);
    }
    // The joiner signs once it is a validator, and never before.
    const joinerSigns = c.nodes[4]!.outputs.filter((o) => o.kind === 'sign').map((o) =>
      o.kind === 'sign' ? o.request.height : 0,
    );
    expect(joinerSigns.length).toBeGreaterThan(0);
    expect(Math.min(...joinerSigns)).toBeGreaterThanOrEqual(3);
  });

  it('works with seven validators (f = 2)', async () => {
    const seven = validatorsOf(7);
    const c = await Cluster.create(seven);
    await c.runUntilHeight(3);
    expect(c.agree()).toBe(true);
    for (const { block, hash, certificate } of c.nodes[0]!.commits) {
      expect(checkCertificate(certificate, CHAIN, hash, block.header.height, seven)).toBeNull();
      expect(certificate.signatures.length).toBeGreaterThanOrEqual(5);
    }
  });
});

describe('step', () => {
  it('never mutates the state it is given', async () => {
    const solo = await Solo.create(REPLICA, { autoExecute: false });
    const inputs: ConsensusInput[] = [
      solo.msg(proposal0),
      { kind: 'executed', height: 1, blockHash: hash0, result: executionOf(block0) },
      solo.msg(vote(KEYS[0]!, 'prepare', 1, 0, hash0)),
      solo.msg(vote(KEYS[1]!, 'prepare', 1, 0, hash0)),
      { kind: 'timeout', height: 1, round: 0 },
      solo.msg(roundChange(KEYS[0]!, 1, 1)),
      { kind: 'message', from: 'x', bytes: Uint8Array.from([1, 2, 3]) },
      { kind: 'clock', nowMs: 5000 },
    ];
    let state = solo.state;
    for (const input of inputs) {
      const before = fingerprint(state);
      const r = step(state, input);
      expect(fingerprint(state)).toBe(before);
      state = r.state;
    }
  });

  it('rejects bad peer input with a reason and changes nothing', async () => {
    const solo = await Solo.create(REPLICA);
    const before = fingerprint(solo.state);
    const wrongProposer = proposal(keyAt(0), 1, 0, block0, hash0);
    const badSig = { ...proposal0, signature: new Uint8Array(64).fill(1) };
    const stranger = vote(KEYS[6]!, 'prepare', 1, 0, hash0);
    const badPrev = blockFor(vs, 1, 0, [Uint8Array.from([1])], { prevHash: new Uint8Array(32).fill(3) });
    const badBlock = proposal(keyAt(proposerIndex(1, 0)), 1, 0, badPrev, hashHeader(badPrev.header));
    const round1 = blockFor(vs, 1, 1);
    const unjustified = proposal(keyAt(proposerIndex(1, 1)), 1, 1, round1, hashHeader(round1.header));
    const cases: [ConsensusInput, string][] = [
      [{ kind: 'message', from: 'p', bytes: Uint8Array.from([0xc1]) }, 'MALFORMED_MESSAGE'],
      [solo.msg(wrongProposer), 'WRONG_PROPOSER'],
      [solo.msg(badSig), 'BAD_SIGNATURE'],
      [solo.msg(stranger), 'UNKNOWN_SENDER'],
      [solo.msg(badBlock), 'BAD_BLOCK'],
      [solo.msg(unjustified), 'BAD_JUSTIFICATION'],
      [solo.msg(roundChange(KEYS[0]!, 1, 0)), 'BAD_ROUND_CHANGE'],
    ];
    for (const [input, code] of cases) {
      const r = step(solo.state, input);
      const rejected = outputsOf(r.outputs, 'rejected');
      expect(rejected.map((x) => x.code)).toEqual([code]);
      expect(rejected[0]!.from).toBe(input.kind === 'message' ? input.from : '');
      expect(r.outputs.filter((o) => o.kind !== 'rejected')).toEqual([]);
      expect(fingerprint(r.state)).toBe(before);
    }
  });
});

describe('execute, then vote', () => {
  it('asks for execution and votes PREPARE only when the roots match the header', async () => {
    const solo = await Solo.create(REPLICA, { autoExecute: false });
    const out = await solo.feed(solo.msg(proposal0));
    expect(outputsOf(out, 'execute').map((o) => Buffer.from(o.blockHash).toString('hex'))).toEqual([
      Buffer.from(hash0).toString('hex'),
    ]);
    expect(outputsOf(out, 'sign')).toEqual([]);
    const good = await solo.feed({
      kind: 'executed',
      height: 1,
      blockHash: hash0,
      result: executionOf(block0),
    });
    const signs = outputsOf(good, 'sign');
    expect(signs.map((s) => s.request.type)).toEqual(['prepare']);
    expect(outputsOf(good, 'broadcast').map((b) => b.message.type)).toEqual(['prepare']);
  });

  it('does not vote when its own execution disagrees, and says why', async () => {
    const solo = await Solo.create(REPLICA, { autoExecute: false });
    await solo.feed(solo.msg(proposal0));
    const wrong = executionOf(blockFor(vs, 1, 0, [Uint8Array.from([9, 9])]));
    const out = await solo.feed({ kind: 'executed', height: 1, blockHash: hash0, result: wrong });
    expect(outputsOf(out, 'sign')).toEqual([]);
    const log = outputsOf(out, 'log').find((l) => l.event === 'BLOCK_FAILED_EXECUTION');
    expect(log?.fields['reason']).toMatch(/differs from local execution/);
    const invalid = await (
      await Solo.create(REPLICA, { autoExecute: false })
    ).feed(solo.msg(proposal0), {
      kind: 'executed',
      height: 1,
      blockHash: hash0,
      result: { valid: false, reason: 'bad tx' },
    });
    expect(outputsOf(invalid, 'sign')).toEqual([]);
  });
});

describe('prepare and commit quorums', () => {
  it('locks and signs COMMIT on a prepare quorum, then commits with a valid certificate', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed(solo.msg(proposal0));
    const prepared = await solo.feed(
      solo.msg(vote(keyAt(0), 'prepare', 1, 0, hash0)),
      solo.msg(vote(keyAt(1), 'prepare', 1, 0, hash0)),
    );
    const commitSign = outputsOf(prepared, 'sign').find((s) => s.request.type === 'commit');
    expect(commitSign?.request.type === 'commit' && commitSign.request.prepared.prepares.length).toBe(3);
    expect(solo.state.lock?.prepared.round).toBe(0);
    expect(solo.state.step).toBe('commit');
    const decided = await solo.feed(
      solo.msg(vote(keyAt(0), 'commit', 1, 0, hash0)),
      solo.msg(vote(keyAt(1), 'commit', 1, 0, hash0)),
    );
    const commit = outputsOf(decided, 'commit');
    expect(commit).toHaveLength(1);
    expect(checkCertificate(commit[0]!.certificate, CHAIN, hash0, 1, vs)).toBeNull();
    expect(solo.state.step).toBe('committing');
    // Late votes for the decided height change nothing.
    expect(await solo.feed(solo.msg(vote(keyAt(2), 'commit', 1, 0, hash0)))).toEqual([]);
  });

  it('does not count two votes from one validator, and reports its equivocation', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed(solo.msg(proposal0));
    const other = new Uint8Array(32).fill(5);
    const out = await solo.feed(
      solo.msg(vote(keyAt(0), 'prepare', 1, 0, hash0)),
      solo.msg(vote(keyAt(0), 'prepare', 1, 0, other)),
    );
    expect(outputsOf(out, 'evidence')).toHaveLength(1);
    expect(solo.state.step).toBe('prepare');
    const again = await solo.feed(solo.msg(vote(keyAt(0), 'prepare', 1, 0, hash0)));
    expect(outputsOf(again, 'sign')).toEqual([]);
  });

  it('reports an equivocating proposer and keeps the first proposal', async () => {
    const solo = await Solo.create(REPLICA);
    const blockX = blockFor(vs, 1, 0, [Uint8Array.from([0x58])]);
    const second = proposal(keyAt(proposerIndex(1, 0)), 1, 0, blockX, hashHeader(blockX.header));
    await solo.feed(solo.msg(proposal0));
    const out = await solo.feed(solo.msg(second));
    expect(outputsOf(out, 'evidence')).toHaveLength(1);
    expect(Buffer.compare(solo.state.proposals.get(0)!.blockHash, hash0)).toBe(0);
  });

  it('halts loudly when a quorum commits a block that fails local execution', async () => {
    const solo = await Solo.create(REPLICA, { autoExecute: false });
    await solo.feed(solo.msg(proposal0), {
      kind: 'executed',
      height: 1,
      blockHash: hash0,
      result: { valid: false, reason: 'nondeterminism' },
    });
    const out = await solo.feed(...[0, 1, 2].map((i) => solo.msg(vote(keyAt(i), 'commit', 1, 0, hash0))));
    expect(outputsOf(out, 'commit')).toEqual([]);
    expect(solo.state.step).toBe('halted');
    expect(outputsOf(out, 'log').some((l) => l.level === 'error' && l.event === 'CONSENSUS_HALTED')).toBe(
      true,
    );
  });
});

describe('round changes', () => {
  it('on timeout moves to round 1 and signs a ROUND-CHANGE carrying its prepared certificate', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed(
      solo.msg(proposal0),
      ...[0, 1].map((i) => solo.msg(vote(keyAt(i), 'prepare', 1, 0, hash0))),
    );
    const out = await solo.feed({ kind: 'timeout', height: 1, round: 0 });
    expect(solo.state.round).toBe(1);
    const rc = outputsOf(out, 'broadcast').find((b) => b.message.type === 'roundChange')?.message;
    expect(rc?.type === 'roundChange' && rc.prepared?.round).toBe(0);
    expect(rc?.type === 'roundChange' && Buffer.compare(rc.prepared!.blockHash, hash0)).toBe(0);
    expect(outputsOf(out, 'scheduleTimer').map((t) => [t.round, t.delayMs])).toEqual([[1, 1500]]);
  });

  it('as the new proposer, re-proposes the highest prepared block reported by the round-change quorum', async () => {
    const p1 = proposerIndex(1, 1);
    const solo = await Solo.create(p1);
    await solo.feed({ kind: 'timeout', height: 1, round: 0 });
    const cert = preparedCertificate([keyAt(0), keyAt(1), keyAt(3)], 1, 0, hash0);
    const others = [0, 1, 2, 3].filter((i) => i !== p1).slice(0, 2);
    const out = await solo.feed(
      solo.msg(roundChange(keyAt(others[0]!), 1, 1, cert, block0)),
      solo.msg(roundChange(keyAt(others[1]!), 1, 1)),
    );
    expect(outputsOf(out, 'buildProposal')).toEqual([]);
    const sent = outputsOf(out, 'broadcast').find((b) => b.message.type === 'proposal')?.message;
    expect(sent?.type).toBe('proposal');
    if (sent?.type !== 'proposal') return;
    expect(Buffer.compare(sent.blockHash, hash0)).toBe(0);
    expect(sent.justification?.prepared?.round).toBe(0);
    expect(sent.justification?.roundChanges.length).toBe(3);
  });

  it('as the new proposer with nothing prepared, asks the driver to build a fresh block', async () => {
    const p1 = proposerIndex(1, 1);
    const solo = await Solo.create(p1);
    await solo.feed({ kind: 'timeout', height: 1, round: 0 });
    const others = [0, 1, 2, 3].filter((i) => i !== p1);
    const out = await solo.feed(...others.slice(0, 2).map((i) => solo.msg(roundChange(keyAt(i), 1, 1))));
    const build = outputsOf(out, 'buildProposal');
    expect(build.map((b) => [b.height, b.round, b.minTimestamp])).toEqual([[1, 1, GENESIS_TIME + 1]]);
  });

  it('a replica accepts a justified proposal for a later round and jumps to it', async () => {
    const solo = await Solo.create(REPLICA);
    const blockR2 = blockFor(vs, 1, 2);
    const rcs = [0, 1, 2].map((i) => roundChange(keyAt(i), 1, 2));
    const p = proposal(keyAt(proposerIndex(1, 2)), 1, 2, blockR2, hashHeader(blockR2.header), {
      roundChanges: rcs.map(claimOf),
      prepared: null,
    });
    const out = await solo.feed(solo.msg(p));
    expect(solo.state.round).toBe(2);
    expect(outputsOf(out, 'broadcast').map((b) => b.message.type)).toEqual(['prepare']);
  });

  it('jumps on f + 1 round changes for higher rounds (to the lowest of them)', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed(solo.msg(roundChange(keyAt(0), 1, 5)));
    expect(solo.state.round).toBe(0);
    const out = await solo.feed(solo.msg(roundChange(keyAt(1), 1, 3)));
    expect(solo.state.round).toBe(3);
    expect(outputsOf(out, 'broadcast').map((b) => [b.message.type, b.message.round])).toEqual([
      ['roundChange', 3],
    ]);
  });

  it('stays in a round nobody else reached and re-broadcasts its round change', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed({ kind: 'timeout', height: 1, round: 0 });
    expect(solo.state.round).toBe(1);
    const out = await solo.feed({ kind: 'timeout', height: 1, round: 1 });
    expect(solo.state.round).toBe(1);
    expect(outputsOf(out, 'broadcast').map((b) => [b.message.type, b.message.round])).toEqual([
      ['roundChange', 1],
    ]);
    expect(outputsOf(out, 'sign')).toEqual([]);
    expect(outputsOf(out, 'scheduleTimer').map((t) => [t.round, t.delayMs])).toEqual([[1, 1500]]);
    // Once the round has a quorum it is live, and the next timeout moves on.
    await solo.feed(solo.msg(roundChange(keyAt(0), 1, 1)), solo.msg(roundChange(keyAt(1), 1, 1)));
    expect(solo.state.roundLive).toBe(true);
    await solo.feed({ kind: 'timeout', height: 1, round: 1 });
    expect(solo.state.round).toBe(2);
  });

  it('sends a lagging peer the round changes it needs to catch up, once per period', async () => {
    const solo = await Solo.create(REPLICA);
    await solo.feed(
      { kind: 'timeout', height: 1, round: 0 },
      solo.msg(roundChange(keyAt(0), 1, 1)),
      solo.msg(roundChange(keyAt(1), 1, 1)),
    );
    await solo.feed({ kind: 'timeout', height: 1, round: 1 });
    expect(solo.state.round).toBe(2);
    const out = await solo.feed(solo.msg(vote(keyAt(2), 'prepare', 1, 1, hash0), 'lagger'));
    const sends = outputsOf(out, 'send');
    expect(sends.every((s) => s.peer === 'lagger')).toBe(true);
    expect(sends.map((s) => [s.message.type, s.message.round]).sort()).toEqual([
      ['roundChange', 1],
      ['roundChange', 1],
      ['roundChange', 1],
      ['roundChange', 2],
    ]);
    const again = await solo.feed(solo.msg(vote(keyAt(2), 'commit', 1, 1, hash0), 'lagger'));
    expect(outputsOf(again, 'send')).toEqual([]);
  });

  it('ignores stale timers', async () => {
    const solo = await Solo.create(REPLICA);
    const before = fingerprint(solo.state);
    expect(
      await solo.feed({ kind: 'timeout', height: 1, round: 3 }, { kind: 'timeout', height: 7, round: 0 }),
    ).toEqual([]);
    expect(fingerprint(solo.state)).toBe(before);
  });
});

describe('heights', () => {
  it('buffers next-height messages within the per-validator bound and replays them', async () => {
    const solo = await Solo.create(REPLICA);
    const hash2 = new Uint8Array(32).fill(2);
    const votes = Array.from({ length: 20 }, (_, r) => solo.msg(vote(keyAt(0), 'prepare', 2, r, hash2)));
    await solo.feed(...votes);
    expect(solo.state.future.length).toBe(16);
    const out = await solo.feed({
      kind: 'committed',
      next: { height: 2, prevHash: hash0, prevTimestamp: block0.header.timestamp, validators: vs },
    });
    expect(solo.state.height).toBe(2);
    expect(solo.state.future.length).toBe(0);
    // The round-0 vote was replayed into the new height's tally.
    expect(solo.state.prepares.get(0)?.size).toBe(1);
    expect(outputsOf(out, 'log').some((l) => l.event === 'HEIGHT_STARTED')).toBe(true);
  });

  it('asks for block sync when f + 1 validators are two heights ahead, or when stuck behind anyone', async () => {
    const solo = await Solo.create(REPLICA);
    const h = new Uint8Array(32).fill(4);
    const one = await solo.feed(solo.msg(vote(keyAt(0), 'prepare', 3, 0, h)));
    expect(outputsOf(one, 'syncNeeded')).toEqual([]);
    const two = await solo.feed(solo.msg(vote(keyAt(1), 'prepare', 3, 0, h)));
    expect(outputsOf(two, 'syncNeeded').map((s) => [s.height, s.targetHeight, s.peers.length])).toEqual([
      [1, 3, 2],
    ]);
    const other = await Solo.create(REPLICA);
    await other.feed(other.msg(vote(keyAt(0), 'prepare', 2, 0, h)));
    const stuck = await other.feed({ kind: 'timeout', height: 1, round: 0 });
    expect(outputsOf(stuck, 'syncNeeded').map((s) => s.targetHeight)).toEqual([2]);
  });

  it('resumes after a restart at the last signed round with its lock', async () => {
    const store = createMemorySafetyStore();
    const rules = await openSafetyRules(
      { chainId: CHAIN },
      { signer: createKeySigner(keyAt(REPLICA).secretKey), store },
    );
    const cert = preparedCertificate([keyAt(0), keyAt(1), keyAt(2)], 1, 2, hash0);
    const signed = await rules.sign({
      type: 'commit',
      height: 1,
      round: 2,
      blockHash: hash0,
      prepared: cert,
      block: block0,
    });
    expect(signed.ok).toBe(true);
    const r = startConsensus(optionsFor(vs[REPLICA]!), startOf(vs), rules.record);
    expect(r.state.round).toBe(2);
    expect(r.state.roundLive).toBe(true);
    expect(r.state.lock?.prepared.round).toBe(2);
    // After a round change was its last act, it re-announces it (same body, so the module agrees).
    const rc = await rules.sign({
      type: 'roundChange',
      height: 1,
      round: 3,
      prepared: cert,
      preparedBlock: block0,
    });
    expect(rc.ok).toBe(true);
    const again = startConsensus(optionsFor(vs[REPLICA]!), startOf(vs), rules.record);
    expect(again.state.round).toBe(3);
    const req = outputsOf(again.outputs, 'sign')[0]?.request;
    expect(req?.type === 'roundChange' && req.prepared?.round).toBe(2);
    expect((await rules.sign(req!)).ok).toBe(true);
  });

  it('refuses an empty validator set or a bad height (a driver bug, reported loudly)', () => {
    expect(() => startConsensus(optionsFor(vs[0]!), startOf([]))).toThrow(/empty validator set/);
    expect(() => startConsensus(optionsFor(vs[0]!), startOf(vs, 0))).toThrow(/positive integer/);
  });

  it('an observer follows but never signs or builds', async () => {
    const solo = await Solo.create(-1);
    const out = await solo.feed(
      solo.msg(proposal0),
      ...[0, 1, 2].map((i) => solo.msg(vote(keyAt(i), 'prepare', 1, 0, hash0))),
      ...[0, 1, 2].map((i) => solo.msg(vote(keyAt(i), 'commit', 1, 0, hash0))),
    );
    expect(outputsOf(out, 'sign')).toEqual([]);
    expect(outputsOf(out, 'buildProposal')).toEqual([]);
    expect(outputsOf(out, 'commit')).toHaveLength(1);
  });
});
