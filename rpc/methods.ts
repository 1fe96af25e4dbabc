/**
 * Every RPC method, defined once: its parameter schema (the server validates with it, the SDK
 * encodes with it), its result type (the server encodes, the SDK decodes), the errors it may
 * return, and its documentation (docs/rpc.md is generated from this table by rpc/docs.ts).
 * Pure data: the handlers live in rpc/handlers.ts, on the server side only.
 */
import { Limits } from '../core/types.ts';
import type { RpcErrorCode } from './errors.ts';
import {
  addressType,
  blockType,
  certificateType,
  chainEventType,
  cursorType,
  headerType,
  heightType,
  MAX_STATE_KEY_BYTES,
  merkleProofType,
  nameType,
  receiptRecordType,
  receiptType,
  txBytesType,
  txRecordType,
  validatorType,
} from './schemas.ts';
import {
  anyJson,
  array,
  bool,
  hash32,
  hex,
  nullable,
  object,
  oneOf,
  opt,
  req,
  str,
  uint,
  value,
  type Infer,
  type WireType,
} from './wire.ts';

/** Most events one `events_query` page returns. */
export const MAX_EVENTS_PER_PAGE = 1000;
/** Most contracts one `contract_list` page returns. */
export const MAX_CONTRACTS_PER_PAGE = 500;
/** Longest `tx_wait`: a waiter holds a request slot, so it is bounded. */
export const MAX_TX_WAIT_MS = 120_000;

/** Where a method may be called. */
export type Transport = 'any' | 'ws';

/** One method: name, schema of params and result, documentation. */
export interface MethodSpec<P, R> {
  readonly summary: string;
  readonly params: WireType<P>;
  readonly result: WireType<R>;
  /** Needs the admin bearer token. */
  readonly admin: boolean;
  /** `ws`: subscription methods, only over WebSocket. */
  readonly transport: Transport;
  /** Application errors the method may return (protocol errors apply to all). */
  readonly errors: readonly RpcErrorCode[];
  /** For subscriptions: the type of each notification's `result`. */
  readonly notification?: WireType<unknown>;
}

function method<P, R>(spec: {
  summary: string;
  params: WireType<P>;
  result: WireType<R>;
  errors?: readonly RpcErrorCode[];
  admin?: boolean;
}): MethodSpec<P, R> {
  return { admin: false, transport: 'any', errors: [], ...spec };
}

function subscription<P, N>(spec: {
  summary: string;
  params: WireType<P>;
  notification: WireType<N>;
  errors?: readonly RpcErrorCode[];
}): MethodSpec<P, { subscription: string }> {
  return {
    summary: spec.summary,
    params: spec.params,
    result: subscriptionIdType,
    admin: false,
    transport: 'ws',
    errors: spec.errors ?? ['LIMIT_EXCEEDED'],
    notification: spec.notification,
  };
}

const none = object({});
const subscriptionIdType = object({
  subscription: req(str(64), 'Subscription id, echoed in each notification.'),
});

/** The result of a view. */
export const viewResultType = object({
  value: req(value(), 'Return value.'),
  gasUsed: req(uint(), 'Gas the view used (not charged).'),
  height: req(heightType, 'Height of the state the view ran on.'),
});

/** A deployed contract. */
export const contractInfoType = object({
  name: req(nameType, 'Contract name.'),
  codeHash: req(hash32(), 'Hash of the deployed code.'),
  deployedAt: req(heightType, 'Height of the deploy or last upgrade.'),
  frozen: req(bool(), 'Frozen by governance.'),
  methods: req(array(nameType, 4096), 'Exported methods, when known.'),
});

/** A new-head notification. */
export const newHeadType = object({
  height: req(heightType, 'Block height.'),
  hash: req(hash32(), 'Block hash.'),
  header: req(headerType, 'Header.'),
  txCount: req(uint(), 'Number of transactions.'),
});

/** A `tx` subscription notification: the receipt, once committed. */
export const txNotificationType = receiptRecordType;

