/**
 * The single-core pipeline ceiling: one process does, for every transaction, what a node does on
 * the way to a commit, with the real components and no network: decode and verify the signed
 * bytes (node:crypto), admit to the mempool, build and execute 500-transaction blocks in the VM,
 * and commit block, receipts, indexes and state in one LevelDB batch. Its rate bounds what one core
 * can commit; a 4-validator network on one machine does the same work four times.
 *
 * Two workloads, as `npm run bench` loads them: receivable transfers through the supply-chain-
 * finance contracts (senders registered at genesis, one confirmed voucher each; not timed), or
 * the minimal token transfer (2 reads, 2 writes, 1 event).
 *
 *   npx node bench/pipeline.ts [receivables|transfer]
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../core/bytes.ts';
import { addressOf, generateKeyPair, keyPairFromSecret, sign, type KeyPair } from '../core/keys.ts';
import { sha256 } from '../core/hash.ts';
import {
  encodeCommitVote,
  hashHeader,
  hashValidators,
  signTx,
  validatorOf,
  verifyTx,
  type Receipt,
  type SignedTransaction,
} from '../core/types.ts';
import { lifecyclePolicyOf } from '../node/node.ts';
import { openChain } from '../node/chain.ts';
import { scfGenesisContracts } from '../node/scfGenesis.ts';
import { DEFAULT_CONSENSUS_PARAMS, genesisHash, validateGenesis } from '../node/genesis.ts';
import { runtimeId } from '../node/runtime.ts';
import { openStateStore } from '../node/state/stateStore.ts';
import { createBlockStore } from '../node/storage/blockStore.ts';
import { openLevelStore } from '../node/storage/kv.ts';
import { createExecutor } from '../vm/executor.ts';

/** What the pipeline measured, in transactions per second of one core, per stage and overall. */
export interface PipelineFigures {
  readonly workload: PipelineWorkload;
  readonly txs: number;
  readonly blockTxs: number;
  /** Ed25519 verification (node:crypto): on a node, done by worker threads (node/txVerifier.ts). */
  readonly verifyUsPerTx: number;
  /** Decode and the mempool's other checks and insertion: on the main thread. */
  readonly admitUsPerTx: number;
  readonly executeUsPerTx: number;
  readonly commitUsPerTx: number;
  readonly ceilingTps: number;
}

const TOKEN_SOURCE = readFileSync(new URL('../test/rpc/fixtures/token.ts', import.meta.url), 'utf8');

/** The workloads of {@link measurePipeline}. */
export type PipelineWorkload = 'receivables' | 'transfer';

