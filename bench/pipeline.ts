/**
 * The single-core pipeline ceiling: one process does, for every transaction, what a node does on
 * the way to a commit, with the real components and no network: decode and verify the signed
 * bytes (node:crypto), admit to the mempool, build and execute 500-transaction blocks in the VM,
 * and commit block, receipts, indexes and state in one LevelDB batch. Its rate bounds what one core
 * can commit; a 4-validator network on one machine does the same work four times.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../core/bytes.ts';
import { addressOf, generateKeyPair, keyPairFromSecret, sign } from '../core/keys.ts';
import { sha256 } from '../core/hash.ts';
import {
  encodeCommitVote,
  hashHeader,
  hashValidators,
  signTx,
  validatorOf,
  type SignedTransaction,
} from '../core/types.ts';
import { openChain } from '../node/chain.ts';
import { DEFAULT_CONSENSUS_PARAMS, genesisHash, validateGenesis } from '../node/genesis.ts';
import { runtimeId } from '../node/runtime.ts';
import { openStateStore } from '../node/state/stateStore.ts';
import { createBlockStore } from '../node/storage/blockStore.ts';
import { openLevelStore } from '../node/storage/kv.ts';
import { createExecutor } from '../vm/executor.ts';

/** What the pipeline measured, in transactions per second of one core, per stage and overall. */
export interface PipelineFigures {
  readonly txs: number;
  readonly blockTxs: number;
  readonly admitUsPerTx: number;
  readonly executeUsPerTx: number;
  readonly commitUsPerTx: number;
  readonly ceilingTps: number;
}

const TOKEN_SOURCE = readFileSync(new URL('../test/rpc/fixtures/token.ts', import.meta.url), 'utf8');

/** Runs the pipeline over `blocks` blocks of `blockTxs` transfers. */
export async function measurePipeline(blocks = 8, blockTxs = 500): Promise<PipelineFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-pipeline-'));
  const validator = generateKeyPair();
  const admin = generateKeyPair();
  const chainId = 'pipeline';
  const genesis = validateGenesis({
    chainId,
    genesisTimeMs: 1_700_000_000_000,
    runtime: runtimeId(),
    organisations: [{ id: 'bank', name: 'Bank', roles: ['bank'], admins: [toHex(admin.publicKey)] }],
    validators: [
      {
        name: 'v0',
        organisation: 'bank',
        publicKey: toHex(validator.publicKey),
        p2p: ['/ip4/127.0.0.1/tcp/1'],
      },
    ],
    consensus: { ...DEFAULT_CONSENSUS_PARAMS },
    contracts: [{ name: 'token', source: TOKEN_SOURCE, initArgs: null }],
  });
  const validators = [validatorOf(validator.publicKey)];
  const kv = await openLevelStore(join(dir, 'chain'));
  const executor = createExecutor();
  try {
    const blocksStore = await createBlockStore(kv, { genesisHash: genesisHash(genesis), chainId });
    const state = await openStateStore(kv);
    const chain = await openChain(
      { genesis },
      { kv, blocks: blocksStore, state, executor, log: () => undefined },
    );
    const senders = Array.from({ length: 100 }, (_, i) =>
      keyPairFromSecret(sha256(Buffer.from(`pipeline/${i}`))),
    );
    const nonces = new Array<number>(senders.length).fill(0);
    const tx = (i: number, method: string, args: Record<string, unknown>): SignedTransaction => {
      const s = senders[i % senders.length]!;
      const nonce = nonces[i % senders.length]!++;
      return signTx(
        {
          chainId,
          from: s.publicKey,
          nonce,
          kind: 'call',
          contract: 'token',
          method,
          args: args as never,
          gasLimit: 1_000_000,
        },
        s.secretKey,
      );
    };
    const times = { admit: 0, execute: 0, commit: 0 };
    const block = async (txs: SignedTransaction[], timed: boolean): Promise<void> => {
      let t = performance.now();
      for (const x of txs) chain.mempool.add(x.bytes);
      const admit = performance.now() - t;
      const tip = chain.tip();
      t = performance.now();
      const b = chain.buildProposal({
        height: tip.height + 1,
        round: 0,
        prevHash: tip.hash,
        proposer: validators[0]!.address,
        validatorsHash: hashValidators(validators),
        timestamp: tip.timestamp + 1000,
      });
      const execute = performance.now() - t;
      const hash = hashHeader(b.header);
      const vote = encodeCommitVote(chainId, b.header.height, 0, hash);
      const cert = {
        height: b.header.height,
        round: 0,
        blockHash: hash,
        signatures: [{ validator: validators[0]!.address, signature: sign(vote, validator.secretKey) }],
      };
      t = performance.now();
      await chain.commit(b, cert);
      const commit = performance.now() - t;
      if (b.txs.length !== txs.length) throw new Error(`block took ${b.txs.length} of ${txs.length} txs`);
      if (timed) {
        times.admit += admit;
        times.execute += execute;
        times.commit += commit;
      }
    };
    await block(
      senders.map((s, i) => tx(i, 'mint', { to: addressOf(s.publicKey), amount: 1_000_000_000 })),
      false,
    );
    const transfer = (i: number): SignedTransaction =>
      tx(i, 'transfer', { to: addressOf(senders[(i + 1) % senders.length]!.publicKey), amount: 1 });
    await block(
      Array.from({ length: blockTxs }, (_, i) => transfer(i)),
      false,
    );
    for (let k = 0; k < blocks; k++)
      await block(
        Array.from({ length: blockTxs }, (_, i) => transfer(i)),
        true,
      );
    const n = blocks * blockTxs;
    const total = times.admit + times.execute + times.commit;
    return {
      txs: n,
      blockTxs,
      admitUsPerTx: (times.admit * 1000) / n,
      executeUsPerTx: (times.execute * 1000) / n,
      commitUsPerTx: (times.commit * 1000) / n,
      ceilingTps: (n * 1000) / total,
    };
  } finally {
    executor.close();
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = await measurePipeline();
  console.log(JSON.stringify(f, null, 2));
}
