// Goal: scheduled callbacks run at the first block whose time reaches them, before the block's
// transactions, in (time, schedule order), each with its own gas and receipt.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { VmLimits } from '../../vm/gasTable.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';
import { pendingCount } from '../../vm/systemState.ts';
import { example } from './helpers/contracts.ts';

const LOG = `
export const methods = {
  plan(ctx: any, args: { items: Array<[number, string]>; gasLimit?: number }) {
    for (const [at, tag] of args.items) {
      ctx.schedule(at, 'fire', { tag }, args.gasLimit === undefined ? undefined : { gasLimit: args.gasLimit });
    }
  },
  fire(ctx: any, args: { tag: string }) {
    if (args.tag === 'fail') ctx.revert('FAILED', 'callback failed');
    if (args.tag === 'spin') for (;;) {}
    const log = (ctx.state.get('log') ?? []) as string[];
    log.push(args.tag + '@' + ctx.time + ':' + ctx.sender + ':' + ctx.scheduled);
    ctx.state.set('log', log);
    ctx.emit('Fired', { tag: args.tag });
  },
  touch(ctx: any) {
    const log = (ctx.state.get('log') ?? []) as string[];
    log.push('tx@' + ctx.time);
    ctx.state.set('log', log);
  },
};
export const views = { log: (ctx: any) => ctx.state.get('log') ?? [] };
`;

let chain: TestChain;
afterEach(() => chain.close());

describe('scheduling', () => {
  it('runs due callbacks first, in (time, schedule order), each with its own receipt', () => {
    chain = createTestChain({ startTime: 1_000_000, blockTimeMs: 1000 });
    chain.deploy('log', LOG);
    const t = chain.time;
    chain.call('log', 'plan', {
      items: [
        [t + 5000, 'b'],
        [t + 3000, 'a'],
        [t + 5000, 'c'],
        [t + 60_000, 'later'],
      ],
    });
    // Blocks at t+1000 and t+2000: nothing due yet.
    expect(chain.advance(0).scheduled).toBe(0);
    expect(chain.advance(0).scheduled).toBe(0);
    // The block at t+3000 runs a before its own transaction.
    const due = chain.block([{ contract: 'log', method: 'touch' }]);
    expect(due.scheduled).toBe(1);
    // The next block's time passes t+5000: b and c run in the order they were scheduled.
    expect(chain.advance(4000).scheduled).toBe(2);
    const fired = chain.view('log', 'log').returnValue as string[];
    expect(fired.map((s) => s.split('@')[0])).toEqual(['a', 'tx', 'b', 'c']);
    const all = chain.view('log', 'log').returnValue as string[];
    // Callbacks run as the contract itself, flagged as scheduled.
    expect(all[0]).toMatch(/^a@1004000:log:true$/);
    expect(pendingCount(chain.state, 'log')).toBe(1);
  });

  it('callbacks run before the transactions of their block and have their own receipts', () => {
    chain = createTestChain({ startTime: 0, blockTimeMs: 1000 });
    chain.deploy('log', LOG);
    chain.call('log', 'plan', {
      items: [
        [chain.time, 'x'],
        [chain.time, 'fail'],
        [chain.time, 'y'],
      ],
    });
    const r = chain.block([{ contract: 'log', method: 'touch' }]);
    expect(r.scheduled).toBe(3);
    expect(r.receipts.map((x) => x.status)).toEqual(['ok', 'reverted', 'ok', 'ok']);
    expect(r.receipts[1]!.errorCode).toBe('FAILED');
    expect(new Set(r.receipts.map((x) => toHex(x.txHash))).size).toBe(4);
    expect((chain.view('log', 'log').returnValue as string[]).map((s) => s.split('@')[0])).toEqual([
      'x',
      'y',
      'tx',
    ]);
    expect(r.events.map((e) => e.data)).toEqual([{ tag: 'x' }, { tag: 'y' }]);
  });

  it('each callback has its own gas budget; running out affects only that callback', () => {
    chain = createTestChain({ startTime: 0 });
    chain.deploy('log', LOG);
    chain.call('log', 'plan', {
      items: [
        [chain.time, 'spin'],
        [chain.time, 'ok'],
      ],
      gasLimit: 200_000,
    });
    const r = chain.advance(0);
    expect(r.receipts.map((x) => [x.status, x.gasUsed])).toEqual([
      ['out-of-gas', 200_000],
      ['ok', r.receipts[1]!.gasUsed],
    ]);
  });

  it('at most maxScheduledPerBlock run per block; the rest run in the next blocks, in order', () => {
    chain = createTestChain({ startTime: 0 });
    chain.deploy('log', LOG);
    const n = VmLimits.maxScheduledPerBlock + 10;
    const at = chain.time + 10_000;
    const items = Array.from({ length: n }, (_, i) => [at, `t${i}`]);
    chain.call('log', 'plan', { items: items.slice(0, 200) });
    chain.call('log', 'plan', { items: items.slice(200) });
    const first = chain.advance(10_000);
    expect(first.scheduled).toBe(VmLimits.maxScheduledPerBlock);
    const second = chain.advance(0);
    expect(second.scheduled).toBe(10);
    const tags = (chain.view('log', 'log').returnValue as string[]).map((s) => s.split('@')[0]);
    expect(tags).toEqual(items.map((x) => x[1]));
  });

  it('a contract cannot hold more than maxPendingSchedules callbacks', () => {
    chain = createTestChain({ startTime: 0 });
    chain.deploy('log', LOG);
    const far = 10 ** 15;
    const batch = {
      contract: 'log',
      method: 'plan',
      args: { items: Array.from({ length: 250 }, () => [far, 'z']) },
    };
    const filled = chain.block(Array.from({ length: VmLimits.maxPendingSchedules / 250 }, () => batch));
    expect(filled.receipts.every((r) => r.status === 'ok')).toBe(true);
    const over = chain.call('log', 'plan', { items: [[far, 'z']] });
    expect(over.status).toBe('reverted');
    expect(over.errorCode).toBe('SCHEDULE_LIMIT');
  });

  it('the maturity example turns a voucher DUE at its maturity with nobody sending a transaction', () => {
    chain = createTestChain({ startTime: 0, blockTimeMs: 1000 });
    chain.deploy('mat', example('maturity'));
    chain.call('mat', 'open', { id: 'v1', maturesAt: 10_000 });
    expect(chain.call('mat', 'mature', { id: 'v1' }).errorCode).toBe('NOT_SCHEDULER');
    chain.advance(5000);
    expect((chain.view('mat', 'status', { id: 'v1' }).returnValue as Record<string, unknown>)['status']).toBe(
      'ACTIVE',
    );
    const r = chain.advance(5000);
    expect(r.scheduled).toBe(1);
    expect((chain.view('mat', 'status', { id: 'v1' }).returnValue as Record<string, unknown>)['status']).toBe(
      'DUE',
    );
  });

  it("a frozen contract's due callback is consumed with a FROZEN receipt", () => {
    chain = createTestChain({ startTime: 0 });
    chain.deploy('log', LOG);
    chain.call('log', 'plan', { items: [[chain.time + 5000, 'x']] });
    chain.freeze('log');
    const r = chain.advance(10_000);
    expect(r.receipts.map((x) => x.errorCode)).toEqual(['FROZEN']);
    expect(pendingCount(chain.state, 'log')).toBe(0);
  });
});
