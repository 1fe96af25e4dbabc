// Builds realistic chains for block-store tests: signed transactions, receipts with events, a
// scheduled-callback receipt, and commit certificates signed by a quorum of validators.
import { sha256 } from '../../../core/hash.ts';
import { keyPairFromSecret, addressOf, sign, type KeyPair } from '../../../core/keys.ts';
import { merkleRoot } from '../../../core/merkle.ts';
import {
  encodeCommitVote,
  encodeReceipt,
  hashHeader,
  hashValidators,
  quorumOf,
  signTx,
  validatorOf,
  type Block,
  type CommitCertificate,
  type Receipt,
} from '../../../core/types.ts';
import type { ChainHead, CommitInput } from '../../../node/storage/blockStore.ts';
import { compareBytes, type Bytes } from '../../../core/bytes.ts';

/** Chain id of the fixture chain. */
export const CHAIN_ID = 'trellis-test';

function seeded(label: string): KeyPair {
  return keyPairFromSecret(sha256(Buffer.from(label)));
}

/** Four validators and two senders with fixed keys. */
export const validatorKeys: KeyPair[] = [0, 1, 2, 3].map((i) => seeded(`validator-${i}`));
export const senderKeys: KeyPair[] = [0, 1].map((i) => seeded(`sender-${i}`));
const validators = validatorKeys.map((k) => validatorOf(k.publicKey));

/** Contracts and event names the fixture emits. */
export const CONTRACTS = ['receivables', 'warehouse'] as const;

/** The hash of the scheduled-callback receipt at `height` (callbacks have no transaction). */
export function callbackHash(height: number): Bytes {
  return sha256(Buffer.from(`callback-${height}`));
}

/**
 * The commit input of block `height` on top of `prev`. Transaction count varies with height
 * (0..txsMax); every tx emits one or two events; every third block carries a callback receipt.
 */
export function makeCommit(
  height: number,
  prev: ChainHead | undefined,
  prevHashIfFirst: Bytes,
  txsMax = 4,
): CommitInput {
  const txCount = height % (txsMax + 1);
  const signed = [];
  for (let i = 0; i < txCount; i++) {
    const sender = senderKeys[i % senderKeys.length]!;
    signed.push(
      signTx(
        {
          chainId: CHAIN_ID,
          from: sender.publicKey,
          nonce: height * 100 + i,
          kind: 'call',
          contract: CONTRACTS[i % 2]!,
          method: 'transfer',
          args: { to: `party-${i}`, amount: BigInt(height) * 1000n + BigInt(i) },
          gasLimit: 100_000,
        },
        sender.secretKey,
      ),
    );
  }
  const receipts: Receipt[] = signed.map((stx, i) => ({
    txHash: stx.hash,
    status: i === 2 ? 'reverted' : 'ok',
    gasUsed: 21_000 + i,
    returnValue: i === 2 ? null : { ok: true },
    events:
      i === 2
        ? []
        : [
            { contract: CONTRACTS[i % 2]!, name: 'Transferred', data: { height, i } },
            ...(i % 2 === 0 ? [{ contract: CONTRACTS[i % 2]!, name: 'Audited', data: [height, i] }] : []),
          ],
    errorCode: i === 2 ? 'INSUFFICIENT' : '',
    error: i === 2 ? 'balance too low' : '',
  }));
  if (height % 3 === 0) {
    receipts.push({
      txHash: callbackHash(height),
      status: 'ok',
      gasUsed: 500,
      returnValue: null,
      events: [{ contract: 'receivables', name: 'Matured', data: { height } }],
      errorCode: '',
      error: '',
    });
  }
  const block: Block = {
    header: {
      chainId: CHAIN_ID,
      height,
      prevHash: prev?.hash ?? prevHashIfFirst,
      timestamp: 1_700_000_000_000 + height * 1000,
      proposer: validators[height % validators.length]!.address,
      round: 0,
      txRoot: merkleRoot(signed.map((s) => s.bytes)),
      stateRoot: sha256(Buffer.from(`state-${height}`)),
      receiptsRoot: merkleRoot(receipts.map(encodeReceipt)),
      validatorsHash: hashValidators(validators),
    },
    txs: signed.map((s) => s.bytes),
  };
  return { block, certificate: certify(block), receipts };
}

/** A commit certificate for `block` signed by a quorum of the fixture validators. */
export function certify(block: Block): CommitCertificate {
  const blockHash = hashHeader(block.header);
  const vote = encodeCommitVote(CHAIN_ID, block.header.height, block.header.round, blockHash);
  const signatures = validatorKeys
    .slice(0, quorumOf(validatorKeys.length))
    .map((k) => ({ validator: addressOf(k.publicKey), signature: sign(vote, k.secretKey) }))
    .sort((a, b) => compareBytes(a.validator, b.validator));
  return { height: block.header.height, round: block.header.round, blockHash, signatures };
}
