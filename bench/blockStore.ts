/**
 * Block store throughput: committing blocks (block, certificate, receipts, tx index, events and
 * head in one batch) on LevelDB with and without fsync and in memory, and the reads RPC relies
 * on. Run with `npx node bench/blockStore.ts`; prints a table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bytes } from '../core/bytes.ts';
import { sha256 } from '../core/hash.ts';
import { generateKeyPair } from '../core/keys.ts';
import { merkleRoot } from '../core/merkle.ts';
import { encodeReceipt, hashHeader, signTx, type Receipt, type SignedTransaction } from '../core/types.ts';
import {
  ZERO_HASH,
  createBlockStore,
  type BlockStore,
  type CommitInput,
} from '../node/storage/blockStore.ts';
import { createMemoryStore, openLevelStore, type KvStore } from '../node/storage/kv.ts';
import { measure, table, type Row } from './measure.ts';

const TXS_PER_BLOCK = 100;
const sender = generateKeyPair();
const proposer = new Uint8Array(20).fill(1);
const signature = new Uint8Array(64).fill(2);

// One block's worth of distinct signed transactions and receipts, reused by every block: the
// store does no cross-block duplicate lookups, so the write cost is the same as fresh ones.
const txs: SignedTransaction[] = Array.from({ length: TXS_PER_BLOCK }, (_, i) =>
  signTx(
    {
      chainId: 'bench',
      from: sender.publicKey,
      nonce: i,
      kind: 'call',
      contract: 'receivables',
      method: 'transfer',
      args: { id: `RCV-${i}`, to: '0x' + 'ab'.repeat(20), amount: 125_000 + i, opId: `op-${i}` },
      gasLimit: 1_000_000,
    },
    sender.secretKey,
  ),
);
const receipts: Receipt[] = txs.map((t, i) => ({
  txHash: t.hash,
  status: 'ok',
  gasUsed: 30_000 + i,
  returnValue: null,
  events: [{ contract: 'receivables', name: 'Transferred', data: { id: `RCV-${i}`, amount: 125_000 + i } }],
  errorCode: '',
  error: '',
}));
const txRoot = merkleRoot(txs.map((t) => t.bytes));
const receiptsRoot = merkleRoot(receipts.map(encodeReceipt));
const emptyRoot = merkleRoot([]);

function nextBlock(store: BlockStore, withTxs: boolean): CommitInput {
  const head = store.getHead();
  const height = (head?.height ?? 0) + 1;
  const header = {
    chainId: 'bench',
    height,
    prevHash: head?.hash ?? ZERO_HASH,
    timestamp: 1_700_000_000_000 + height,
    proposer,
    round: 0,
    txRoot: withTxs ? txRoot : emptyRoot,
    stateRoot: sha256(Uint8Array.of(height & 0xff)),
    receiptsRoot: withTxs ? receiptsRoot : emptyRoot,
    validatorsHash: ZERO_HASH,
  };
  const blockHash: Bytes = hashHeader(header);
  return {
    block: { header, txs: withTxs ? txs.map((t) => t.bytes) : [] },
    certificate: { height, round: 0, blockHash, signatures: [{ validator: proposer, signature }] },
    receipts: withTxs ? receipts : [],
  };
}

const dirs: string[] = [];
async function level(sync: boolean): Promise<KvStore> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-bench-blockstore-'));
  dirs.push(dir);
  return openLevelStore(dir, { syncWrites: sync });
}

const rows: Row[] = [];
const note = `${TXS_PER_BLOCK} txs, ${TXS_PER_BLOCK} events`;
try {
  for (const [name, kv] of [
    ['LevelDB, fsync', await level(true)],
    ['LevelDB, no fsync', await level(false)],
    ['memory', createMemoryStore()],
  ] as const) {
    const store = await createBlockStore(kv);
    rows.push(
      await measure(`commitBlock (${name})`, () => store.commitBlock(nextBlock(store, true)), { note }),
    );
    if (name !== 'memory') {
      rows.push(
        await measure(`commitBlock empty block (${name})`, () => store.commitBlock(nextBlock(store, false))),
      );
    }
    await kv.close();
  }

  const kv = await level(false);
  const store = await createBlockStore(kv);
  for (let i = 0; i < 200; i++) await store.commitBlock(nextBlock(store, true));
  let h = 0;
  rows.push(
    await measure('getBlockByHeight (decode 100-tx block)', () => store.getBlockByHeight((h++ % 200) + 1)),
  );
  let t = 0;
  rows.push(await measure('getTxLocation', () => store.getTxLocation(txs[t++ % TXS_PER_BLOCK]!.hash)));
  rows.push(
    await measure('getReceiptByTxHash', () => store.getReceiptByTxHash(txs[t++ % TXS_PER_BLOCK]!.hash)),
  );
  rows.push(
    await measure(
      'getEvents contract+name, 100 per page',
      () =>
        store.getEvents({
          fromHeight: 1,
          toHeight: 200,
          contract: 'receivables',
          name: 'Transferred',
          limit: 100,
        }),
      { batch: 100, note: 'per event' },
    ),
  );
  await kv.close();
} finally {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
}

console.log(table(rows));
