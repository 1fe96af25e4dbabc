import { TrellisError } from '../../core/errors.ts';

/** Reasons the p2p layer refuses an input or fails a request. */
export type P2pErrorCode =
  /** An option, member entry or argument does not have the expected shape. */
  | 'BAD_INPUT'
  /** A call that needs the running node was made before `start()` or after `stop()`, or `start()` twice. */
  | 'NOT_RUNNING'
  /** `start()` failed (the listen address is taken or invalid, ...); nothing is left running. */
  | 'START_FAILED'
  /** The named peer is not in the member set. */
  | 'NOT_MEMBER'
  /** A message, batch, frame or response exceeds its bound. */
  | 'TOO_LARGE'
  /** A peer sent bytes that do not follow the protocol. */
  | 'PROTOCOL'
  /** The request did not complete within its timeout. */
  | 'TIMEOUT'
  /** The caller's AbortSignal fired, or the node stopped, before the request completed. */
  | 'ABORTED'
  /** The stream or connection failed: the peer is unreachable, reset the stream or refused the request. */
  | 'UNREACHABLE';

/** Raised by node/p2p: what was wrong and what was expected, with structured context in `meta`. */
export class P2pError extends TrellisError<P2pErrorCode> {}
