// Goal: the chain engine commits what it executes, and a second node replaying the same blocks through block sync reaches identical state roots; forged or tampered sync entries change nothing.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { pack, readArray, readBytes, unpackCanonical } from '../../core/codec.ts';
import { generateKeyPair, sign, type KeyPair } from '../../core/keys.ts';
import {
  decodeBlock,
  encodeBlock,
  encodeCertificate,
  encodeCommitVote,
  hashHeader,
  hashValidators,
  signTx,
  validatorOf,
  type Block,
  type CommitCertificate,
} from '../../core/types.ts';
import { proposerOf } from '../../consensus/validatorSet.ts';
import { openChain, type Chain } from '../../node/chain.ts';
import { validateGenesis, DEFAULT_CONSENSUS_PARAMS, genesisHash, type Genesis } from '../../node/genesis.ts';
import { runtimeId } from '../../node/runtime.ts';
import { openStateStore } from '../../node/state/stateStore.ts';
import { createBlockStore } from '../../node/storage/blockStore.ts';
import { createMemoryStore, type KvStore } from '../../node/storage/kv.ts';
import { createExecutor } from '../../vm/executor.ts';

const COUNTER = `
import type { Context, Methods, ViewContext, Views } from './api.ts';
export const methods = {
  add(ctx: Context, args: { by: number }) {
    const n = Number(ctx.state.get('n') ?? 0) + args.by;
    ctx.state.set('n', n);
    ctx.emit('Added', { by: args.by, n });
  },
} satisfies Methods;
export const views = { get: (ctx: ViewContext) => ctx.state.get('n') ?? 0 } satisfies Views;
`;

const validatorKey = generateKeyPair();
const admin = generateKeyPair();
const genesisInput = {
  chainId: 'chain-test',
  genesisTimeMs: 1_700_000_000_000,
  runtime: runtimeId(),
  organisations: [{ id: 'bank', name: 'Bank', roles: ['bank'], admins: [toHex(admin.publicKey)] }],
  validators: [
    {
      name: 'v0',
      organisation: 'bank',
      publicKey: toHex(validatorKey.publicKey),
      p2p: ['/ip4/127.0.0.1/tcp/1'],
    },
  ],
  consensus: { ...DEFAULT_CONSENSUS_PARAMS },
  contracts: [{ name: 'counter', source: COUNTER, initArgs: null }],
};
const genesis: Genesis = validateGenesis(genesisInput);
const validators = [validatorOf(validatorKey.publicKey)];
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
});

async function newChain(g: Genesis = genesis, kv: KvStore = createMemoryStore()): Promise<Chain> {
  const blocks = await createBlockStore(kv, { genesisHash: genesisHash(g), chainId: g.chainId });
  const state = await openStateStore(kv);
  const executor = createExecutor();
  closers.push(() => executor.close());
  return openChain({ genesis: g }, { kv, blocks, state, executor, log: () => undefined });
}

/** A certificate of the genesis validator, its signature made by `signer` (another key forges it). */
function certify(block: Block, signer: KeyPair = validatorKey): CommitCertificate {
  return certifyAll(block, [signer], () => validators[0]!.address);
}

/** A certificate signed by every key of `keys` (the validator set of the block's height). */
function certifyAll(
  block: Block,
  keys: readonly KeyPair[],
  addressOf = (k: KeyPair) => validatorOf(k.publicKey).address,
): CommitCertificate {
  const blockHash = hashHeader(block.header);
  const vote = encodeCommitVote(genesis.chainId, block.header.height, 0, blockHash);
  return {
    height: block.header.height,
    round: 0,
    blockHash,
    signatures: keys.map((k) => ({ validator: addressOf(k), signature: sign(vote, k.secretKey) })),
  };
}

/** The chain's proposal for its next height, one second after its tip, by that height's set. */
function proposeNext(chain: Chain): Block {
  const tip = chain.tip();
  const start = chain.nextHeightStart();
  return chain.buildProposal({
    height: tip.height + 1,
    round: 0,
    prevHash: tip.hash,
    proposer: proposerOf(start.validators, tip.height + 1, 0).address,
    validatorsHash: hashValidators(start.validators),
    timestamp: tip.timestamp + 1000,
  });
}

