import { toHex } from '../../../core/bytes.ts';
import { encodeReceipt } from '../../../core/types.ts';
import type { BlockResult } from '../../../vm/executor.ts';
import type { TestChain } from '../../../vm/testing.ts';
import { API_PROBE, PERSISTENCE_ATTEMPTS, example } from './contracts.ts';

/** What a scenario produced, as comparable strings. */
export interface ScenarioSummary {
  readonly stateRoots: string[];
  readonly receiptsRoots: string[];
  readonly receipts: string[];
  readonly gas: number[];
}

const ATTEMPTS = [
  'moduleObject',
  'moduleArray',
  'staticField',
  'functionProperty',
  'arrayPrototype',
  'objectPrototype',
  'hiddenPrototype',
  'globalObject',
  'globalDefine',
  'replaceBuiltin',
  'errorLimit',
  'counters',
  'ctxObject',
];

/**
 * A fixed sequence of blocks touching every part of the VM: deploys, transfers, reverts, nested
 * calls, scheduling, persistence attempts, and a probe of the sandbox's globals. Run on a fresh
 * chain, it must give the same roots, receipts and gas in every process and on warm executors.
 */
export function runScenario(chain: TestChain): ScenarioSummary {
  const results: BlockResult[] = [];
  const alice = chain.account('alice').address;
  const bob = chain.account('bob').address;
  results.push(
    chain.block([
      { kind: 'deploy', contract: 'rcv', args: { source: example('receivable'), initArgs: { name: 'R' } } },
      { kind: 'deploy', contract: 'counter', args: { source: example('counter') } },
      { kind: 'deploy', contract: 'mat', args: { source: example('maturity') } },
      { kind: 'deploy', contract: 'relay', args: { source: example('relay') } },
      { kind: 'deploy', contract: 'attempts', args: { source: PERSISTENCE_ATTEMPTS } },
      { kind: 'deploy', contract: 'probe', args: { source: API_PROBE } },
    ]),
  );
  results.push(
    chain.block([
      { contract: 'rcv', method: 'issue', args: { to: alice, amount: 1_000_000 } },
      { contract: 'rcv', method: 'transfer', args: { to: bob, amount: 10 }, from: 'alice' },
      { contract: 'rcv', method: 'transfer', args: { to: bob, amount: 10_000_000 }, from: 'alice' },
      { contract: 'counter', method: 'increment', args: { name: 'x', by: 3 } },
      { contract: 'mat', method: 'open', args: { id: 'v', maturesAt: chain.time + 1500 } },
      {
        contract: 'relay',
        method: 'forward',
        args: { contract: 'counter', method: 'increment', args: { name: 'y' } },
      },
      {
        contract: 'relay',
        method: 'forward',
        args: { contract: 'counter', method: 'increment', args: { name: 'y', by: 0 }, catchFailure: true },
      },
    ]),
  );
  for (let round = 0; round < 3; round++) {
    results.push(chain.block(ATTEMPTS.map((method) => ({ contract: 'attempts', method }))));
  }
  results.push(chain.block([{ contract: 'probe', method: 'probe' }]));
  results.push(chain.advance(2000));
  for (let i = 0; i < 20; i++) {
    results.push(
      chain.block([{ contract: 'rcv', method: 'transfer', args: { to: bob, amount: 1 + i }, from: 'alice' }]),
    );
  }
  // Transactions with small gas limits run in batches (vm/executor.ts): a failed transfer and
  // a nested call in the middle of runs of one contract.
  const small = { gasLimit: 200_000 };
  results.push(
    chain.block([
      ...Array.from({ length: 6 }, (_, i) => ({
        contract: 'rcv',
        method: 'transfer',
        args: { to: bob, amount: i === 3 ? 10_000_000 : 1 + i },
        from: 'alice',
        ...small,
      })),
      { contract: 'counter', method: 'increment', args: { name: 'z', by: 2 }, ...small },
      {
        contract: 'relay',
        method: 'forward',
        args: { contract: 'counter', method: 'increment', args: { name: 'z' } },
        ...small,
      },
      { contract: 'counter', method: 'increment', args: { name: 'z', by: 5 }, ...small },
      { contract: 'counter', method: 'increment', args: { name: 'z', by: 7 }, ...small },
      ...Array.from({ length: 4 }, (_, i) => ({
        contract: 'rcv',
        method: 'transfer',
        args: { to: alice, amount: 1 + i },
        from: 'bob',
        ...small,
      })),
    ]),
  );
  return {
    stateRoots: results.map((r) => toHex(r.stateRoot)),
    receiptsRoots: results.map((r) => toHex(r.receiptsRoot)),
    receipts: results.flatMap((r) => r.receipts.map((x) => toHex(encodeReceipt(x)))),
    gas: results.map((r) => r.gasUsed),
  };
}
