// Goal: the executor applies blocks as a pure function of (state, block): nonces, lifecycle under
// the policy hook, checkpoints of nested calls, views, and the roots it reports.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { merkleRoot } from '../../core/merkle.ts';
import { Limits, encodeReceipt, signTx } from '../../core/types.ts';
import { createExecutor } from '../../vm/executor.ts';
import { createMemoryState } from '../../vm/memoryState.ts';
import { readCodeEntry } from '../../vm/systemState.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';
import { example } from './helpers/contracts.ts';

let chain: TestChain;
afterEach(() => chain.close());

describe('transactions and nonces', () => {
  it('a wrong nonce is rejected and changes nothing; any other outcome consumes the nonce', () => {
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    const before = toHex(chain.state.root());
    const stale = chain.sign({ contract: 'counter', method: 'increment', args: { name: 'a' } });
    chain.sign({ contract: 'counter', method: 'increment', args: { name: 'a' } }); // skipped nonce
    const future = chain.sign({ contract: 'counter', method: 'increment', args: { name: 'a' } });
    const r = chain.executor.executeBlock({
      state: chain.state,
      header: { chainId: 'trellis-test', height: 99, timestamp: chain.time },
      txs: [future],
    });
    expect(r.receipts[0]!.status).toBe('rejected');
    expect(r.receipts[0]!.errorCode).toBe('BAD_NONCE');
    expect(r.receipts[0]!.gasUsed).toBe(0);
    expect(toHex(r.stateRoot)).toBe(before);
    // The reverted transaction still consumes its nonce.
    const ok = chain.executor.executeBlock({
      state: chain.state,
      header: { chainId: 'trellis-test', height: 100, timestamp: chain.time },
      txs: [stale],
    });
    expect(ok.receipts[0]!.status).toBe('ok');
    const wrongChain = chain.executor.executeBlock({
      state: chain.state,
      header: { chainId: 'other', height: 101, timestamp: chain.time },
      txs: [chain.sign({ contract: 'counter', method: 'increment', args: { name: 'a' } })],
    });
    expect(wrongChain.receipts[0]!.errorCode).toBe('WRONG_CHAIN');
  });

  it("one sender's transactions in one block see each other's nonces, batched or not", () => {
    // The executor remembers the nonces it wrote during a block; a gap, a replay, a failed call
    // and a lifecycle transaction in between must give what one block at a time gives.
    const run = (batchTransactions: boolean): string[] => {
      const c = createTestChain({ executor: { batchTransactions } });
      try {
        c.deploy('counter', example('counter'));
        const tx = (args: Value) => c.sign({ contract: 'counter', method: 'increment', args });
        const n0 = tx({ name: 'a' });
        const n1 = tx({ name: 'a', by: -5 }); // reverts, still consumes its nonce
        const n2 = c.sign({ kind: 'freeze', contract: 'counter' });
        const n3 = c.sign({ kind: 'unfreeze', contract: 'counter' });
        const n4 = tx({ name: 'a' });
        tx({ name: 'a' }); // n5: never sent, a gap
        const n6 = tx({ name: 'a' });
        const r = c.executor.executeBlock({
          state: c.state,
          header: { chainId: 'trellis-test', height: 50, timestamp: c.time },
          txs: [n0, n1, n0, n2, n3, n4, n6, n4],
        });
        const again = c.executor.executeBlock({
          state: c.state,
          header: { chainId: 'trellis-test', height: 51, timestamp: c.time + 1 },
          txs: [n6],
        });
        return [
          ...r.receipts.map((x) => `${x.status}:${x.errorCode}`),
          toHex(r.stateRoot),
          `${again.receipts[0]!.status}:${again.receipts[0]!.errorCode}`,
        ];
      } finally {
        c.close();
      }
    };
    const batched = run(true);
    expect(batched.slice(0, 8)).toEqual([
      'ok:',
      'reverted:BAD_STEP',
      'rejected:BAD_NONCE',
      'ok:',
      'ok:',
      'ok:',
      'rejected:BAD_NONCE',
      'rejected:BAD_NONCE',
    ]);
    expect(batched[9]).toBe('rejected:BAD_NONCE');
    expect(batched).toEqual(run(false));
  });

  it('two senders whose keys share a sender-cache slot keep their own nonces within a block', () => {
    // The executor's sender cache holds one key per slot (the key's first four bytes): A and B
    // below evict each other, so A's later transactions get a new address object. A batched
    // transaction's nonce is written when its batch ends, so a nonce remembered by object would
    // miss and read A's stale nonce from state: A's second transaction would be refused, and one
    // reusing its first nonce accepted, depending on the cache's history (another node's differs).
    // executeBlock does not check signatures (the chain does, before), so keys can be chosen.
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    // A gas limit well below the maximum, so the six transactions run as one batch.
    const template = chain.sign({
      contract: 'counter',
      method: 'increment',
      args: { name: 'a' },
      gasLimit: 100_000,
    });
    const keyA = new Uint8Array(32).fill(7);
    const keyB = new Uint8Array(32).fill(7);
    keyB[31] = 8;
    const tx = (from: Uint8Array, nonce: number) =>
      signTx({ ...template.tx, from, nonce }, new Uint8Array(32).fill(1));
    const run = (batchTransactions: boolean): string[] => {
      const c = createTestChain({ executor: { batchTransactions } });
      try {
        c.deploy('counter', example('counter'));
        const r = c.executor.executeBlock({
          state: c.state,
          header: { chainId: 'trellis-test', height: 50, timestamp: c.time },
          txs: [tx(keyA, 0), tx(keyB, 0), tx(keyA, 1), tx(keyB, 1), tx(keyA, 1), tx(keyA, 2)],
        });
        return [...r.receipts.map((x) => `${x.status}:${x.errorCode}`), toHex(r.stateRoot)];
      } finally {
        c.close();
      }
    };
    const batched = run(true);
    expect(batched.slice(0, 6)).toEqual(['ok:', 'ok:', 'ok:', 'ok:', 'rejected:BAD_NONCE', 'ok:']);
    expect(batched).toEqual(run(false));
  });

  it('a failing transaction undoes its writes and emits nothing', () => {
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    chain.call('counter', 'increment', { name: 'a', by: 5 });
    const r = chain.call('counter', 'increment', { name: 'a', by: -1 });
    expect(r.status).toBe('reverted');
    expect(r.events).toEqual([]);
    expect(chain.view('counter', 'get', { name: 'a' }).returnValue).toBe(5);
  });

  it('unknown contracts and methods revert with clear codes', () => {
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    expect(chain.call('nobody', 'x').errorCode).toBe('NO_CONTRACT');
    expect(chain.call('counter', 'nothing').errorCode).toBe('NO_METHOD');
    expect(chain.call('counter', 'init').errorCode).toBe('NO_METHOD');
  });

  it('the block result carries the receipts root over canonical receipts and the state root', () => {
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    const r = chain.block([
      { contract: 'counter', method: 'increment', args: { name: 'a' } },
      { contract: 'counter', method: 'increment', args: { name: 'b', by: 0 } },
    ]);
    expect(toHex(r.receiptsRoot)).toBe(toHex(merkleRoot(r.receipts.map(encodeReceipt))));
    expect(toHex(r.stateRoot)).toBe(toHex(chain.state.root()));
    expect(r.gasUsed).toBe(r.receipts.reduce((s, x) => s + x.gasUsed, 0));
    expect(r.events).toHaveLength(1);
  });

  it('executing the same block on two copies of a state gives identical results', () => {
    chain = createTestChain();
    chain.deploy('rcv', example('receivable'));
    chain.call('rcv', 'issue', { to: chain.account('alice').address, amount: 100 });
    const txs = [0, 1, 2].map((i) =>
      chain.sign({
        contract: 'rcv',
        method: 'transfer',
        args: { to: chain.account('bob').address, amount: 40 + i },
        from: 'alice',
      }),
    );
    const header = { chainId: 'trellis-test', height: 50, timestamp: 123 };
    const a = chain.state.clone();
    const b = chain.state.clone();
    const other = createExecutor();
    try {
      const ra = chain.executor.executeBlock({ state: a, header, txs });
      const rb = other.executeBlock({ state: b, header, txs });
      expect(ra.receipts.map(encodeReceipt).map(toHex)).toEqual(rb.receipts.map(encodeReceipt).map(toHex));
      expect(toHex(ra.stateRoot)).toBe(toHex(rb.stateRoot));
      expect(ra.receipts.map((x) => x.status)).toEqual(['ok', 'ok', 'reverted']);
    } finally {
      other.close();
    }
  });
});

