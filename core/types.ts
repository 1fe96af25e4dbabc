import { compareBytes, type Bytes } from './bytes.ts';
import {
  canonicalValue,
  pack,
  readArray,
  readBytes,
  readEnum,
  readList,
  readString,
  readUint,
  unpackCanonical,
  type Value,
} from './codec.ts';
import { CodecError } from './errors.ts';
import { HASH_BYTES, sha256 } from './hash.ts';
import { ADDRESS_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, addressOf, sign, verify } from './keys.ts';

/**
 * Domain tags: the first field of every signed or hashed structure, so bytes signed for one
 * purpose can never be replayed as another. The chainId follows the tag in every signed string.
 */
export const Tag = {
  tx: 'trellis.tx.v1',
  header: 'trellis.header.v1',
  commitVote: 'trellis.commit.v1',
  prepareVote: 'trellis.prepare.v1',
  proposal: 'trellis.proposal.v1',
  roundChange: 'trellis.roundchange.v1',
  validators: 'trellis.validators.v1',
} as const;

/** Limits on what a client or peer may send. */
export const Limits = {
  /** Largest signed transaction on the wire; deploys carry TypeScript source. */
  maxTxBytes: 256 * 1024,
  maxNameLength: 64,
  maxChainIdLength: 64,
  /** Most transactions one block may carry, whatever the configured block size. */
  maxBlockTxs: 50_000,
  maxEventsPerReceipt: 1024,
  maxErrorLength: 1024,
  maxValidators: 1024,
} as const;

/** Names of contracts, methods and events: short, ASCII, no surprises in logs or keys. */
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/**
 * Names of the VM's own state namespaces (`$code`, `$nonce`, ...): a '$' no user contract name can
 * start with, so transactions can never address them.
 */
export const SYSTEM_NAME_RE = /^\$[a-z][a-z0-9_]{0,31}$/;

/** What a transaction does. */
export const TX_KINDS = ['call', 'deploy', 'upgrade', 'freeze', 'unfreeze'] as const;
export type TxKind = (typeof TX_KINDS)[number];

/** The fields a sender signs. */
export interface Transaction {
  readonly chainId: string;
  /** Sender's Ed25519 public key (32 bytes). */
  readonly from: Bytes;
  /** Per-sender sequence number, starting at 0. */
  readonly nonce: number;
  readonly kind: TxKind;
  readonly contract: string;
  /** Method to call; empty for lifecycle kinds that need none. */
  readonly method: string;
  readonly args: Value;
  readonly gasLimit: number;
}

/** A transaction with its signature, its exact signed bytes and its hash. */
export interface SignedTransaction {
  readonly tx: Transaction;
  /** The canonical signed bytes: tag, chainId, then the transaction fields. */
  readonly body: Bytes;
  readonly signature: Bytes;
  /** SHA-256 of `body`: the transaction's identity. */
  readonly hash: Bytes;
  /** The wire encoding: [body, signature]. */
  readonly bytes: Bytes;
}

function checkName(v: unknown, path: string, allowEmpty = false): string {
  const s = readString(v, path, Limits.maxNameLength);
  if (allowEmpty && s === '') return s;
  if (!NAME_RE.test(s)) {
    throw new CodecError('WRONG_SHAPE', `${path}: expected a name matching ${NAME_RE.source}, got "${s}"`, {
      path,
    });
  }
  return s;
}

function checkChainId(v: unknown, path: string): string {
  return checkName(v, path);
}

/** Canonical signed bytes of a transaction. Validates every field; throws CodecError if one is bad. */
export function encodeTxBody(tx: Transaction): Bytes {
  checkChainId(tx.chainId, 'tx.chainId');
  readBytes(tx.from, 'tx.from', PUBLIC_KEY_BYTES);
  readUint(tx.nonce, 'tx.nonce');
  readEnum(tx.kind, TX_KINDS, 'tx.kind');
  checkName(tx.contract, 'tx.contract');
  checkName(tx.method, 'tx.method', true);
  readUint(tx.gasLimit, 'tx.gasLimit');
  const args = canonicalValue(tx.args, 'tx.args');
  return pack([Tag.tx, tx.chainId, tx.from, tx.nonce, tx.kind, tx.contract, tx.method, args, tx.gasLimit]);
}

