// Goal: every JSON-RPC method answers a valid request with the documented result, typed through the SDK.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bytesEqual, toHex, utf8 } from '../../core/bytes.ts';
import { decodeValue } from '../../core/codec.ts';
import { addressOf } from '../../core/keys.ts';
import { hashHeader, hashValidators } from '../../core/types.ts';
import { RpcError } from '../../rpc/errors.ts';
import { ADMIN_TOKEN, postJson, startHarness, type Harness } from './harness.ts';
import { makeTx, seededKey, validatorSet } from './testNode.ts';

const alice = seededKey('methods-alice');
const bob = seededKey('methods-bob');
const aliceAddr = addressOf(alice.publicKey);
const bobAddr = addressOf(bob.publicKey);

let h: Harness;
let mintHash: Uint8Array;
let transferHash: Uint8Array;

async function rpcError(p: Promise<unknown>): Promise<RpcError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(RpcError);
    return err as RpcError;
  }
  throw new Error('expected an RpcError');
}

beforeAll(async () => {
  h = await startHarness({ nodes: 1 });
  const c = h.clients[0]!;
  mintHash = await c.sendTx(makeTx(alice, 0, 'token', 'mint', { to: aliceAddr, amount: 1000 }));
  h.net.produceBlock();
  transferHash = await c.sendTx(makeTx(alice, 1, 'token', 'transfer', { to: bobAddr, amount: 250 }));
  await c.sendTx(makeTx(alice, 2, 'ticker', 'tick', { count: 3 }));
  h.net.produceBlock();
});

afterAll(async () => {
  await h.close();
});

describe('node_ and chain_ methods', () => {
  it('node_info, node_peers, node_health describe the node', async () => {
    const c = h.clients[0]!;
    const info = await c.call('node_info', {});
    expect(info.chainId).toBe('rpc-test');
    expect(info.validator).toBe(true);
    expect(info.runtime).toBe(`node-${process.version}`);
    expect(info.address).toHaveLength(20);
    const peers = await c.call('node_peers', {});
    expect(peers.peers).toHaveLength(3);
    const health = await c.call('node_health', {});
    expect(health).toMatchObject({ live: true, ready: true, height: 2, mempoolSize: 0 });
  });

  it('chain_getHead, chain_getBlock by height and hash, full and not, chain_getCommit, chain_getValidators', async () => {
    const c = h.clients[0]!;
    const head = await c.head();
    expect(head?.height).toBe(2);
    expect(bytesEqual(head!.hash, hashHeader(head!.header))).toBe(true);
    const byHeight = await c.getBlock({ height: 2 });
    expect(byHeight.txHashes.map(toHex)).toEqual([toHex(transferHash), expect.any(String)]);
    expect(byHeight.txs).toBeUndefined();
    const byHash = await c.getBlock({ hash: head!.hash }, true);
    expect(byHash.header).toEqual(byHeight.header);
    expect(byHash.txs?.[0]?.method).toBe('transfer');
    expect(byHash.txs?.[0]?.args).toEqual({ to: new Uint8Array(bobAddr), amount: 250 });
    expect(byHash.receipts?.[1]?.events).toHaveLength(3);
    const commit = await c.call('chain_getCommit', { height: 1 });
    expect(commit.certificate.signatures).toHaveLength(3);
    expect(bytesEqual(commit.certificate.blockHash, hashHeader(commit.header))).toBe(true);
    const vals = await c.call('chain_getValidators', {});
    expect(vals.height).toBe(3);
    expect(vals.validators.map((v) => toHex(v.address))).toEqual(validatorSet.map((v) => toHex(v.address)));
    expect(bytesEqual(vals.validatorsHash, hashValidators(validatorSet))).toBe(true);
    expect((await rpcError(c.getBlock({ height: 99 }))).code).toBe('NOT_FOUND');
    expect((await rpcError(c.call('chain_getCommit', { height: 99 }))).code).toBe('NOT_FOUND');
  });
});

describe('tx_ methods', () => {
  it('tx_get, tx_getReceipt, tx_wait (already committed), tx_getNonce', async () => {
    const c = h.clients[0]!;
    const got = await c.call('tx_get', { hash: transferHash });
    expect(got).toMatchObject({ height: 2, index: 0 });
    expect(got.tx.nonce).toBe(1);
    expect(bytesEqual(got.tx.sender, aliceAddr)).toBe(true);
    const r = await c.getReceipt(transferHash);
    expect(r.receipt.status).toBe('ok');
    expect(r.receipt.returnValue).toBe(true);
    expect(r.receipt.events[0]).toMatchObject({ contract: 'token', name: 'Transfer' });
    const waited = await c.waitTx(mintHash, 1000);
    expect(waited.height).toBe(1);
    expect(await c.nextNonce(aliceAddr)).toBe(3);
    expect(await c.nextNonce(bobAddr)).toBe(0);
    expect((await rpcError(c.getReceipt(new Uint8Array(32)))).code).toBe('NOT_FOUND');
  });

  it('tx_wait resolves when the transaction commits later, and times out when it never does', async () => {
    const c = h.clients[0]!;
    const hash = await c.sendTx(makeTx(bob, 0, 'ticker', 'tick', { count: 1 }));
    const waiting = c.waitTx(hash, 5000);
    setTimeout(() => h.net.produceBlock(), 50);
    expect((await waiting).receipt.status).toBe('ok');
    const never = await rpcError(c.waitTx(new Uint8Array(32).fill(7), 100));
    expect(never.code).toBe('TIMEOUT');
    expect(never.rpcCode).toBe(-32006);
  });

  it('tx_getProof and tx_getReceiptProof return Merkle paths', async () => {
    const c = h.clients[0]!;
    const p = await c.call('tx_getProof', { hash: transferHash });
    expect(p.height).toBe(2);
    expect(p.proof).toMatchObject({ index: 0, size: 2 });
    const rp = await c.call('tx_getReceiptProof', { hash: transferHash });
    expect(rp.receipt.status).toBe('ok');
    expect(rp.proof.size).toBe(2);
  });
});

