/**
 * The server side of the request/response methods of rpc/methods.ts, over {@link NodeApi}.
 * Subscriptions (sub_*) need a connection and live in rpc/server.ts.
 */
import { toHex, type Bytes } from '../core/bytes.ts';
import { TrellisError } from '../core/errors.ts';
import { merkleProof } from '../core/merkle.ts';
import { decodeSignedTx, encodeReceipt, hashHeader, hashValidators, type Block } from '../core/types.ts';
import { RpcError } from './errors.ts';
import { MAX_EVENTS_PER_PAGE, type MethodName, type ParamsOf, type ResultOf } from './methods.ts';
import { TX_REJECT_REASONS, type NodeApi } from './nodeApi.ts';
import { txViewOf } from './schemas.ts';
import type { TxWaiters } from './streams.ts';
import type { Json } from './wire.ts';

/** A handler of one method. */
export type Handler<M extends MethodName> = (params: ParamsOf<M>) => ResultOf<M> | Promise<ResultOf<M>>;

/** Handlers of the request/response methods. */
export type Handlers = { readonly [M in Exclude<MethodName, `sub_${string}`>]: Handler<M> };

/** What the handlers need besides the node. */
export interface HandlerDeps {
  readonly waiters: TxWaiters;
  /** Default `tx_wait` timeout. */
  readonly defaultWaitMs: number;
  readonly stats: () => ResultOf<'admin_rpcStats'>;
  readonly disconnectClients: () => number;
}

const REJECT = new Set<string>(TX_REJECT_REASONS);

/**
 * Maps an error from the node to the documented RPC error: transaction refusals keep their
 * reason, missing things become NOT_FOUND, anything unexpected becomes INTERNAL (without leaking
 * its message; the server logs it).
 */
export function toRpcError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (err instanceof TrellisError) {
    const code = err.code as string;
    if (REJECT.has(code)) return new RpcError('TX_REJECTED', err.message, { reason: code });
    if (code === 'UNAVAILABLE') return new RpcError('UNAVAILABLE', err.message, {});
    if (code === 'RATE_LIMITED') return new RpcError('RATE_LIMITED', err.message, {});
    if (code === 'HEIGHT_UNAVAILABLE' || code === 'UNKNOWN_CONTRACT' || code === 'UNKNOWN_METHOD') {
      return new RpcError('NOT_FOUND', err.message, { reason: code });
    }
  }
  return new RpcError('INTERNAL', 'internal error', {});
}

function notFound(what: string, meta: Record<string, unknown>): never {
  throw new RpcError('NOT_FOUND', `${what} not found`, meta);
}

/** JSON form of diagnostics whose shape RPC does not own: bytes become hex, bigints decimal. */
export function toJsonSafe(v: unknown, depth = 0): Json {
  if (depth > 32) return '[nested too deep]';
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      return Number.isFinite(v) ? v : String(v);
    case 'bigint':
      return v.toString(10);
    case 'object': {
      if (v instanceof Uint8Array) return toHex(v);
      if (Array.isArray(v)) return v.map((x) => toJsonSafe(x, depth + 1));
      if (v instanceof Map) return toJsonSafe(Object.fromEntries(v), depth + 1);
      const out: { [key: string]: Json } = {};
      for (const [k, x] of Object.entries(v)) if (k !== '__proto__') out[k] = toJsonSafe(x, depth + 1);
      return out;
    }
    default:
      return null;
  }
}

function txHashesOf(block: Block): Bytes[] {
  return block.txs.map((t) => decodeSignedTx(t).hash);
}