/** Signs a transaction with the sender's secret key. */
export function signTx(tx: Transaction, secretKey: Bytes): SignedTransaction {
  const body = encodeTxBody(tx);
  const signature = sign(body, secretKey);
  const bytes = pack([body, signature]);
  if (bytes.length > Limits.maxTxBytes) {
    throw new CodecError('TOO_LARGE', `transaction: at most ${Limits.maxTxBytes} bytes`, {
      size: bytes.length,
    });
  }
  return { tx, body, signature, hash: sha256(body), bytes };
}

/** Decodes the fields of signed transaction body bytes. */
export function decodeTxBody(body: Bytes): Transaction {
  const f = readArray(unpackCanonical(body, 'tx body'), 9, 'tx body');
  if (f[0] !== Tag.tx) throw new CodecError('WRONG_TAG', `tx body: expected tag ${Tag.tx}`, {});
  return {
    chainId: checkChainId(f[1], 'tx.chainId'),
    from: readBytes(f[2], 'tx.from', PUBLIC_KEY_BYTES),
    nonce: readUint(f[3], 'tx.nonce'),
    kind: readEnum(f[4], TX_KINDS, 'tx.kind'),
    contract: checkName(f[5], 'tx.contract'),
    method: checkName(f[6], 'tx.method', true),
    args: canonicalValue(f[7], 'tx.args'),
    gasLimit: readUint(f[8], 'tx.gasLimit'),
  };
}

/**
 * The body and signature of a signed transaction in exactly its canonical encoding, read without
 * the generic decoder: a 2-array (0x92) of the body as the shortest bin (c4/c5/c6 with its length)
 * and the 64-byte signature (c4 40), nothing after. Undefined for any other bytes. Decoding and
 * re-encoding every transaction envelope to prove it canonical cost as much as the rest of the
 * decode; this reads the one canonical form directly.
 */
function splitTxEnvelope(b: Bytes): [Bytes, Bytes] | undefined {
  if (b.length < 2 + 2 + SIGNATURE_BYTES + 2 || b[0] !== 0x92) return undefined;
  let len: number;
  let at: number;
  const tag = b[1];
  if (tag === 0xc4) {
    len = b[2]!;
    at = 3;
  } else if (tag === 0xc5) {
    len = (b[2]! << 8) | b[3]!;
    at = 4;
    if (len < 0x100) return undefined;
  } else if (tag === 0xc6) {
    len = ((b[2]! << 24) | (b[3]! << 16) | (b[4]! << 8) | b[5]!) >>> 0;
    at = 6;
    if (len < 0x10000) return undefined;
  } else return undefined;
  const sigAt = at + len;
  if (sigAt + 2 + SIGNATURE_BYTES !== b.length || b[sigAt] !== 0xc4 || b[sigAt + 1] !== SIGNATURE_BYTES) {
    return undefined;
  }
  return [b.subarray(at, sigAt), b.subarray(sigAt + 2)];
}

/**
 * The hash of a signed transaction (SHA-256 of its body) from its wire bytes, checking only the
 * envelope (canonical 2-array of body and 64-byte signature), not the body's fields.
 */
export function txHashOfWire(bytes: Bytes, what = 'transaction'): Bytes {
  const fast = splitTxEnvelope(bytes);
  if (fast !== undefined) return sha256(fast[0]);
  const f = readArray(unpackCanonical(bytes, what), 2, what);
  readBytes(f[1], `${what}.signature`, SIGNATURE_BYTES);
  return sha256(readBytes(f[0], `${what}.body`));
}

/**
 * Decodes a signed transaction from the wire. Checks size, shape, canonical encoding and, when
 * given, the chainId; it does not verify the signature (see {@link verifyTx}).
 */
