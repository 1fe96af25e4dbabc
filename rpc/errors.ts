import { TrellisError } from '../core/errors.ts';

/**
 * Why an RPC call failed. The first five are the JSON-RPC 2.0 protocol errors; the rest are the
 * Trellis application errors, numbered from -32000 down (the range JSON-RPC 2.0 reserves for
 * implementation-defined server errors).
 */
export type RpcErrorCode =
  | 'PARSE_ERROR'
  | 'INVALID_REQUEST'
  | 'METHOD_NOT_FOUND'
  | 'INVALID_PARAMS'
  | 'INTERNAL'
  | 'TX_REJECTED'
  | 'NOT_FOUND'
  | 'REVERTED'
  | 'UNAUTHORIZED'
  | 'RATE_LIMITED'
  | 'LIMIT_EXCEEDED'
  | 'TIMEOUT'
  | 'UNAVAILABLE'
  | 'TRANSPORT';

/** The numeric JSON-RPC code of each {@link RpcErrorCode}, and what it means. */
export const RPC_ERRORS = {
  PARSE_ERROR: { code: -32700, meaning: 'The body is not valid UTF-8 JSON.' },
  INVALID_REQUEST: {
    code: -32600,
    meaning:
      'Not a valid JSON-RPC 2.0 request: wrong `jsonrpc`, odd `id`, unknown members, empty or oversize batch, nesting too deep.',
  },
  METHOD_NOT_FOUND: { code: -32601, meaning: 'No such method (or a subscription method over HTTP).' },
  INVALID_PARAMS: {
    code: -32602,
    meaning: '`params` do not match the method schema; `data.path` names the offending field.',
  },
  INTERNAL: { code: -32603, meaning: 'The node failed while serving a valid request.' },
  TX_REJECTED: {
    code: -32000,
    meaning: 'The transaction was refused before the mempool and changed nothing; `data.reason` says why.',
  },

  NOT_FOUND: { code: -32001, meaning: 'The block, transaction, receipt, contract or height does not exist.' },
  REVERTED: {
    code: -32002,
    meaning: 'A view reverted; `data.errorCode` is the contract’s code and `data.status` the receipt status.',
  },
  UNAUTHORIZED: {
    code: -32003,
    meaning: 'An admin method without the bearer token (or with a wrong one).',
  },
  RATE_LIMITED: { code: -32004, meaning: 'Too many requests from this client; retry later.' },
  LIMIT_EXCEEDED: {
    code: -32005,
    meaning: 'A server limit was hit: subscriptions per connection, concurrent waiters, result size.',
  },
  TIMEOUT: { code: -32006, meaning: 'The request (or `tx_wait`) ran past its time limit.' },
  UNAVAILABLE: {
    code: -32007,
    meaning: 'The node cannot serve this now (starting, syncing, shutting down).',
  },
  TRANSPORT: {
    code: -32099,
    meaning:
      'Client side only: the connection failed or the server answered with something that is not JSON-RPC.',
  },
} as const satisfies Record<RpcErrorCode, { code: number; meaning: string }>;

const BY_NUMBER = new Map<number, RpcErrorCode>(
  Object.entries(RPC_ERRORS).map(([k, v]) => [v.code, k as RpcErrorCode]),
);

/** The {@link RpcErrorCode} of a numeric JSON-RPC error code; unknown numbers map to INTERNAL. */
export function rpcErrorCodeOf(n: number): RpcErrorCode {
  return BY_NUMBER.get(n) ?? 'INTERNAL';
}

/**
 * An RPC failure, on the server (thrown by handlers and the request pipeline) and in the SDK
 * (rebuilt from an error response, with the same code and data).
 */
export class RpcError extends TrellisError<RpcErrorCode> {
  /** The numeric JSON-RPC error code. */
  get rpcCode(): number {
    return RPC_ERRORS[this.code].code;
  }
}

/** The JSON-RPC error object of an RpcError: `data` carries its metadata when there is any. */
export function toJsonRpcError(err: RpcError): { code: number; message: string; data?: unknown } {
  const out: { code: number; message: string; data?: unknown } = { code: err.rpcCode, message: err.message };
  if (Object.keys(err.meta).length > 0) out.data = err.meta;
  return out;
}