describe('lifecycle', () => {
  const V1 = `export const methods = { put(ctx: any, a: { v: number }) { ctx.state.set('v', a.v); } };
    export const views = { get: (ctx: any) => ctx.state.get('v') ?? null, version: () => 1 };`;
  const V2 = `export const methods = { put(ctx: any, a: { v: number }) { ctx.state.set('v', a.v * 2); } };
    export const views = { get: (ctx: any) => ctx.state.get('v') ?? null, version: () => 2, migrated: (ctx: any) => ctx.state.get('migrated') ?? null };
    export function migrate(ctx: any, a: { note: string }) { ctx.state.set('migrated', a.note); ctx.emit('Migrated', a); }`;

  it('only genesis admins may deploy, upgrade, freeze and unfreeze by default', () => {
    chain = createTestChain();
    expect(chain.deploy('c', V1, { from: 'mallory' }).errorCode).toBe('UNAUTHORIZED');
    expect(chain.deploy('c', V1).status).toBe('ok');
    expect(chain.deploy('c', V1).errorCode).toBe('CONTRACT_EXISTS');
    expect(chain.upgrade('c', V2, { from: 'mallory' }).errorCode).toBe('UNAUTHORIZED');
    expect(chain.freeze('c', { from: 'mallory' }).errorCode).toBe('UNAUTHORIZED');
    expect(chain.upgrade('nothing', V2).errorCode).toBe('NO_CONTRACT');
  });

  it('upgrade keeps state, runs migrate once, and bumps the version', () => {
    chain = createTestChain();
    chain.deploy('c', V1);
    chain.call('c', 'put', { v: 21 });
    const up = chain.upgrade('c', V2, { migrateArgs: { note: 'hello' } });
    expect(up.status, up.error).toBe('ok');
    expect(up.events).toEqual([{ contract: 'c', name: 'Migrated', data: { note: 'hello' } }]);
    expect((up.returnValue as Record<string, unknown>)['version']).toBe(2);
    expect(chain.view('c', 'get').returnValue).toBe(21);
    expect(chain.view('c', 'version').returnValue).toBe(2);
    expect(chain.view('c', 'migrated').returnValue).toBe('hello');
    chain.call('c', 'put', { v: 5 });
    expect(chain.view('c', 'get').returnValue).toBe(10);
    expect(chain.call('c', 'migrate', { note: 'again' }).errorCode).toBe('NO_METHOD');
    expect(readCodeEntry(chain.state, 'c')!.version).toBe(2);
  });

  it('a failing migration or init leaves everything as it was', () => {
    chain = createTestChain();
    chain.deploy('c', V1);
    const bad = V2.replace(
      "ctx.state.set('migrated', a.note);",
      "ctx.state.set('migrated', a.note); ctx.revert('NO', 'refused');",
    );
    const r = chain.upgrade('c', bad, { migrateArgs: { note: 'x' } });
    expect(r.errorCode).toBe('NO');
    expect(chain.view('c', 'version').returnValue).toBe(1);
    const badInit = `export function init(ctx: any) { ctx.state.set('x', 1); throw new Error('no'); }
      export const views = { x: (ctx: any) => ctx.state.get('x') ?? null };`;
    expect(chain.deploy('d', badInit).status).toBe('reverted');
    expect(readCodeEntry(chain.state, 'd')).toBeUndefined();
  });

  it('a frozen contract refuses calls and views until unfrozen; its state is kept', () => {
    chain = createTestChain();
    chain.deploy('c', V1);
    chain.call('c', 'put', { v: 1 });
    expect(chain.freeze('c').status).toBe('ok');
    expect(chain.call('c', 'put', { v: 2 }).errorCode).toBe('FROZEN');
    expect(chain.view('c', 'get').errorCode).toBe('FROZEN');
    expect(chain.unfreeze('c').status).toBe('ok');
    expect(chain.view('c', 'get').returnValue).toBe(1);
  });

  it('a policy hook decides instead of the admins', () => {
    chain = createTestChain({
      policy: ({ kind, sender, contract }) =>
        kind === 'deploy' && contract.startsWith('open.') && sender.length === 42,
    });
    expect(chain.deploy('open.c', V1, { from: 'anyone' }).status).toBe('ok');
    expect(chain.deploy('closed', V1).errorCode).toBe('UNAUTHORIZED');
    expect(chain.freeze('open.c').errorCode).toBe('UNAUTHORIZED');
  });

  it('refused sources and malformed deploy arguments give reverted receipts', () => {
    chain = createTestChain();
    const r = chain.deploy('c', 'export const methods = { run() { let x = /a/; } };');
    expect(r.errorCode).toBe('COMPILE_ERROR');
    expect(r.error).toMatch(/^1:42: regular expression/);
    const bad = chain.block([{ kind: 'deploy', contract: 'c', args: { src: 'x' } }]);
    expect(bad.receipts[0]!.errorCode).toBe('BAD_ARGS');
  });
});

