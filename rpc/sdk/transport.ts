/**
 * How the SDK reaches a node: JSON-RPC calls over HTTP (keep-alive), and a WebSocket connection
 * for subscriptions that reconnects with backoff and lets each subscription resume.
 */
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { WebSocket } from 'ws';
import { RpcError, rpcErrorCodeOf } from '../errors.ts';
import { isJsonObject, type Json } from '../wire.ts';

/** Largest response the SDK reads (a full block of maximal transactions fits). */
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

/** Options shared by the transports. */
export interface TransportOptions {
  /** Node URL, e.g. http://127.0.0.1:8545. */
  readonly url: string;
  /** Bearer token for admin methods. */
  readonly adminToken?: string;
  /** Time a call may take before the client gives up. Default 60 s. */
  readonly timeoutMs?: number;
  /** Keep-alive sockets per node. Default 64. */
  readonly maxSockets?: number;
}

/** Turns a JSON-RPC response into its result, or throws its error as an RpcError. */
export function unwrapResponse(res: unknown): unknown {
  if (!isJsonObject(res) || res['jsonrpc'] !== '2.0') {
    throw new RpcError(
      'TRANSPORT',
      'the node answered with something that is not a JSON-RPC 2.0 response',
      {},
    );
  }
  const err = res['error'];
  if (err !== undefined) {
    if (!isJsonObject(err) || typeof err['code'] !== 'number' || typeof err['message'] !== 'string') {
      throw new RpcError('TRANSPORT', 'malformed JSON-RPC error object', {});
    }
    const data = isJsonObject(err['data']) ? err['data'] : {};
    throw new RpcError(rpcErrorCodeOf(err['code']), err['message'], { ...data, rpcCode: err['code'] });
  }
  return res['result'];
}

/** Sends JSON-RPC calls over HTTP POST. */
export interface HttpTransport {
  call(method: string, params: Json): Promise<unknown>;
  /** Sends a batch; results (or RpcErrors) in call order. */
  batch(calls: readonly { method: string; params: Json }[]): Promise<Array<unknown>>;
  close(): void;
}

