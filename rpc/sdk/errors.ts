import { TrellisError } from '../../core/errors.ts';

/** Why the SDK refused something on the client side. */
export type SdkErrorCode =
  /** A proof does not hold against the header it names. */
  | 'BAD_PROOF'
  /** A header's commit certificate does not verify against the trusted validator set. */
  | 'BAD_CERTIFICATE'
  /** A node answered for another chain than the client expects. */
  | 'WRONG_CHAIN'
  /** A node's answer does not match what was asked (other hash, other height). */
  | 'MISMATCH'
  /** A transaction could not be sent before its deadline (queue full, node refusing). */
  | 'SEND_TIMEOUT'
  /** The client or subscription was closed. */
  | 'CLOSED'
  /** A client-side queue is full. */
  | 'QUEUE_FULL'
  /** A committed transaction did not succeed (see `meta.receipt`). */
  | 'TX_FAILED';

/** Raised by the SDK for client-side failures; server errors arrive as RpcError. */
export class SdkError extends TrellisError<SdkErrorCode> {}