describe('nested calls', () => {
  it("the callee sees the caller's name as sender; a failed callee's writes are undone", () => {
    chain = createTestChain();
    chain.deploy('relay', example('relay'));
    chain.deploy('rcv', example('receivable'));
    chain.call('rcv', 'issue', { to: 'relay', amount: 50 });
    // relay moves its own holding: the receivable sees sender "relay".
    const r = chain.call('relay', 'forward', {
      contract: 'rcv',
      method: 'transfer',
      args: { to: 'x', amount: 20 },
    });
    expect(r.status, r.error).toBe('ok');
    expect(chain.view('rcv', 'balanceOf', { holder: 'relay' }).returnValue).toBe(30);
    // A failed, caught callee: its writes are gone, the caller's stay.
    const caught = chain.call('relay', 'forward', {
      contract: 'rcv',
      method: 'transfer',
      args: { to: 'x', amount: 1000 },
      catchFailure: true,
    });
    expect(caught.status).toBe('ok');
    expect(caught.events.map((e) => e.name)).toEqual(['CallFailed']);
    // An uncaught failure reverts the caller too, including the callee's earlier success.
    const calls = chain.state.get('relay', Buffer.from('calls'));
    const failed = chain.call('relay', 'forward', {
      contract: 'rcv',
      method: 'transfer',
      args: { to: 'x', amount: 1000 },
    });
    expect(failed.errorCode).toBe('INSUFFICIENT');
    expect(chain.state.get('relay', Buffer.from('calls'))).toEqual(calls);
  });

  it('a view cannot call a method; a contract cannot re-enter itself', () => {
    chain = createTestChain();
    chain.deploy('counter', example('counter'));
    chain.deploy(
      'v',
      `export const views = { poke: (ctx: any) => ctx.call('counter', 'increment', { name: 'a' }), read: (ctx: any) => ctx.call('counter', 'get', { name: 'a' }) };`,
    );
    expect(chain.view('v', 'poke').errorCode).toBe('READ_ONLY');
    expect(chain.view('v', 'read').returnValue).toBe(0);
    chain.deploy('relay', example('relay'));
    expect(chain.call('relay', 'forward', { contract: 'relay', method: 'forward', args: {} }).errorCode).toBe(
      'REENTRANCY',
    );
  });

  it('calls nest at most maxCallDepth deep', () => {
    chain = createTestChain();
    const names = Array.from({ length: 10 }, (_, i) => `r${i}`);
    for (const n of names) chain.deploy(n, example('relay'));
    let args: { [key: string]: Value } = { contract: 'nobody', method: 'x' };
    for (let i = names.length - 1; i > 0; i--) args = { contract: names[i]!, method: 'forward', args };
    const r = chain.call('r0', 'forward', args);
    expect(r.errorCode).toBe('CALL_DEPTH');
  });
});

