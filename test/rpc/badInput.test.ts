// Goal: every kind of bad input gets its documented error, changes nothing, leaves the server healthy, and costs no memory over 10,000 repetitions.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { concatBytes, toHex } from '../../core/bytes.ts';
import { pack } from '../../core/codec.ts';
import { addressOf } from '../../core/keys.ts';
import { Limits } from '../../core/types.ts';
import { RPC_ERRORS } from '../../rpc/errors.ts';
import { ADMIN_TOKEN, openWs, postJson, postRaw, rawTcp, startHarness, type Harness } from './harness.ts';
import { makeTx, seededKey } from './testNode.ts';

const alice = seededKey('bad-alice');
const mallory = seededKey('bad-mallory');
const aliceAddr = addressOf(alice.publicKey);

/** One bad request and the answer the reference documents for it. */
interface Case {
  readonly name: string;
  readonly body: string | Uint8Array;
  readonly headers?: Record<string, string>;
  /** HTTP status; default 200. */
  readonly status?: number;
  /** JSON-RPC error code expected (for a batch: of the item with `id` 2). */
  readonly code?: number;
  /** `error.data.reason` expected (transaction refusals). */
  readonly reason?: string;
  /** The id the error must carry; default 1 for a request with id 1, null for unreadable ones. */
  readonly id?: number | null;
  /** A notification: no response body at all. */
  readonly silent?: boolean;
  /** A batch: the response is an array. */
  readonly batch?: boolean;
}

const C = {
  parse: RPC_ERRORS.PARSE_ERROR.code,
  request: RPC_ERRORS.INVALID_REQUEST.code,
  method: RPC_ERRORS.METHOD_NOT_FOUND.code,
  params: RPC_ERRORS.INVALID_PARAMS.code,
  tx: RPC_ERRORS.TX_REJECTED.code,
  unauthorized: RPC_ERRORS.UNAUTHORIZED.code,
};

function req(method: string, params?: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method,
    ...(params === undefined ? {} : { params }),
    ...extra,
  });
}

function nest(depth: number, inner: string): string {
  return '['.repeat(depth) + inner + ']'.repeat(depth);
}

/** Ed25519 group order L: S and S + L verify the same under a lax verifier (malleability). */
const ED25519_L = 2n ** 252n + 27742317777372353535851937790883648493n;

function malleate(signature: Uint8Array): Uint8Array {
  const s = BigInt('0x' + Buffer.from(signature.subarray(32)).reverse().toString('hex')) + ED25519_L;
  const sBytes = Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse();
  return concatBytes(signature.subarray(0, 32), sBytes);
}

