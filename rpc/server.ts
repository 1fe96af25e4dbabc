/**
 * The JSON-RPC 2.0 server of a node: HTTP POST and WebSocket on one port, plus `/health`,
 * `/ready` and `/metrics`. It depends on the node only through {@link NodeApi}.
 *
 * Every input is bounded before it is parsed (body size, nesting depth, batch size) and validated
 * against the method's schema after; a refused request gets its documented error and changes
 * nothing. Slow clients are cut off: headers and bodies by the HTTP server's timeouts, WebSocket
 * readers by a bound on their unsent bytes.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { RpcError, toJsonRpcError } from './errors.ts';
import { createHandlers, toRpcError, type Handlers } from './handlers.ts';
import { createRpcMetrics, type RpcMetrics } from './metrics.ts';
import {
  isMethodName,
  methods,
  NOTIFICATION_METHOD,
  notifications,
  type MethodName,
  type ParamsOf,
  type SubscriptionMethod,
} from './methods.ts';
import type { NodeApi } from './nodeApi.ts';
import { createEventStream, createHeadStream, createTxWaiters, type Stream } from './streams.ts';
import { isJsonObject, type Json } from './wire.ts';
import { TokenBucket } from './tokenBucket.ts';

/** Structured logger: a constant message and values in fields. */
export type RpcLogger = (
  level: 'info' | 'warn' | 'error',
  msg: string,
  fields: Record<string, unknown>,
) => void;

/** Server options: plain data with defaults. */
export interface RpcServerOptions {
  /** Interface to bind; loopback unless an operator chooses otherwise. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 8545. */
  readonly port?: number;
  /** Largest request body (HTTP) or message (WebSocket). Default 1 MiB (a maximal tx in hex fits). */
  readonly maxBodyBytes?: number;
  /** Most calls in one batch. Default 100. */
  readonly maxBatch?: number;
  /** Deepest JSON nesting of a request. Default 80 (contract values may nest 64 deep). */
  readonly maxDepth?: number;
  /** Open HTTP connections (sockets). Default 1024. */
  readonly maxConnections?: number;
  /** Open WebSocket connections. Default 512. */
  readonly maxWsConnections?: number;
  /** Subscriptions per WebSocket connection. Default 32. */
  readonly maxSubscriptionsPerConnection?: number;
  /** Calls in progress per WebSocket connection. Default 64. */
  readonly maxInFlightPerConnection?: number;
  /** Open `tx_wait` calls and `sub_tx` watches in total. Default 10000. */
  readonly maxTxWaiters?: number;
  /** Time a call may take (tx_wait: its own timeout plus this). Default 30 s. */
  readonly requestTimeoutMs?: number;
  /** Time to receive the request headers. Default 10 s. */
  readonly headersTimeoutMs?: number;
  /** Time to receive a whole request. Default 30 s. */
  readonly bodyTimeoutMs?: number;
  /** How often Node checks the two timeouts above. Default 1 s. */
  readonly connectionsCheckingIntervalMs?: number;
  /** Idle keep-alive time of an HTTP connection. Default 5 s. */
  readonly keepAliveTimeoutMs?: number;
  /** Default `tx_wait` timeout. Default 30 s. */
  readonly defaultWaitMs?: number;
  /** Unsent bytes a WebSocket client may hold before it is disconnected. Default 4 MiB. */
  readonly maxBufferedBytes?: number;
  /** Time a slow WebSocket reader gets to drain before it is disconnected. Default 10 s. */
  readonly slowClientMs?: number;
  /** WebSocket ping interval; a client missing a pong is dropped. Default 30 s. */
  readonly wsPingIntervalMs?: number;
  /** Bearer token of admin methods; without it admin methods are refused. */
  readonly adminToken?: string;
  /** Origins allowed by CORS (`*` for any). Default none: CORS off, browser WebSockets refused. */
  readonly corsOrigins?: readonly string[];
  /** Per-client-address token bucket over calls. Default off. */
  readonly rateLimit?: { readonly perSecond: number; readonly burst: number };
  readonly log?: RpcLogger;
}

