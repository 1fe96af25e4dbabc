import { toHex, utf8 } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import { addressOf, keyPairFromSecret, type KeyPair } from '../core/keys.ts';
import { signTx, type Receipt, type SignedTransaction, type TxKind } from '../core/types.ts';
import {
  createExecutor,
  type BlockResult,
  type Executor,
  type ExecutorOptions,
  type LifecyclePolicy,
  type ViewResult,
} from './executor.ts';
import { VmLimits } from './gasTable.ts';
import { createMemoryState, type MemoryState } from './memoryState.ts';

/**
 * Run contracts in-process in unit tests, with a fake chain: named accounts with deterministic
 * keys, an in-memory state, and blocks whose height and time you control. Every call goes through
 * the real executor (signed transaction, nonce, gas, receipt), so what passes here behaves the
 * same on a node.
 *
 * ```ts
 * const chain = createTestChain();
 * chain.deploy('token', source, { initArgs: { supply: 1000 } });
 * const r = chain.call('token', 'transfer', { to: chain.account('bob').address, amount: 5 }, { from: 'alice' });
 * expect(r.status).toBe('ok');
 * chain.advance(60_000); // runs callbacks that became due
 * ```
 */

/** A named test account. */
export interface TestAccount {
  readonly name: string;
  readonly keys: KeyPair;
  /** 0x-hex address, as contracts see it in ctx.sender. */
  readonly address: string;
}

/** Options of {@link createTestChain}. */
export interface TestChainOptions {
  readonly chainId?: string;
  /** Time of the first block, in milliseconds. */
  readonly startTime?: number;
  /** Milliseconds between blocks. */
  readonly blockTimeMs?: number;
  /** Names of the accounts that are genesis admins (default: ['admin']). */
  readonly admins?: readonly string[];
  readonly policy?: LifecyclePolicy;
  readonly executor?: Omit<ExecutorOptions, 'admins' | 'policy'>;
  /** Start from this state (default: empty). */
  readonly state?: MemoryState;
  /**
   * Run on this executor instead of creating one (it keeps its own admins and policy, and
   * `close()` leaves it open): for tests that compare a warm executor with a fresh one.
   */
  readonly sharedExecutor?: Executor;
}

/** Per-transaction options. */
export interface TxOptions {
  /** Account name (default 'admin'). */
  readonly from?: string;
  readonly gasLimit?: number;
}

/** A transaction for {@link TestChain.block}. */
export interface TxSpec extends TxOptions {
  readonly kind?: TxKind;
  readonly contract: string;
  readonly method?: string;
  readonly args?: Value;
}

/** The fake chain. */
export interface TestChain {
  readonly state: MemoryState;
  readonly executor: Executor;
  /** Height of the last executed block (0 before any). */
  readonly height: number;
  /** Time of the next block. */
  readonly time: number;
  account(name: string): TestAccount;
  deploy(contract: string, source: string, options?: TxOptions & { initArgs?: Value }): Receipt;
  upgrade(contract: string, source: string, options?: TxOptions & { migrateArgs?: Value }): Receipt;
  freeze(contract: string, options?: TxOptions): Receipt;
  unfreeze(contract: string, options?: TxOptions): Receipt;
  /** One transaction in its own block; returns its receipt. */
  call(contract: string, method: string, args?: Value, options?: TxOptions): Receipt;
  /** A read-only call against the current state. */
  view(contract: string, method: string, args?: Value, options?: { from?: string }): ViewResult;
  /** One block with these transactions (in order). */
  block(txs: readonly TxSpec[]): BlockResult;
  /** Moves time forward by `ms` and executes an empty block (running due callbacks). */
  advance(ms: number): BlockResult;
  /** Signs a transaction as `from` with the account's next nonce (not executed). */
  sign(spec: TxSpec): SignedTransaction;
  close(): void;
}

/** Default gas limit of test transactions. */
export const TEST_GAS_LIMIT = VmLimits.maxTxGas;

/** Creates a fake chain with its own executor. Close it when done. */
export function createTestChain(options: TestChainOptions = {}): TestChain {
  const chainId = options.chainId ?? 'trellis-test';
  const blockTimeMs = options.blockTimeMs ?? 1_000;
  const accounts = new Map<string, TestAccount>();
  const nonces = new Map<string, number>();
  const account = (name: string): TestAccount => {
    let a = accounts.get(name);
    if (a === undefined) {
      const keys = keyPairFromSecret(sha256(utf8(`trellis.test-account.${name}`)));
      a = { name, keys, address: toHex(addressOf(keys.publicKey)) };
      accounts.set(name, a);
    }
    return a;
  };
  const admins = (options.admins ?? ['admin']).map((n) => account(n).address);
  const executor =
    options.sharedExecutor ??
    createExecutor({
      ...options.executor,
      admins,
      ...(options.policy === undefined ? {} : { policy: options.policy }),
    });
  const state = options.state ?? createMemoryState();
  let height = 0;
  let time = options.startTime ?? 1_700_000_000_000;

  const sign = (spec: TxSpec): SignedTransaction => {
    const from = account(spec.from ?? 'admin');
    const nonce = nonces.get(from.name) ?? 0;
    nonces.set(from.name, nonce + 1);
    return signTx(
      {
        chainId,
        from: from.keys.publicKey,
        nonce,
        kind: spec.kind ?? 'call',
        contract: spec.contract,
        method: spec.method ?? '',
        args: spec.args ?? null,
        gasLimit: spec.gasLimit ?? TEST_GAS_LIMIT,
      },
      from.keys.secretKey,
    );
  };
  const block = (txs: readonly TxSpec[]): BlockResult => {
    height++;
    const result = executor.executeBlock({
      state,
      header: { chainId, height, timestamp: time },
      txs: txs.map(sign),
    });
    time += blockTimeMs;
    return result;
  };
  const one = (spec: TxSpec): Receipt => {
    const r = block([spec]);
    return r.receipts[r.receipts.length - 1]!;
  };

  return {
    state,
    executor,
    get height() {
      return height;
    },
    get time() {
      return time;
    },
    account,
    deploy: (contract, source, o = {}) =>
      one({
        ...o,
        kind: 'deploy',
        contract,
        args: o.initArgs === undefined ? { source } : { source, initArgs: o.initArgs },
      }),
    upgrade: (contract, source, o = {}) =>
      one({
        ...o,
        kind: 'upgrade',
        contract,
        args: o.migrateArgs === undefined ? { source } : { source, migrateArgs: o.migrateArgs },
      }),
    freeze: (contract, o = {}) => one({ ...o, kind: 'freeze', contract }),
    unfreeze: (contract, o = {}) => one({ ...o, kind: 'unfreeze', contract }),
    call: (contract, method, args = null, o = {}) => one({ ...o, contract, method, args }),
    view: (contract, method, args = null, o = {}) =>
      executor.view({
        state,
        contract,
        method,
        args,
        height,
        time,
        sender: o.from === undefined ? '' : account(o.from).address,
      }),
    block,
    advance(ms) {
      time += ms;
      return block([]);
    },
    sign,
    close: () => {
      if (options.sharedExecutor === undefined) executor.close();
    },
  };
}