function cases(pendingTx: Uint8Array, committedTx: Uint8Array): Case[] {
  const good = makeTx(alice, 5, 'token', 'transfer', { to: aliceAddr, amount: 1 });
  const flipped = Uint8Array.from(good.signature);
  flipped[10]! ^= 0x01;
  const forged = makeTx(mallory, 0, 'token', 'transfer', { to: aliceAddr, amount: 1 });
  const wrongChain = makeTx(
    alice,
    5,
    'token',
    'transfer',
    { to: aliceAddr, amount: 1 },
    { chainId: 'other-chain' },
  );
  const gapped = makeTx(alice, 500, 'token', 'transfer', { to: aliceAddr, amount: 1 });
  // The wire bytes re-encoded with a 16-bit length where 8 bits suffice: same value, not canonical.
  const body = good.body;
  const nonCanonical = concatBytes(
    Uint8Array.of(0x92, 0xc5, body.length >> 8, body.length & 0xff),
    body,
    Uint8Array.of(0xc4, 64),
    good.signature,
  );
  const send = (bytes: Uint8Array) => req('tx_send', { tx: toHex(bytes) });
  const invalidUtf8 = Buffer.concat([
    Buffer.from('{"jsonrpc":"2.0","id":1,"method":"node_info","x":"'),
    Buffer.from([0xff, 0xfe]),
    Buffer.from('"}'),
  ]);
  const overlong = Buffer.concat([
    Buffer.from('{"jsonrpc":"2.0","id":1,"method":"'),
    Buffer.from([0xc0, 0xaf]),
    Buffer.from('"}'),
  ]);
  const surrogate = Buffer.concat([Buffer.from('["'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"]')]);
  return [
    // Malformed bodies.
    { name: 'malformed JSON', body: '{"jsonrpc":"2.0","id":1,', code: C.parse, id: null },
    { name: 'not JSON', body: 'hello', code: C.parse, id: null },
    { name: 'empty body', body: '', code: C.parse, id: null },
    { name: 'invalid UTF-8', body: invalidUtf8, code: C.parse, id: null },
    { name: 'overlong UTF-8', body: overlong, code: C.parse, id: null },
    { name: 'UTF-8 surrogate', body: surrogate, code: C.parse, id: null },
    // Envelope.
    {
      name: 'wrong jsonrpc',
      body: JSON.stringify({ jsonrpc: '1.0', id: 1, method: 'node_info' }),
      code: C.request,
    },
    { name: 'missing jsonrpc', body: JSON.stringify({ id: 1, method: 'node_info' }), code: C.request },
    { name: 'numeric jsonrpc', body: '{"jsonrpc":2.0,"id":1,"method":"node_info"}', code: C.request },
    { name: 'request is a string', body: '"node_info"', code: C.request, id: null },
    { name: 'request is null', body: 'null', code: C.request, id: null },
    {
      name: 'id is an object',
      body: req('node_info', undefined, { id: { a: 1 } }),
      code: C.request,
      id: null,
    },
    { name: 'id is an array', body: req('node_info', undefined, { id: [1] }), code: C.request, id: null },
    { name: 'id is a boolean', body: req('node_info', undefined, { id: true }), code: C.request, id: null },
    { name: 'id is fractional', body: req('node_info', undefined, { id: 1.5 }), code: C.request, id: null },
    {
      name: 'id is huge',
      body: req('node_info', undefined, { id: 'x'.repeat(300) }),
      code: C.request,
      id: null,
    },
    {
      name: 'missing id (notification)',
      body: JSON.stringify({ jsonrpc: '2.0', method: 'tx_send', params: { tx: '0xzz' } }),
      silent: true,
      status: 204,
    },
    { name: 'missing method', body: JSON.stringify({ jsonrpc: '2.0', id: 1 }), code: C.request },
    {
      name: 'method is a number',
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 7 }),
      code: C.request,
    },
    { name: 'unknown member', body: req('node_info', undefined, { extra: 1 }), code: C.request },
    { name: 'unknown method', body: req('eth_blockNumber'), code: C.method },
    { name: 'method __proto__', body: req('__proto__'), code: C.method },
    { name: 'method constructor', body: req('constructor'), code: C.method },
    { name: 'method toString', body: req('toString'), code: C.method },
    { name: 'subscription over HTTP', body: req('sub_events', {}), code: C.method },
    // Batches.
    { name: 'empty batch', body: '[]', code: C.request, id: null },
    {
      name: 'oversize batch',
      body: JSON.stringify(
        Array.from({ length: 101 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'node_info' })),
      ),
      code: C.request,
      id: null,
    },
    {
      name: 'batch with a bad item',
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'node_health' },
        { jsonrpc: '2.0', id: 2, method: 'tx_get', params: { hash: 5 } },
      ]),
      code: C.params,
      batch: true,
      id: 2,
    },
    // Parameters.
    { name: 'positional params', body: req('tx_get', ['0x' + '00'.repeat(32)]), code: C.params },
    { name: 'params is a string', body: req('tx_get', 'abc'), code: C.params },
    { name: 'height is a string', body: req('chain_getBlock', { height: '1' }), code: C.params },
    { name: 'height is negative', body: req('chain_getBlock', { height: -1 }), code: C.params },
    { name: 'height is fractional', body: req('chain_getBlock', { height: 1.5 }), code: C.params },
    {
      name: 'height is 1e300',
      body: '{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":{"height":1e300}}',
      code: C.params,
    },
    {
      name: 'height beyond 2^53',
      body: '{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":{"height":9007199254740993}}',
      code: C.params,
    },
    {
      name: 'huge number in args',
      body: '{"jsonrpc":"2.0","id":1,"method":"contract_call","params":{"contract":"token","method":"balanceOf","args":{"owner":123456789012345678901234567890}}}',
      code: C.params,
    },
    {
      name: 'bigint tag out of range',
      body: req('contract_call', {
        contract: 'token',
        method: 'balanceOf',
        args: { $bigint: '1' + '0'.repeat(20) },
      }),
      code: C.params,
    },
    {
      name: 'bigint tag not decimal',
      body: req('contract_call', { contract: 'token', method: 'balanceOf', args: { $bigint: '12x' } }),
      code: C.params,
    },
    {
      name: 'unknown value tag',
      body: req('contract_call', { contract: 'token', method: 'balanceOf', args: { $date: '2024' } }),
      code: C.params,
    },
    {
      name: 'request nested too deep',
      body: `{"jsonrpc":"2.0","id":1,"method":"contract_call","params":{"contract":"token","method":"balanceOf","args":${nest(200, '1')}}}`,
      code: C.request,
      id: null,
    },
    {
      name: 'args nested too deep',
      body: `{"jsonrpc":"2.0","id":1,"method":"contract_call","params":{"contract":"token","method":"balanceOf","args":${nest(70, '1')}}}`,
      code: C.params,
    },
    { name: 'extreme nesting', body: nest(100_000, ''), code: C.request, id: null },
    {
      name: '__proto__ key in params',
      body: '{"jsonrpc":"2.0","id":1,"method":"chain_getBlock","params":{"height":1,"__proto__":{"polluted":true}}}',
      code: C.params,
    },
    {
      name: 'constructor key in params',
      body: req('chain_getBlock', { height: 1, constructor: { prototype: { polluted: true } } }),
      code: C.params,
    },
    {
      name: '__proto__ key in args',
      body: '{"jsonrpc":"2.0","id":1,"method":"contract_call","params":{"contract":"token","method":"balanceOf","args":{"__proto__":{"polluted":true}}}}',
      code: C.params,
    },
    {
      name: 'unknown param',
      body: req('tx_get', { hash: '0x' + '00'.repeat(32), verbose: true }),
      code: C.params,
    },
    { name: 'missing param', body: req('tx_get', {}), code: C.params },
    {
      name: 'height and hash together',
      body: req('chain_getBlock', { height: 1, hash: '0x' + '00'.repeat(32) }),
      code: C.params,
    },
    { name: 'contract name with spaces', body: req('contract_get', { contract: 'to ken' }), code: C.params },
    { name: 'cursor malformed', body: req('events_query', { cursor: '1:2' }), code: C.params },
    { name: 'limit too large', body: req('events_query', { limit: 100_000 }), code: C.params },
    {
      name: 'fromHeight after toHeight',
      body: req('events_query', { fromHeight: 5, toHeight: 2 }),
      code: C.params,
    },
    // Hex.
    { name: 'odd-length hex', body: req('tx_get', { hash: '0x' + '0'.repeat(63) }), code: C.params },
    { name: 'non-hex digits', body: req('tx_get', { hash: '0x' + 'zz'.repeat(32) }), code: C.params },
    { name: 'hex without 0x', body: req('tx_get', { hash: '00'.repeat(32) }), code: C.params },
    { name: 'hash of 31 bytes', body: req('tx_get', { hash: '0x' + '00'.repeat(31) }), code: C.params },
    {
      name: 'oversize transaction',
      body: req('tx_send', { tx: '0x' + '00'.repeat(Limits.maxTxBytes + 1) }),
      code: C.params,
    },
    // Transactions.
    { name: 'tx not MessagePack', body: send(Uint8Array.of(0xc1, 0x00)), code: C.tx, reason: 'MALFORMED' },
    { name: 'tx non-canonical encoding', body: send(nonCanonical), code: C.tx, reason: 'MALFORMED' },
    {
      name: 'tx trailing bytes',
      body: send(concatBytes(good.bytes, Uint8Array.of(0))),
      code: C.tx,
      reason: 'MALFORMED',
    },
    { name: 'bad signature', body: send(pack([good.body, flipped])), code: C.tx, reason: 'BAD_SIGNATURE' },
    {
      name: 'malleated signature (S + L)',
      body: send(pack([good.body, malleate(good.signature)])),
      code: C.tx,
      reason: 'BAD_SIGNATURE',
    },
    {
      name: 'signature of another key',
      body: send(pack([forged.body, good.signature])),
      code: C.tx,
      reason: 'BAD_SIGNATURE',
    },
    { name: 'wrong chainId', body: send(wrongChain.bytes), code: C.tx, reason: 'WRONG_CHAIN' },
    { name: 'replayed (committed) nonce', body: send(committedTx), code: C.tx, reason: 'NONCE_TOO_LOW' },
    { name: 'replayed pending tx', body: send(pendingTx), code: C.tx, reason: 'DUPLICATE' },
    { name: 'gapped nonce', body: send(gapped.bytes), code: C.tx, reason: 'NONCE_TOO_HIGH' },
    // Admin.
    { name: 'admin without token', body: req('admin_rpcStats'), code: C.unauthorized },
    {
      name: 'admin with a wrong token',
      body: req('admin_disconnectClients'),
      headers: { Authorization: 'Bearer wrong' },
      code: C.unauthorized,
    },
    {
      name: 'admin with a malformed header',
      body: req('admin_rpcStats'),
      headers: { Authorization: ADMIN_TOKEN },
      code: C.unauthorized,
    },
    // Size.
    { name: 'oversize body', body: 'x'.repeat(1024 * 1024 + 1), status: 413, code: C.request, id: null },
  ];
}

