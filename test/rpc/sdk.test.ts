// Goal: the SDK manages nonces without refusals, types contract calls, and verifies proofs against certified headers from another node.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex, utf8, type Bytes } from '../../core/bytes.ts';
import { decodeValue, encodeValue } from '../../core/codec.ts';
import { addressOf, sign } from '../../core/keys.ts';
import { encodeCommitVote, validatorOf, type CommitCertificate } from '../../core/types.ts';
import type { Context, ViewContext } from '../../contracts/api.ts';
import type * as CounterModule from '../../contracts/examples/counter.ts';
import type { NodeApi } from '../../rpc/nodeApi.ts';
import { createClient } from '../../rpc/sdk/client.ts';
import { SdkError } from '../../rpc/sdk/errors.ts';
import { createLightClient } from '../../rpc/sdk/proofs.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { createRpcServer } from '../../rpc/server.ts';
import { startHarness, type Harness } from './harness.ts';
import { makeTx, seededKey, validatorSet } from './testNode.ts';

/** The harness token contract, typed as a contract module (contracts/api.ts) would be. */
interface TokenContract {
  methods: {
    mint(ctx: Context, args: { to: Bytes; amount: number }): null;
    transfer(ctx: Context, args: { to: Bytes; amount: number | bigint }): boolean;
  };
  views: {
    balanceOf(ctx: ViewContext, args: { owner: Bytes }): number | bigint;
  };
}

let h: Harness | undefined;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
  await h?.close();
  h = undefined;
});

async function failure(p: Promise<unknown>): Promise<SdkError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(SdkError);
    return err as SdkError;
  }
  throw new Error('expected an SdkError');
}

describe('client', () => {
  it('sendTxs sends one JSON-RPC batch: a hash for each accepted transaction, the refusal for each other, in order', async () => {
    h = await startHarness();
    const key = seededKey('client-batch');
    const good = [0, 1, 2].map((n) => makeTx(key, n, 'ticker', 'tick', { count: 1 }));
    const replayed = good[1]!;
    const garbage = new Uint8Array([1, 2, 3]);
    const results = await h.clients[0]!.sendTxs([good[0]!, garbage, good[1]!, replayed, good[2]!.bytes]);
    expect(results.map((r) => (r instanceof Error ? r.meta['reason'] : toHex(r)))).toEqual([
      toHex(good[0]!.hash),
      'MALFORMED',
      toHex(good[1]!.hash),
      'DUPLICATE',
      toHex(good[2]!.hash),
    ]);
    expect(h.net.mempool.size).toBe(3);
  });
});