describe('read cache', () => {
  const KV = `export const methods = {
    put(ctx: any, a: { v: number; fail?: boolean }) { ctx.state.set('k', a.v); if (a.fail) ctx.revert('NO', 'no'); },
    read: (ctx: any) => ctx.state.get('k') ?? null,
  };`;
  const TWICE = `export const methods = {
    run(ctx: any) {
      ctx.call('kv', 'read');
      try { ctx.call('kv', 'put', { v: 99, fail: true }); } catch {}
      return ctx.call('kv', 'read');
    },
  };`;

  it('a write undone by a revert is never read back, within a block or a transaction', () => {
    chain = createTestChain();
    chain.deploy('kv', KV);
    chain.deploy('twice', TWICE);
    const r = chain.block([
      { contract: 'kv', method: 'put', args: { v: 1 } },
      { contract: 'kv', method: 'read' },
      { contract: 'kv', method: 'put', args: { v: 2, fail: true } },
      { contract: 'kv', method: 'read' },
      { contract: 'twice', method: 'run' },
      { contract: 'kv', method: 'put', args: { v: 3 } },
      { contract: 'kv', method: 'read' },
    ]);
    expect(r.receipts.map((x) => x.returnValue)).toEqual([null, 1, null, 1, 1, null, 3]);
    // Another state on the same warm executor sees its own values, not the cached ones.
    const other = createTestChain({ sharedExecutor: chain.executor });
    other.deploy('kv', KV);
    expect(other.call('kv', 'read').returnValue).toBe(null);
  });
});

