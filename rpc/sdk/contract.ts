/**
 * Typed contract proxies. The types come from the contract's own TypeScript (contracts/api.ts):
 * pass the module, `client.contract<typeof import('…/counter.ts')>('counter', wallet)`, and its
 * `methods` export becomes `proxy.methods.<name>(args)` (a signed transaction, awaited to its
 * receipt) and its `views` export `proxy.views.<name>(args)` (a read-only call). A function's
 * arguments are its second parameter (the first is the context) and its result its return type.
 */
import type { Value } from '../../core/codec.ts';
import type { ReceiptView, TrellisClient } from './client.ts';
import { SdkError } from './errors.ts';
import type { Wallet } from './wallet.ts';

/** A contract module's type, or any object with `methods` and/or `views` of that shape. */
export type ContractShape = { readonly methods?: object; readonly views?: object };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyFn = (...args: any[]) => unknown;

/** The `methods` export of a contract type. */
export type MethodsOf<C> = C extends { readonly methods: infer M } ? M : Record<never, never>;
/** The `views` export of a contract type. */
export type ViewsOf<C> = C extends { readonly views: infer V } ? V : Record<never, never>;

/** The names of the functions of an object type. */
export type FunctionNames<T> = { [K in keyof T]: T[K] extends AnyFn ? K : never }[keyof T] & string;

/**
 * The arguments of a contract function `(ctx, args) => result`: its second parameter, undefined
 * when it takes none, possibly undefined when optional.
 */
export type MethodArgs<F> = F extends (...args: infer P) => unknown
  ? P extends [] | [unknown]
    ? undefined
    : P extends [unknown, infer A, ...unknown[]]
      ? A
      : P extends [unknown, (infer A)?]
        ? A | undefined
        : Value
  : never;

/** The result of a contract function: its awaited return type (void becomes null). */
export type MethodResult<F> = F extends (...args: never[]) => infer R
  ? Awaited<R> extends void
    ? null
    : Awaited<R>
  : never;

/** The parameters of a proxy function: `args` may be left out when the contract takes none. */
export type ProxyParams<F, O> =
  undefined extends MethodArgs<F> ? [args?: MethodArgs<F>, options?: O] : [args: MethodArgs<F>, options?: O];

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
    readonly [K in FunctionNames<MethodsOf<C>>]: (
      ...params: ProxyParams<MethodsOf<C>[K], SendOptions>
    ) => Promise<TxOutcome<MethodResult<MethodsOf<C>[K]>>>;
  };
  /** Read-only calls on the committed state (at `height` when given). */
  readonly views: {
    readonly [K in FunctionNames<ViewsOf<C>>]: (
      ...params: ProxyParams<ViewsOf<C>[K], { height?: number }>
    ) => Promise<MethodResult<ViewsOf<C>[K]>>;
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