/** Runs the pipeline over `blocks` blocks of `blockTxs` transfers. */
export async function measurePipeline(
  workload: PipelineWorkload = 'receivables',
  blocks = 8,
  blockTxs = 500,
): Promise<PipelineFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-pipeline-'));
  const validator = generateKeyPair();
  const admin = generateKeyPair();
  const tier1Admin = generateKeyPair();
  const chainId = 'pipeline';
  const senders = Array.from({ length: 100 }, (_, i) =>
    keyPairFromSecret(sha256(Buffer.from(`pipeline/${i}`))),
  );
  const organisations = [
    { id: 'acme', name: 'Acme', roles: ['core-enterprise'], admins: [toHex(admin.publicKey)] },
    { id: 'tier1', name: 'Tier 1', roles: ['supplier'], admins: [toHex(tier1Admin.publicKey)] },
  ];
  const genesis = validateGenesis({
    chainId,
    genesisTimeMs: 1_700_000_000_000,
    runtime: runtimeId(),
    organisations,
    validators: [
      {
        name: 'v0',
        organisation: 'acme',
        publicKey: toHex(validator.publicKey),
        p2p: ['/ip4/127.0.0.1/tcp/1'],
      },
    ],
    // A long round: the proposal budget (a quarter of the round's execution) must not cut blocks.
    consensus: { ...DEFAULT_CONSENSUS_PARAMS, roundTimeoutMs: 600_000 },
    contracts:
      workload === 'transfer'
        ? [{ name: 'token', source: TOKEN_SOURCE, initArgs: null }]
        : scfGenesisContracts(organisations, {
            members: senders.map((k) => ({
              address: toHex(addressOf(k.publicKey)),
              org: 'tier1',
              roles: ['operations'],
            })),
          }),
  });
  const validators = [validatorOf(validator.publicKey)];
  const kv = await openLevelStore(join(dir, 'chain'));
  const executor = createExecutor();
  try {
    const blocksStore = await createBlockStore(kv, { genesisHash: genesisHash(genesis), chainId });
    const state = await openStateStore(kv);
    const chain = await openChain(
      { genesis, policy: lifecyclePolicyOf(genesis) },
      { kv, blocks: blocksStore, state, executor, log: () => undefined },
    );
    const nonces = new Map<KeyPair, number>();
    const txOf = (s: KeyPair, contract: string, method: string, args: Record<string, unknown>) => {
      const nonce = nonces.get(s) ?? 0;
      nonces.set(s, nonce + 1);
      return signTx(
        {
          chainId,
          from: s.publicKey,
          nonce,
          kind: 'call',
          contract,
          method,
          args: args as never,
          gasLimit: 1_000_000,
        },
        s.secretKey,
      );
    };
    const tx = (i: number, method: string, args: Record<string, unknown>): SignedTransaction =>
      txOf(senders[i % senders.length]!, workload === 'transfer' ? 'token' : 'receivables', method, args);
    const times = { verify: 0, admit: 0, execute: 0, commit: 0 };
    const block = async (txs: SignedTransaction[], timed: boolean): Promise<Receipt[]> => {
      // As the node admits: decode and check, verify (there: on workers), then add.
      let t = performance.now();
      const decoded = txs.map((x) => {
        const d = chain.mempool.decode(x.bytes);
        chain.mempool.check(d);
        return d;
      });
      let admit = performance.now() - t;
      t = performance.now();
      for (const d of decoded)
        if (!verifyTx(d)) throw new Error('a pipeline transaction has a bad signature');
      const verify = performance.now() - t;
      t = performance.now();
      for (const d of decoded) chain.mempool.add(d, { verified: true });
      admit += performance.now() - t;
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
        times.verify += verify;
        times.admit += admit;
        times.execute += execute;
        times.commit += commit;
      }
      const receipts = await chain.blocks.getReceipts(b.header.height);
      const failed = receipts.find((r) => r.status !== 'ok');
      if (failed !== undefined) throw new Error(`a pipeline transaction failed: ${failed.error}`);
      return receipts;
    };
    let transfer: (i: number) => SignedTransaction;
    if (workload === 'transfer') {
      await block(
        senders.map((s, i) => tx(i, 'mint', { to: addressOf(s.publicKey), amount: 1_000_000_000 })),
        false,
      );
      transfer = (i) =>
        tx(i, 'transfer', { to: addressOf(senders[(i + 1) % senders.length]!.publicKey), amount: 1 });
    } else {
      // Every sender claims a voucher on acme; acme's admin confirms them all (not timed).
      const maturity = genesis.genesisTimeMs + 365 * 24 * 3600 * 1000;
      const issued = await block(
        senders.map((s, i) =>
          tx(i, 'issue', {
            opId: 'root',
            debtor: 'acme',
            holder: toHex(addressOf(s.publicKey)),
            amount: 1_000_000,
            maturity,
          }),
        ),
        false,
      );
      const roots = issued.map((r) => r.returnValue as { id: string; proposalId: string });
      await block(
        roots.map((v) => txOf(admin, 'approvals', 'approve', { id: v.proposalId })),
        false,
      );
      let seq = 0;
      transfer = (i) =>
        tx(i, 'transfer', {
          opId: `t${seq++}`,
          id: roots[i % senders.length]!.id,
          to: toHex(addressOf(senders[(i + 1) % senders.length]!.publicKey)),
          amount: 1,
        });
    }
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
    const total = times.verify + times.admit + times.execute + times.commit;
    return {
      workload,
      txs: n,
      blockTxs,
      verifyUsPerTx: (times.verify * 1000) / n,
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
  const arg = process.argv[2] ?? 'receivables';
  if (arg !== 'receivables' && arg !== 'transfer')
    throw new Error(`workload: receivables or transfer, not ${arg}`);
  const f = await measurePipeline(arg);
  console.log(JSON.stringify(f, null, 2));
}