describe('contract_, state_, events_, consensus_ methods', () => {
  it('contract_call runs a view; a revert is REVERTED with the contract code; unknown is NOT_FOUND', async () => {
    const c = h.clients[0]!;
    expect(await c.view('token', 'balanceOf', { owner: bobAddr })).toBe(250);
    expect(await c.view('token', 'balanceOf', { owner: aliceAddr }, 1)).toBe(1000);
    const reverted = await rpcError(c.view('ticker', 'fail'));
    expect(reverted.code).toBe('REVERTED');
    expect(reverted.meta).toMatchObject({ errorCode: 'ALWAYS', status: 'reverted' });
    expect((await rpcError(c.view('nope', 'x'))).code).toBe('NOT_FOUND');
    expect((await rpcError(c.view('token', 'balanceOf', { owner: aliceAddr }, 50))).code).toBe('NOT_FOUND');
  });

  it('contract_get and contract_list page through contracts', async () => {
    const c = h.clients[0]!;
    const token = await c.call('contract_get', { contract: 'token' });
    expect(token.methods).toContain('transfer');
    const page1 = await c.call('contract_list', { limit: 1 });
    expect(page1.contracts.map((x) => x.name)).toEqual(['ticker']);
    const page2 = await c.call('contract_list', { after: page1.next! });
    expect(page2.contracts.map((x) => x.name)).toEqual(['token']);
    expect(page2.next).toBeUndefined();
  });

  it('state_get returns the value and, on request, a proof', async () => {
    const c = h.clients[0]!;
    const key = utf8('bal/' + toHex(bobAddr));
    const plain = await c.call('state_get', { contract: 'token', key });
    expect(decodeValue(plain.value!)).toBe(250);
    expect(plain.proof).toBeUndefined();
    const proved = await c.call('state_get', { contract: 'token', key, proof: true, height: 2 });
    expect(proved.height).toBe(2);
    expect(proved.proof!.length).toBeGreaterThan(0);
    const absent = await c.call('state_get', { contract: 'token', key: utf8('nothing'), proof: true });
    expect(absent.value).toBeNull();
  });

  it('events_query filters and pages with a cursor', async () => {
    const c = h.clients[0]!;
    const all = await c.call('events_query', {});
    expect(all.events.map((e) => `${e.contract}.${e.name}`)).toEqual([
      'token.Minted',
      'token.Transfer',
      'ticker.Tick',
      'ticker.Tick',
      'ticker.Tick',
      'ticker.Tick',
    ]);
    const ticks: string[] = [];
    let cursor: (typeof all.events)[number]['cursor'] | undefined;
    for (let page = 0; page < 10; page++) {
      const r = await c.call('events_query', { contract: 'ticker', limit: 2, ...(cursor ? { cursor } : {}) });
      ticks.push(...r.events.map((e) => `${e.height}:${e.receiptIndex}:${e.eventIndex}`));
      if (r.next === undefined) break;
      cursor = r.next;
    }
    expect(ticks).toEqual(['2:1:0', '2:1:1', '2:1:2', '3:0:0']);
    const named = await c.call('events_query', { name: 'Transfer', fromHeight: 2, toHeight: 2 });
    expect(named.events).toHaveLength(1);
  });

  it('consensus_state returns the diagnostics as JSON', async () => {
    const state = await h.clients[0]!.call('consensus_state', {});
    expect(state).toMatchObject({ step: 'propose', round: '0' });
  });
});

describe('admin methods and probes', () => {
  it('admin_rpcStats needs the token; /health, /ready and /metrics answer', async () => {
    const url = h.urls[0]!;
    const ok = await postJson(
      url,
      { jsonrpc: '2.0', id: 1, method: 'admin_rpcStats' },
      { Authorization: `Bearer ${ADMIN_TOKEN}` },
    );
    expect((ok.json as { result: { httpRequests: number } }).result.httpRequests).toBeGreaterThan(0);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await fetch(`${url}/ready`)).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'trellis_height 3',
      'trellis_round',
      'trellis_peers 3',
      'trellis_mempool_size 0',
      'trellis_commit_latency_seconds_count 3',
      'trellis_committed_transactions_total 4',
    ]) {
      expect(metrics).toContain(name);
    }
  });
});
