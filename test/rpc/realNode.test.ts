// Goal: the RPC server, SDK and load generator work unchanged against the real single-validator node (storage, state tree, VM, consensus).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatBytes, toHex, utf8 } from '../../core/bytes.ts';
import { decodeValue, pack } from '../../core/codec.ts';
import { addressOf } from '../../core/keys.ts';
import { hashHeader, hashValidators, signTx, type Transaction } from '../../core/types.ts';
import { RPC_ERRORS, RpcError } from '../../rpc/errors.ts';
import { runLoad, transferWorkload } from '../../rpc/loadgen.ts';
import type { EventPosition } from '../../rpc/nodeApi.ts';
import { formatCursor } from '../../rpc/schemas.ts';
import { createLightClient } from '../../rpc/sdk/proofs.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import type * as TokenModule from './fixtures/token.ts';
import { postJson } from './harness.ts';
import { startRealNode, type RealNode } from './realNode.ts';
import { seededKey } from './testNode.ts';

let n: RealNode;
const alice = seededKey('real-alice');
const aliceAddr = addressOf(alice.publicKey);
const bob = addressOf(seededKey('real-bob').publicKey);

beforeAll(async () => {
  n = await startRealNode();
});

afterAll(async () => {
  await n?.close();
});

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error('expected an RpcError');
}

describe('methods against the real node', () => {
  it('serves node, chain, tx, contract, state and event methods', async () => {
    const c = n.client;
    const wallet = createWallet(c, alice);
    const token = c.contract<typeof TokenModule>('token', wallet);
    expect((await token.methods.mint({ to: aliceAddr, amount: 1000 })).ok).toBe(true);
    const sent = await token.methods.transfer({ to: bob, amount: 300 });
    expect(sent).toMatchObject({ ok: true, value: true });
    expect(await token.views.balanceOf({ owner: bob })).toBe(300);

    const info = await c.call('node_info', {});
    expect(info).toMatchObject({ chainId: n.chainId, validator: true });
    expect((await c.call('node_health', {})).live).toBe(true);
    const head = (await c.head())!;
    expect(toHex(head.hash)).toBe(toHex(hashHeader(head.header)));
    const block = await c.getBlock({ height: sent.height }, true);
    expect(block.txs?.some((t) => t.method === 'transfer')).toBe(true);
    const commit = await c.call('chain_getCommit', { height: sent.height });
    expect(commit.certificate.signatures).toHaveLength(1);
    const vals = await c.call('chain_getValidators', { height: sent.height });
    expect(toHex(vals.validatorsHash)).toBe(toHex(hashValidators(n.validators)));
    const txHash = sent.receipt.txHash;
    expect((await c.call('tx_get', { hash: txHash })).tx.method).toBe('transfer');
    expect(await c.nextNonce(aliceAddr)).toBe(2);
    const reverted = await rpcError(c.view('token', 'fail'));
    expect(reverted.meta['errorCode']).toBe('ALWAYS');
    expect((await rpcError(c.view('token', 'nope'))).code).toBe('NOT_FOUND');
    expect((await c.call('contract_get', { contract: 'token' })).methods).toContain('transfer');
    expect((await c.call('contract_list', {})).contracts.map((x) => x.name)).toContain('token');
    const state = await c.call('state_get', { contract: 'token', key: utf8(`bal/${toHex(bob)}`) });
    expect(decodeValue(state.value!)).toBe(300);
    const events = await c.call('events_query', { contract: 'token' });
    expect(events.events.map((e) => e.name)).toEqual(['Minted', 'Transfer']);
    expect(await c.call('consensus_state', {})).toMatchObject({ validators: 1 });
    const metrics = await (await fetch(`${n.url}/metrics`)).text();
    expect(metrics).toMatch(/trellis_committed_transactions_total [1-9]/);
  });

  it('verifies a state value, a transaction and a receipt against certified headers', async () => {
    const c = n.client;
    const r = await createWallet(c, alice).sendAndWait({
      contract: 'token',
      method: 'transfer',
      args: { to: bob, amount: 1 },
    });
    const light = createLightClient({ chainId: n.chainId, validatorsAt: () => n.validators });
    const value = await light.verifyState('token', utf8(`bal/${toHex(bob)}`), { proofFrom: c });
    expect(decodeValue(value.value!)).toBe(301);
    const absent = await light.verifyState('token', utf8('bal/nobody'), { proofFrom: c });
    expect(absent.value).toBeUndefined();
    expect((await light.verifyTx(r.receipt.txHash, { proofFrom: c })).height).toBe(r.height);
    expect((await light.verifyReceipt(r.receipt.txHash, { proofFrom: c })).receipt.status).toBe('ok');
  });

  it('serves state proofs below the in-memory trees within a budget, then refuses them as RATE_LIMITED', async () => {
    const c = n.client;
    const wallet = createWallet(c, seededKey('real-old-proofs'));
    // More than the 16 versions held in memory: one block per transaction.
    for (let i = 0; i < 20; i++) {
      const r = await wallet.sendAndWait({ contract: 'token', method: 'tick', args: { count: 1 } });
      expect(r.receipt.status).toBe('ok');
    }
    const head = (await c.head())!.height;
    const key = utf8(`bal/${toHex(bob)}`);
    const old = (height: number) => c.call('state_get', { contract: 'token', key, proof: true, height });
    // The budget (4 at once, 1 per second) is spent; the next one is refused with the documented code.
    const answers = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => old(head - 17 - (i % 2))));
    const refused = answers.filter((a) => a.status === 'rejected');
    expect(answers.filter((a) => a.status === 'fulfilled').length).toBeGreaterThanOrEqual(4);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) {
      expect((a.reason as RpcError).code).toBe('RATE_LIMITED');
      expect((a.reason as RpcError).message).toMatch(/at most 1 per second/);
    }
    // Recent heights are not limited.
    for (let i = 0; i < 8; i++) expect((await old(head - (i % 4))).proof).toBeDefined();
  });
});

