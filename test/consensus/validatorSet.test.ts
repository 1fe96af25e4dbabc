// Goal: proposers rotate round-robin on height + round, and a validator-set change is applied only
// at a later height and only if a quorum of the new set is reachable now.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { quorumOf } from '../../core/types.ts';
import {
  applyValidatorChange,
  createValidatorSchedule,
  faultToleranceOf,
  proposerOf,
  sameValidatorSet,
  validatorsAt,
} from '../../consensus/validatorSet.ts';
import { validatorsOf } from './helpers.ts';

const seven = validatorsOf(7);
const four = seven.slice(0, 4);
const reachable = (vs: typeof seven) => new Set(vs.map((v) => toHex(v.address)));

describe('validator arithmetic', () => {
  it('tolerates f = ⌊(n − 1) / 3⌋ faults with a quorum of 2f + 1', () => {
    expect([1, 3, 4, 5, 6, 7, 10].map(faultToleranceOf)).toEqual([0, 0, 1, 1, 1, 2, 3]);
    expect([4, 7, 10].map(quorumOf)).toEqual([3, 5, 7]);
  });

  it('rotates the proposer on height + round', () => {
    expect(proposerOf(four, 1, 0)).toBe(four[1]);
    expect(proposerOf(four, 1, 1)).toBe(four[2]);
    expect(proposerOf(four, 2, 0)).toBe(four[2]);
    expect(proposerOf(four, 1, 3)).toBe(four[0]);
    const seen = new Set([0, 1, 2, 3].map((r) => proposerOf(four, 9, r)));
    expect(seen.size).toBe(4);
  });
});

describe('applyValidatorChange', () => {
  const schedule = createValidatorSchedule(four);

  it('schedules the new set from the named height and leaves earlier heights alone', () => {
    const r = applyValidatorChange(
      schedule,
      { effectiveHeight: 12, validators: seven },
      { currentHeight: 10, reachable: reachable(seven) },
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(sameValidatorSet(validatorsAt(r.schedule, 11), four)).toBe(true);
    expect(sameValidatorSet(validatorsAt(r.schedule, 12), seven)).toBe(true);
    expect(sameValidatorSet(validatorsAt(r.schedule, 1000), seven)).toBe(true);
    // The input schedule is untouched.
    expect(schedule.epochs).toHaveLength(1);
  });

  it('refuses a change that leaves fewer than a quorum of the new set reachable', () => {
    // 7 validators need 5; only 4 reachable.
    const r = applyValidatorChange(
      schedule,
      { effectiveHeight: 20, validators: seven },
      { currentHeight: 10, reachable: reachable(four) },
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.code).toBe('TOO_FEW_REACHABLE');
    expect(r.error.meta).toMatchObject({ reachable: 4, size: 7, quorum: 5 });
    expect(r.error.meta['unreachable']).toHaveLength(3);
    // Exactly a quorum reachable is enough.
    const ok = applyValidatorChange(
      schedule,
      { effectiveHeight: 20, validators: seven },
      { currentHeight: 10, reachable: reachable(seven.slice(0, 5)) },
    );
    expect(ok.ok).toBe(true);
  });

  it('refuses an effective height too soon or not after the last change', () => {
    const soon = applyValidatorChange(
      schedule,
      { effectiveHeight: 11, validators: four },
      { currentHeight: 10, reachable: reachable(four) },
    );
    expect(!soon.ok && soon.error.code).toBe('BAD_VALIDATOR_CHANGE');
    const later = applyValidatorChange(
      schedule,
      { effectiveHeight: 15, validators: seven },
      { currentHeight: 10, reachable: reachable(seven) },
    );
    if (!later.ok) throw new Error('setup');
    const before = applyValidatorChange(
      later.schedule,
      { effectiveHeight: 14, validators: four },
      { currentHeight: 10, reachable: reachable(seven) },
    );
    expect(!before.ok && before.error.message).toMatch(/must follow the last scheduled change at 15/);
    const custom = applyValidatorChange(
      schedule,
      { effectiveHeight: 11, validators: four },
      { currentHeight: 10, reachable: reachable(four), minDelayHeights: 1 },
    );
    expect(custom.ok).toBe(true);
  });

  it('refuses empty sets and duplicate validators', () => {
    const empty = applyValidatorChange(
      schedule,
      { effectiveHeight: 20, validators: [] },
      { currentHeight: 1, reachable: new Set() },
    );
    expect(!empty.ok && empty.error.code).toBe('BAD_VALIDATOR_CHANGE');
    const dup = applyValidatorChange(
      schedule,
      { effectiveHeight: 20, validators: [four[0]!, four[0]!, four[1]!] },
      { currentHeight: 1, reachable: reachable(four) },
    );
    expect(!dup.ok && dup.error.message).toMatch(/appears twice/);
    expect(() => createValidatorSchedule([])).toThrow(/at least one validator/);
  });
});