/** The defaults of every limit and timeout (docs/rpc.md lists them). */
export const RPC_DEFAULTS = {
  host: '127.0.0.1',
  port: 8545,
  maxBodyBytes: 1024 * 1024,
  maxBatch: 100,
  maxDepth: 80,
  maxConnections: 1024,
  maxWsConnections: 512,
  maxSubscriptionsPerConnection: 32,
  maxInFlightPerConnection: 64,
  maxTxWaiters: 10_000,
  requestTimeoutMs: 30_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  connectionsCheckingIntervalMs: 1_000,
  keepAliveTimeoutMs: 5_000,
  defaultWaitMs: 30_000,
  maxBufferedBytes: 4 * 1024 * 1024,
  slowClientMs: 10_000,
  wsPingIntervalMs: 30_000,
} as const satisfies Required<Omit<RpcServerOptions, 'adminToken' | 'corsOrigins' | 'rateLimit' | 'log'>>;

/** What the server needs. */
export interface RpcServerDeps {
  readonly node: NodeApi;
  /** Metrics to serve at `/metrics`; created over the node when absent. */
  readonly metrics?: RpcMetrics;
}

/** A running (or startable) RPC server. */
export interface RpcServer {
  /** Binds and listens; resolves with the bound address. */
  start(): Promise<{ host: string; port: number; url: string }>;
  /** Closes every connection and subscription and stops listening. */
  stop(): Promise<void>;
  readonly metrics: RpcMetrics;
  /** `http://host:port` once started. */
  readonly url: string;
}

/** Clients tracked by the rate limiter; the oldest is forgotten beyond this. */
const MAX_RATE_LIMITED_CLIENTS = 10_000;
/** Longest request id string echoed back. */
const MAX_ID_LENGTH = 256;
const REQUEST_MEMBERS = new Set(['jsonrpc', 'method', 'params', 'id']);

type Id = string | number | null;

interface Connection {
  readonly ws: WebSocket;
  readonly admin: boolean;
  readonly ip: string;
  // Bounded by maxSubscriptionsPerConnection.
  readonly subs: Map<string, () => void>;
  inFlight: number;
  alive: boolean;
}

interface CallContext {
  readonly admin: boolean;
  readonly ip: string;
  readonly connection?: Connection;
}

const defaultLog: RpcLogger = (level, msg, fields) => {
  if (level === 'error') process.stderr.write(JSON.stringify({ level, msg, ...fields }) + '\n');
};