describe('bad transactions against the real mempool', () => {
  it('each gets its documented refusal and changes nothing', async () => {
    const mallory = seededKey('real-mallory');
    const nonce = await n.client.nextNonce(aliceAddr);
    const tx = (over: Partial<Transaction> = {}) =>
      signTx(
        {
          chainId: n.chainId,
          from: alice.publicKey,
          nonce,
          kind: 'call',
          contract: 'token',
          method: 'transfer',
          args: { to: bob, amount: 1 },
          gasLimit: 1_000_000,
          ...over,
        },
        alice.secretKey,
      );
    const good = tx();
    const flipped = Uint8Array.from(good.signature);
    flipped[3]! ^= 0x80;
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = BigInt('0x' + Buffer.from(good.signature.subarray(32)).reverse().toString('hex')) + L;
    const malleated = concatBytes(
      good.signature.subarray(0, 32),
      Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse(),
    );
    const forged = signTx({ ...good.tx, from: mallory.publicKey }, mallory.secretKey);
    const cases: Array<[string, Uint8Array, string]> = [
      ['bad signature', pack([good.body, flipped]), 'BAD_SIGNATURE'],
      ['malleated signature', pack([good.body, malleated]), 'BAD_SIGNATURE'],
      ['signature of another key', pack([forged.body, good.signature]), 'BAD_SIGNATURE'],
      ['wrong chainId', tx({ chainId: 'another-chain' }).bytes, 'WRONG_CHAIN'],
      ['replayed nonce', tx({ nonce: 0 }).bytes, 'NONCE_TOO_LOW'],
      ['gapped nonce', tx({ nonce: nonce + 100_000 }).bytes, 'NONCE_TOO_HIGH'],
      ['trailing bytes', concatBytes(good.bytes, Uint8Array.of(0)), 'MALFORMED'],
    ];
    const before = { pool: (await n.client.call('node_health', {})).mempoolSize, nonce };
    for (const [name, bytes, reason] of cases) {
      const r = await postJson(n.url, {
        jsonrpc: '2.0',
        id: 7,
        method: 'tx_send',
        params: { tx: toHex(bytes) },
      });
      const err = (r.json as { error: { code: number; data: { reason: string } } }).error;
      expect(err.code, name).toBe(RPC_ERRORS.TX_REJECTED.code);
      expect(err.data.reason, name).toBe(reason);
    }
    expect((await n.client.call('node_health', {})).mempoolSize).toBe(before.pool);
    expect(await n.client.nextNonce(aliceAddr)).toBe(before.nonce);
  });
});

describe('subscriptions against the real node', () => {
  it('resume after cut connections with no gap and no duplicate', async () => {
    const c = n.client;
    const start = ((await c.head())?.height ?? 0) + 1;
    const got: string[] = [];
    const sub = await c.subscribeEvents({ contract: 'token', name: 'Tick', fromHeight: start }, (e) =>
      got.push(formatCursor(e.cursor)),
    );
    const wallet = createWallet(c, seededKey('real-ticker'), { window: 16 });
    const sends: Promise<unknown>[] = [];
    for (let i = 0; i < 40; i++) {
      sends.push(wallet.send({ contract: 'token', method: 'tick', args: { count: 1 + (i % 5) } }));
      if (i === 12 || i === 27) c.ws.dropConnection();
      await new Promise((r) => setTimeout(r, 5));
    }
    await Promise.all(sends);
    const last = await wallet.sendAndWait({ contract: 'token', method: 'tick', args: { count: 1 } });
    const expected: string[] = [];
    let cursor: EventPosition | undefined;
    for (;;) {
      const page = await c.call('events_query', {
        contract: 'token',
        name: 'Tick',
        fromHeight: start,
        limit: 1000,
        ...(cursor === undefined ? {} : { cursor }),
      });
      expected.push(...page.events.map((e) => formatCursor(e.cursor)));
      if (page.next === undefined) break;
      cursor = page.next;
    }
    expect(expected.length).toBe(121);
    const deadline = performance.now() + 10_000;
    while (got.length < expected.length && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    expect(got).toEqual(expected);
    expect(sub.duplicatesDropped).toBe(0);
    expect(c.ws.connects).toBeGreaterThanOrEqual(3);
    expect(last.receipt.status).toBe('ok');
    await sub.close();
  });
});

describe('load generator against the real node', () => {
  it('commits every transfer and reports it', async () => {
    const report = await runLoad({
      urls: [n.url],
      workload: transferWorkload,
      txs: 300,
      senders: 10,
      seed: 'real-bench',
    });
    expect(report).toMatchObject({ sent: 300, succeeded: 300, failed: 0, unconfirmed: 0 });
    expect(report.sendFailures).toEqual({});
  });
});
