// Goal: running consecutive transactions of one contract in one entry into its context (the
// executor's batches) changes nothing a validator can see: every receipt, gas figure, event, state
// root and receipts root equals what one-transaction-at-a-time execution gives, including when a
// transaction fails after writing keys later ones read, runs out of gas, or needs the host mid-call
// (nested calls, range scans and schedules run on their own).
import { afterAll, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { encodeReceipt } from '../../core/types.ts';
import type { BlockResult } from '../../vm/executor.ts';
import { createTestChain, type TestChain, type TxSpec } from '../../vm/testing.ts';

const MIX = `
function num(ctx: any, k: string): number {
  return (ctx.state.get(k) ?? 0) as number;
}
export const methods = {
  inc(ctx: any, a: any) {
    const v = num(ctx, a.k) + a.by;
    ctx.state.set(a.k, v);
    ctx.emit('Inc', { k: a.k, v });
    return v;
  },
  incThenFail(ctx: any, a: any) {
    ctx.state.set(a.k, num(ctx, a.k) + 1000);
    ctx.state.delete('c:gone');
    ctx.revert('NOPE', 'after writing ' + a.k);
  },
  incThenThrow(ctx: any, a: any) {
    ctx.state.set(a.k, 'poison');
    throw new Error('thrown after a write');
  },
  incThenCaught(ctx: any, a: any) {
    try {
      ctx.state.set(a.k, num(ctx, a.k) + 1);
      throw new Error('caught');
    } catch (e) {
      ctx.state.set('c:caught', String(e));
    }
  },
  burn(ctx: any, a: any) {
    ctx.state.set(a.k, -1);
    for (;;) {}
  },
  viaCall(ctx: any, a: any) {
    ctx.state.set(a.k, num(ctx, a.k) + 7);
    const r = ctx.call('other', 'bump', { by: 1 });
    ctx.state.set('c:fromOther', r);
    return r;
  },
  callThenFail(ctx: any, a: any) {
    ctx.state.set(a.k, num(ctx, a.k) + 100);
    ctx.call('other', 'bump', { by: 100 });
    ctx.revert('LATE', 'after a nested call');
  },
  scan(ctx: any) {
    ctx.state.set('c:zz', 1);
    return ctx.state.range('c:', 50).map((e: any) => e[0]);
  },
  later(ctx: any, a: any) {
    ctx.state.set(a.k, num(ctx, a.k) + 1);
    ctx.schedule(ctx.time + 1, 'inc', { k: a.k, by: 5 });
  },
  remove(ctx: any, a: any) {
    ctx.state.delete(a.k);
    return ctx.state.has(a.k);
  },
  echo(ctx: any, a: any) {
    ctx.state.set('c:long', a.s);
    ctx.emit('Echo', { s: a.s });
    return a.s;
  },
  echoFail(ctx: any, a: any) {
    ctx.state.set('c:long', 0);
    ctx.revert('LONG', a.s);
  },
  hashIt(ctx: any, a: any) {
    ctx.state.set('c:h', ctx.sha256(a.k));
    return ctx.random('x');
  },
};
export const views = {
  peek: (ctx: any, a: any) => [ctx.state.get(a.k) ?? null, ctx.state.has(a.k)],
};`;

const OTHER = `
export const methods = {
  bump(ctx: any, a: any) {
    const v = ((ctx.state.get('n') ?? 0) as number) + a.by;
    ctx.state.set('n', v);
    ctx.emit('Bumped', { v });
    return v;
  },
};`;

const chains: TestChain[] = [];
afterAll(() => chains.forEach((c) => c.close()));

function chain(batchTransactions: boolean): TestChain {
  const c = createTestChain({ executor: { batchTransactions } });
  chains.push(c);
  c.deploy('mix', MIX);
  c.deploy('other', OTHER);
  return c;
}

function summary(r: BlockResult): unknown {
  return {
    receipts: r.receipts.map((x) => toHex(encodeReceipt(x))),
    stateRoot: toHex(r.stateRoot),
    receiptsRoot: toHex(r.receiptsRoot),
    gasUsed: r.gasUsed,
    scheduled: r.scheduled,
  };
}

// Small gas limits: a batch holds at most one transaction's maximum gas in total.
const call = (method: string, args: unknown, from = 'alice', gasLimit = 200_000): TxSpec => ({
  contract: 'mix',
  method,
  args: args as Value,
  from,
  gasLimit,
});

const BLOCKS: TxSpec[][] = [
  [
    call('inc', { k: 'c:a', by: 1 }),
    call('inc', { k: 'c:a', by: 2 }, 'bob'),
    call('incThenFail', { k: 'c:a' }),
    call('inc', { k: 'c:a', by: 3 }),
    call('incThenThrow', { k: 'c:b' }, 'bob'),
    call('peek', { k: 'c:b' }),
    call('inc', { k: 'c:b', by: 1 }),
    call('incThenCaught', { k: 'c:b' }),
    call('burn', { k: 'c:a' }, 'carol', 60_000),
    call('inc', { k: 'c:a', by: 4 }),
    call('viaCall', { k: 'c:a' }),
    call('inc', { k: 'c:a', by: 5 }, 'bob'),
    call('callThenFail', { k: 'c:a' }),
    call('inc', { k: 'c:a', by: 6 }),
    { contract: 'other', method: 'bump', args: { by: 10 }, from: 'carol', gasLimit: 200_000 },
    call('scan', null),
    call('later', { k: 'c:s' }),
    call('remove', { k: 'c:b' }),
    call('peek', { k: 'c:b' }),
    call('nothing', null),
    { contract: 'nobody', method: 'x', args: null, gasLimit: 200_000 },
    call('inc', { k: 'c:a', by: 1 }, 'alice', 400),
    call('hashIt', { k: 'c:a' }),
    call('inc', { k: 'c:b', by: 9 }),
  ],
  // The callback scheduled above runs first; then the read cache starts a new block.
  [call('peek', { k: 'c:a' }), call('inc', { k: 'c:a', by: 1 }), call('inc', { k: 'c:s', by: 1 }, 'bob')],
  // Fields longer than a one-char length (arguments, event data, return value, error message),
  // with characters beyond latin1 in them.
  [
    call('echo', { s: 'x'.repeat(300) }),
    call('echoFail', { s: `€ ${'y'.repeat(600)}` }, 'bob'),
    call('echo', { s: `ü€ ${'z'.repeat(250)}` }),
    call('echo', { s: 'short' }, 'bob'),
  ],
  // Long runs of one contract (more than one batch) with failures inside.
  Array.from({ length: 300 }, (_, i) =>
    i % 37 === 5
      ? call('incThenFail', { k: `c:${i % 3}` })
      : i % 53 === 7
        ? call('viaCall', { k: `c:${i % 3}` })
        : call('inc', { k: `c:${i % 3}`, by: i }, ['alice', 'bob', 'carol', 'dave'][i % 4]),
  ),
];

describe('batched execution', () => {
  it('gives the same receipts, gas, events and roots as one transaction at a time', () => {
    const batched = chain(true);
    const single = chain(false);
    for (const txs of BLOCKS) {
      const a = batched.block(txs);
      const b = single.block(txs);
      expect(summary(a)).toEqual(summary(b));
      expect(a.events).toEqual(b.events);
    }
    // The block exercised every outcome.
    const first = batched.block([]);
    expect(first.receipts).toEqual([]);
    for (const k of ['c:a', 'c:b', 'c:s', 'c:0', 'c:1', 'c:2', 'c:long']) {
      expect(batched.view('mix', 'peek', { k })).toEqual(single.view('mix', 'peek', { k }));
    }
  });

  it('covers ok, reverted, out-of-gas and host-needing transactions in one block', () => {
    const c = chain(true);
    const r = c.block(BLOCKS[0]!);
    const statuses = r.receipts.map((x) => `${x.status}:${x.errorCode}`);
    expect(statuses).toContain('ok:');
    expect(statuses).toContain('reverted:NOPE');
    expect(statuses).toContain('reverted:ERROR');
    expect(statuses).toContain('out-of-gas:OUT_OF_GAS');
    expect(statuses).toContain('reverted:LATE');
    expect(statuses).toContain('reverted:NO_METHOD');
    expect(statuses).toContain('reverted:NO_CONTRACT');
    // A failed transaction's write is never seen by the next one in the same batch.
    const incs = r.receipts.filter((x) => x.status === 'ok' && x.events[0]?.name === 'Inc');
    expect(incs.slice(0, 3).map((x) => x.returnValue)).toEqual([1, 3, 6]);
  });

  it('carries fields longer than a one-char length through a batch', () => {
    const c = chain(true);
    const r = c.block(BLOCKS[2]!);
    expect(r.receipts.map((x) => `${x.status}:${x.errorCode}`)).toEqual([
      'ok:',
      'reverted:LONG',
      'ok:',
      'ok:',
    ]);
    expect(r.receipts[0]!.returnValue).toBe('x'.repeat(300));
    expect(r.receipts[0]!.events[0]!.data).toEqual({ s: 'x'.repeat(300) });
    expect(r.receipts[1]!.error).toBe(`€ ${'y'.repeat(600)}`.slice(0, 512)); // revert keeps 512 characters
    expect(r.receipts[2]!.returnValue).toBe(`ü€ ${'z'.repeat(250)}`);
    expect(c.view('mix', 'peek', { k: 'c:long' }).returnValue).toEqual(['short', true]);
  });

  it('sees a freeze and an unfreeze between calls of one contract in the same block', () => {
    const lifecycle = (kind: 'freeze' | 'unfreeze'): TxSpec => ({ kind, contract: 'mix', from: 'admin' });
    const txs: TxSpec[] = [
      call('inc', { k: 'c:f', by: 1 }),
      call('inc', { k: 'c:f', by: 2 }, 'bob'),
      lifecycle('freeze'),
      call('inc', { k: 'c:f', by: 4 }),
      call('inc', { k: 'c:f', by: 8 }, 'bob'),
      lifecycle('unfreeze'),
      call('inc', { k: 'c:f', by: 16 }),
      call('inc', { k: 'c:f', by: 32 }, 'bob'),
    ];
    const batched = chain(true).block(txs);
    expect(summary(batched)).toEqual(summary(chain(false).block(txs)));
    expect(batched.receipts.map((x) => `${x.status}:${x.errorCode}`)).toEqual([
      'ok:',
      'ok:',
      'ok:',
      'reverted:FROZEN',
      'reverted:FROZEN',
      'ok:',
      'ok:',
      'ok:',
    ]);
    expect(batched.receipts[7]!.returnValue).toBe(51);
  });

  it('reads back the call’s own write after the read cache was emptied by its bound', () => {
    // 65,536 cached reads empty the context's read cache; the write made before them has not
    // reached the host yet and must still be what the call reads.
    const FORGET = `
export const methods = {
  put(ctx: any, a: any) { ctx.state.set('k', a.v); },
  overflow(ctx: any, a: any) {
    ctx.state.set('k', a.v);
    for (let i = 0; i < 65_540; i++) ctx.state.get('m' + i);
    return [ctx.state.get('k'), ctx.state.has('k')];
  },
  overflowRead(ctx: any) {
    for (let i = 0; i < 65_540; i++) ctx.state.get('m' + i);
    return ctx.state.get('k');
  },
};`;
    for (const batched of [true, false]) {
      const c = createTestChain({ executor: { batchTransactions: batched } });
      chains.push(c);
      c.deploy('forget', FORGET);
      c.call('forget', 'put', { v: 'old' });
      const r = c.block([{ contract: 'forget', method: 'overflow', args: { v: 'new' }, from: 'alice' }]);
      expect(r.receipts[0]!.status).toBe('ok');
      expect(r.receipts[0]!.returnValue).toEqual(['new', true]);
      // An earlier transaction's write, applied within the same batch but not yet on the host.
      const two = c.block([
        { contract: 'forget', method: 'put', args: { v: 'mid' }, from: 'alice', gasLimit: 100_000 },
        { contract: 'forget', method: 'overflowRead', args: null, from: 'bob', gasLimit: 19_000_000 },
      ]);
      expect(two.receipts.map((x) => x.status)).toEqual(['ok', 'ok']);
      expect(two.receipts[1]!.returnValue).toBe('mid');
    }
  });
});