export function decodeSignedTx(bytes: Bytes, expectedChainId?: string): SignedTransaction {
  if (bytes.length > Limits.maxTxBytes) {
    throw new CodecError(
      'TOO_LARGE',
      `transaction: at most ${Limits.maxTxBytes} bytes, got ${bytes.length}`,
      {
        size: bytes.length,
      },
    );
  }
  let body: Bytes;
  let signature: Bytes;
  const fast = splitTxEnvelope(bytes);
  if (fast !== undefined) {
    [body, signature] = fast;
  } else {
    // Not the canonical shape: the generic decoder names what is wrong (or accepts what the
    // shortcut does not know).
    const f = readArray(unpackCanonical(bytes, 'transaction'), 2, 'transaction');
    body = readBytes(f[0], 'transaction.body');
    signature = readBytes(f[1], 'transaction.signature', SIGNATURE_BYTES);
  }
  const tx = decodeTxBody(body);
  if (expectedChainId !== undefined && tx.chainId !== expectedChainId) {
    throw new CodecError(
      'WRONG_CHAIN',
      `transaction: chainId "${tx.chainId}", expected "${expectedChainId}"`,
      {
        got: tx.chainId,
        expected: expectedChainId,
      },
    );
  }
  return { tx, body, signature, hash: sha256(body), bytes };
}

/** True when the transaction's signature is valid for its sender over its exact body bytes. */
export function verifyTx(stx: SignedTransaction): boolean {
  return verify(stx.signature, stx.body, stx.tx.from);
}

/** Block header: everything a light client needs to check a block. */
export interface BlockHeader {
  readonly chainId: string;
  readonly height: number;
  readonly prevHash: Bytes;
  /** Milliseconds since the Unix epoch, chosen by the proposer and checked by replicas. */
  readonly timestamp: number;
  /** Address of the proposer. */
  readonly proposer: Bytes;
  readonly round: number;
  readonly txRoot: Bytes;
  /** State root after executing this block. */
  readonly stateRoot: Bytes;
  readonly receiptsRoot: Bytes;
  /** Hash of the validator set that must certify this block. */
  readonly validatorsHash: Bytes;
}

/** Canonical bytes of a header; the block hash is their SHA-256. */
export function encodeHeader(h: BlockHeader): Bytes {
  return pack([
    Tag.header,
    h.chainId,
    h.height,
    h.prevHash,
    h.timestamp,
    h.proposer,
    h.round,
    h.txRoot,
    h.stateRoot,
    h.receiptsRoot,
    h.validatorsHash,
  ]);
}

function readHeaderFields(v: unknown): BlockHeader {
  const f = readArray(v, 11, 'header');
  if (f[0] !== Tag.header) throw new CodecError('WRONG_TAG', `header: expected tag ${Tag.header}`, {});
  return {
    chainId: checkChainId(f[1], 'header.chainId'),
    height: readUint(f[2], 'header.height'),
    prevHash: readBytes(f[3], 'header.prevHash', HASH_BYTES),
    timestamp: readUint(f[4], 'header.timestamp'),
    proposer: readBytes(f[5], 'header.proposer', ADDRESS_BYTES),
    round: readUint(f[6], 'header.round'),
    txRoot: readBytes(f[7], 'header.txRoot', HASH_BYTES),
    stateRoot: readBytes(f[8], 'header.stateRoot', HASH_BYTES),
    receiptsRoot: readBytes(f[9], 'header.receiptsRoot', HASH_BYTES),
    validatorsHash: readBytes(f[10], 'header.validatorsHash', HASH_BYTES),
  };
}

/** Decodes canonical header bytes. */
export function decodeHeader(bytes: Bytes): BlockHeader {
  return readHeaderFields(unpackCanonical(bytes, 'header'));
}

/** The hash that identifies a block: SHA-256 of its canonical header bytes. */
export function hashHeader(h: BlockHeader): Bytes {
  return sha256(encodeHeader(h));
}

/** A block: its header and its transactions as signed wire bytes, in execution order. */
export interface Block {
  readonly header: BlockHeader;
  readonly txs: readonly Bytes[];
}