describe('wallet', () => {
  it('queues nonces beyond the node window on the client and retries a full mempool: nothing is refused', async () => {
    // The node accepts nonces at most 8 ahead and holds at most 12 transactions.
    h = await startHarness({ network: { maxNonceGap: 8, mempoolMaxTxs: 12, maxBlockTxs: 5 } });
    cleanups.push(h.net.autoProduce(5));
    const key = seededKey('wallet-many');
    const wallet = createWallet(h.clients[0]!, key, { window: 32 });
    const sends = Array.from({ length: 60 }, (_, i) =>
      wallet.send({ contract: 'ticker', method: 'tick', args: { count: i % 3 } }),
    );
    const sent = await Promise.all(sends);
    expect(sent.map((s) => s.nonce)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    const last = await h.clients[0]!.waitTx(sent[59]!.hash, 10_000);
    expect(last.receipt.status).toBe('ok');
    expect(await h.clients[0]!.nextNonce(addressOf(key.publicKey))).toBe(60);
  });

  it('keeps at most `window` transactions in flight, waiting on the client for the rest', async () => {
    h = await startHarness();
    const key = seededKey('wallet-window');
    const wallet = createWallet(h.clients[0]!, key, { window: 4, pollMs: 5 });
    const sends = Array.from({ length: 10 }, () =>
      wallet.send({ contract: 'ticker', method: 'tick', args: { count: 1 } }),
    );
    await new Promise((r) => setTimeout(r, 100));
    expect(h.net.mempool.size).toBe(4);
    expect(wallet.queued).toBe(6);
    const stop = h.net.autoProduce(5);
    cleanups.push(stop);
    await Promise.all(sends);
    expect(wallet.queued).toBe(0);
  });

  it('sendAndWait returns the receipt; typed contract proxies send transactions and run views', async () => {
    h = await startHarness();
    cleanups.push(h.net.autoProduce(5));
    const alice = seededKey('proxy-alice');
    const bob = addressOf(seededKey('proxy-bob').publicKey);
    const wallet = createWallet(h.clients[0]!, alice);
    const minted = await wallet.sendAndWait({
      contract: 'token',
      method: 'mint',
      args: { to: addressOf(alice.publicKey), amount: 1000 },
    });
    expect(minted.receipt.status).toBe('ok');
    const token = h.clients[0]!.contract<TokenContract>('token', wallet);
    const sent = await token.methods.transfer({ to: bob, amount: 250n });
    expect(sent.ok).toBe(true);
    expect(sent.value).toBe(true);
    expect(await token.views.balanceOf({ owner: bob })).toBe(250);
    const tooMuch = await token.methods.transfer({ to: bob, amount: 10_000 });
    expect(tooMuch.ok).toBe(false);
    expect(tooMuch.receipt.errorCode).toBe('INSUFFICIENT');
    // Types follow the contract: these lines do not compile.
    const typeChecks = () => {
      const counter = h!.clients[0]!.contract<typeof CounterModule>('counter', wallet);
      void counter.methods.increment({ name: 'a', by: 2 });
      void counter.views.get({ name: 'a' }).then((n: number) => n);
      void counter.views.list({});
      // @ts-expect-error: `name` is missing
      void counter.methods.increment({ by: 2 });
      // @ts-expect-error: `get` is a view, not a method
      void counter.methods.get({ name: 'a' }); // eslint-disable-line @typescript-eslint/no-unsafe-call
      // @ts-expect-error: `amount` is missing
      void token.methods.transfer({ to: bob });
      // @ts-expect-error: no such method
      void token.views.burn({}); // eslint-disable-line @typescript-eslint/no-unsafe-call
      // @ts-expect-error: `owner` must be bytes
      void token.views.balanceOf({ owner: 'bob' });
    };
    expect(typeof typeChecks).toBe('function');
  });

  it('a client bound to another chain refuses the node', async () => {
    h = await startHarness();
    const other = createClient({ url: h.urls[0]!, chainId: 'another-chain' });
    cleanups.push(() => other.close());
    expect((await failure(other.chainId())).code).toBe('WRONG_CHAIN');
  });
});

describe('client-side proofs', () => {
  async function chainWithState(harness: Harness) {
    const alice = seededKey('proof-alice');
    const wallet = createWallet(harness.clients[0]!, alice);
    const stop = harness.net.autoProduce(5);
    const r = await wallet.sendAndWait({
      contract: 'token',
      method: 'mint',
      args: { to: addressOf(alice.publicKey), amount: 77 },
    });
    stop();
    return { alice, txHash: r.receipt.txHash, key: utf8('bal/' + toHex(addressOf(alice.publicKey))) };
  }

  it('verifies a state value, an absent key, a transaction and a receipt against a header from a different node', async () => {
    h = await startHarness({ nodes: 2 });
    const { txHash, key } = await chainWithState(h);
    const light = createLightClient({ chainId: 'rpc-test', validatorsAt: () => validatorSet });
    const sources = { proofFrom: h.clients[0]!, headerFrom: h.clients[1]! };
    const state = await light.verifyState('token', key, sources);
    expect(decodeValue(state.value!)).toBe(77);
    const absent = await light.verifyState('token', utf8('bal/nobody'), sources);
    expect(absent.value).toBeUndefined();
    const tx = await light.verifyTx(txHash, sources);
    expect(tx.tx.tx.method).toBe('mint');
    const receipt = await light.verifyReceipt(txHash, sources);
    expect(receipt.receipt.status).toBe('ok');
  });

  it('refuses a value the proof does not cover, a certificate of strangers, and an untrusted validator set', async () => {
    h = await startHarness();
    const { key } = await chainWithState(h);
    const honest = h.net.node(0);
    // A node that lies about a value but sends the honest proof.
    const liar: NodeApi = {
      ...honest,
      async getState(contract, k, o) {
        const r = await honest.getState(contract, k, o);
        return { ...r, value: encodeValue(1_000_000) };
      },
    };
    // A node whose certificates are signed by keys that are not validators.
    const strangers = [0, 1, 2].map((i) => seededKey(`stranger-${i}`));
    const forger: NodeApi = {
      ...honest,
      async getCertificate(height) {
        const real = await honest.getCertificate(height);
        if (real === undefined) return undefined;
        const vote = encodeCommitVote('rpc-test', height, real.round, real.blockHash);
        const forged: CommitCertificate = {
          ...real,
          signatures: strangers
            .map((k) => ({ validator: addressOf(k.publicKey), signature: sign(vote, k.secretKey) }))
            .sort((a, b) => Buffer.compare(a.validator, b.validator)),
        };
        return forged;
      },
    };
    const urls = [];
    for (const node of [liar, forger]) {
      const s = createRpcServer({ port: 0, log: () => undefined }, { node });
      urls.push((await s.start()).url);
      cleanups.push(() => s.stop());
    }
    const [liarClient, forgerClient] = urls.map((url) => createClient({ url }));
    cleanups.push(
      () => liarClient!.close(),
      () => forgerClient!.close(),
    );
    const light = createLightClient({ chainId: 'rpc-test', validatorsAt: () => validatorSet });
    expect(
      (await failure(light.verifyState('token', key, { proofFrom: liarClient!, headerFrom: h.clients[0]! })))
        .code,
    ).toBe('BAD_PROOF');
    expect(
      (
        await failure(
          // A fresh light client: the first one already holds the honest header of this height.
          createLightClient({ chainId: 'rpc-test', validatorsAt: () => validatorSet }).verifyState(
            'token',
            key,
            {
              proofFrom: h.clients[0]!,
              headerFrom: forgerClient!,
            },
          ),
        )
      ).code,
    ).toBe('BAD_CERTIFICATE');
    const wrongTrust = createLightClient({
      chainId: 'rpc-test',
      validatorsAt: () => strangers.map((k) => validatorOf(k.publicKey)),
    });
    expect((await failure(wrongTrust.verifyState('token', key, { proofFrom: h.clients[0]! }))).code).toBe(
      'BAD_CERTIFICATE',
    );
  });
});
