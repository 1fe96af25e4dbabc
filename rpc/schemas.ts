/**
 * JSON mappings of the chain's data types (headers, blocks, certificates, transactions,
 * receipts, events, proofs), built from rpc/wire.ts so the server and the SDK share them.
 */
import type { Bytes } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { ADDRESS_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, addressOf } from '../core/keys.ts';
import type { MerkleProof } from '../core/merkle.ts';
import {
  Limits,
  NAME_RE,
  RECEIPT_STATUSES,
  TX_KINDS,
  type BlockHeader,
  type CommitCertificate,
  type Event,
  type Receipt,
  type SignedTransaction,
  type Validator,
} from '../core/types.ts';
import { RpcError } from './errors.ts';
import type { EventPosition } from './nodeApi.ts';
import {
  array,
  hash32,
  hex,
  mapped,
  object,
  oneOf,
  opt,
  req,
  str,
  uint,
  value,
  type Infer,
  type WireType,
} from './wire.ts';

/** Most bytes of a state key a client may ask for. */
export const MAX_STATE_KEY_BYTES = 1024;

/** Contract, method and event names (core/types.ts NAME_RE). */
export const nameType = str(Limits.maxNameLength, NAME_RE);
/** A 20-byte address. */
export const addressType = hex({ length: ADDRESS_BYTES });
/** A 32-byte Ed25519 public key. */
export const publicKeyType = hex({ length: PUBLIC_KEY_BYTES });
/** A 64-byte Ed25519 signature. */
export const signatureType = hex({ length: SIGNATURE_BYTES });
/** A transaction's signed wire bytes. */
export const txBytesType = hex({ maxBytes: Limits.maxTxBytes });
/** A block height. */
export const heightType = uint();

