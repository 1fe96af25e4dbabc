/**
 * The error base of Trellis. Every module declares one subclass with a literal union of codes and
 * structured metadata, so RPC can map codes to JSON-RPC errors and logs can carry the context.
 */
export class TrellisError<Code extends string = string> extends Error {
  /** A stable, machine-readable reason. */
  readonly code: Code;
  /** Structured context: what was wrong, what was expected. */
  readonly meta: Readonly<Record<string, unknown>>;

  constructor(code: Code, message: string, meta: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.meta = meta;
  }
}

/** Reasons canonical bytes are refused. */
export type CodecErrorCode =
  | 'MALFORMED'
  | 'TRAILING_BYTES'
  | 'NON_CANONICAL'
  | 'WRONG_SHAPE'
  | 'WRONG_TAG'
  | 'WRONG_CHAIN'
  | 'TOO_LARGE'
  | 'UNSUPPORTED_VALUE';

/** Raised by the canonical codec when bytes or values do not have the expected shape. */
export class CodecError extends TrellisError<CodecErrorCode> {}

/** Reasons a key or signature operation fails. */
export type CryptoErrorCode = 'BAD_KEY' | 'BAD_SIGNATURE_LENGTH' | 'BAD_HEX';

/** Raised by hashing, key and signature helpers on malformed input. */
export class CryptoError extends TrellisError<CryptoErrorCode> {}

/** Reasons a Merkle proof is refused before verification. */
export type MerkleErrorCode = 'INDEX_OUT_OF_RANGE' | 'EMPTY_TREE';

/** Raised by Merkle tree construction and proof generation. */
export class MerkleError extends TrellisError<MerkleErrorCode> {}