let h: Harness;
let all: Case[];

async function runCase(url: string, c: Case): Promise<void> {
  const res = await postRaw(url, c.body, c.headers);
  expect(res.status, c.name).toBe(c.status ?? 200);
  if (c.silent === true) {
    expect(res.text, c.name).toBe('');
    return;
  }
  let msg = res.json as Record<string, unknown> | Array<Record<string, unknown>>;
  if (c.batch === true) {
    expect(Array.isArray(msg), c.name).toBe(true);
    msg = (msg as Array<Record<string, unknown>>).find((m) => m['id'] === c.id)!;
  }
  const m = msg as { id: unknown; error?: { code: number; message: string; data?: { reason?: string } } };
  expect(m.error?.code, `${c.name}: ${res.text.slice(0, 200)}`).toBe(c.code);
  expect(typeof m.error?.message, c.name).toBe('string');
  expect(m.id, c.name).toBe(c.id === undefined ? 1 : c.id);
  if (c.reason !== undefined) expect(m.error?.data?.reason, c.name).toBe(c.reason);
}

beforeAll(async () => {
  h = await startHarness({ nodes: 1 });
  const client = h.clients[0]!;
  const committed = makeTx(alice, 0, 'token', 'mint', { to: aliceAddr, amount: 100 });
  await client.sendTx(committed);
  h.net.produceBlock();
  const pending = makeTx(alice, 1, 'token', 'transfer', { to: aliceAddr, amount: 1 });
  await client.sendTx(pending);
  all = cases(pending.bytes, committed.bytes);
});

