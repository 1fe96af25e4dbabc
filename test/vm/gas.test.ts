// Goal: gas is a pure function of the transaction and state: the same call always costs the same,
// whatever the JIT has done, and unbounded work always ends out of gas.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Gas } from '../../vm/gasTable.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';
import { example } from './helpers/contracts.ts';

let chain: TestChain;
beforeAll(() => {
  chain = createTestChain();
  chain.deploy('rcv', example('receivable'));
  chain.deploy('counter', example('counter'));
  chain.deploy('relay', example('relay'));
  chain.deploy(
    'work',
    `export const methods = {
      loop(ctx: any, args: { n: number }) { let s = 0; for (let i = 0; i < args.n; i++) s = (s + i * 7) % 1000003; return s; },
      spin() { for (;;) {} },
      strings(ctx: any, args: { n: number }) { let s = ''; for (let i = 0; i < args.n; i++) s += String.fromCharCode(65 + (i % 26)); return s.length; },
    };`,
  );
  chain.call('rcv', 'issue', { to: chain.account('alice').address, amount: 10_000_000 });
});
afterAll(() => chain.close());

describe('gas', () => {
  it('the same transaction uses the same gas every time, before and after the JIT warms up', () => {
    // Alternate the same two transfers so the state (and its encoded sizes) repeats exactly.
    const alice = chain.account('alice').address;
    chain.call('rcv', 'transfer', { to: chain.account('bob').address, amount: 5_000_000 }, { from: 'alice' });
    const there = new Set<number>();
    const back = new Set<number>();
    for (let i = 0; i < 750; i++) {
      const a = chain.call(
        'rcv',
        'transfer',
        { to: chain.account('bob').address, amount: 7 },
        { from: 'alice' },
      );
      const b = chain.call('rcv', 'transfer', { to: alice, amount: 7 }, { from: 'bob' });
      expect([a.status, b.status]).toEqual(['ok', 'ok']);
      there.add(a.gasUsed);
      back.add(b.gasUsed);
    }
    expect([...there]).toHaveLength(1);
    expect([...back]).toHaveLength(1);
    const loops = new Set<number>();
    for (let i = 0; i < 200; i++) loops.add(chain.call('work', 'loop', { n: 2000 }).gasUsed);
    expect([...loops]).toHaveLength(1);
  });

  it('gas grows with the work done', () => {
    const small = chain.call('work', 'loop', { n: 100 }).gasUsed;
    const large = chain.call('work', 'loop', { n: 10_100 }).gasUsed;
    // The loop body costs the same each iteration; the argument's encoded size adds a few units.
    const perIteration = Math.round((large - small) / 10_000);
    expect(perIteration).toBeGreaterThan(Gas.loopIteration);
    expect(Math.abs(large - small - perIteration * 10_000)).toBeLessThan(10);
    expect(chain.call('work', 'strings', { n: 20_000 }).gasUsed).toBeGreaterThan(
      chain.call('work', 'strings', { n: 100 }).gasUsed,
    );
  });

  it('an infinite loop ends out of gas and uses exactly the limit', () => {
    for (const gasLimit of [10_000, 1_000_000, 7_654_321]) {
      const r = chain.call('work', 'spin', null, { gasLimit });
      expect(r.status).toBe('out-of-gas');
      expect(r.gasUsed).toBe(gasLimit);
      expect(r.errorCode).toBe('OUT_OF_GAS');
    }
  });

  it('a transaction below the base cost ends out of gas but consumes its nonce', () => {
    const r = chain.call('counter', 'increment', { name: 'g' }, { gasLimit: Gas.txBase - 1 });
    expect(r.status).toBe('out-of-gas');
    expect(r.gasUsed).toBe(Gas.txBase - 1);
    expect(chain.call('counter', 'increment', { name: 'g' }).status).toBe('ok');
  });

  it("a nested call's gas is charged to its caller, and a callee out of gas can be caught", () => {
    const direct = chain.call('counter', 'increment', { name: 'n' }).gasUsed;
    const nested = chain.call('relay', 'forward', {
      contract: 'counter',
      method: 'increment',
      args: { name: 'n' },
    });
    expect(nested.status).toBe('ok');
    expect(nested.gasUsed).toBeGreaterThan(direct);
    const starved = chain.call('relay', 'forward', {
      contract: 'work',
      method: 'spin',
      gasLimit: 50_000,
      catchFailure: true,
    });
    expect(starved.status).toBe('ok');
    expect(starved.events).toEqual([{ contract: 'relay', name: 'CallFailed', data: { code: 'OUT_OF_GAS' } }]);
    expect(starved.gasUsed).toBeGreaterThan(50_000);
    const uncaught = chain.call(
      'relay',
      'forward',
      { contract: 'work', method: 'spin' },
      { gasLimit: 400_000 },
    );
    expect(uncaught.status).toBe('out-of-gas');
    expect(uncaught.gasUsed).toBe(400_000);
  });

  it('state operations are charged by bytes', () => {
    chain.deploy(
      'bytes',
      `export const methods = { put(ctx: any, args: { n: number }) { ctx.state.set('k', 'x'.repeat(args.n)); } };`,
    );
    const a = chain.call('bytes', 'put', { n: 10 }).gasUsed;
    const b = chain.call('bytes', 'put', { n: 10_010 }).gasUsed;
    expect(b - a).toBeGreaterThanOrEqual(10_000 * Gas.statePerByte);
  });
});
