import { TrellisError } from '../core/errors.ts';

/**
 * Reasons consensus refuses something. Peer-caused codes (`MALFORMED_MESSAGE` … `BAD_ROUND_CHANGE`)
 * are returned as rejection values by `step`, never thrown; `SIGN_*` codes come from the safety
 * module; `BAD_VALIDATOR_CHANGE` and `TOO_FEW_REACHABLE` from the validator-set pre-flight check;
 * `BAD_CONFIG` and `CORRUPT_SAFETY_RECORD` are thrown because the node cannot run safely.
 */
export type ConsensusErrorCode =
  | 'MALFORMED_MESSAGE'
  | 'UNKNOWN_SENDER'
  | 'BAD_SIGNATURE'
  | 'WRONG_PROPOSER'
  | 'BAD_BLOCK'
  | 'BAD_JUSTIFICATION'
  | 'BAD_ROUND_CHANGE'
  | 'SIGN_REGRESSION'
  | 'SIGN_CONFLICT'
  | 'SIGN_LOCK_VIOLATION'
  | 'SIGN_BAD_REQUEST'
  | 'BAD_VALIDATOR_CHANGE'
  | 'TOO_FEW_REACHABLE'
  | 'BAD_CONFIG'
  | 'CORRUPT_SAFETY_RECORD';

/** The consensus module's error: a stable `code` plus structured context in `meta`. */
export class ConsensusError extends TrellisError<ConsensusErrorCode> {}