/** Creates the handlers over a node. */
export function createHandlers(node: NodeApi, deps: HandlerDeps): Handlers {
  async function blockAt(height: number): Promise<Block> {
    return (await node.getBlock({ height })) ?? notFound(`block ${height}`, { height });
  }

  return {
    node_info() {
      return node.info();
    },
    node_peers() {
      return { peers: [...node.peers()] };
    },
    node_health() {
      const h = node.health();
      return { ...h, reasons: [...h.reasons] };
    },
    chain_getHead() {
      const head = node.head();
      return head === undefined ? null : { height: head.height, hash: head.hash, header: head.header };
    },
    async chain_getBlock(p) {
      const block =
        p.hash !== undefined
          ? await node.getBlock({ hash: p.hash })
          : await node.getBlock({ height: p.height! });
      if (block === undefined) {
        notFound('block', p.hash !== undefined ? { hash: toHex(p.hash) } : { height: p.height });
      }
      const base = { hash: hashHeader(block.header), header: block.header, txHashes: txHashesOf(block) };
      if (p.full !== true) return base;
      const receipts = (await node.getReceipts(block.header.height)) ?? [];
      return { ...base, txs: block.txs.map((t) => txViewOf(decodeSignedTx(t))), receipts: [...receipts] };
    },
    async chain_getCommit({ height }) {
      const [block, certificate] = await Promise.all([
        node.getBlock({ height }),
        node.getCertificate(height),
      ]);
      if (block === undefined || certificate === undefined)
        notFound(`commit of height ${height}`, { height });
      return { header: block.header, certificate };
    },
    async chain_getValidators(p) {
      const set = await node.getValidators(p.height);
      if (set === undefined) notFound(`validator set of height ${p.height}`, { height: p.height });
      return {
        height: set.height,
        validators: [...set.validators],
        validatorsHash: hashValidators(set.validators),
        fromHeight: set.fromHeight,
        ...(set.changedBy === undefined ? {} : { changedBy: set.changedBy }),
      };
    },
    async tx_send({ tx }) {
      return { hash: await node.submitTx(tx) };
    },
    async tx_get({ hash }) {
      const rec = (await node.getTx(hash)) ?? notFound(`transaction ${toHex(hash)}`, { hash: toHex(hash) });
      return { tx: txViewOf(decodeSignedTx(rec.bytes)), height: rec.height, index: rec.index };
    },
    async tx_getReceipt({ hash }) {
      return (await node.getReceipt(hash)) ?? notFound(`receipt of ${toHex(hash)}`, { hash: toHex(hash) });
    },
    async tx_wait({ hash, timeoutMs }) {
      return deps.waiters.wait(hash, timeoutMs ?? deps.defaultWaitMs);
    },
    async tx_getNonce({ address }) {
      return { nonce: await node.nextNonce(address) };
    },
    async tx_getProof({ hash }) {
      const rec = (await node.getTx(hash)) ?? notFound(`transaction ${toHex(hash)}`, { hash: toHex(hash) });
      const block = await blockAt(rec.height);
      return { height: rec.height, tx: rec.bytes, proof: merkleProof(block.txs, rec.index) };
    },
    async tx_getReceiptProof({ hash }) {
      const rec =
        (await node.getReceipt(hash)) ?? notFound(`receipt of ${toHex(hash)}`, { hash: toHex(hash) });
      const receipts =
        (await node.getReceipts(rec.height)) ?? notFound(`receipts of block ${rec.height}`, {});
      return {
        height: rec.height,
        receipt: rec.receipt,
        proof: merkleProof(receipts.map(encodeReceipt), rec.receiptIndex),
      };
    },
    async contract_call(p) {
      const r = await node.callView(p.contract, p.method, p.args ?? null, p.height);
      if (!r.ok) {
        throw new RpcError('REVERTED', `${p.contract}.${p.method} ${r.status}: ${r.error}`, {
          status: r.status,
          errorCode: r.errorCode,
          error: r.error,
          gasUsed: r.gasUsed,
        });
      }
      return { value: r.value, gasUsed: r.gasUsed, height: r.height };
    },
    async contract_get({ contract }) {
      const info = (await node.getContract(contract)) ?? notFound(`contract "${contract}"`, { contract });
      return { ...info, methods: [...info.methods] };
    },
    async contract_list(p) {
      const limit = p.limit ?? 100;
      const list = await node.listContracts({ ...(p.after === undefined ? {} : { after: p.after }), limit });
      const contracts = list.slice(0, limit).map((c) => ({ ...c, methods: [...c.methods] }));
      const last = contracts[contracts.length - 1];
      return contracts.length === limit && last !== undefined
        ? { contracts, next: last.name }
        : { contracts };
    },
    async state_get(p) {
      const r = await node.getState(p.contract, p.key, {
        withProof: p.proof === true,
        ...(p.height === undefined ? {} : { height: p.height }),
      });
      return {
        height: r.height,
        value: r.value ?? null,
        ...(r.proof === undefined ? {} : { proof: r.proof }),
      };
    },
    async events_query(p) {
      const head = node.head()?.height ?? 0;
      const limit = Math.min(p.limit ?? 100, MAX_EVENTS_PER_PAGE);
      const fromHeight = Math.max(p.fromHeight ?? 1, p.cursor?.height ?? 0);
      const toHeight = Math.min(p.toHeight ?? head, head);
      if (fromHeight > toHeight) return { events: [] };
      const page = await node.queryEvents({
        fromHeight,
        toHeight,
        limit,
        ...(p.contract === undefined ? {} : { contract: p.contract }),
        ...(p.name === undefined ? {} : { name: p.name }),
        ...(p.cursor === undefined ? {} : { after: p.cursor }),
      });
      const events = page.events.slice(0, limit).map((e) => ({ ...e, cursor: e }));
      return page.next === undefined ? { events } : { events, next: page.next };
    },
    consensus_state() {
      return toJsonSafe(node.consensusState());
    },
    admin_rpcStats() {
      return deps.stats();
    },
    admin_disconnectClients() {
      return { closed: deps.disconnectClients() };
    },
  };
}