/** Deepest `[`/`{` nesting in a JSON text, stopping early once beyond `max`. */
function exceedsDepth(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

function errorResponse(id: Id, err: RpcError): Json {
  return { jsonrpc: '2.0', id, error: toJsonRpcError(err) as unknown as Json };
}

/** Creates the RPC server of a node. */
export function createRpcServer(options: RpcServerOptions, deps: RpcServerDeps): RpcServer {
  const o = { ...RPC_DEFAULTS, ...options };
  const { host, maxBodyBytes, maxBatch, maxDepth, maxWsConnections, maxBufferedBytes, slowClientMs } = o;
  const { requestTimeoutMs, defaultWaitMs } = o;
  const maxSubs = o.maxSubscriptionsPerConnection;
  const maxInFlight = o.maxInFlightPerConnection;
  const log = options.log ?? defaultLog;
  const adminDigest = options.adminToken === undefined ? undefined : digest(options.adminToken);
  const cors = new Set(options.corsOrigins ?? []);
  const { node } = deps;
  const metrics = deps.metrics ?? createRpcMetrics(node, new Set(Object.keys(methods)));
  const waiters = createTxWaiters(node, o.maxTxWaiters);
  const connections = new Set<Connection>();
  const streams = new Set<Stream>();
  const stats = { httpRequests: 0, errors: 0 };
  let subscriptionCount = 0;
  let nextSubscription = 1;
  const subscriptionSalt = randomBytes(4).toString('hex');
  let url = '';
  let unsubscribeCommits: (() => void) | undefined;
  let pingTimer: NodeJS.Timeout | undefined;

  const handlers: Handlers = createHandlers(node, {
    waiters,
    defaultWaitMs,
    stats: () => ({
      httpRequests: stats.httpRequests,
      wsConnections: connections.size,
      subscriptions: subscriptionCount,
      waiters: waiters.size,
      errors: stats.errors,
    }),
    disconnectClients() {
      const n = connections.size;
      for (const c of connections) c.ws.terminate();
      return n;
    },
  });

  // Token buckets per client address; insertion order approximates age for eviction.
  const buckets = new Map<string, TokenBucket>();
  function allow(ip: string): boolean {
    const rl = options.rateLimit;
    if (rl === undefined) return true;
    let b = buckets.get(ip);
    if (b === undefined) {
      if (buckets.size >= MAX_RATE_LIMITED_CLIENTS) buckets.delete(buckets.keys().next().value!);
      b = new TokenBucket(rl.perSecond, rl.burst);
      buckets.set(ip, b);
    }
    return b.take();
  }

  function isAdmin(header: string | undefined): boolean {
    if (adminDigest === undefined || header === undefined) return false;
    const m = /^Bearer (.+)$/.exec(header);
    return m !== null && timingSafeEqual(digest(m[1]!), adminDigest);
  }

  function withTimeout<T>(p: Promise<T>, ms: number, method: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new RpcError('TIMEOUT', `${method} did not finish within ${ms} ms`, { timeoutMs: ms })),
        ms,
      );
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
  }

  // Subscriptions.

  async function sendWs(conn: Connection, text: string, waitForDrain: boolean): Promise<void> {
    const { ws } = conn;
    if (ws.readyState !== WebSocket.OPEN) throw new RpcError('UNAVAILABLE', 'connection closed', {});
    if (ws.bufferedAmount > maxBufferedBytes) {
      log('warn', 'rpc: disconnecting slow websocket client', { ip: conn.ip, buffered: ws.bufferedAmount });
      ws.terminate();
      throw new RpcError('UNAVAILABLE', 'client too slow', {});
    }
    if (!waitForDrain || ws.bufferedAmount < maxBufferedBytes / 4) {
      ws.send(text);
      return;
    }
    // Above the low-water mark: wait until this message is written before producing more.
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        log('warn', 'rpc: disconnecting websocket client that does not drain', { ip: conn.ip });
        ws.terminate();
        reject(new RpcError('UNAVAILABLE', 'client too slow', {}));
      }, slowClientMs);
      ws.send(text, (err) => {
        clearTimeout(timer);
        if (err === undefined || err === null) resolve();
        else reject(err);
      });
    });
  }

  function notify(conn: Connection, subscription: string, result: Json): Promise<void> {
    return sendWs(
      conn,
      JSON.stringify({ jsonrpc: '2.0', method: NOTIFICATION_METHOD, params: { subscription, result } }),
      true,
    );
  }

  function subscribe(
    conn: Connection,
    method: SubscriptionMethod,
    params: unknown,
  ): { subscription: string } {
    if (conn.subs.size >= maxSubs) {
      throw new RpcError('LIMIT_EXCEEDED', `at most ${maxSubs} subscriptions per connection`, {
        max: maxSubs,
      });
    }
    const id = `0x${subscriptionSalt}${(nextSubscription++).toString(16).padStart(8, '0')}`;
    let stream: Stream | undefined;
    let cancelWatch: (() => void) | undefined;
    const end = (): void => {
      if (!conn.subs.delete(id)) return;
      subscriptionCount--;
      if (stream !== undefined) {
        stream.close();
        streams.delete(stream);
      }
      cancelWatch?.();
    };
    const fail = (err: unknown): void => {
      if (!conn.subs.has(id)) return;
      end();
      const e = toRpcError(err);
      if (e.code === 'INTERNAL') log('error', 'rpc: subscription failed', { method, error: String(err) });
      if (conn.ws.readyState === WebSocket.OPEN) {
        conn.ws.send(
          JSON.stringify({
            jsonrpc: '2.0',
            method: NOTIFICATION_METHOD,
            params: { subscription: id, error: toJsonRpcError(e) },
          }),
        );
      }
    };
    conn.subs.set(id, end);
    subscriptionCount++;
    try {
      if (method === 'sub_events') {
        const p = params as ParamsOf<'sub_events'>;
        const type = notifications.sub_events;
        stream = createEventStream(node, p, (e) => notify(conn, id, type.toJson({ ...e, cursor: e })), fail);
      } else if (method === 'sub_newHeads') {
        const p = params as ParamsOf<'sub_newHeads'>;
        const type = notifications.sub_newHeads;
        stream = createHeadStream(node, p.fromHeight, (h) => notify(conn, id, type.toJson(h)), fail);
      } else {
        const p = params as ParamsOf<'sub_tx'>;
        const type = notifications.sub_tx;
        // Deferred so the subscription id reaches the client before the (possibly immediate) receipt.
        setImmediate(() => {
          if (!conn.subs.has(id)) return;
          try {
            cancelWatch = waiters.watch(
              p.hash,
              (r) => {
                notify(conn, id, type.toJson(r)).then(end, fail);
              },
              fail,
            );
          } catch (err) {
            fail(err);
          }
        });
      }
    } catch (err) {
      end();
      throw err;
    }
    if (stream !== undefined) streams.add(stream);
    return { subscription: id };
  }

  // The request pipeline, shared by HTTP and WebSocket.

  async function call(req: unknown, ctx: CallContext): Promise<Json | undefined> {
    if (!isJsonObject(req)) {
      return errorResponse(null, new RpcError('INVALID_REQUEST', 'a request must be a JSON object', {}));
    }
    const hasId = Object.hasOwn(req, 'id');
    const rawId = req['id'];
    const idOk =
      rawId === null ||
      (typeof rawId === 'string' && rawId.length <= MAX_ID_LENGTH) ||
      (typeof rawId === 'number' && Number.isSafeInteger(rawId));
    if (hasId && !idOk) {
      return errorResponse(
        null,
        new RpcError(
          'INVALID_REQUEST',
          `id: expected a string of at most ${MAX_ID_LENGTH} characters, an integer or null`,
          {},
        ),
      );
    }
    const id: Id = hasId ? (rawId as Id) : null;
    const respond = (err: RpcError): Json | undefined => {
      stats.errors++;
      return hasId ? errorResponse(id, err) : undefined;
    };
    for (const k of Object.keys(req)) {
      if (!REQUEST_MEMBERS.has(k)) {
        return respond(new RpcError('INVALID_REQUEST', `unknown request member "${k.slice(0, 64)}"`, {}));
      }
    }
    if (req['jsonrpc'] !== '2.0')
      return respond(new RpcError('INVALID_REQUEST', 'jsonrpc: expected "2.0"', {}));
    const name = req['method'];
    if (typeof name !== 'string')
      return respond(new RpcError('INVALID_REQUEST', 'method: expected a string', {}));
    if (!isMethodName(name)) {
      metrics.observeRequest(name, 'error');
      return respond(new RpcError('METHOD_NOT_FOUND', `method "${name.slice(0, 64)}" does not exist`, {}));
    }
    const spec = methods[name];
    try {
      if (!allow(ctx.ip)) throw new RpcError('RATE_LIMITED', 'too many requests; slow down', {});
      if (spec.transport === 'ws' && ctx.connection === undefined) {
        throw new RpcError('METHOD_NOT_FOUND', `method "${name}" is only available over WebSocket`, {});
      }
      if (spec.admin && !ctx.admin) {
        throw new RpcError(
          'UNAUTHORIZED',
          adminDigest === undefined
            ? `${name} is an admin method and this node has no admin token configured`
            : `${name} is an admin method: send "Authorization: Bearer <token>"`,
          {},
        );
      }
      let rawParams = req['params'];
      if (rawParams === undefined || (Array.isArray(rawParams) && rawParams.length === 0)) rawParams = {};
      if (!isJsonObject(rawParams)) {
        throw new RpcError('INVALID_PARAMS', 'params: expected an object of named parameters', {
          path: 'params',
        });
      }
      const params = spec.params.parse(rawParams, 'params');
      const result = await dispatch(name, params, ctx);
      const json = (spec.result as { toJson(v: unknown): Json }).toJson(result);
      metrics.observeRequest(name, 'ok');
      return hasId ? { jsonrpc: '2.0', id, result: json } : undefined;
    } catch (err) {
      const e = toRpcError(err);
      if (e.code === 'INTERNAL') log('error', 'rpc: method failed', { method: name, error: String(err) });
      metrics.observeRequest(name, 'error');
      return respond(e);
    }
  }

  function dispatch(name: MethodName, params: unknown, ctx: CallContext): Promise<unknown> {
    if (name === 'sub_newHeads' || name === 'sub_events' || name === 'sub_tx') {
      return Promise.resolve(subscribe(ctx.connection!, name, params));
    }
    if (name === 'sub_cancel') {
      const end = ctx.connection!.subs.get((params as ParamsOf<'sub_cancel'>).subscription);
      end?.();
      return Promise.resolve({ cancelled: end !== undefined });
    }
    const handler = handlers[name] as (p: unknown) => unknown;
    const timeout =
      name === 'tx_wait'
        ? ((params as ParamsOf<'tx_wait'>).timeoutMs ?? defaultWaitMs) + requestTimeoutMs
        : requestTimeoutMs;
    return withTimeout(
      Promise.resolve().then(() => handler(params)),
      timeout,
      name,
    );
  }

  /** Parses a request body and runs it; returns the response text, or undefined for none. */
  async function handleText(bytes: Buffer, ctx: CallContext): Promise<string | undefined> {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      stats.errors++;
      return JSON.stringify(
        errorResponse(null, new RpcError('PARSE_ERROR', 'request is not valid UTF-8', {})),
      );
    }
    if (exceedsDepth(text, maxDepth)) {
      stats.errors++;
      return JSON.stringify(
        errorResponse(
          null,
          new RpcError('INVALID_REQUEST', `request nested deeper than ${maxDepth} levels`, {}),
        ),
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      stats.errors++;
      return JSON.stringify(
        errorResponse(
          null,
          new RpcError('PARSE_ERROR', `invalid JSON: ${(err as Error).message.slice(0, 120)}`, {}),
        ),
      );
    }
    if (!Array.isArray(body)) {
      const r = await call(body, ctx);
      return r === undefined ? undefined : JSON.stringify(r);
    }
    if (body.length === 0 || body.length > maxBatch) {
      stats.errors++;
      const msg = body.length === 0 ? 'empty batch' : `batch of ${body.length} calls; at most ${maxBatch}`;
      return JSON.stringify(errorResponse(null, new RpcError('INVALID_REQUEST', msg, { max: maxBatch })));
    }
    const out = (await Promise.all(body.map((r) => call(r, ctx)))).filter((r) => r !== undefined);
    return out.length === 0 ? undefined : JSON.stringify(out);
  }

  // HTTP.

  function setCors(req: IncomingMessage, res: ServerResponse): void {
    const origin = req.headers.origin;
    if (origin === undefined || cors.size === 0) return;
    if (cors.has('*') || cors.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', cors.has('*') ? '*' : origin);
      res.setHeader('Vary', 'Origin');
    }
  }

  function sendJson(res: ServerResponse, status: number, body: string, close = false): void {
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      ...(close ? { Connection: 'close' } : {}),
    });
    res.end(body);
  }

  /** Answers a body it will not read, then drops the connection once the answer is out. */
  function refuseBody(req: IncomingMessage, res: ServerResponse, status: number, err: RpcError): void {
    stats.errors++;
    req.pause();
    res.on('finish', () => req.socket.destroy());
    sendJson(res, status, JSON.stringify(errorResponse(null, err)), true);
  }

  async function serveProbe(path: string, res: ServerResponse): Promise<void> {
    if (path === '/metrics') {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { 'Content-Type': metrics.registry.contentType });
      res.end(text);
      return;
    }
    const h = node.health();
    const ok = path === '/health' ? h.live : h.live && h.ready;
    sendJson(
      res,
      ok ? 200 : 503,
      JSON.stringify({ status: ok ? 'ok' : 'unavailable', height: h.height, reasons: h.reasons }),
    );
  }

  function onRequest(req: IncomingMessage, res: ServerResponse): void {
    stats.httpRequests++;
    setCors(req, res);
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && (path === '/health' || path === '/ready' || path === '/metrics')) {
      serveProbe(path, res).catch((err: unknown) => {
        log('error', 'rpc: probe failed', { path, error: String(err) });
        if (!res.headersSent) sendJson(res, 500, '{"status":"error"}');
      });
      return;
    }
    if (req.method === 'OPTIONS' && cors.size > 0) {
      res.writeHead(204, {
        'Access-Control-Allow-Methods': 'POST, GET, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type, Authorization',
        'Access-Control-Max-Age': '600',
      });
      res.end();
      return;
    }
    if (req.method !== 'POST' || (path !== '/' && path !== '/rpc')) {
      sendJson(res, req.method === 'POST' ? 404 : 405, '{"error":"POST JSON-RPC to /"}');
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBodyBytes) {
      refuseBody(
        req,
        res,
        413,
        new RpcError('INVALID_REQUEST', `request body larger than ${maxBodyBytes} bytes`, {}),
      );
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    req.on('data', (chunk: Buffer) => {
      if (refused) return;
      size += chunk.length;
      if (size > maxBodyBytes) {
        refused = true;
        chunks.length = 0;
        refuseBody(
          req,
          res,
          413,
          new RpcError('INVALID_REQUEST', `request body larger than ${maxBodyBytes} bytes`, {}),
        );
        return;
      }
      chunks.push(chunk);
    });
    req.on('error', () => {
      refused = true;
    });
    req.on('end', () => {
      if (refused) return;
      const ctx: CallContext = {
        admin: isAdmin(req.headers.authorization),
        ip: req.socket.remoteAddress ?? '',
      };
      handleText(Buffer.concat(chunks, size), ctx).then(
        (text) => {
          if (text === undefined) {
            res.writeHead(204);
            res.end();
          } else sendJson(res, 200, text);
        },
        (err: unknown) => {
          log('error', 'rpc: request pipeline failed', { error: String(err) });
          if (!res.headersSent) refuseBody(req, res, 500, new RpcError('INTERNAL', 'internal error', {}));
        },
      );
    });
  }

  // WebSocket.

  const wss = new WebSocketServer({ noServer: true, maxPayload: maxBodyBytes, perMessageDeflate: false });

  function onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    const origin = req.headers.origin;
    const reject = (status: number, reason: string): void => {
      socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    };
    if (path !== '/' && path !== '/ws') return reject(404, 'Not Found');
    // Browsers always send Origin: refuse pages of other sites unless CORS allows them.
    if (origin !== undefined && !cors.has('*') && !cors.has(origin)) return reject(403, 'Forbidden');
    if (connections.size >= maxWsConnections) return reject(503, 'Service Unavailable');
    wss.handleUpgrade(req, socket, head, (ws) => {
      const conn: Connection = {
        ws,
        admin: isAdmin(req.headers.authorization),
        ip: req.socket.remoteAddress ?? '',
        subs: new Map(),
        inFlight: 0,
        alive: true,
      };
      connections.add(conn);
      ws.on('pong', () => {
        conn.alive = true;
      });
      ws.on('message', (data: RawData) => onMessage(conn, data));
      ws.on('error', () => ws.terminate());
      ws.on('close', () => {
        connections.delete(conn);
        for (const end of [...conn.subs.values()]) end();
      });
    });
  }

  function onMessage(conn: Connection, data: RawData): void {
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    if (conn.inFlight >= maxInFlight) {
      stats.errors++;
      const err = new RpcError(
        'LIMIT_EXCEEDED',
        `at most ${maxInFlight} calls in progress per connection`,
        {},
      );
      sendWs(conn, JSON.stringify(errorResponse(null, err)), false).catch(() => undefined);
      return;
    }
    conn.inFlight++;
    handleText(bytes, { admin: conn.admin, ip: conn.ip, connection: conn })
      .then((text) => (text === undefined ? undefined : sendWs(conn, text, false)))
      .catch(() => undefined)
      .finally(() => conn.inFlight--);
  }

  // Lifecycle.

  let server: Server | undefined;

  return {
    metrics,
    get url() {
      return url;
    },
    async start() {
      const s = createServer({
        headersTimeout: o.headersTimeoutMs,
        requestTimeout: o.bodyTimeoutMs,
        connectionsCheckingInterval: o.connectionsCheckingIntervalMs,
        keepAliveTimeout: o.keepAliveTimeoutMs,
      });
      s.maxConnections = o.maxConnections;
      s.on('request', onRequest);
      s.on('upgrade', onUpgrade);
      s.on('clientError', (err: NodeJS.ErrnoException, socket) => {
        // Node's own answers: 408 for a request (headers or body) that took too long, 431 for
        // oversize headers, 400 for anything unparsable.
        const status =
          err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? '408 Request Timeout'
            : err.code === 'HPE_HEADER_OVERFLOW'
              ? '431 Request Header Fields Too Large'
              : '400 Bad Request';
        if (socket.writable)
          socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
        else socket.destroy();
      });
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(o.port, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      server = s;
      unsubscribeCommits = node.subscribeCommits((commit) => {
        try {
          metrics.observeCommit(commit);
          waiters.onCommit(commit);
          for (const st of streams) st.onCommit(commit);
        } catch (err) {
          log('error', 'rpc: commit listener failed', { error: String(err) });
        }
      });
      const pingMs = o.wsPingIntervalMs;
      pingTimer = setInterval(() => {
        for (const c of connections) {
          if (!c.alive) {
            c.ws.terminate();
            continue;
          }
          c.alive = false;
          c.ws.ping();
        }
      }, pingMs);
      pingTimer.unref();
      const addr = s.address() as AddressInfo;
      const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
      url = `http://${shownHost}:${addr.port}`;
      return { host: addr.address, port: addr.port, url };
    },
    async stop() {
      unsubscribeCommits?.();
      unsubscribeCommits = undefined;
      clearInterval(pingTimer);
      for (const c of connections) c.ws.terminate();
      for (const st of streams) st.close();
      streams.clear();
      waiters.closeAll();
      const s = server;
      server = undefined;
      if (s === undefined) return;
      await new Promise<void>((resolve) => {
        s.close(() => resolve());
        s.closeAllConnections();
      });
      wss.close();
    },
  };
}