/** Canonical bytes of a block: [header bytes, [tx bytes...]]. */
export function encodeBlock(b: Block): Bytes {
  return pack([encodeHeader(b.header), b.txs]);
}

/** Decodes a block; transactions stay as bytes (decode them with {@link decodeSignedTx}). */
export function decodeBlock(bytes: Bytes): Block {
  const f = readArray(unpackCanonical(bytes, 'block'), 2, 'block');
  const header = decodeHeader(readBytes(f[0], 'block.header'));
  const txs = readList(f[1], Limits.maxBlockTxs, 'block.txs').map((t, i) =>
    readBytes(t, `block.txs[${i}]`, undefined, Limits.maxTxBytes),
  );
  return { header, txs };
}

/** One validator's signature in a commit certificate. */
export interface CommitSignature {
  /** The validator's address. */
  readonly validator: Bytes;
  readonly signature: Bytes;
}

/** 2f+1 validator signatures over (chainId, height, round, blockHash): proof a block is final. */
export interface CommitCertificate {
  readonly height: number;
  readonly round: number;
  readonly blockHash: Bytes;
  /** Sorted by validator address, one per validator. */
  readonly signatures: readonly CommitSignature[];
}

/** The bytes a validator signs to commit a block. */
export function encodeCommitVote(chainId: string, height: number, round: number, blockHash: Bytes): Bytes {
  return pack([Tag.commitVote, chainId, height, round, blockHash]);
}

/** Canonical bytes of a commit certificate; signatures are sorted by validator address first. */
export function encodeCertificate(c: CommitCertificate): Bytes {
  const sigs = [...c.signatures].sort((a, b) => compareBytes(a.validator, b.validator));
  return pack([c.height, c.round, c.blockHash, sigs.map((s) => [s.validator, s.signature])]);
}

/** Decodes a commit certificate; rejects unsorted or duplicate signers. */
export function decodeCertificate(bytes: Bytes): CommitCertificate {
  const f = readArray(unpackCanonical(bytes, 'certificate'), 4, 'certificate');
  const signatures = readList(f[3], Limits.maxValidators, 'certificate.signatures').map((s, i) => {
    const p = readArray(s, 2, `certificate.signatures[${i}]`);
    return {
      validator: readBytes(p[0], `certificate.signatures[${i}].validator`, ADDRESS_BYTES),
      signature: readBytes(p[1], `certificate.signatures[${i}].signature`, SIGNATURE_BYTES),
    };
  });
  for (let i = 1; i < signatures.length; i++) {
    if (compareBytes(signatures[i - 1]!.validator, signatures[i]!.validator) >= 0) {
      throw new CodecError(
        'NON_CANONICAL',
        'certificate: signatures must be sorted by validator, no duplicates',
        {},
      );
    }
  }
  return {
    height: readUint(f[0], 'certificate.height'),
    round: readUint(f[1], 'certificate.round'),
    blockHash: readBytes(f[2], 'certificate.blockHash', HASH_BYTES),
    signatures,
  };
}

/** A validator as the chain knows it. */
export interface Validator {
  readonly publicKey: Bytes;
  readonly address: Bytes;
}

/** Builds a validator entry from its public key. */
export function validatorOf(publicKey: Bytes): Validator {
  return { publicKey, address: addressOf(publicKey) };
}

/** The quorum of a set of n equal-weight validators: the least count greater than 2n/3 (2f+1 for n=3f+1). */
export function quorumOf(n: number): number {
  return Math.floor((2 * n) / 3) + 1;
}

/**
 * Where governance records an approved validator-set change (contracts/approvals.ts): the
 * contract, and the event its receipt carries (`{ validators: [{ publicKey }], effectiveHeight }`).
 * The node reads the change from there, and a light client proves it from there.
 */
export const GOVERNANCE_CONTRACT = 'approvals';
export const VALIDATOR_CHANGE_EVENT = 'ValidatorSetChanged';

/** Hash of an ordered validator set, carried in each header. */
export function hashValidators(validators: readonly Validator[]): Bytes {
  return sha256(pack([Tag.validators, validators.map((v) => v.publicKey)]));
}

