import { bytesEqual, compareBytes, toHex, type Bytes } from '../core/bytes.ts';
import { Limits, hashValidators, quorumOf, type Validator } from '../core/types.ts';
import { ConsensusError } from './errors.ts';

/**
 * Validator sets and the arithmetic over them. All validators weigh the same: n = 3f + 1 (or more)
 * tolerates f faulty ones; a quorum is 2f + 1 (core's `quorumOf`), and f + 1 is the smallest set
 * sure to hold an honest validator.
 */

/** The number of faulty validators a set of n tolerates: ⌊(n − 1) / 3⌋. */
export function faultToleranceOf(n: number): number {
  return Math.max(0, Math.floor((n - 1) / 3));
}

/**
 * The proposer of (height, round): round-robin over the ordered validator list on height + round,
 * so a faulty proposer costs one round and the next round's proposer is a different validator.
 */
export function proposerOf(validators: readonly Validator[], height: number, round: number): Validator {
  const n = validators.length;
  if (n === 0) throw new ConsensusError('BAD_CONFIG', 'proposerOf: the validator set is empty');
  return validators[(height + round) % n]!;
}

/** Index of an address in the set, or -1. */
export function indexOfValidator(validators: readonly Validator[], address: Bytes): number {
  return validators.findIndex((v) => bytesEqual(v.address, address));
}

/** One entry of a schedule: `validators` certify every height from `fromHeight` until the next entry. */
export interface ValidatorEpoch {
  readonly fromHeight: number;
  readonly validators: readonly Validator[];
  /**
   * The hash of the transaction (or scheduled callback) whose receipt carries the approved change
   * (the approvals contract's ValidatorSetChanged event): what lets a light client prove the
   * change from a header it already trusts. Absent for the genesis set.
   */
  readonly recordedBy?: Bytes;
}

/**
 * Which validator set certifies which height: sorted by `fromHeight`, the first entry starts at
 * height 1 (genesis). Derived from committed blocks, so every node holds the same schedule.
 */
export interface ValidatorSchedule {
  readonly epochs: readonly ValidatorEpoch[];
}

/** A schedule holding the genesis set alone. Throws ConsensusError BAD_VALIDATOR_CHANGE on a bad set. */
export function createValidatorSchedule(genesis: readonly Validator[]): ValidatorSchedule {
  checkSet(genesis);
  return { epochs: [{ fromHeight: 1, validators: [...genesis] }] };
}

/** The validator set that certifies `height`. */
export function validatorsAt(schedule: ValidatorSchedule, height: number): readonly Validator[] {
  return epochAt(schedule, height).validators;
}

/** The epoch that holds `height` (the first one for heights before it). */
export function epochAt(schedule: ValidatorSchedule, height: number): ValidatorEpoch {
  const { epochs } = schedule;
  if (epochs.length === 0) throw new ConsensusError('BAD_CONFIG', 'validator schedule is empty');
  // The last epoch starting at or below `height`: binary search, since a long-lived network's
  // schedule holds every change it ever made.
  let lo = 0;
  let hi = epochs.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (epochs[mid]!.fromHeight <= height) lo = mid;
    else hi = mid - 1;
  }
  return epochs[lo]!;
}

/**
 * A change of the validator set, as a governance transaction states it: the complete new ordered
 * list and the height from which it certifies blocks.
 */
export interface ValidatorChange {
  readonly effectiveHeight: number;
  readonly validators: readonly Validator[];
}

/** What the pre-flight check needs to know about the world, all supplied by the caller. */
export interface ChangeContext {
  /** The last committed height when the change is applied. */
  readonly currentHeight: number;
  /**
   * Addresses (0x-hex) of validators this node can currently reach (connected, or the node itself).
   * Reachability is an observation the caller makes; the check is pure over it.
   */
  readonly reachable: ReadonlySet<string>;
  /**
   * Fewest heights between the current height and the effective height, so every validator has
   * committed the change before it binds. Default 2.
   */
  readonly minDelayHeights?: number;
}

