/**
 * Client-side verification: a header is trusted only if its commit certificate carries a quorum
 * of signatures of a validator set the caller trusts, and a transaction, receipt or state value
 * only if its proof holds against such a header. The node that serves the proof and the node that
 * serves the header may differ, so one lying node cannot forge either.
 */
import { bytesEqual, toHex, type Bytes } from '../../core/bytes.ts';
import { verifyMerkleProof, type MerkleProof } from '../../core/merkle.ts';
import { decodeStateProof, verifyStateProof } from '../../core/stateProof.ts';
import {
  checkCertificate,
  decodeSignedTx,
  encodeReceipt,
  hashHeader,
  hashValidators,
  type BlockHeader,
  type CommitCertificate,
  type Receipt,
  type SignedTransaction,
  type Validator,
  validatorOf,
  GOVERNANCE_CONTRACT,
  VALIDATOR_CHANGE_EVENT,
} from '../../core/types.ts';
import type { TrellisClient } from './client.ts';
import { SdkError } from './errors.ts';

/**
 * Checks that `certificate` commits `header` under `validators` (a quorum of valid, distinct
 * signatures over the header's hash) and that the header names that validator set. Throws
 * SdkError BAD_CERTIFICATE otherwise.
 */
export function verifyCommittedHeader(
  header: BlockHeader,
  certificate: CommitCertificate,
  chainId: string,
  validators: readonly Validator[],
): void {
  if (header.chainId !== chainId) {
    throw new SdkError('BAD_CERTIFICATE', `header of chain "${header.chainId}", expected "${chainId}"`, {});
  }
  if (!bytesEqual(header.validatorsHash, hashValidators(validators))) {
    throw new SdkError(
      'BAD_CERTIFICATE',
      `header ${header.height} names another validator set than the trusted one`,
      {
        height: header.height,
      },
    );
  }
  const fault = checkCertificate(certificate, chainId, hashHeader(header), header.height, validators);
  if (fault !== null) {
    throw new SdkError('BAD_CERTIFICATE', `commit certificate of height ${header.height} refused: ${fault}`, {
      height: header.height,
      fault,
    });
  }
}

/** True when `txBytes` is the leaf `proof` places under `header.txRoot`. */
export function checkTxProof(header: BlockHeader, txBytes: Bytes, proof: MerkleProof): boolean {
  return verifyMerkleProof(header.txRoot, txBytes, proof);
}

/** True when `receipt` (canonically encoded) is the leaf `proof` places under `header.receiptsRoot`. */
export function checkReceiptProof(header: BlockHeader, receipt: Receipt, proof: MerkleProof): boolean {
  return verifyMerkleProof(header.receiptsRoot, encodeReceipt(receipt), proof);
}

/** Light-client options: `validatorsAt` or `genesisValidators`, not both. */
export type LightClientOptions =
  | {
      readonly chainId: string;
      /** The validator set the caller trusts for a height. */
      readonly validatorsAt: (height: number) => readonly Validator[] | Promise<readonly Validator[]>;
    }
  | {
      readonly chainId: string;
      /**
       * The genesis validator set, from a genesis file the caller trusts. The client then follows
       * validator-set changes by itself: for a height past a change it asks the node for that
       * height's set (chain_getValidators) and accepts the set only once it has proven the change:
       * the receipt of the transaction that made it, whose approvals ValidatorSetChanged event
       * names exactly this set and first height, against a header certified by the set before it.
       */
      readonly genesisValidators: readonly Validator[];
    };

/** Where to fetch proofs and headers from (they may be different nodes). */
export interface ProofSources {
  readonly proofFrom: TrellisClient;
  /** Default: `proofFrom`. */
  readonly headerFrom?: TrellisClient;
}

/** Verifies headers and proofs against trusted validators. */
export interface LightClient {
  /** Fetches the header and certificate of `height` from `source` and verifies them. Cached. */
  verifiedHeader(source: TrellisClient, height: number): Promise<BlockHeader>;
  verifyTx(
    hash: Bytes,
    sources: ProofSources,
  ): Promise<{ tx: SignedTransaction; height: number; header: BlockHeader }>;
  verifyReceipt(
    hash: Bytes,
    sources: ProofSources,
  ): Promise<{ receipt: Receipt; height: number; header: BlockHeader }>;
  /** A state value (undefined when absent) proven against the stateRoot of the height the node names. */
  verifyState(
    contract: string,
    key: Bytes,
    sources: ProofSources & { readonly height?: number },
  ): Promise<{ value: Bytes | undefined; height: number; header: BlockHeader }>;
}

/** Verified headers kept per light client. */
const MAX_CACHED_HEADERS = 1024;
/** Proven validator sets kept per light client (by first height); each costs one receipt proof. */
const MAX_CACHED_EPOCHS = 1024;