/** Why a certificate was refused; null when it is valid. */
export type CertificateFault =
  'WRONG_BLOCK' | 'UNKNOWN_SIGNER' | 'DUPLICATE_SIGNER' | 'BAD_SIGNATURE' | 'NO_QUORUM';

/**
 * Checks a commit certificate against a validator set: every signer known and distinct, every
 * signature valid over the commit vote, and at least a quorum of them. Pure; no storage.
 */
export function checkCertificate(
  cert: CommitCertificate,
  chainId: string,
  blockHash: Bytes,
  height: number,
  validators: readonly Validator[],
): CertificateFault | null {
  if (cert.height !== height || compareBytes(cert.blockHash, blockHash) !== 0) return 'WRONG_BLOCK';
  const byAddress = new Map(validators.map((v) => [Buffer.from(v.address).toString('hex'), v]));
  const seen = new Set<string>();
  const message = encodeCommitVote(chainId, cert.height, cert.round, cert.blockHash);
  for (const s of cert.signatures) {
    const id = Buffer.from(s.validator).toString('hex');
    const v = byAddress.get(id);
    if (v === undefined) return 'UNKNOWN_SIGNER';
    if (seen.has(id)) return 'DUPLICATE_SIGNER';
    seen.add(id);
    if (!verify(s.signature, message, v.publicKey)) return 'BAD_SIGNATURE';
  }
  return seen.size >= quorumOf(validators.length) ? null : 'NO_QUORUM';
}

/** A contract event. */
export interface Event {
  readonly contract: string;
  readonly name: string;
  readonly data: Value;
}

/** Outcome of a transaction or a scheduled callback. */
export const RECEIPT_STATUSES = ['ok', 'reverted', 'out-of-gas', 'rejected'] as const;
export type ReceiptStatus = (typeof RECEIPT_STATUSES)[number];

/** What executing one transaction (or scheduled callback) produced. */
export interface Receipt {
  /** The transaction's hash, or for a scheduled callback the hash of its schedule entry. */
  readonly txHash: Bytes;
  readonly status: ReceiptStatus;
  readonly gasUsed: number;
  readonly returnValue: Value;
  /** Events, only when status is ok (a reverted call emits nothing). */
  readonly events: readonly Event[];
  /** Revert code chosen by the contract, or a VM code; empty when ok. */
  readonly errorCode: string;
  readonly error: string;
}

/** Canonical bytes of a receipt, the leaves of receiptsRoot. */
export function encodeReceipt(r: Receipt): Bytes {
  return pack([
    r.txHash,
    r.status,
    r.gasUsed,
    canonicalValue(r.returnValue, 'receipt.returnValue'),
    r.events.map((e) => [e.contract, e.name, canonicalValue(e.data, 'event.data')]),
    r.errorCode,
    r.error,
  ]);
}

/** Decodes canonical receipt bytes. */
export function decodeReceipt(bytes: Bytes): Receipt {
  const f = readArray(unpackCanonical(bytes, 'receipt'), 7, 'receipt');
  return {
    txHash: readBytes(f[0], 'receipt.txHash', HASH_BYTES),
    status: readEnum(f[1], RECEIPT_STATUSES, 'receipt.status'),
    gasUsed: readUint(f[2], 'receipt.gasUsed'),
    returnValue: canonicalValue(f[3], 'receipt.returnValue'),
    events: readList(f[4], Limits.maxEventsPerReceipt, 'receipt.events').map((e, i) => {
      const p = readArray(e, 3, `receipt.events[${i}]`);
      return {
        contract: checkName(p[0], `receipt.events[${i}].contract`),
        name: checkName(p[1], `receipt.events[${i}].name`),
        data: canonicalValue(p[2], `receipt.events[${i}].data`),
      };
    }),
    errorCode: readString(f[5], 'receipt.errorCode', Limits.maxNameLength),
    error: readString(f[6], 'receipt.error', Limits.maxErrorLength),
  };
}
