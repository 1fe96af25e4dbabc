// Goal: subscriptions deliver every event exactly once and in order, also across cut connections, overflows and slow readers.
import { afterEach, describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { KeyPair } from '../../core/keys.ts';
import { createClient, type ChainEventView } from '../../rpc/sdk/client.ts';
import { formatCursor } from '../../rpc/schemas.ts';
import { ADMIN_TOKEN, openWs, startHarness, type Harness } from './harness.ts';
import { makeTx, seededKey } from './testNode.ts';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

/** Sends ticker transactions (each emitting `count` events) from one key, nonces in order. */
function ticker(harness: Harness, key: KeyPair) {
  let nonce = 0;
  return (count: number) => harness.net.mempool.add(makeTx(key, nonce++, 'ticker', 'tick', { count }).bytes);
}

/** Every event of the chain, as cursors, from the store. */
async function allCursors(harness: Harness, contract?: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: ChainEventView['cursor'] | undefined;
  for (;;) {
    const page = await harness.clients[0]!.call('events_query', {
      limit: 1000,
      ...(contract === undefined ? {} : { contract }),
      ...(cursor === undefined ? {} : { cursor }),
    });
    out.push(...page.events.map((e) => formatCursor(e.cursor)));
    if (page.next === undefined) return out;
    cursor = page.next;
  }
}

async function until(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function untilAsync(cond: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('event subscriptions', () => {
  it('deliver live events in order with cursors, filtered by contract and name', async () => {
    h = await startHarness();
    const tick = ticker(h, seededKey('sub-live'));
    const got: ChainEventView[] = [];
    const sub = await h.clients[0]!.subscribeEvents({ contract: 'ticker', name: 'Tick' }, (e) => got.push(e));
    tick(3);
    h.net.produceBlock();
    tick(2);
    h.net.produceBlock();
    await until(() => got.length === 5);
    expect(got.map((e) => formatCursor(e.cursor))).toEqual(['1:0:0', '1:0:1', '1:0:2', '2:0:0', '2:0:1']);
    expect(got.map((e) => e.data)).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }, { i: 0 }, { i: 1 }]);
    await sub.close();
  });

  it('a subscriber whose connection is cut mid-stream resumes from its cursor with no gap and no duplicate', async () => {
    h = await startHarness();
    const tick = ticker(h, seededKey('sub-cut'));
    const client = h.clients[0]!;
    const got: string[] = [];
    const sub = await client.subscribeEvents({ contract: 'ticker', fromHeight: 1 }, (e) =>
      got.push(formatCursor(e.cursor)),
    );
    const stop = h.net.autoProduce(5);
    // Keep transactions flowing while the connection is cut three times: twice by the client's
    // network (socket destroyed), once by the server (admin_disconnectClients).
    let producing = true;
    const feeder = (async () => {
      while (producing) {
        tick(1 + (got.length % 7));
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    for (let cut = 0; cut < 3; cut++) {
      const seen = got.length;
      await until(() => got.length > seen + 40);
      if (cut === 1) {
        const admin = createClient({ url: h.urls[0]!, adminToken: ADMIN_TOKEN });
        expect((await admin.call('admin_disconnectClients', {})).closed).toBeGreaterThanOrEqual(1);
        admin.close();
      } else {
        client.ws.dropConnection();
      }
    }
    const seen = got.length;
    await until(() => got.length > seen + 40);
    producing = false;
    await feeder;
    stop();
    h.net.produceBlock();
    const expected = await allCursors(h, 'ticker');
    await until(() => got.length >= expected.length);
    expect(got).toEqual(expected);
    expect(sub.duplicatesDropped).toBe(0);
    expect(client.ws.connects).toBeGreaterThanOrEqual(4);
    await sub.close();
  });

  it('resumes from a cursor inside a receipt, replaying history then switching to live', async () => {
    h = await startHarness();
    const tick = ticker(h, seededKey('sub-cursor'));
    tick(5);
    h.net.produceBlock();
    tick(5);
    h.net.produceBlock();
    const got: string[] = [];
    const sub = await h.clients[0]!.subscribeEvents(
      { cursor: { height: 1, receiptIndex: 0, eventIndex: 2 } },
      (e) => got.push(formatCursor(e.cursor)),
    );
    tick(1);
    h.net.produceBlock();
    await until(() => got.length === 8);
    expect(got).toEqual(['1:0:3', '1:0:4', '2:0:0', '2:0:1', '2:0:2', '2:0:3', '2:0:4', '3:0:0']);
    await sub.close();
  });

  it('a burst of blocks beyond the live buffer is replayed from the store, still exactly once', async () => {
    h = await startHarness();
    const tick = ticker(h, seededKey('sub-burst'));
    const got: string[] = [];
    const sub = await h.clients[0]!.subscribeEvents({}, (e) => got.push(formatCursor(e.cursor)));
    // 200 blocks committed in one go: more than the 64 commits a stream buffers.
    for (let i = 0; i < 200; i++) {
      tick(2);
      h.net.produceBlock();
    }
    const expected = await allCursors(h);
    expect(expected).toHaveLength(400);
    await until(() => got.length >= 400);
    expect(got).toEqual(expected);
    await sub.close();
  });

  it('a reader that stops reading is disconnected; its server-side state is released', async () => {
    h = await startHarness({ server: { maxBufferedBytes: 64 * 1024, slowClientMs: 300 } });
    const raw = await openWs(h.urls[0]!);
    const r = await raw.request(1, 'sub_events', {});
    expect(r['result']).toBeDefined();
    const closed = new Promise<void>((res) => raw.ws.once('close', () => res()));
    // Stop reading: the kernel buffers fill, then the server's own buffer.
    (raw.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const tick = ticker(h, seededKey('sub-slow'));
    for (let b = 0; b < 40; b++) {
      for (let i = 0; i < 50; i++) tick(100);
      h.net.produceBlock();
      await new Promise((res) => setTimeout(res, 5));
      const stats = await h.clients[0]!.call('node_health', {});
      expect(stats.live).toBe(true);
    }
    const admin = createClient({ url: h.urls[0]!, adminToken: ADMIN_TOKEN });
    await untilAsync(async () => (await admin.call('admin_rpcStats', {})).wsConnections === 0);
    admin.close();
    (raw.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await closed;
  });
});

describe('head and transaction subscriptions', () => {
  it('newHeads replays from a height then goes live, contiguous across a cut', async () => {
    h = await startHarness();
    for (let i = 0; i < 3; i++) h.net.produceBlock();
    const heights: number[] = [];
    const client = h.clients[0]!;
    const sub = await client.subscribeHeads({ fromHeight: 2 }, (x) => heights.push(x.height));
    await until(() => heights.length === 2);
    client.ws.dropConnection();
    for (let i = 0; i < 5; i++) h.net.produceBlock();
    await until(() => heights.length === 7);
    expect(heights).toEqual([2, 3, 4, 5, 6, 7, 8]);
    await sub.close();
  });

  it('sub_tx notifies once when the transaction commits, or at once if it already has, then ends', async () => {
    h = await startHarness();
    const key = seededKey('sub-tx');
    const first = makeTx(key, 0, 'ticker', 'tick', { count: 1 });
    h.net.mempool.add(first.bytes);
    h.net.produceBlock();
    const ws = await openWs(h.urls[0]!);
    await ws.request(1, 'sub_tx', { hash: toHex(first.hash) });
    const [already] = await ws.notifications(1);
    expect((already!['params'] as { result: { height: number } }).result.height).toBe(1);
    const second = makeTx(key, 1, 'ticker', 'tick', { count: 1 });
    const sub = await ws.request(2, 'sub_tx', { hash: toHex(second.hash) });
    h.net.mempool.add(second.bytes);
    h.net.produceBlock();
    const notes = await ws.notifications(2);
    expect((notes[1]!['params'] as { subscription: string; result: { height: number } }).result.height).toBe(
      2,
    );
    expect((notes[1]!['params'] as { subscription: string }).subscription).toBe(
      (sub['result'] as { subscription: string }).subscription,
    );
    // Ended: cancelling it finds nothing, and the server holds no subscription.
    const cancel = await ws.request(3, 'sub_cancel', sub['result']);
    expect(cancel['result']).toEqual({ cancelled: false });
    await ws.close();
  });

  it('closing subscriptions and connections releases everything on the server', async () => {
    h = await startHarness();
    const client = h.clients[0]!;
    const subs = await Promise.all([
      client.subscribeEvents({}, () => undefined),
      client.subscribeHeads({}, () => undefined),
      client.subscribeEvents({ contract: 'token' }, () => undefined),
    ]);
    const admin = createClient({ url: h.urls[0]!, adminToken: ADMIN_TOKEN });
    expect((await admin.call('admin_rpcStats', {})).subscriptions).toBe(3);
    for (const s of subs) await s.close();
    expect((await admin.call('admin_rpcStats', {})).subscriptions).toBe(0);
    client.close();
    await until(() => h!.net.listenerCount === 1);
    await new Promise((r) => setTimeout(r, 50));
    expect((await admin.call('admin_rpcStats', {})).wsConnections).toBe(0);
    admin.close();
  });
});