/** Result of the pre-flight check. */
export type ChangeOutcome =
  | { readonly ok: true; readonly schedule: ValidatorSchedule }
  | { readonly ok: false; readonly error: ConsensusError };

function checkSet(validators: readonly Validator[]): void {
  if (validators.length === 0) {
    throw new ConsensusError('BAD_VALIDATOR_CHANGE', 'validator set: at least one validator is required');
  }
  if (validators.length > Limits.maxValidators) {
    throw new ConsensusError(
      'BAD_VALIDATOR_CHANGE',
      `validator set: at most ${Limits.maxValidators} validators`,
      {
        count: validators.length,
      },
    );
  }
  const seen = new Set<string>();
  for (const v of validators) {
    const id = toHex(v.address);
    if (seen.has(id)) {
      throw new ConsensusError('BAD_VALIDATOR_CHANGE', `validator set: ${id} appears twice`, { address: id });
    }
    seen.add(id);
  }
}

/**
 * Applies a validator-set change to a schedule after the pre-flight check. Refuses (returns
 * `ok: false`, changes nothing) when the set is empty, too large or has duplicates; when the
 * effective height is not at least `minDelayHeights` after the current height, or not after the
 * schedule's last change; and when fewer than a quorum of the NEW set are reachable now — such a
 * change would halt the chain at its effective height (issue 5, item 4).
 */
export function applyValidatorChange(
  schedule: ValidatorSchedule,
  change: ValidatorChange,
  context: ChangeContext,
): ChangeOutcome {
  try {
    checkSet(change.validators);
  } catch (err) {
    return { ok: false, error: err as ConsensusError };
  }
  const minDelay = context.minDelayHeights ?? 2;
  if (
    !Number.isSafeInteger(change.effectiveHeight) ||
    change.effectiveHeight < context.currentHeight + minDelay
  ) {
    return {
      ok: false,
      error: new ConsensusError(
        'BAD_VALIDATOR_CHANGE',
        `validator change: effective height ${change.effectiveHeight} must be at least ${context.currentHeight + minDelay} (current height ${context.currentHeight} + ${minDelay})`,
        { effectiveHeight: change.effectiveHeight, currentHeight: context.currentHeight, minDelay },
      ),
    };
  }
  const last = schedule.epochs[schedule.epochs.length - 1];
  if (last !== undefined && change.effectiveHeight <= last.fromHeight) {
    return {
      ok: false,
      error: new ConsensusError(
        'BAD_VALIDATOR_CHANGE',
        `validator change: effective height ${change.effectiveHeight} must follow the last scheduled change at ${last.fromHeight}`,
        { effectiveHeight: change.effectiveHeight, lastChange: last.fromHeight },
      ),
    };
  }
  const needed = quorumOf(change.validators.length);
  const reachable = change.validators.filter((v) => context.reachable.has(toHex(v.address)));
  if (reachable.length < needed) {
    return {
      ok: false,
      error: new ConsensusError(
        'TOO_FEW_REACHABLE',
        `validator change: only ${reachable.length} of the new ${change.validators.length} validators are reachable; a quorum needs ${needed}`,
        {
          reachable: reachable.length,
          size: change.validators.length,
          quorum: needed,
          unreachable: change.validators
            .filter((v) => !context.reachable.has(toHex(v.address)))
            .map((v) => toHex(v.address)),
        },
      ),
    };
  }
  return {
    ok: true,
    schedule: {
      epochs: [
        ...schedule.epochs,
        { fromHeight: change.effectiveHeight, validators: [...change.validators] },
      ],
    },
  };
}

/** True when two sets are the same ordered list (equal `hashValidators`). */
export function sameValidatorSet(a: readonly Validator[], b: readonly Validator[]): boolean {
  return a.length === b.length && compareBytes(hashValidators(a), hashValidators(b)) === 0;
}