async function produce(chain: Chain, txsPerBlock: number, blocks: number, sender: KeyPair): Promise<void> {
  let nonce = 0;
  for (let b = 0; b < blocks; b++) {
    for (let i = 0; i < txsPerBlock; i++) {
      chain.mempool.add(
        signTx(
          {
            chainId: genesis.chainId,
            from: sender.publicKey,
            nonce: nonce++,
            kind: 'call',
            contract: 'counter',
            method: 'add',
            args: { by: i + 1 },
            gasLimit: 1_000_000,
          },
          sender.secretKey,
        ).bytes,
      );
    }
    const block = proposeNext(chain);
    expect(await chain.commit(block, certify(block))).toBe(true);
  }
}

describe('chain engine', () => {
  it('sizes proposals to what this node executes in a quarter of the round timeout', async () => {
    // A 50 ms round: a quarter is 12.5 ms, far less than 1,500 counter calls take to execute.
    const g = validateGenesis({
      ...genesisInput,
      consensus: { ...DEFAULT_CONSENSUS_PARAMS, roundTimeoutMs: 50, maxBlockTxs: 2000 },
    });
    const chain = await newChain(g);
    const add = (sender: KeyPair, nonce: number) =>
      signTx(
        {
          chainId: g.chainId,
          from: sender.publicKey,
          nonce,
          kind: 'call',
          contract: 'counter',
          method: 'add',
          args: { by: 1 },
          gasLimit: 100_000,
        },
        sender.secretKey,
      ).bytes;
    // Two senders: the mempool holds at most 2,000 per sender.
    for (const sender of [generateKeyPair(), generateKeyPair()])
      for (let n = 0; n < 1500; n++) chain.mempool.add(add(sender, n));
    // No estimate yet: the genesis limit.
    const first = proposeNext(chain);
    expect(first.txs).toHaveLength(2000);
    expect(await chain.commit(first, certify(first))).toBe(true);
    // Now the node knows its cost: what fits the budget, never below the floor of 100.
    const second = proposeNext(chain);
    expect(second.txs.length).toBeGreaterThanOrEqual(100);
    expect(second.txs.length).toBeLessThan(1000);
  });

  it('applies genesis contracts, executes, commits, and a second chain replays the blocks to the same roots', async () => {
    const a = await newChain();
    const sender = generateKeyPair();
    await produce(a, 5, 4, sender);
    expect(a.tip().height).toBe(4);
    expect(a.mempool.size).toBe(0);
    const b = await newChain();
    for (let h = 1; h <= 4; h++) expect(await b.applySyncEntry((await a.syncEntry(h))!)).toBe(true);
    expect(toHex(b.tip().stateRoot)).toBe(toHex(a.tip().stateRoot));
    expect(toHex(b.tip().hash)).toBe(toHex(a.tip().hash));
    const receipts = await b.blocks.getReceipts(4);
    expect(receipts.map((r) => r.status)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(await b.applySyncEntry((await a.syncEntry(2))!)).toBe(false); // already committed: ignored
  });

  it('refuses a sync entry with a forged certificate or a tampered block, and changes nothing', async () => {
    const a = await newChain();
    await produce(a, 2, 1, generateKeyPair());
    const entry = (await a.syncEntry(1))!;
    const f = readArray(unpackCanonical(entry, 'e'), 2, 'e');
    const block = decodeBlock(readBytes(f[0], 'b'));
    const b = await newChain();
    const forged = pack([encodeBlock(block), encodeCertificate(certify(block, generateKeyPair()))]);
    await expect(b.applySyncEntry(forged)).rejects.toThrow(/certificate BAD_SIGNATURE/);
    const tampered: Block = { ...block, txs: [block.txs[1]!, block.txs[0]!] };
    await expect(
      b.applySyncEntry(pack([encodeBlock(tampered), encodeCertificate(certify(block))])),
    ).rejects.toThrow(/txRoot does not match/);
    await expect(b.applySyncEntry(new Uint8Array([1, 2, 3]))).rejects.toThrow(/sync entry/);
    expect(b.tip().height).toBe(0);
  });

  it('votes only for proposals that execute to their header: a wrong state root or a bad transaction is invalid', async () => {
    const a = await newChain();
    await produce(a, 1, 1, generateKeyPair());
    const good = decodeBlock(
      readBytes(readArray(unpackCanonical((await a.syncEntry(1))!, 'e'), 2, 'e')[0], 'b'),
    );
    const b = await newChain();
    expect(b.executeProposal(good).valid).toBe(true);
    const r = b.executeProposal({
      ...good,
      header: { ...good.header, stateRoot: new Uint8Array(32).fill(9) },
    });
    expect(r.valid && toHex(r.stateRoot) !== toHex(new Uint8Array(32).fill(9))).toBe(true);
    const badTx = Uint8Array.from(good.txs[0]!);
    badTx[badTx.length - 1]! ^= 1;
    const invalid = b.executeProposal({ ...good, txs: [badTx] });
    expect(invalid.valid).toBe(false);
    expect(b.executeProposal({ ...good, header: { ...good.header, height: 5 } }).valid).toBe(false);
  });
  it('answers the validator set of every past height after two governance changes, across a restart and a replay', async () => {
    // A stand-in for the approvals contract: it leaves a change where governance leaves it.
    const GOVERNANCE = `
import type { Context, Methods } from './api.ts';
export const methods = {
  setValidators(ctx: Context, args: { keys: Uint8Array[]; at: number }) {
    const change = { validators: args.keys.map((publicKey) => ({ publicKey })), effectiveHeight: args.at };
    ctx.state.set('validators:pending', change);
    ctx.emit('ValidatorSetChanged', change);
  },
} satisfies Methods;
`;
    const g = validateGenesis({
      ...genesisInput,
      contracts: [...genesisInput.contracts, { name: 'approvals', source: GOVERNANCE, initArgs: null }],
    });
    const four = [validatorKey, generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const kv = createMemoryStore();
    const a = await newChain(g, kv);
    const chain = a;
    const admin = generateKeyPair();
    let nonce = 0;
    const step = async (signers: readonly KeyPair[], change?: { keys: KeyPair[]; at: number }) => {
      if (change !== undefined) {
        const tx = signTx(
          {
            chainId: g.chainId,
            from: admin.publicKey,
            nonce: nonce++,
            kind: 'call',
            contract: 'approvals',
            method: 'setValidators',
            args: { keys: change.keys.map((k) => k.publicKey), at: change.at },
            gasLimit: 1_000_000,
          },
          admin.secretKey,
        );
        chain.mempool.add(tx.bytes);
      }
      const block = proposeNext(chain);
      expect(block.txs).toHaveLength(change === undefined ? 0 : 1);
      expect(await chain.commit(block, certifyAll(block, signers))).toBe(true);
    };
    // Heights 1-3 by the genesis validator; the change at 1 takes the four from height 4; the
    // change at 4 hands back to the genesis validator alone from height 7.
    await step([validatorKey], { keys: four, at: 4 });
    await step([validatorKey]);
    await step([validatorKey]);
    await step(four, { keys: [validatorKey], at: 7 });
    await step(four);
    await step(four);
    await step([validatorKey]);
    const expected = (h: number) => (h >= 4 && h <= 6 ? four : [validatorKey]).map((k) => toHex(k.publicKey));
    const setAt = (c: Chain, h: number) => c.validatorsAt(h).map((v) => toHex(v.publicKey));
    for (let h = 1; h <= 8; h++) expect(setAt(a, h), `height ${h}`).toEqual(expected(h));

    // Each change names the transaction whose receipt carries it.
    const recorded = (c: Chain, h: number) => {
      const by = c.validatorEpochAt(h).recordedBy;
      return by === undefined ? undefined : toHex(by);
    };
    const changeTxs = [1, 4].map((h) => recorded(a, h + 3));
    expect(changeTxs.every((x) => x !== undefined)).toBe(true);
    expect(recorded(a, 1)).toBeUndefined();

    // A restart over the same store answers the same, for every height.
    const reopened = await newChain(g, kv);
    expect(reopened.tip().height).toBe(7);
    for (let h = 1; h <= 8; h++) expect(setAt(reopened, h), `reopened, height ${h}`).toEqual(expected(h));

    // A store written before changes were stored (no schedule bucket) rebuilds them from its
    // event index at open, with the same provenance.
    for await (const [k] of kv.scan({ gte: Uint8Array.of(0x28), lt: Uint8Array.of(0x29) }))
      await kv.batch([{ type: 'del', key: k }]);
    const old = await newChain(g, kv);
    for (let h = 1; h <= 8; h++) expect(setAt(old, h), `old store, height ${h}`).toEqual(expected(h));
    expect([1, 4].map((h) => recorded(old, h + 3))).toEqual(changeTxs);

    // A new node replays the blocks through block sync, each certificate checked against its set.
    const b = await newChain(g);
    for (let h = 1; h <= 7; h++) expect(await b.applySyncEntry((await a.syncEntry(h))!)).toBe(true);
    for (let h = 1; h <= 8; h++) expect(setAt(b, h), `replayed, height ${h}`).toEqual(expected(h));
    expect(toHex(b.tip().hash)).toBe(toHex(a.tip().hash));
  });
});
