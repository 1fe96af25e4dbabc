/**
 * Typed contract proxies. The types come from the contract's own TypeScript: pass the module
 * (`typeof import('…/token.ts')`) or any interface of its methods, and every exported function
 * becomes `methods.<name>(args)` (a signed transaction, awaited to its receipt) and
 * `views.<name>(args)` (a read-only call). A method's arguments are its last parameter (so both
 * `transfer(args)` and `transfer(ctx, args)` work) and its result is its awaited return type.
 */
import type { Value } from '../../core/codec.ts';
import type { ReceiptView, TrellisClient } from './client.ts';
import { SdkError } from './errors.ts';
import type { Wallet } from './wallet.ts';

/** Anything whose function-valued members are contract methods (a module namespace, an interface). */
export type ContractShape = object;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFn = (...args: any[]) => unknown;

/** The names of a shape's methods. */
export type MethodNames<C> = { [K in keyof C]: C[K] extends AnyFn ? K : never }[keyof C] & string;

/** The arguments of a contract method: its last parameter (undefined when it takes none). */
export type MethodArgs<F> = F extends (...args: infer P) => unknown
  ? P extends []
    ? undefined
    : P extends [...unknown[], infer A]
      ? A
      : Value
  : never;

/** The result of a contract method: its awaited return type. */
export type MethodResult<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

/** Options of one transaction. */
export interface SendOptions {
  readonly gasLimit?: number;
  /** How long to wait for the receipt. Default 60 s. */
  readonly timeoutMs?: number;
}

/** What a committed transaction produced. */
export interface TxOutcome<R> {
  readonly ok: boolean;
  /** The return value when ok. */
  readonly value: R | undefined;
  readonly receipt: ReceiptView['receipt'];
  readonly height: number;
  readonly receiptIndex: number;
}

/** A typed view of one contract. */
export interface ContractProxy<C> {
  readonly name: string;
  /** Transactions: signed by the proxy's wallet, resolved with the receipt. */
  readonly methods: {
    readonly [K in MethodNames<C>]: (
      args: MethodArgs<C[K]>,
      options?: SendOptions,
    ) => Promise<TxOutcome<MethodResult<C[K]>>>;
  };
  /** Read-only calls on the committed state (at `height` when given). */
  readonly views: {
    readonly [K in MethodNames<C>]: (
      args: MethodArgs<C[K]>,
      options?: { height?: number },
    ) => Promise<MethodResult<C[K]>>;
  };
}

function proxyOf<T>(make: (name: string) => T): Record<string, T> {
  const target: Record<string, T> = {};
  return new Proxy(target, {
    get(_target, prop) {
      // Not a thenable, not a method for symbols: `await proxy.methods` must not call anything.
      if (typeof prop !== 'string' || prop === 'then') return undefined;
      return make(prop);
    },
  });
}

/** Creates the proxy of contract `name` (use through `client.contract<C>(name, wallet)`). */
export function createContractProxy<C extends ContractShape>(
  client: TrellisClient,
  name: string,
  wallet: Wallet | undefined,
): ContractProxy<C> {
  const methods = proxyOf((method) => async (args: unknown, options: SendOptions = {}) => {
    if (wallet === undefined) {
      throw new SdkError(
        'CLOSED',
        `${name}.${method}: sending a transaction needs a wallet (client.contract(name, wallet))`,
        {},
      );
    }
    const r = await wallet.sendAndWait(
      {
        contract: name,
        method,
        args: (args ?? null) as Value,
        ...(options.gasLimit === undefined ? {} : { gasLimit: options.gasLimit }),
      },
      options.timeoutMs,
    );
    const ok = r.receipt.status === 'ok';
    return {
      ok,
      value: ok ? r.receipt.returnValue : undefined,
      receipt: r.receipt,
      height: r.height,
      receiptIndex: r.receiptIndex,
    };
  });
  const views = proxyOf(
    (method) =>
      (args: unknown, options: { height?: number } = {}) =>
        client.view(name, method, (args ?? null) as Value, options.height),
  );
  return { name, methods, views } as unknown as ContractProxy<C>;
}
