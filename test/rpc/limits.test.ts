// Goal: every server limit answers with its documented error and leaves other clients served: call timeout, in-flight calls, waiters, connections, CORS.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { RPC_ERRORS } from '../../rpc/errors.ts';
import type { NodeApi } from '../../rpc/nodeApi.ts';
import { createRpcServer, type RpcServer, type RpcServerOptions } from '../../rpc/server.ts';
import { openWs, postJson } from './harness.ts';
import { createTestNetwork } from './testNode.ts';

const servers: RpcServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop();
});

/** A harness node whose getBlock never answers (a stuck disk, say). */
function stuckNode(): NodeApi {
  const node = createTestNetwork().node(0);
  return { ...node, getBlock: () => new Promise(() => undefined) };
}

async function serve(node: NodeApi, options: RpcServerOptions = {}): Promise<string> {
  const s = createRpcServer({ port: 0, log: () => undefined, ...options }, { node });
  servers.push(s);
  return (await s.start()).url;
}

function code(r: { json: unknown }): number | 'ok' {
  return (r.json as { error?: { code: number } }).error?.code ?? 'ok';
}

describe('server limits', () => {
  it('a call that runs past the request timeout answers TIMEOUT; the server keeps serving', async () => {
    const url = await serve(stuckNode(), { requestTimeoutMs: 100 });
    const slow = await postJson(url, {
      jsonrpc: '2.0',
      id: 1,
      method: 'chain_getBlock',
      params: { height: 1 },
    });
    expect(code(slow)).toBe(RPC_ERRORS.TIMEOUT.code);
    expect(code(await postJson(url, { jsonrpc: '2.0', id: 2, method: 'node_health' }))).toBe('ok');
  });

  it('a WebSocket with too many calls in progress gets LIMIT_EXCEEDED for the extra ones', async () => {
    const url = await serve(stuckNode(), { maxInFlightPerConnection: 2, requestTimeoutMs: 300 });
    const ws = await openWs(url);
    for (let i = 1; i <= 4; i++)
      ws.send({ jsonrpc: '2.0', id: i, method: 'chain_getBlock', params: { height: 1 } });
    const answers = await new Promise<unknown[]>((resolve) => {
      const check = setInterval(() => {
        if (ws.messages.length >= 4) {
          clearInterval(check);
          resolve(ws.messages);
        }
      }, 10);
    });
    const codes = answers.map((m) => (m as { error?: { code: number } }).error?.code);
    expect(codes.filter((c) => c === RPC_ERRORS.LIMIT_EXCEEDED.code)).toHaveLength(2);
    expect(codes.filter((c) => c === RPC_ERRORS.TIMEOUT.code)).toHaveLength(2);
    await ws.close();
  });

  it('tx_wait beyond the waiter bound answers LIMIT_EXCEEDED', async () => {
    const url = await serve(createTestNetwork().node(0), { maxTxWaiters: 2 });
    const wait = (i: number) =>
      postJson(url, {
        jsonrpc: '2.0',
        id: i,
        method: 'tx_wait',
        params: { hash: toHex(new Uint8Array(32).fill(i)), timeoutMs: 300 },
      });
    const results = await Promise.all([
      wait(1),
      wait(2),
      new Promise((r) => setTimeout(r, 50)).then(() => wait(3)),
    ]);
    expect(results.map(code)).toEqual([
      RPC_ERRORS.TIMEOUT.code,
      RPC_ERRORS.TIMEOUT.code,
      RPC_ERRORS.LIMIT_EXCEEDED.code,
    ]);
  });

  it('WebSocket connections beyond the bound are refused with 503', async () => {
    const url = await serve(createTestNetwork().node(0), { maxWsConnections: 1 });
    const first = await openWs(url);
    await expect(openWs(url)).rejects.toThrow(/503/);
    await first.close();
    await new Promise((r) => setTimeout(r, 50));
    const again = await openWs(url);
    await again.close();
  });

  it('admin methods are refused when no token is configured', async () => {
    const url = await serve(createTestNetwork().node(0));
    const r = await postJson(
      url,
      { jsonrpc: '2.0', id: 1, method: 'admin_rpcStats' },
      { Authorization: 'Bearer anything' },
    );
    expect(code(r)).toBe(RPC_ERRORS.UNAUTHORIZED.code);
    expect((r.json as { error: { message: string } }).error.message).toContain('no admin token configured');
  });
});

describe('CORS', () => {
  it('is off by default: no CORS headers, no preflight', async () => {
    const url = await serve(createTestNetwork().node(0));
    const res = await fetch(url, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'node_health' }),
      headers: { Origin: 'https://app.example', 'Content-Type': 'application/json' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect((await fetch(url, { method: 'OPTIONS' })).status).toBe(405);
  });

  it('when configured, allows exactly the listed origins, over HTTP and WebSocket', async () => {
    const url = await serve(createTestNetwork().node(0), { corsOrigins: ['https://app.example'] });
    const pre = await fetch(url, { method: 'OPTIONS', headers: { Origin: 'https://app.example' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const other = await fetch(url, {
      method: 'POST',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'node_health' }),
      headers: { Origin: 'https://evil.example' },
    });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const ws = await openWs(url, { Origin: 'https://app.example' });
    await ws.close();
    await expect(openWs(url, { Origin: 'https://evil.example' })).rejects.toThrow(/403/);
  });
});