describe('events and views', () => {
  it(`a receipt holds at most ${Limits.maxEventsPerReceipt} events`, () => {
    chain = createTestChain();
    chain.deploy(
      'spam',
      `export const methods = { run(ctx: any, a: { n: number }) { for (let i = 0; i < a.n; i++) ctx.emit('E', i); } };`,
    );
    expect(chain.call('spam', 'run', { n: 1000 }).status).toBe('ok');
    expect(chain.call('spam', 'run', { n: 1025 }).errorCode).toBe('VM_LIMIT');
  });

  it('views read committed state and cannot write', () => {
    chain = createTestChain();
    chain.deploy(
      'w',
      `export const views = { write: (ctx: any) => { (ctx.state as any).set('k', 1); }, emit: (ctx: any) => ctx.emit('E', 1) };`,
    );
    expect(chain.view('w', 'write').errorCode).toBe('READ_ONLY');
    expect(chain.view('w', 'emit').errorCode).toBe('READ_ONLY');
    expect(chain.view('w', 'nothing').errorCode).toBe('NO_VIEW');
    const state = createMemoryState();
    const ex = createExecutor();
    try {
      expect(ex.view({ state, contract: 'w', method: 'write', height: 1, time: 1 }).errorCode).toBe(
        'NO_CONTRACT',
      );
    } finally {
      ex.close();
    }
  });
});