/** Creates the HTTP transport of a client. */
export function createHttpTransport(options: TransportOptions): HttpTransport {
  const url = new URL(options.url);
  const secure = url.protocol === 'https:';
  const agent = secure
    ? new HttpsAgent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 })
    : new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64 });
  const timeoutMs = options.timeoutMs ?? 60_000;
  let nextId = 1;

  function post(body: string, timeout: number, retried = false): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let answered = false;
      const req = (secure ? httpsRequest : request)(
        url,
        {
          method: 'POST',
          agent,
          headers: {
            'Content-Type': 'application/json',
            'Content-Length': Buffer.byteLength(body),
            ...(options.adminToken === undefined ? {} : { Authorization: `Bearer ${options.adminToken}` }),
          },
          timeout,
        },
        (res) => {
          answered = true;
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              res.destroy();
              reject(new RpcError('TRANSPORT', `response larger than ${MAX_RESPONSE_BYTES} bytes`, {}));
              return;
            }
            chunks.push(c);
          });
          res.on('error', (err) => reject(new RpcError('TRANSPORT', err.message, {})));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (text === '') {
              reject(
                new RpcError('TRANSPORT', `HTTP ${res.statusCode} with an empty body`, {
                  status: res.statusCode,
                }),
              );
              return;
            }
            try {
              resolve(JSON.parse(text));
            } catch {
              reject(
                new RpcError('TRANSPORT', `HTTP ${res.statusCode}: response is not JSON`, {
                  status: res.statusCode,
                }),
              );
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${timeout} ms`)));
      req.on('error', (err: NodeJS.ErrnoException) => {
        // A kept-alive socket the server closed as we reused it: the request never reached the
        // server, so sending it once more is safe (Node's documented pattern, `reusedSocket`).
        if (!answered && !retried && req.reusedSocket && err.code === 'ECONNRESET') {
          post(body, timeout, true).then(resolve, reject);
          return;
        }
        reject(new RpcError('TRANSPORT', `${url.origin}: ${err.message}`, { url: url.origin }));
      });
      req.end(body);
    });
  }

  return {
    async call(method, params) {
      const id = nextId++;
      const extra = method === 'tx_wait' && isJsonObject(params) ? Number(params['timeoutMs'] ?? 30_000) : 0;
      const res = await post(JSON.stringify({ jsonrpc: '2.0', id, method, params }), timeoutMs + extra);
      return unwrapResponse(res);
    },
    async batch(calls) {
      const first = nextId;
      nextId += calls.length;
      const res = await post(
        JSON.stringify(
          calls.map((c, i) => ({ jsonrpc: '2.0', id: first + i, method: c.method, params: c.params })),
        ),
        timeoutMs,
      );
      if (!Array.isArray(res)) return calls.map(() => unwrapResponse(res));
      const byId = new Map<unknown, unknown>(res.map((r) => [isJsonObject(r) ? r['id'] : undefined, r]));
      return calls.map((_, i) => {
        try {
          return unwrapResponse(byId.get(first + i));
        } catch (err) {
          return err;
        }
      });
    },
    close() {
      agent.destroy();
    },
  };
}

/** Handles one subscription's notifications and tells the transport how to (re)subscribe. */
export interface SubscriptionHandler {
  /** The method and params to subscribe with now (they change as the stream advances). */
  resumeParams(): { method: string; params: Json };
  onNotification(result: unknown): void;
  /** The server ended the subscription with an error (the transport resubscribes after a backoff). */
  onServerError(err: RpcError): void;
  /** Called after a (re)subscription is accepted. */
  onSubscribed?(serverId: string): void;
}

/** A WebSocket connection that reconnects and resubscribes. */
export interface WsTransport {
  /** Calls a method; `onResult` sees the result synchronously as it arrives. */
  call(method: string, params: Json, onResult?: (v: unknown) => void): Promise<unknown>;
  /** Registers a subscription; it is (re)established on every connection. Returns its remover. */
  subscribe(handler: SubscriptionHandler): Promise<() => Promise<void>>;
  /** Drops the current socket (as a network failure would); the transport reconnects. For tests. */
  dropConnection(): void;
  close(): void;
  /** Times the transport has connected. */
  readonly connects: number;
}

/** WebSocket URL of an http(s) node URL. */
export function wsUrlOf(url: string): string {
  const u = new URL(url);
  u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  return u.toString();
}

/** Creates the WebSocket transport; it connects on first use. */
export function createWsTransport(
  options: TransportOptions & { readonly maxBackoffMs?: number },
): WsTransport {
  const wsUrl = wsUrlOf(options.url);
  const timeoutMs = options.timeoutMs ?? 60_000;
  const maxBackoffMs = options.maxBackoffMs ?? 5_000;
  let ws: WebSocket | undefined;
  let opening: Promise<WebSocket> | undefined;
  let closed = false;
  let connects = 0;
  let backoff = 50;
  let nextId = 1;
  // Calls awaiting their answer; `onResult` runs synchronously on arrival, before any later message.
  const pending = new Map<
    number,
    {
      resolve(v: unknown): void;
      reject(e: unknown): void;
      timer: NodeJS.Timeout;
      onResult: ((v: unknown) => void) | undefined;
    }
  >();
  // Registered subscriptions (handler → current server id); bounded by the caller's own use.
  const subs = new Map<SubscriptionHandler, string | undefined>();
  const byServerId = new Map<string, SubscriptionHandler>();

  function open(): Promise<WebSocket> {
    if (closed) return Promise.reject(new RpcError('TRANSPORT', 'transport closed', {}));
    if (ws !== undefined && ws.readyState === WebSocket.OPEN) return Promise.resolve(ws);
    opening ??= new Promise<WebSocket>((resolve, reject) => {
      const sock = new WebSocket(wsUrl, {
        headers: options.adminToken === undefined ? {} : { Authorization: `Bearer ${options.adminToken}` },
        maxPayload: MAX_RESPONSE_BYTES,
      });
      sock.once('open', () => {
        ws = sock;
        opening = undefined;
        connects++;
        backoff = 50;
        resolve(sock);
        for (const h of subs.keys()) establish(h);
      });
      sock.on('message', (data: Buffer) => onMessage(data.toString('utf8')));
      sock.once('error', (err) => {
        if (ws !== sock) {
          opening = undefined;
          reject(new RpcError('TRANSPORT', `${wsUrl}: ${err.message}`, {}));
          scheduleReconnect();
        }
      });
      sock.once('close', () => {
        if (ws === sock) {
          ws = undefined;
          for (const [id, p] of pending) {
            clearTimeout(p.timer);
            p.reject(new RpcError('TRANSPORT', 'connection lost', {}));
            pending.delete(id);
          }
          for (const h of subs.keys()) subs.set(h, undefined);
          byServerId.clear();
          scheduleReconnect();
        }
      });
    });
    return opening;
  }

  function scheduleReconnect(): void {
    if (closed || subs.size === 0) return;
    const delay = backoff;
    backoff = Math.min(maxBackoffMs, backoff * 2);
    setTimeout(() => {
      if (!closed && ws === undefined && opening === undefined) open().catch(() => undefined);
    }, delay).unref();
  }

  function onMessage(text: string): void {
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    const items = Array.isArray(msg) ? msg : [msg];
    for (const m of items) {
      if (!isJsonObject(m)) continue;
      if (m['method'] === 'sub_notify' && isJsonObject(m['params'])) {
        const p = m['params'];
        const h = typeof p['subscription'] === 'string' ? byServerId.get(p['subscription']) : undefined;
        if (h === undefined) continue;
        if (p['error'] !== undefined) {
          byServerId.delete(p['subscription'] as string);
          subs.set(h, undefined);
          let err: RpcError;
          try {
            unwrapResponse({ jsonrpc: '2.0', error: p['error'] });
            err = new RpcError('TRANSPORT', 'subscription ended', {});
          } catch (e) {
            err = e as RpcError;
          }
          h.onServerError(err);
          setTimeout(() => establish(h), backoff).unref();
          continue;
        }
        h.onNotification(p['result']);
        continue;
      }
      const id = m['id'];
      const p = typeof id === 'number' ? pending.get(id) : undefined;
      if (p === undefined) continue;
      pending.delete(id as number);
      clearTimeout(p.timer);
      let result: unknown;
      try {
        result = unwrapResponse(m);
      } catch (err) {
        p.reject(err);
        continue;
      }
      p.onResult?.(result);
      p.resolve(result);
    }
  }

  async function call(method: string, params: Json, onResult?: (v: unknown) => void): Promise<unknown> {
    const sock = await open();
    const id = nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new RpcError('TRANSPORT', `${method}: no answer within ${timeoutMs} ms`, {}));
      }, timeoutMs);
      pending.set(id, { resolve, reject, timer, onResult });
      sock.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  // Subscriptions being (re)established, and the first establishment each caller awaits.
  const inProgress = new Set<SubscriptionHandler>();
  const firstReady = new Map<SubscriptionHandler, { resolve(): void; reject(err: unknown): void }>();

  function establish(h: SubscriptionHandler): void {
    if (closed || !subs.has(h) || subs.get(h) !== undefined || inProgress.has(h)) return;
    inProgress.add(h);
    const { method, params } = h.resumeParams();
    // Registered synchronously when the answer arrives: the first notification may be in the
    // same socket read, handled before any promise callback would run.
    const register = (res: unknown): void => {
      const id =
        isJsonObject(res) && typeof res['subscription'] === 'string' ? res['subscription'] : undefined;
      if (id === undefined || !subs.has(h)) return;
      subs.set(h, id);
      byServerId.set(id, h);
    };
    call(method, params, register).then(
      () => {
        inProgress.delete(h);
        const id = subs.get(h);
        if (id === undefined) return;
        h.onSubscribed?.(id);
        firstReady.get(h)?.resolve();
        firstReady.delete(h);
      },
      (err: unknown) => {
        inProgress.delete(h);
        // A lost connection: the reconnect re-establishes it.
        if (!(err instanceof RpcError) || err.code === 'TRANSPORT') return;
        const first = firstReady.get(h);
        if (first !== undefined) {
          // Refused outright (bad params, limits): the caller learns it and nothing is retried.
          subs.delete(h);
          firstReady.delete(h);
          first.reject(err);
          return;
        }
        h.onServerError(err);
        setTimeout(() => establish(h), Math.max(backoff, 500)).unref();
      },
    );
  }

  return {
    call,
    async subscribe(h) {
      subs.set(h, undefined);
      const ready = new Promise<void>((resolve, reject) => firstReady.set(h, { resolve, reject }));
      if (ws !== undefined && ws.readyState === WebSocket.OPEN) establish(h);
      else {
        // The open handler establishes every registered subscription.
        open().catch((err: unknown) => {
          if (firstReady.has(h)) {
            firstReady.get(h)!.reject(err);
            firstReady.delete(h);
            subs.delete(h);
          }
        });
      }
      await ready;
      return async () => {
        const id = subs.get(h);
        subs.delete(h);
        if (id !== undefined) {
          byServerId.delete(id);
          if (ws !== undefined && ws.readyState === WebSocket.OPEN) {
            await call('sub_cancel', { subscription: id }).catch(() => undefined);
          }
        }
      };
    },
    dropConnection() {
      ws?.terminate();
    },
    close() {
      closed = true;
      subs.clear();
      byServerId.clear();
      ws?.close();
      ws = undefined;
    },
    get connects() {
      return connects;
    },
  };
}
