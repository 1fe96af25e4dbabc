// Starts RPC servers on 127.0.0.1 over the in-process harness (testNode.ts) and talks to them
// raw (HTTP bodies and sockets as an attacker would) or through the SDK.
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { WebSocket } from 'ws';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createRpcServer, type RpcServer, type RpcServerOptions } from '../../rpc/server.ts';
import { createTestNetwork, type TestNetwork, type TestNetworkOptions } from './testNode.ts';

/** A network with `nodes` RPC servers, each over its own NodeApi view of the same chain. */
export interface Harness {
  readonly net: TestNetwork;
  readonly servers: RpcServer[];
  readonly urls: string[];
  readonly clients: TrellisClient[];
  close(): Promise<void>;
}

/** The admin token of harness servers. */
export const ADMIN_TOKEN = 'test-admin-token';

/** Starts the harness. */
export async function startHarness(
  options: { nodes?: number; server?: RpcServerOptions; network?: TestNetworkOptions } = {},
): Promise<Harness> {
  const net = createTestNetwork(options.network);
  const servers: RpcServer[] = [];
  const urls: string[] = [];
  for (let i = 0; i < (options.nodes ?? 1); i++) {
    const s = createRpcServer(
      { port: 0, adminToken: ADMIN_TOKEN, log: () => undefined, ...options.server },
      { node: net.node(i) },
    );
    urls.push((await s.start()).url);
    servers.push(s);
  }
  const clients = urls.map((url) => createClient({ url }));
  return {
    net,
    servers,
    urls,
    clients,
    async close() {
      for (const c of clients) c.close();
      for (const s of servers) await s.stop();
    },
  };
}

/** The outcome of a raw HTTP exchange. */
export interface RawResponse {
  readonly status: number;
  readonly text: string;
  /** Parsed JSON body, or undefined. */
  readonly json: unknown;
}

// Keep-alive sockets shared by raw requests: node:http costs a fraction of fetch per request.
const agent = new Agent({ keepAlive: true, maxSockets: 16 });

/** Posts raw bytes (or text) to the server and reads the whole answer. */
export function postRaw(
  url: string,
  body: string | Uint8Array,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const r = request(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: '/',
        agent,
        headers: {
          'Content-Type': 'application/json',
          'Content-Length': Buffer.byteLength(body),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = text === '' ? undefined : JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

/** Posts a JSON value. */
export function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return postRaw(url, JSON.stringify(body), headers);
}

/** Opens a raw TCP connection, writes `data`, and resolves with everything the server sends until it closes. */
export function rawTcp(url: string, data: string, waitMs: number): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(u.port), u.hostname);
    let out = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(out + '[still open]');
    }, waitMs);
    sock.on('data', (d) => (out += d.toString('latin1')));
    sock.on('error', (e) => {
      clearTimeout(timer);
      // A server that answers and then resets a connection still gave its answer.
      if (out !== '') resolve(out);
      else reject(e);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    sock.write(data);
  });
}

/** A raw WebSocket client collecting every message. */
export interface RawWs {
  readonly ws: WebSocket;
  readonly messages: unknown[];
  send(msg: unknown): void;
  /** Resolves with the response carrying `id`. */
  request(id: number, method: string, params?: unknown): Promise<Record<string, unknown>>;
  /** Resolves once `n` notifications (sub_notify) arrived. */
  notifications(n: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

/** Opens a raw WebSocket to the server. */
export async function openWs(url: string, headers: Record<string, string> = {}): Promise<RawWs> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
  const messages: unknown[] = [];
  const waiters: Array<() => void> = [];
  ws.on('message', (d: Buffer) => {
    messages.push(JSON.parse(d.toString('utf8')));
    for (const w of waiters.splice(0)) w();
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const until = <T>(pick: () => T | undefined, timeoutMs = 5000): Promise<T> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('timed out waiting for websocket messages')),
        timeoutMs,
      );
      const check = () => {
        const v = pick();
        if (v !== undefined) {
          clearTimeout(timer);
          resolve(v);
        } else waiters.push(check);
      };
      check();
    });
  const isObj = (m: unknown): m is Record<string, unknown> => typeof m === 'object' && m !== null;
  return {
    ws,
    messages,
    send: (msg) => ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg)),
    request(id, method, params) {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) }));
      return until(() => messages.find((m): m is Record<string, unknown> => isObj(m) && m['id'] === id));
    },
    notifications(n, timeoutMs) {
      return until(() => {
        const got = messages.filter(
          (m): m is Record<string, unknown> => isObj(m) && m['method'] === 'sub_notify',
        );
        return got.length >= n ? got : undefined;
      }, timeoutMs);
    },
    close() {
      return new Promise((resolve) => {
        if (ws.readyState === WebSocket.CLOSED) return resolve();
        ws.once('close', () => resolve());
        ws.close();
      });
    },
  };
}
