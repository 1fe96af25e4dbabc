// Goal: a proposal for a round after 0 is accepted only with a quorum of round changes, and must
// re-propose the highest prepared block they report (QBFT JustifyPrePrepare / JustifyRoundChange).
import { describe, expect, it } from 'vitest';
import { hashHeader, quorumOf } from '../../core/types.ts';
import { verify } from '../../core/keys.ts';
import {
  checkPreparedCertificate,
  checkProposalJustification,
  checkRoundChange,
  claimOf,
  createVerifyContext,
  highestPreparedClaim,
} from '../../consensus/justification.ts';
import type { PreparedCertificate } from '../../consensus/messages.ts';
import { proposerOf } from '../../consensus/validatorSet.ts';
import {
  CHAIN,
  KEYS,
  blockFor,
  keyOf,
  preparedCertificate,
  proposal,
  roundChange,
  validatorsOf,
} from './helpers.ts';

const vs = validatorsOf(4);
const ctx = createVerifyContext(CHAIN, 1, vs, quorumOf(4), verify);
const proposerKey = (round: number) => keyOf(proposerOf(vs, 1, round));

const blockA = blockFor(vs, 1, 0, [Uint8Array.from([0xa])]);
const hashA = hashHeader(blockA.header);
const blockB = blockFor(vs, 1, 1, [Uint8Array.from([0xb])]);
const hashB = hashHeader(blockB.header);

describe('checkPreparedCertificate', () => {
  it('accepts a quorum of valid prepares for an earlier round', () => {
    expect(checkPreparedCertificate(ctx, preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA), 1)).toBeNull();
  });

  it('refuses fewer than a quorum, duplicates, strangers, bad signatures and non-past rounds', () => {
    expect(checkPreparedCertificate(ctx, preparedCertificate(KEYS.slice(0, 2), 1, 0, hashA), 1)).toMatch(
      /2 prepares, a quorum needs 3/,
    );
    const cert = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA);
    const dup: PreparedCertificate = {
      ...cert,
      prepares: [cert.prepares[0]!, cert.prepares[0]!, cert.prepares[1]!],
    };
    expect(checkPreparedCertificate(ctx, dup, 1)).toMatch(/counted twice/);
    const stranger = preparedCertificate([KEYS[0]!, KEYS[1]!, KEYS[6]!], 1, 0, hashA);
    expect(checkPreparedCertificate(ctx, stranger, 1)).toMatch(/unknown validator/);
    const forged = { ...cert, blockHash: hashB };
    expect(checkPreparedCertificate(ctx, forged, 1)).toMatch(/bad prepare signature/);
    expect(checkPreparedCertificate(ctx, cert, 0)).toMatch(/not below round 0/);
  });
});

describe('checkRoundChange', () => {
  it('accepts an empty round change and one with a valid certificate and its block', () => {
    expect(checkRoundChange(ctx, roundChange(KEYS[0]!, 1, 1))).toBeNull();
    const cert = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA);
    expect(checkRoundChange(ctx, roundChange(KEYS[0]!, 1, 1, cert, blockA))).toBeNull();
  });

  it('refuses round 0, a block that is not the certified one, and a certificate of its own round', () => {
    expect(checkRoundChange(ctx, roundChange(KEYS[0]!, 1, 0))).toMatch(/round 0/);
    const cert = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA);
    expect(checkRoundChange(ctx, roundChange(KEYS[0]!, 1, 1, cert, blockB))).toMatch(/does not match/);
    const sameRound = preparedCertificate(KEYS.slice(0, 3), 1, 1, hashA);
    expect(checkRoundChange(ctx, roundChange(KEYS[0]!, 1, 1, sameRound, blockA))).toMatch(/not below/);
  });
});