/** Creates a light client. */
export function createLightClient(options: LightClientOptions): LightClient {
  const cache = new Map<number, BlockHeader>();
  const epochs = new Map<number, readonly Validator[]>();

  /** The set that certifies `height`, as the caller trusts it or as proven from genesis. */
  async function setAt(source: TrellisClient, height: number): Promise<readonly Validator[]> {
    if ('validatorsAt' in options) return options.validatorsAt(height);
    const info = await source.call('chain_getValidators', { height });
    if (info.height !== height || info.fromHeight > height) {
      throw new SdkError(
        'MISMATCH',
        `asked for the validator set of ${height}, got one from ${info.fromHeight}`,
        {},
      );
    }
    // Whatever the node says of the genesis epoch, the caller's own genesis set decides.
    if (info.fromHeight <= 1) return options.genesisValidators;
    const proven = epochs.get(info.fromHeight);
    if (proven !== undefined) return proven;
    if (info.changedBy === undefined) {
      throw new SdkError('BAD_PROOF', `the node names no transaction for the change at ${info.fromHeight}`, {
        fromHeight: info.fromHeight,
      });
    }
    // The receipt sits below the change's first height, so its header is certified by an earlier
    // set: the recursion walks back one change at a time and ends at genesis.
    const { receipt, height: at } = await verifyReceipt(
      info.changedBy,
      { proofFrom: source },
      info.fromHeight,
    );
    const change = receipt.events.findLast(
      (e) => e.contract === GOVERNANCE_CONTRACT && e.name === VALIDATOR_CHANGE_EVENT,
    )?.data as { validators?: unknown; effectiveHeight?: unknown } | undefined;
    const keys = Array.isArray(change?.validators)
      ? change.validators.map((v) => (v as { publicKey?: unknown } | null)?.publicKey)
      : [];
    const matches =
      receipt.status === 'ok' &&
      Number(change?.effectiveHeight) === info.fromHeight &&
      keys.length === info.validators.length &&
      keys.every((k, i) => k instanceof Uint8Array && bytesEqual(k, info.validators[i]!.publicKey));
    if (!matches) {
      throw new SdkError(
        'BAD_PROOF',
        `the validator set from height ${info.fromHeight} is not the one the change at height ${at} approved`,
        { fromHeight: info.fromHeight, changedAt: at },
      );
    }
    // Addresses are derived here, not taken from the node.
    const set = keys.map((k) => validatorOf(k as Bytes));
    if (epochs.size >= MAX_CACHED_EPOCHS) epochs.delete(epochs.keys().next().value!);
    epochs.set(info.fromHeight, set);
    return set;
  }

  async function verifiedHeader(source: TrellisClient, height: number): Promise<BlockHeader> {
    const cached = cache.get(height);
    if (cached !== undefined) return cached;
    const { header, certificate } = await source.call('chain_getCommit', { height });
    if (header.height !== height) {
      throw new SdkError('MISMATCH', `asked for header ${height}, got ${header.height}`, {});
    }
    verifyCommittedHeader(header, certificate, options.chainId, await setAt(source, height));
    if (cache.size >= MAX_CACHED_HEADERS) cache.delete(cache.keys().next().value!);
    cache.set(height, header);
    return header;
  }

  function badProof(what: string, meta: Record<string, unknown>): never {
    throw new SdkError('BAD_PROOF', `${what}: proof does not hold against the certified header`, meta);
  }

  /** `below`: the receipt must sit below this height (checked before its header is fetched). */
  async function verifyReceipt(
    hash: Bytes,
    { proofFrom, headerFrom }: ProofSources,
    below = Number.MAX_SAFE_INTEGER,
  ): Promise<{ receipt: Receipt; height: number; header: BlockHeader }> {
    const p = await proofFrom.call('tx_getReceiptProof', { hash });
    if (!bytesEqual(p.receipt.txHash, hash)) {
      throw new SdkError('MISMATCH', `proof is for the receipt of ${toHex(p.receipt.txHash)}`, {});
    }
    if (p.height >= below) {
      throw new SdkError(
        'BAD_PROOF',
        `receipt of ${toHex(hash)} at height ${p.height}, expected below ${below}`,
        {
          height: p.height,
        },
      );
    }
    const header = await verifiedHeader(headerFrom ?? proofFrom, p.height);
    if (!checkReceiptProof(header, p.receipt, p.proof))
      badProof(`receipt of ${toHex(hash)}`, { height: p.height });
    return { receipt: p.receipt, height: p.height, header };
  }

  return {
    verifiedHeader,
    async verifyTx(hash, { proofFrom, headerFrom }) {
      const p = await proofFrom.call('tx_getProof', { hash });
      const tx = decodeSignedTx(p.tx);
      if (!bytesEqual(tx.hash, hash))
        throw new SdkError('MISMATCH', `proof is for transaction ${toHex(tx.hash)}`, {});
      const header = await verifiedHeader(headerFrom ?? proofFrom, p.height);
      if (!checkTxProof(header, p.tx, p.proof)) badProof(`transaction ${toHex(hash)}`, { height: p.height });
      return { tx, height: p.height, header };
    },
    verifyReceipt: (hash, sources) => verifyReceipt(hash, sources),
    async verifyState(contract, key, { proofFrom, headerFrom, height }) {
      const r = await proofFrom.call('state_get', {
        contract,
        key,
        proof: true,
        ...(height === undefined ? {} : { height }),
      });
      if (r.proof === undefined) throw new SdkError('BAD_PROOF', 'the node sent no proof', {});
      if (height !== undefined && r.height !== height) {
        throw new SdkError('MISMATCH', `asked for height ${height}, got ${r.height}`, {});
      }
      const header = await verifiedHeader(headerFrom ?? proofFrom, r.height);
      const value = r.value ?? undefined;
      let ok = false;
      try {
        ok = verifyStateProof(header.stateRoot, contract, key, value, decodeStateProof(r.proof));
      } catch {
        ok = false;
      }
      if (!ok) badProof(`state ${contract}/${toHex(key)}`, { height: r.height });
      return { value, height: r.height, header };
    },
  };
}
