import { TrellisError } from '../../core/errors.ts';

/** Reasons the block store refuses a write or a read. */
export type StorageErrorCode =
  /** Stored bytes do not decode, or an index points at nothing: the data dir is damaged. */
  | 'CORRUPT'
  /** The block's height is not head + 1. */
  | 'WRONG_HEIGHT'
  /** The block's prevHash is not the head's hash (or the genesis hash for the first block). */
  | 'WRONG_PREV_HASH'
  /** The block's chainId is not the store's chain. */
  | 'WRONG_CHAIN'
  /** The data dir belongs to a network with another genesis hash. */
  | 'WRONG_GENESIS'
  /** The certificate is not for this block (height or hash differ). */
  | 'BAD_CERTIFICATE'
  /** Receipts do not match the block: a transaction without a receipt, or a wrong receiptsRoot. */
  | 'BAD_RECEIPTS'
  /** An extra write aimed at a key the block store owns. */
  | 'FORBIDDEN_KEY'
  /** A query argument is out of range. */
  | 'BAD_QUERY';

/**
 * Raised by the block store. `CORRUPT` means the data on disk is damaged and the node must stop;
 * the other codes mean the caller offered something that would break the chain, and nothing was
 * written.
 */
export class StorageError extends TrellisError<StorageErrorCode> {}