const CURSOR_RE = /^(0|[1-9][0-9]{0,15}):(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$/;
const MAX_INDEX = 0xffff_ffff;

/** Formats an event position as its cursor string `height:receiptIndex:eventIndex`. */
export function formatCursor(p: EventPosition): string {
  return `${p.height}:${p.receiptIndex}:${p.eventIndex}`;
}

/** Parses a cursor string; throws RpcError INVALID_PARAMS naming `path`. */
export function parseCursor(s: string, path = 'cursor'): EventPosition {
  const m = CURSOR_RE.exec(s);
  const height = m === null ? NaN : Number(m[1]);
  const receiptIndex = m === null ? NaN : Number(m[2]);
  const eventIndex = m === null ? NaN : Number(m[3]);
  if (!Number.isSafeInteger(height) || !(receiptIndex <= MAX_INDEX) || !(eventIndex <= MAX_INDEX)) {
    throw new RpcError(
      'INVALID_PARAMS',
      `${path}: expected a cursor "height:receiptIndex:eventIndex" of decimal integers, got "${s.slice(0, 80)}"`,
      { path },
    );
  }
  return { height, receiptIndex, eventIndex };
}

/** An event cursor: the string `height:receiptIndex:eventIndex`. */
export const cursorType: WireType<EventPosition> = mapped(
  str(40),
  'cursor `"height:receiptIndex:eventIndex"`',
  (s, path) => parseCursor(s, path),
  formatCursor,
);

/** A block header. */
export const headerType: WireType<BlockHeader> = object({
  chainId: req(nameType, 'Chain the block belongs to.'),
  height: req(heightType, 'Block height (1 is the first block).'),
  prevHash: req(hash32(), 'Hash of the previous block (the genesis hash for block 1).'),
  timestamp: req(uint(), 'Proposer time, milliseconds since the Unix epoch.'),
  proposer: req(addressType, 'Address of the proposer.'),
  round: req(uint(), 'Consensus round the block was committed in.'),
  txRoot: req(hash32(), 'Merkle root (RFC 9162) of the transactions’ wire bytes.'),
  stateRoot: req(hash32(), 'State root after executing the block.'),
  receiptsRoot: req(hash32(), 'Merkle root of the canonical receipts.'),
  validatorsHash: req(hash32(), 'Hash of the validator set that certifies the block.'),
});

/** A commit certificate. */
export const certificateType: WireType<CommitCertificate> = object({
  height: req(heightType, 'Certified height.'),
  round: req(uint(), 'Round of the commit votes.'),
  blockHash: req(hash32(), 'Hash of the certified block header.'),
  signatures: req(
    array(
      object({
        validator: req(addressType, 'Validator address.'),
        signature: req(signatureType, 'Ed25519 signature over (tag, chainId, height, round, blockHash).'),
      }),
      Limits.maxValidators,
    ),
    'Commit signatures sorted by validator address.',
  ),
});

/** A validator. */
export const validatorType: WireType<Validator> = object({
  publicKey: req(publicKeyType, 'Ed25519 public key.'),
  address: req(addressType, 'Address (first 20 bytes of SHA-256 of the key).'),
});

/** A contract event without position. */
export const eventType: WireType<Event> = object({
  contract: req(nameType, 'Emitting contract.'),
  name: req(nameType, 'Event name.'),
  data: req(value(), 'Event data (contract value).'),
});

/** A receipt. */
export const receiptType: WireType<Receipt> = object({
  txHash: req(hash32(), 'Transaction hash (or the schedule entry hash of a callback).'),
  status: req(oneOf(RECEIPT_STATUSES), 'Outcome.'),
  gasUsed: req(uint(), 'Gas used.'),
  returnValue: req(value(), 'Return value (null unless ok).'),
  events: req(array(eventType, Limits.maxEventsPerReceipt), 'Events, only when ok.'),
  errorCode: req(str(Limits.maxNameLength), 'Revert code or VM code; empty when ok.'),
  error: req(str(Limits.maxErrorLength), 'Error message; empty when ok.'),
});

/** A receipt with its place in the chain. */
export const receiptRecordType = object({
  receipt: req(receiptType, 'The receipt.'),
  height: req(heightType, 'Block height.'),
  receiptIndex: req(uint(), 'Index in the block’s receipts (receiptsRoot leaf).'),
});

/** A decoded transaction as the JSON API shows it. */
export interface TxView {
  readonly hash: Bytes;
  readonly chainId: string;
  readonly from: Bytes;
  readonly sender: Bytes;
  readonly nonce: number;
  readonly kind: (typeof TX_KINDS)[number];
  readonly contract: string;
  readonly method: string;
  readonly args: Value;
  readonly gasLimit: number;
  readonly signature: Bytes;
  readonly raw: Bytes;
}

/** The JSON view of a signed transaction. */
export const txViewType: WireType<TxView> = object({
  hash: req(hash32(), 'Transaction hash (SHA-256 of the signed body).'),
  chainId: req(nameType, 'Chain id the sender signed.'),
  from: req(publicKeyType, 'Sender public key.'),
  sender: req(addressType, 'Sender address.'),
  nonce: req(uint(), 'Sender nonce.'),
  kind: req(oneOf(TX_KINDS), 'call, deploy, upgrade, freeze or unfreeze.'),
  contract: req(nameType, 'Target contract.'),
  method: req(str(Limits.maxNameLength), 'Method (empty for lifecycle kinds).'),
  args: req(value(), 'Arguments.'),
  gasLimit: req(uint(), 'Gas limit.'),
  signature: req(signatureType, 'Ed25519 signature.'),
  raw: req(txBytesType, 'Signed wire bytes, as given to tx_send.'),
});

/** The view of a decoded signed transaction. */
export function txViewOf(stx: SignedTransaction): TxView {
  return {
    hash: stx.hash,
    chainId: stx.tx.chainId,
    from: stx.tx.from,
    sender: addressOf(stx.tx.from),
    nonce: stx.tx.nonce,
    kind: stx.tx.kind,
    contract: stx.tx.contract,
    method: stx.tx.method,
    args: stx.tx.args,
    gasLimit: stx.tx.gasLimit,
    signature: stx.signature,
    raw: stx.bytes,
  };
}

/** A committed transaction with its place in the chain. */
export const txRecordType = object({
  tx: req(txViewType, 'The transaction.'),
  height: req(heightType, 'Block height.'),
  index: req(uint(), 'Index in the block’s transactions (txRoot leaf).'),
});

/** An event with its position and cursor. */
export const chainEventType = object({
  cursor: req(cursorType, 'Position of the event; pass it to resume after it.'),
  height: req(heightType, 'Block height.'),
  receiptIndex: req(uint(), 'Receipt index in the block.'),
  eventIndex: req(uint(), 'Event index in the receipt.'),
  txHash: req(hash32(), 'Transaction (or callback) hash.'),
  contract: req(nameType, 'Emitting contract.'),
  name: req(nameType, 'Event name.'),
  data: req(value(), 'Event data.'),
});
/** An event as the API returns it. */
export type ChainEventJson = Infer<typeof chainEventType>;

/** A Merkle inclusion proof (RFC 9162). */
export const merkleProofType: WireType<MerkleProof> = object({
  index: req(uint(), 'Leaf index.'),
  size: req(uint(), 'Number of leaves.'),
  path: req(array(hash32(), 64), 'Audit path, bottom-up.'),
});

/** A block with its hash; `txs` and `receipts` only when asked for in full. */
export const blockType = object({
  hash: req(hash32(), 'Block hash (SHA-256 of the canonical header).'),
  header: req(headerType, 'Header.'),
  txHashes: req(array(hash32(), Limits.maxBlockTxs), 'Transaction hashes in order.'),
  txs: opt(array(txViewType, Limits.maxBlockTxs), 'Decoded transactions (with `full`).'),
  receipts: opt(array(receiptType, Limits.maxBlockTxs * 2), 'Receipts in order (with `full`).'),
});
