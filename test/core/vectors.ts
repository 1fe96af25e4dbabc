/**
 * The inputs of the golden vectors: fixed keys and structures whose canonical bytes are pinned in
 * test/fixtures/core/golden.json. Any change to the encoding changes those bytes and fails the test.
 */
import { fromHex } from '../../core/bytes.ts';
import { keyPairFromSecret } from '../../core/keys.ts';
import type { BlockHeader, Receipt, Transaction } from '../../core/types.ts';
import { addressOf } from '../../core/keys.ts';

export const secret = fromHex('0x' + '07'.repeat(32));
export const keys = keyPairFromSecret(secret);

export const tx: Transaction = {
  chainId: 'trellis-golden',
  from: keys.publicKey,
  nonce: 7,
  kind: 'call',
  contract: 'receivables',
  method: 'transfer',
  args: { id: 'RCV-0001', to: '0x' + 'ab'.repeat(20), amount: 125_000, big: 2n ** 60n, memo: 'tier 1' },
  gasLimit: 1_000_000,
};

export const header: BlockHeader = {
  chainId: 'trellis-golden',
  height: 42,
  prevHash: fromHex('0x' + '11'.repeat(32)),
  timestamp: 1_767_225_600_000,
  proposer: addressOf(keys.publicKey),
  round: 1,
  txRoot: fromHex('0x' + '22'.repeat(32)),
  stateRoot: fromHex('0x' + '33'.repeat(32)),
  receiptsRoot: fromHex('0x' + '44'.repeat(32)),
  validatorsHash: fromHex('0x' + '55'.repeat(32)),
};

export const receipt: Receipt = {
  txHash: fromHex('0x' + '66'.repeat(32)),
  status: 'ok',
  gasUsed: 5321,
  returnValue: { ok: true },
  events: [{ contract: 'receivables', name: 'Transferred', data: { id: 'RCV-0001', amount: 125_000 } }],
  errorCode: '',
  error: '',
};