afterAll(async () => {
  await h.close();
});

describe('bad input over HTTP', () => {
  it('has at least 40 cases', () => {
    expect(all.length).toBeGreaterThanOrEqual(40);
  });

  it('each gets its documented error and changes nothing', async () => {
    const url = h.urls[0]!;
    for (const c of all) {
      const before = h.net.fingerprint();
      await runCase(url, c);
      expect(h.net.fingerprint(), `${c.name} changed state`).toBe(before);
    }
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect((await fetch(`${url}/health`)).status).toBe(200);
    expect((await h.clients[0]!.call('node_health', {})).mempoolSize).toBe(1);
  });

  it('a body that never finishes its headers is cut off by the header timeout', async () => {
    const slow = await startHarness({ server: { headersTimeoutMs: 300, connectionsCheckingIntervalMs: 50 } });
    try {
      const answer = await rawTcp(slow.urls[0]!, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Ty', 3000);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      // A body sent too slowly is cut off as well (whole-request timeout).
      const slowBody = await startHarness({
        server: { bodyTimeoutMs: 300, headersTimeoutMs: 200, connectionsCheckingIntervalMs: 50 },
      });
      try {
        const partial = await rawTcp(
          slowBody.urls[0]!,
          'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"jsonrpc"',
          3000,
        );
        expect(partial).toMatch(/^HTTP\/1\.1 408/);
      } finally {
        await slowBody.close();
      }
      expect((await fetch(`${slow.urls[0]}/health`)).status).toBe(200);
    } finally {
      await slow.close();
    }
  });

  it('a chunked body beyond the limit is refused with 413 while it streams', async () => {
    const url = new URL(h.urls[0]!);
    const head = `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`;
    const chunk = 'x'.repeat(64 * 1024);
    const body = Array.from({ length: 20 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('');
    const answer = await rawTcp(url.toString(), head + body, 3000);
    expect(answer).toMatch(/^HTTP\/1\.1 413/);
    expect(answer).toContain('-32600');
  });

  it('rate limiting answers RATE_LIMITED once the bucket is empty', async () => {
    const limited = await startHarness({ server: { rateLimit: { perSecond: 1, burst: 3 } } });
    try {
      const codes: unknown[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await postJson(limited.urls[0]!, { jsonrpc: '2.0', id: i, method: 'node_health' });
        codes.push((r.json as { error?: { code: number } }).error?.code ?? 'ok');
      }
      expect(codes).toEqual(['ok', 'ok', 'ok', RPC_ERRORS.RATE_LIMITED.code, RPC_ERRORS.RATE_LIMITED.code]);
    } finally {
      await limited.close();
    }
  });

  it('memory stays flat over 10,000 bad requests', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const url = h.urls[0]!;
    const repeatable = all.filter((c) => c.name !== 'oversize body');
    const run = async (n: number) => {
      let i = 0;
      // Eight clients at once, cycling through the cases.
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (i < n) {
            const c = repeatable[i++ % repeatable.length]!;
            await runCase(url, c);
          }
        }),
      );
    };
    const heap = () => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    await run(1_000);
    const before = heap();
    const fp = h.net.fingerprint();
    await run(10_000);
    const after = heap();
    expect(h.net.fingerprint()).toBe(fp);
    console.info(
      `bad-input memory: heapUsed ${(before / 1e6).toFixed(1)} MB -> ${(after / 1e6).toFixed(1)} MB after 10,000 requests`,
    );
    // Generous: a leak of even 100 bytes per request would add 1 MB; this allows for GC noise.
    expect(after / before).toBeLessThan(1.5);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });
});

