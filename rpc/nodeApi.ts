/**
 * What the RPC server needs from a node: a narrow interface the node driver implements over its
 * storage, state, VM, mempool, consensus and p2p. The server depends on nothing else of the node,
 * so it can be tested over an in-process harness (test/rpc/testNode.ts) and served by any node.
 *
 * Conventions: reads that find nothing return `undefined` (never throw); heights are committed
 * heights (1 is the first block); every method must leave state untouched unless it says so
 * (only `submitTx` changes anything: the mempool).
 */
import type { Bytes } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { TrellisError } from '../core/errors.ts';
import type { Block, BlockHeader, CommitCertificate, Receipt, Validator } from '../core/types.ts';

/**
 * Why `submitTx` refuses a transaction. The first ten are exactly node/mempool.ts's
 * MempoolErrorCode, so a driver may let a MempoolError through unchanged.
 */
export const TX_REJECT_REASONS = [
  'MALFORMED',
  'WRONG_CHAIN',
  'TOO_LARGE',
  'BAD_SIGNATURE',
  'NONCE_TOO_LOW',
  'NONCE_TOO_HIGH',
  'DUPLICATE',
  'GAS_LIMIT',
  'MEMPOOL_FULL',
  'SENDER_FULL',
  'NOT_PERMITTED',
] as const;
/** A reason `submitTx` refuses a transaction. */
export type TxRejectReason = (typeof TX_REJECT_REASONS)[number];

/** Codes of {@link NodeApiError}. */
export type NodeApiErrorCode =
  | TxRejectReason
  /** The node cannot answer now: starting, syncing, shutting down. */
  | 'UNAVAILABLE'
  /** A height that is not (or no longer) available: in the future, or pruned. */
  | 'HEIGHT_UNAVAILABLE'
  /** `callView` named a contract or method that does not exist. */
  | 'UNKNOWN_CONTRACT'
  | 'UNKNOWN_METHOD'
  /** A costly request over the node's budget for it (state proofs at old heights): retry later. */
  | 'RATE_LIMITED';

/**
 * An error a NodeApi method may throw with a code the server maps to a documented JSON-RPC error
 * (any other TrellisError whose code is a {@link TxRejectReason} is mapped the same way).
 */
export class NodeApiError extends TrellisError<NodeApiErrorCode> {}

/** Who the node is. */
export interface NodeInfo {
  readonly chainId: string;
  /** Stable identity of the node on the network (its libp2p peer id). */
  readonly nodeId: string;
  /** Address of the node key (20 bytes). */
  readonly address: Bytes;
  readonly validator: boolean;
  /** Trellis version (package.json). */
  readonly version: string;
  /** Runtime the node runs on, as genesis names it (node/runtime.ts runtimeId()). */
  readonly runtime: string;
  /** Hash of the genesis the node runs. */
  readonly genesisHash: Bytes;
}

/** A connected peer. */
export interface PeerInfo {
  readonly nodeId: string;
  /** Address of the peer's node key, when it has been authenticated. */
  readonly address?: Bytes;
  /** Remote multiaddr or host:port. */
  readonly remote: string;
  readonly direction: 'inbound' | 'outbound';
  /** The peer's latest height as it last told us. */
  readonly height?: number;
}

/** Liveness and readiness, and the figures `/metrics` exports. */
export interface NodeHealth {
  /** The process loop runs (if false, `/health` answers 503). */
  readonly live: boolean;
  /** The node serves current data: started and not far behind its peers (`/ready`). */
  readonly ready: boolean;
  readonly syncing: boolean;
  /** Committed head height (0 before the first block). */
  readonly height: number;
  /** Current consensus round at height+1. */
  readonly round: number;
  readonly peers: number;
  readonly mempoolSize: number;
  /** Why the node is not live or not ready; empty when it is both. */
  readonly reasons: readonly string[];
}

/** The committed head. */
export interface HeadInfo {
  readonly height: number;
  readonly hash: Bytes;
  readonly header: BlockHeader;
}

/** The validator set in force at a height. */
export interface ValidatorSetInfo {
  /** The height the set certifies (the one asked for, or the head's). */
  readonly height: number;
  readonly validators: readonly Validator[];
  /** The first height this set certifies (1 for the genesis set). */
  readonly fromHeight: number;
  /** Hash of the transaction whose receipt carries the approved change; absent for genesis. */
  readonly changedBy?: Bytes;
}

/** A committed transaction and where it sits. */
export interface TxRecord {
  /** The signed wire bytes. */
  readonly bytes: Bytes;
  readonly height: number;
  /** Position in the block's transactions. */
  readonly index: number;
}

/** A receipt and where it sits. */
export interface ReceiptRecord {
  readonly receipt: Receipt;
  readonly height: number;
  /** Position in the block's receipts (the receiptsRoot leaf index). */
  readonly receiptIndex: number;
}

/** Outcome of a read-only contract call. A revert is data, not an exception. */
export type ViewResult =
  | { readonly ok: true; readonly value: Value; readonly gasUsed: number; readonly height: number }
  | {
      readonly ok: false;
      readonly status: 'reverted' | 'out-of-gas';
      readonly errorCode: string;
      readonly error: string;
      readonly gasUsed: number;
      readonly height: number;
    };

