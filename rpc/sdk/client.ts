/**
 * The typed Trellis client. Every call is typed by the method table (rpc/methods.ts): params are
 * encoded and results decoded with the same definitions the server validates with, so a result
 * arrives as core types (Bytes, bigint, Value), never as raw JSON.
 */
import type { Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import type { SignedTransaction } from '../../core/types.ts';
import { RpcError } from '../errors.ts';
import {
  methods,
  notifications,
  type MethodName,
  type NotificationOf,
  type ParamsOf,
  type ResultOf,
  type SubscriptionMethod,
} from '../methods.ts';
import type { EventPosition } from '../nodeApi.ts';
import { comparePositions } from '../streams.ts';
import type { Json, WireType } from '../wire.ts';
import { createContractProxy, type ContractProxy, type ContractShape } from './contract.ts';
import { SdkError } from './errors.ts';
import {
  createHttpTransport,
  createWsTransport,
  type HttpTransport,
  type TransportOptions,
  type WsTransport,
} from './transport.ts';
import type { Wallet } from './wallet.ts';

/** Client options. */
export interface ClientOptions extends TransportOptions {
  /** When set, the client refuses a node of another chain (checked on first use). */
  readonly chainId?: string;
}

/** A live subscription. */
export interface Subscription {
  /** Stops it (cancels on the server, stops reconnecting it). */
  close(): Promise<void>;
  /** Notifications delivered so far. */
  readonly delivered: number;
  /** Notifications the client dropped as already delivered (a server guaranteeing exactly-once sends none). */
  readonly duplicatesDropped: number;
  /** Server errors that ended the stream and made the client resubscribe. */
  readonly restarts: number;
}

/** Filter and start of an event subscription. */
export interface EventSubscriptionOptions {
  readonly contract?: string;
  readonly name?: string;
  /** Resume after this cursor (an event's `cursor`). */
  readonly cursor?: EventPosition;
  /** Without a cursor: replay from this height. Default: the block after the current head. */
  readonly fromHeight?: number;
}

/** An event as subscriptions and queries deliver it. */
export type ChainEventView = NotificationOf<'sub_events'>;
/** A new head as subscriptions deliver it. */
export type HeadView = NotificationOf<'sub_newHeads'>;
/** A receipt with its place in the chain. */
export type ReceiptView = ResultOf<'tx_getReceipt'>;

/** The typed client of one node. */
export interface TrellisClient {
  /** The node URL. */
  readonly url: string;
  /** Calls any method of the table, typed by its name. */
  call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>>;
  /** The chain id of the node (fetched once, then cached). */
  chainId(): Promise<string>;
  head(): Promise<ResultOf<'chain_getHead'>>;
  getBlock(ref: { height: number } | { hash: Bytes }, full?: boolean): Promise<ResultOf<'chain_getBlock'>>;
  /** Sends signed wire bytes (or a signed transaction); returns its hash. */
  sendTx(tx: Bytes | SignedTransaction): Promise<Bytes>;
  /**
   * Sends several transactions in one JSON-RPC batch (at most the node's batch limit, 100 by
   * default); each gets its hash or the RpcError that refused it, in order.
   */
  sendTxs(txs: ReadonlyArray<Bytes | SignedTransaction>): Promise<Array<Bytes | RpcError>>;
  getReceipt(hash: Bytes): Promise<ReceiptView>;
  /** Waits for the receipt (server-side wait, at most `timeoutMs`). */
  waitTx(hash: Bytes, timeoutMs?: number): Promise<ReceiptView>;
  nextNonce(address: Bytes): Promise<number>;
  /** Runs a view; throws RpcError REVERTED with the contract's code if it reverts. */
  view(contract: string, method: string, args?: Value, height?: number): Promise<Value>;
  /** A typed proxy of a contract; transactions need a wallet. */
  contract<C extends ContractShape>(name: string, wallet?: Wallet): ContractProxy<C>;
  subscribeEvents(
    options: EventSubscriptionOptions,
    onEvent: (e: ChainEventView) => void,
  ): Promise<Subscription>;
  subscribeHeads(options: { fromHeight?: number }, onHead: (h: HeadView) => void): Promise<Subscription>;
  /** The WebSocket transport (opened on first subscription). */
  readonly ws: WsTransport;
  close(): void;
}

function encodeParams<M extends MethodName>(method: M, params: ParamsOf<M>): Json {
  return (methods[method].params as WireType<ParamsOf<M>>).toJson(params);
}

function decodeResult<M extends MethodName>(method: M, json: unknown): ResultOf<M> {
  try {
    return (methods[method].result as WireType<ResultOf<M>>).parse(json, 'result');
  } catch (err) {
    throw new RpcError(
      'TRANSPORT',
      `${method}: the node's result does not match the schema: ${(err as Error).message}`,
      {},
    );
  }
}

function decodeNotification<S extends SubscriptionMethod>(method: S, json: unknown): NotificationOf<S> {
  return (notifications[method] as WireType<NotificationOf<S>>).parse(json, 'notification');
}

/** Creates a client of one node. */
export function createClient(options: ClientOptions): TrellisClient {
  const http: HttpTransport = createHttpTransport(options);
  let wsTransport: WsTransport | undefined;
  let chainIdCache: Promise<string> | undefined;
  const ws = (): WsTransport => (wsTransport ??= createWsTransport(options));

  async function call<M extends MethodName>(method: M, params: ParamsOf<M>): Promise<ResultOf<M>> {
    const res = await http.call(method, encodeParams(method, params));
    return decodeResult(method, res);
  }

  function chainId(): Promise<string> {
    chainIdCache ??= call('node_info', {}).then((info) => {
      if (options.chainId !== undefined && info.chainId !== options.chainId) {
        throw new SdkError(
          'WRONG_CHAIN',
          `${options.url} serves chain "${info.chainId}", expected "${options.chainId}"`,
          {
            got: info.chainId,
            expected: options.chainId,
          },
        );
      }
      return info.chainId;
    });
    chainIdCache.catch(() => (chainIdCache = undefined));
    return chainIdCache;
  }

  async function startHeight(fromHeight: number | undefined): Promise<number> {
    if (fromHeight !== undefined) return fromHeight;
    // An explicit start, so a reconnect before the first notification still resumes exactly.
    return ((await call('chain_getHead', {}))?.height ?? 0) + 1;
  }

  function stats() {
    return { delivered: 0, duplicatesDropped: 0, restarts: 0 };
  }

  const client: TrellisClient = {
    url: options.url,
    call,
    chainId,
    head: () => call('chain_getHead', {}),
    getBlock: (ref, full) => call('chain_getBlock', { ...ref, ...(full === undefined ? {} : { full }) }),
    async sendTx(tx) {
      const bytes = tx instanceof Uint8Array ? tx : tx.bytes;
      return (await call('tx_send', { tx: bytes })).hash;
    },
    async sendTxs(txs) {
      const results = await http.batch(
        txs.map((tx) => ({
          method: 'tx_send',
          params: encodeParams('tx_send', { tx: tx instanceof Uint8Array ? tx : tx.bytes }),
        })),
      );
      return results.map((r) => {
        if (r instanceof RpcError) return r;
        try {
          return decodeResult('tx_send', r).hash;
        } catch (err) {
          return err as RpcError;
        }
      });
    },
    getReceipt: (hash) => call('tx_getReceipt', { hash }),
    waitTx: (hash, timeoutMs) => call('tx_wait', { hash, ...(timeoutMs === undefined ? {} : { timeoutMs }) }),
    async nextNonce(address) {
      return (await call('tx_getNonce', { address })).nonce;
    },
    async view(contract, method, args, height) {
      const r = await call('contract_call', {
        contract,
        method,
        ...(args === undefined ? {} : { args }),
        ...(height === undefined ? {} : { height }),
      });
      return r.value;
    },
    contract<C extends ContractShape>(name: string, wallet?: Wallet): ContractProxy<C> {
      return createContractProxy<C>(client, name, wallet);
    },
    async subscribeEvents(opts, onEvent) {
      const s = stats();
      let last: EventPosition | undefined = opts.cursor;
      const start = opts.cursor === undefined ? await startHeight(opts.fromHeight) : undefined;
      const filter = {
        ...(opts.contract === undefined ? {} : { contract: opts.contract }),
        ...(opts.name === undefined ? {} : { name: opts.name }),
      };
      const remove = await ws().subscribe({
        resumeParams: () => ({
          method: 'sub_events',
          params: methods.sub_events.params.toJson(
            last !== undefined ? { ...filter, cursor: last } : { ...filter, fromHeight: start! },
          ),
        }),
        onNotification(json) {
          const e = decodeNotification('sub_events', json);
          if (last !== undefined && comparePositions(e.cursor, last) <= 0) {
            s.duplicatesDropped++;
            return;
          }
          last = e.cursor;
          s.delivered++;
          onEvent(e);
        },
        onServerError() {
          s.restarts++;
        },
      });
      return subscriptionOf(remove, s);
    },
    async subscribeHeads(opts, onHead) {
      const s = stats();
      let next = await startHeight(opts.fromHeight);
      const remove = await ws().subscribe({
        resumeParams: () => ({ method: 'sub_newHeads', params: { fromHeight: next } }),
        onNotification(json) {
          const h = decodeNotification('sub_newHeads', json);
          if (h.height < next) {
            s.duplicatesDropped++;
            return;
          }
          next = h.height + 1;
          s.delivered++;
          onHead(h);
        },
        onServerError() {
          s.restarts++;
        },
      });
      return subscriptionOf(remove, s);
    },
    get ws() {
      return ws();
    },
    close() {
      http.close();
      wsTransport?.close();
    },
  };
  return client;
}

function subscriptionOf(
  remove: () => Promise<void>,
  s: { delivered: number; duplicatesDropped: number; restarts: number },
): Subscription {
  return {
    close: remove,
    get delivered() {
      return s.delivered;
    },
    get duplicatesDropped() {
      return s.duplicatesDropped;
    },
    get restarts() {
      return s.restarts;
    },
  };
}