describe('checkProposalJustification', () => {
  const rcsEmpty = KEYS.slice(0, 3).map((k) => roundChange(k, 1, 1));

  it('round 0 needs none and must carry none', () => {
    expect(checkProposalJustification(ctx, proposal(proposerKey(0), 1, 0, blockA, hashA))).toBeNull();
    const j = { roundChanges: rcsEmpty.map(claimOf), prepared: null };
    expect(checkProposalJustification(ctx, proposal(proposerKey(0), 1, 0, blockA, hashA, j))).toMatch(
      /round 0 proposal carries/,
    );
  });

  it('accepts a fresh block when a quorum of round changes reports nothing prepared', () => {
    const p = proposal(proposerKey(1), 1, 1, blockB, hashB, {
      roundChanges: rcsEmpty.map(claimOf),
      prepared: null,
    });
    expect(checkProposalJustification(ctx, p)).toBeNull();
  });

  it('refuses a missing justification, too few round changes, a repeated sender and a stranger', () => {
    expect(checkProposalJustification(ctx, proposal(proposerKey(1), 1, 1, blockB, hashB))).toMatch(
      /without justification/,
    );
    const two = { roundChanges: rcsEmpty.slice(0, 2).map(claimOf), prepared: null };
    expect(checkProposalJustification(ctx, proposal(proposerKey(1), 1, 1, blockB, hashB, two))).toMatch(
      /2 round changes, a quorum needs 3/,
    );
    const repeated = {
      roundChanges: [rcsEmpty[0]!, rcsEmpty[0]!, rcsEmpty[1]!].map(claimOf),
      prepared: null,
    };
    expect(checkProposalJustification(ctx, proposal(proposerKey(1), 1, 1, blockB, hashB, repeated))).toMatch(
      /counted twice/,
    );
    const withStranger = {
      roundChanges: [...rcsEmpty.slice(0, 2), roundChange(KEYS[6]!, 1, 1)].map(claimOf),
      prepared: null,
    };
    expect(
      checkProposalJustification(ctx, proposal(proposerKey(1), 1, 1, blockB, hashB, withStranger)),
    ).toMatch(/unknown validator/);
  });

  it('refuses round changes signed for another round (no replay across rounds)', () => {
    const forRound2 = KEYS.slice(0, 3).map((k) => roundChange(k, 1, 2));
    const j = { roundChanges: forRound2.map(claimOf), prepared: null };
    expect(checkProposalJustification(ctx, proposal(proposerKey(1), 1, 1, blockB, hashB, j))).toMatch(
      /bad round change signature/,
    );
  });

  describe('when a round change reports a prepared block', () => {
    const certA0 = preparedCertificate(KEYS.slice(0, 3), 1, 0, hashA);
    const rcs = [
      roundChange(KEYS[0]!, 1, 2, certA0, blockA),
      roundChange(KEYS[1]!, 1, 2),
      roundChange(KEYS[2]!, 1, 2),
    ];
    const j = { roundChanges: rcs.map(claimOf), prepared: certA0 };

    it('accepts the re-proposal of exactly that block with its certificate', () => {
      expect(highestPreparedClaim(j.roundChanges)?.preparedRound).toBe(0);
      expect(checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockA, hashA, j))).toBeNull();
    });

    it('refuses a different block (the lock must be carried forward)', () => {
      expect(checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockB, hashB, j))).toMatch(
        /must re-propose the highest prepared block/,
      );
    });

    it('refuses hiding the report (no certificate), and a certificate that is not the highest', () => {
      const hidden = { roundChanges: rcs.map(claimOf), prepared: null };
      expect(checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockB, hashB, hidden))).toMatch(
        /no certificate given/,
      );
      const certB1 = preparedCertificate(KEYS.slice(0, 3), 1, 1, hashB);
      const mixed = [
        roundChange(KEYS[0]!, 1, 2, certA0, blockA),
        roundChange(KEYS[1]!, 1, 2, certB1, blockB),
        roundChange(KEYS[2]!, 1, 2),
      ];
      const notHighest = { roundChanges: mixed.map(claimOf), prepared: certA0 };
      expect(
        checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockA, hashA, notHighest)),
      ).toMatch(/not the highest/);
      const highest = { roundChanges: mixed.map(claimOf), prepared: certB1 };
      expect(
        checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockB, hashB, highest)),
      ).toBeNull();
    });

    it('refuses a certificate without a quorum behind it, and a claimed prepared round not in the past', () => {
      const weak = preparedCertificate(KEYS.slice(0, 2), 1, 0, hashA);
      const rcsWeak = [
        roundChange(KEYS[0]!, 1, 2, weak, blockA),
        roundChange(KEYS[1]!, 1, 2),
        roundChange(KEYS[2]!, 1, 2),
      ];
      const jw = { roundChanges: rcsWeak.map(claimOf), prepared: weak };
      expect(checkProposalJustification(ctx, proposal(proposerKey(2), 1, 2, blockA, hashA, jw))).toMatch(
        /a quorum needs 3/,
      );
      const future = { ...rcs[0]!, signature: new Uint8Array(64) };
      const claims = [{ ...claimOf(future), preparedRound: 2 }, ...rcs.slice(1).map(claimOf)];
      expect(
        checkProposalJustification(
          ctx,
          proposal(proposerKey(2), 1, 2, blockA, hashA, { roundChanges: claims, prepared: certA0 }),
        ),
      ).toMatch(/claims prepared round 2/);
    });
  });
});