/** The method table. */
export const methods = {
  node_info: method({
    summary: 'Who this node is: chain, identity, role, software.',
    params: none,
    result: object({
      chainId: req(nameType, 'Chain id.'),
      nodeId: req(str(256), 'Network identity (libp2p peer id).'),
      address: req(addressType, 'Address of the node key.'),
      validator: req(bool(), 'Whether this node is a validator.'),
      version: req(str(64), 'Trellis version.'),
      runtime: req(str(64), 'Runtime (pinned Node.js).'),
      genesisHash: req(hash32(), 'Genesis hash.'),
    }),
  }),
  node_peers: method({
    summary: 'Connected peers.',
    params: none,
    result: object({
      peers: req(
        array(
          object({
            nodeId: req(str(256), 'Peer id.'),
            address: opt(addressType, 'Peer node-key address, once authenticated.'),
            remote: req(str(512), 'Remote address.'),
            direction: req(oneOf(['inbound', 'outbound'] as const), 'Who dialled.'),
            height: opt(heightType, 'Peer height as last reported.'),
          }),
          4096,
        ),
        'Peers.',
      ),
    }),
  }),
  node_health: method({
    summary: 'Liveness, readiness and the figures behind them.',
    params: none,
    result: object({
      live: req(bool(), 'The node loop runs.'),
      ready: req(bool(), 'Serves current data.'),
      syncing: req(bool(), 'Catching up with peers.'),
      height: req(heightType, 'Committed height.'),
      round: req(uint(), 'Current round.'),
      peers: req(uint(), 'Connected peers.'),
      mempoolSize: req(uint(), 'Pending transactions.'),
      reasons: req(array(str(256), 64), 'Why not live or not ready.'),
    }),
  }),
  chain_getHead: method({
    summary: 'The committed head; null before the first block.',
    params: none,
    result: nullable(
      object({
        height: req(heightType, 'Head height.'),
        hash: req(hash32(), 'Head block hash.'),
        header: req(headerType, 'Head header.'),
      }),
    ),
  }),
  chain_getBlock: method({
    summary: 'A block by height or hash; with `full`, its decoded transactions and receipts.',
    params: object(
      {
        height: opt(heightType, 'Block height (give height or hash).'),
        hash: opt(hash32(), 'Block hash (give height or hash).'),
        full: opt(bool(), 'Include decoded transactions and receipts (default false).'),
      },
      (p) =>
        (p.height === undefined) === (p.hash === undefined)
          ? 'give exactly one of height and hash'
          : undefined,
    ),
    result: blockType,
    errors: ['NOT_FOUND'],
  }),
  chain_getCommit: method({
    summary: 'The commit certificate of a height, with its header.',
    params: object({ height: req(heightType, 'Block height.') }),
    result: object({
      header: req(headerType, 'The certified header.'),
      certificate: req(certificateType, 'The commit certificate.'),
    }),
    errors: ['NOT_FOUND'],
  }),
  chain_getValidators: method({
    summary: 'The validator set certifying a height (default: the next height).',
    params: object({ height: opt(heightType, 'Height (default: head + 1).') }),
    result: object({
      height: req(heightType, 'Height the set certifies.'),
      validators: req(array(validatorType, Limits.maxValidators), 'Validators in order.'),
      validatorsHash: req(hash32(), 'Hash of the set, as headers carry it.'),
      fromHeight: req(heightType, 'First height the set certifies (1: the genesis set).'),
      changedBy: opt(
        hash32(),
        'Transaction whose receipt carries the approved change (the approvals ValidatorSetChanged event), provable with tx_getReceiptProof; absent for the genesis set.',
      ),
    }),
    errors: ['NOT_FOUND'],
  }),
  tx_send: method({
    summary: 'Submits a signed transaction (its wire bytes) to the mempool.',
    params: object({ tx: req(txBytesType, 'Signed transaction wire bytes (core/types.ts signTx().bytes).') }),
    result: object({ hash: req(hash32(), 'Transaction hash.') }),
    errors: ['TX_REJECTED', 'UNAVAILABLE'],
  }),
  tx_get: method({
    summary: 'A committed transaction by hash.',
    params: object({ hash: req(hash32(), 'Transaction hash.') }),
    result: txRecordType,
    errors: ['NOT_FOUND'],
  }),
  tx_getReceipt: method({
    summary: 'The receipt of a committed transaction.',
    params: object({ hash: req(hash32(), 'Transaction hash.') }),
    result: receiptRecordType,
    errors: ['NOT_FOUND'],
  }),
  tx_wait: method({
    summary: 'Waits until a transaction commits and returns its receipt, or times out.',
    params: object({
      hash: req(hash32(), 'Transaction hash.'),
      timeoutMs: opt(uint(MAX_TX_WAIT_MS), `How long to wait (default 30000, at most ${MAX_TX_WAIT_MS}).`),
    }),
    result: receiptRecordType,
    errors: ['TIMEOUT', 'LIMIT_EXCEEDED'],
  }),
  tx_getNonce: method({
    summary: 'The next nonce of an address in the committed state.',
    params: object({ address: req(addressType, 'Sender address.') }),
    result: object({ nonce: req(uint(), 'Next nonce.') }),
  }),
  tx_getProof: method({
    summary: 'Proof that a transaction is in its block: Merkle path to the header’s txRoot.',
    params: object({ hash: req(hash32(), 'Transaction hash.') }),
    result: object({
      height: req(heightType, 'Block height: verify against this header’s txRoot.'),
      tx: req(txBytesType, 'The leaf: the transaction’s wire bytes.'),
      proof: req(merkleProofType, 'Inclusion proof.'),
    }),
    errors: ['NOT_FOUND'],
  }),
  tx_getReceiptProof: method({
    summary: 'Proof of a receipt: Merkle path of its canonical bytes to the header’s receiptsRoot.',
    params: object({ hash: req(hash32(), 'Transaction hash.') }),
    result: object({
      height: req(heightType, 'Block height: verify against this header’s receiptsRoot.'),
      receipt: req(receiptType, 'The receipt; its canonical encoding is the leaf.'),
      proof: req(merkleProofType, 'Inclusion proof.'),
    }),
    errors: ['NOT_FOUND'],
  }),
  contract_call: method({
    summary: 'Runs a contract method as a view: read-only, nothing is committed.',
    params: object({
      contract: req(nameType, 'Contract name.'),
      method: req(nameType, 'Method name.'),
      args: opt(value(), 'Arguments (default null).'),
      height: opt(heightType, 'State height (default: head).'),
    }),
    result: viewResultType,
    errors: ['REVERTED', 'NOT_FOUND'],
  }),
  contract_get: method({
    summary: 'A deployed contract.',
    params: object({ contract: req(nameType, 'Contract name.') }),
    result: contractInfoType,
    errors: ['NOT_FOUND'],
  }),
  contract_list: method({
    summary: 'Deployed contracts in name order, paged.',
    params: object({
      after: opt(nameType, 'List names after this one.'),
      limit: opt(uint(MAX_CONTRACTS_PER_PAGE), `Page size (default 100, at most ${MAX_CONTRACTS_PER_PAGE}).`),
    }),
    result: object({
      contracts: req(array(contractInfoType, MAX_CONTRACTS_PER_PAGE), 'Contracts.'),
      next: opt(nameType, 'Pass as `after` for the next page.'),
    }),
  }),
  state_get: method({
    summary:
      'One state entry, optionally with a proof against the stateRoot of the height it names. Proofs more than 16 blocks below the head are rebuilt from stale records: a node serves at most 1 per second (burst 4), then RATE_LIMITED.',
    params: object({
      contract: req(nameType, 'Contract name.'),
      key: req(hex({ maxBytes: MAX_STATE_KEY_BYTES }), `State key (at most ${MAX_STATE_KEY_BYTES} bytes).`),
      proof: opt(bool(), 'Include the proof (default false).'),
      height: opt(heightType, 'Height (default: head).'),
    }),
    result: object({
      height: req(heightType, 'Height of the value: verify the proof against this header’s stateRoot.'),
      value: req(nullable(hex()), 'The value, or null when absent.'),
      proof: opt(hex(), 'Encoded inclusion or exclusion proof (core/stateProof.ts).'),
    }),
    errors: ['NOT_FOUND', 'RATE_LIMITED'],
  }),
  events_query: method({
    summary: 'Events in chain order, filtered by contract and name, paged with a cursor.',
    params: object(
      {
        contract: opt(nameType, 'Only events of this contract.'),
        name: opt(nameType, 'Only events with this name.'),
        fromHeight: opt(heightType, 'First height (default 1).'),
        toHeight: opt(heightType, 'Last height, inclusive (default: head).'),
        cursor: opt(cursorType, 'Only events after this cursor (a previous page’s `next`).'),
        limit: opt(uint(MAX_EVENTS_PER_PAGE), `Page size (default 100, at most ${MAX_EVENTS_PER_PAGE}).`),
      },
      (p) =>
        p.fromHeight !== undefined && p.toHeight !== undefined && p.fromHeight > p.toHeight
          ? 'fromHeight must not exceed toHeight'
          : undefined,
    ),
    result: object({
      events: req(array(chainEventType, MAX_EVENTS_PER_PAGE), 'Events.'),
      next: opt(cursorType, 'Present when more may follow: pass as `cursor`.'),
    }),
  }),
  consensus_state: method({
    summary:
      'Consensus diagnostics: height, round, step, votes seen, timers (shape owned by the consensus driver).',
    params: none,
    result: anyJson(),
  }),
  sub_newHeads: subscription({
    summary: 'Notifies each committed block header; with `fromHeight`, replays from there first.',
    params: object({ fromHeight: opt(heightType, 'Replay committed heads from this height, then go live.') }),
    notification: newHeadType,
  }),
  sub_events: subscription({
    summary:
      'Notifies events matching the filter, each exactly once and in order; resumes after `cursor` (replayed from the store, then live without gap or duplicate).',
    params: object({
      contract: opt(nameType, 'Only events of this contract.'),
      name: opt(nameType, 'Only events with this name.'),
      cursor: opt(cursorType, 'Resume after this cursor.'),
      fromHeight: opt(heightType, 'Without a cursor: replay from this height (default: live only).'),
    }),
    notification: chainEventType,
  }),
  sub_tx: subscription({
    summary: 'Notifies once when a transaction commits (immediately if it already has), then ends.',
    params: object({ hash: req(hash32(), 'Transaction hash.') }),
    notification: txNotificationType,
  }),
  sub_cancel: {
    summary: 'Cancels a subscription of this connection.',
    params: object({ subscription: req(str(64), 'Subscription id.') }),
    result: object({ cancelled: req(bool(), 'False when there was no such subscription.') }),
    admin: false,
    transport: 'ws',
    errors: [],
  } satisfies MethodSpec<{ subscription: string }, { cancelled: boolean }>,
  admin_rpcStats: method({
    summary: 'RPC server statistics: connections, subscriptions, requests by outcome.',
    params: none,
    result: object({
      httpRequests: req(uint(), 'HTTP requests served.'),
      wsConnections: req(uint(), 'Open WebSocket connections.'),
      subscriptions: req(uint(), 'Open subscriptions.'),
      waiters: req(uint(), 'Pending tx_wait calls.'),
      errors: req(uint(), 'Error responses sent.'),
    }),
    admin: true,
  }),
  admin_disconnectClients: method({
    summary: 'Closes every WebSocket connection (clients reconnect and resume from their cursors).',
    params: none,
    result: object({ closed: req(uint(), 'Connections closed.') }),
    admin: true,
  }),
} as const;

/** Every method name. */
export type MethodName = keyof typeof methods;
/** The parameters of a method, as values (after parsing). */
export type ParamsOf<M extends MethodName> = Infer<(typeof methods)[M]['params']>;
/** The result of a method, as a value (after parsing). */
export type ResultOf<M extends MethodName> = Infer<(typeof methods)[M]['result']>;

/** The method of `sub_*` notifications. */
export const NOTIFICATION_METHOD = 'sub_notify';

/** Subscription kinds by method. */
export type SubscriptionMethod = 'sub_newHeads' | 'sub_events' | 'sub_tx';

/** True when `name` is a method of the table (own property, so `__proto__` is not). */
export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(methods, name);
}

/** The notification type of each subscription method. */
export const notifications = {
  sub_newHeads: newHeadType,
  sub_events: chainEventType,
  sub_tx: txNotificationType,
} as const;

/** What one notification of a subscription carries. */
export type NotificationOf<S extends SubscriptionMethod> = Infer<(typeof notifications)[S]>;
