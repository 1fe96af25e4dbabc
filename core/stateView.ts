import type { Bytes } from './bytes.ts';

/**
 * Read access to contract state: a key-value map per contract. Reads are synchronous because
 * contract code is synchronous and calls the host inside the isolate.
 */
export interface StateReader {
  /** The value under (contract, key), or undefined when absent. */
  get(contract: string, key: Bytes): Bytes | undefined;
  /** True when (contract, key) holds a value. */
  has(contract: string, key: Bytes): boolean;
  /**
   * Entries of one contract whose keys start with `prefix`, in ascending byte order of key,
   * strictly after `after` when given, at most `limit` of them. Deterministic.
   */
  range(contract: string, prefix: Bytes, limit: number, after?: Bytes): Array<[Bytes, Bytes]>;
}

/**
 * The state an execution writes to: reads fall through buffered writes to the committed state;
 * checkpoints nest (one per transaction, one per nested contract call).
 */
export interface StateView extends StateReader {
  set(contract: string, key: Bytes, value: Bytes): void;
  delete(contract: string, key: Bytes): void;
  /** Opens a nested checkpoint. */
  checkpoint(): void;
  /** Keeps the writes since the innermost checkpoint and closes it. */
  commit(): void;
  /** Discards the writes since the innermost checkpoint and closes it. */
  revert(): void;
  /** Depth of open checkpoints (0 when none). */
  readonly depth: number;
  /** The state root including buffered writes, computed without writing anything. */
  root(): Bytes;
}