/** A deployed contract. */
export interface ContractInfo {
  readonly name: string;
  /** Hash of the deployed code (the compiled module). */
  readonly codeHash: Bytes;
  /** Height of the deploy or last upgrade. */
  readonly deployedAt: number;
  readonly frozen: boolean;
  /** Exported method names, when the VM reports them. */
  readonly methods: readonly string[];
}

/** A state read with its optional proof. */
export interface StateRead {
  /** The committed height the value (and proof) belong to: prove it against that header's stateRoot. */
  readonly height: number;
  /** The value, or undefined when the key is absent. */
  readonly value: Bytes | undefined;
  /**
   * When asked for: the encoded inclusion (or, for an absent key, exclusion) proof against the
   * stateRoot of `height`, in the format core/stateProof.ts defines.
   */
  readonly proof?: Bytes;
}

/** Position of an event in the chain; it orders events and is the subscription cursor. */
export interface EventPosition {
  readonly height: number;
  /** Index of the receipt (transaction or scheduled callback) in its block. */
  readonly receiptIndex: number;
  /** Index of the event within its receipt. */
  readonly eventIndex: number;
}

/** A committed event with its position (the same shape as node/storage's StoredEvent). */
export interface ChainEvent extends EventPosition {
  readonly txHash: Bytes;
  readonly contract: string;
  readonly name: string;
  readonly data: Value;
}

/** An event query (the same shape as node/storage's EventQuery). */
export interface EventQuery {
  readonly fromHeight: number;
  /** Inclusive; the node clamps it to its head. */
  readonly toHeight: number;
  readonly contract?: string;
  readonly name?: string;
  /** Only events strictly after this position. */
  readonly after?: EventPosition;
  readonly limit: number;
}

/** One page of events (the same shape as node/storage's EventPage). */
export interface EventPage {
  readonly events: readonly ChainEvent[];
  /** Present when the range may hold more matches: query again with it as `after`. */
  readonly next?: EventPosition;
}

/** What the commit feed delivers for each committed block. */
export interface CommitNotification {
  readonly block: Block;
  readonly certificate: CommitCertificate;
  /** The block's receipts in order (receiptIndex order). */
  readonly receipts: readonly Receipt[];
  /** Time from the start of the height to its commit, when the node measured it. */
  readonly latencyMs?: number;
}

/** Listener of the commit feed. */
export type CommitListener = (commit: CommitNotification) => void;

/**
 * The node as the RPC server sees it.
 *
 * Commit feed contract: `subscribeCommits` listeners are called once per committed block, in
 * height order, with no block skipped, after the block is durably stored and `head()` reports
 * it; a listener must not throw (the server's do not) and is called synchronously.
 */
export interface NodeApi {
  info(): NodeInfo;
  peers(): readonly PeerInfo[];
  health(): NodeHealth;
  /** The committed head, or undefined before the first block. */
  head(): HeadInfo | undefined;
  getBlock(ref: { readonly height: number } | { readonly hash: Bytes }): Promise<Block | undefined>;
  getCertificate(height: number): Promise<CommitCertificate | undefined>;
  /** Every receipt of a block in order; undefined when the block does not exist. */
  getReceipts(height: number): Promise<readonly Receipt[] | undefined>;
  /** The validator set that certifies `height` (default: the head's next height). */
  getValidators(height?: number): Promise<ValidatorSetInfo | undefined>;
  /**
   * Checks and admits a signed transaction (wire bytes) to the mempool, returning its hash.
   * Throws a NodeApiError (or MempoolError) whose code is a {@link TxRejectReason} when refused;
   * a refused transaction changes nothing.
   */
  submitTx(bytes: Bytes): Promise<Bytes>;
  getTx(hash: Bytes): Promise<TxRecord | undefined>;
  getReceipt(hash: Bytes): Promise<ReceiptRecord | undefined>;
  /** The next nonce of an address in the committed state. */
  nextNonce(address: Bytes): Promise<number>;
  /**
   * Runs a contract method read-only on the state of `height` (default: head) and discards every
   * write. Throws NodeApiError UNKNOWN_CONTRACT / UNKNOWN_METHOD / HEIGHT_UNAVAILABLE.
   */
  callView(contract: string, method: string, args: Value, height?: number): Promise<ViewResult>;
  getContract(name: string): Promise<ContractInfo | undefined>;
  /** Deployed contracts in name order, at most `limit` after `after`. */
  listContracts(options: {
    readonly after?: string;
    readonly limit: number;
  }): Promise<readonly ContractInfo[]>;
  /**
   * Reads one state entry at `height` (default: head), with a proof when `withProof`.
   * Throws NodeApiError HEIGHT_UNAVAILABLE for a height whose state is not kept.
   */
  getState(
    contract: string,
    key: Bytes,
    options: { readonly height?: number; readonly withProof: boolean },
  ): Promise<StateRead>;
  /** Events in chain order, paged (at most `limit`; the node may return fewer with `next`). */
  queryEvents(query: EventQuery): Promise<EventPage>;
  /** The consensus diagnostics (opaque to RPC; must be JSON-serialisable). */
  consensusState(): unknown;
  /** Registers a commit listener; returns the function that removes it. */
  subscribeCommits(listener: CommitListener): () => void;
}