describe('bad input over WebSocket', () => {
  it('too many subscriptions get LIMIT_EXCEEDED; the first ones keep working', async () => {
    const limited = await startHarness({ server: { maxSubscriptionsPerConnection: 3 } });
    try {
      const ws = await openWs(limited.urls[0]!);
      const answers = [];
      for (let i = 1; i <= 5; i++) answers.push(await ws.request(i, 'sub_newHeads', {}));
      expect(answers.map((a) => (a['error'] as { code: number } | undefined)?.code ?? 'ok')).toEqual([
        'ok',
        'ok',
        'ok',
        RPC_ERRORS.LIMIT_EXCEEDED.code,
        RPC_ERRORS.LIMIT_EXCEEDED.code,
      ]);
      limited.net.produceBlock();
      expect(await ws.notifications(3)).toHaveLength(3);
      await ws.close();
    } finally {
      await limited.close();
    }
  });

  it('an oversize message and an invalid UTF-8 text frame close that connection only', async () => {
    const small = await startHarness({ server: { maxBodyBytes: 4096 } });
    try {
      const big = await openWs(small.urls[0]!);
      const closed = new Promise<number>((r) => big.ws.once('close', (code) => r(code)));
      big.send('x'.repeat(5000));
      expect(await closed).toBe(1009);
      const bad = await openWs(small.urls[0]!);
      const closedBad = new Promise<number>((r) => bad.ws.once('close', (code) => r(code)));
      // A text frame carrying invalid UTF-8, written below the ws library's own checks.
      const frame = Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0xff, 0xfe]);
      (bad.ws as unknown as { _socket: { write(b: Buffer): void } })._socket.write(frame);
      expect(await closedBad).toBe(1007);
      const fine = await openWs(small.urls[0]!);
      const r = await fine.request(1, 'node_health');
      expect((r['result'] as { live: boolean }).live).toBe(true);
      await fine.close();
    } finally {
      await small.close();
    }
  });

  it('admin methods over WebSocket need the token at the upgrade', async () => {
    const anon = await openWs(h.urls[0]!);
    const refused = await anon.request(1, 'admin_rpcStats');
    expect((refused['error'] as { code: number }).code).toBe(C.unauthorized);
    await anon.close();
    const admin = await openWs(h.urls[0]!, { Authorization: `Bearer ${ADMIN_TOKEN}` });
    const ok = await admin.request(1, 'admin_rpcStats');
    expect(ok['result']).toMatchObject({ wsConnections: 1 });
    await admin.close();
  });

  it('a browser page of another origin cannot open a WebSocket while CORS is off', async () => {
    await expect(openWs(h.urls[0]!, { Origin: 'https://evil.example' })).rejects.toThrow(/403/);
  });
});
