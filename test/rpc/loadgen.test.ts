// Goal: the load generator sends every pre-signed transaction, sees each commit, and reports counts that match the chain.
import { afterEach, describe, expect, it } from 'vitest';
import { fromHex } from '../../core/bytes.ts';
import {
  callWorkload,
  formatLoadReport,
  runLoad,
  transferWorkload,
  type AckRecord,
} from '../../rpc/loadgen.ts';
import { startHarness, type Harness } from './harness.ts';

let h: Harness | undefined;
let stop: (() => void) | undefined;
afterEach(async () => {
  stop?.();
  await h?.close();
  h = undefined;
});

describe('runLoad', () => {
  it('as fast as accepted, against two nodes: every transfer commits and the report adds up', async () => {
    h = await startHarness({ nodes: 2, network: { maxBlockTxs: 100 } });
    stop = h.net.autoProduce(10);
    const acks: AckRecord[] = [];
    const report = await runLoad({
      urls: h.urls,
      workload: transferWorkload,
      txs: 400,
      senders: 20,
      concurrency: 32,
      onAcknowledged: (batch) => acks.push(...batch),
    });
    expect(report).toMatchObject({
      nodes: 2,
      senders: 20,
      txs: 400,
      sent: 400,
      succeeded: 400,
      failed: 0,
      unconfirmed: 0,
    });
    expect(report.sendFailures).toEqual({});
    expect(report.latencyMs.p50).toBeGreaterThan(0);
    expect(report.latencyMs.p99).toBeGreaterThanOrEqual(report.latencyMs.p95);
    expect(report.throughput).toBeGreaterThan(0);
    // 20 funding mints plus 400 transfers.
    const minted = await h.clients[0]!.call('events_query', { name: 'Transfer', limit: 1000 });
    expect(minted.events).toHaveLength(400);
    expect(formatLoadReport(report)).toContain('| Succeeded');
    // Every committed transfer acknowledged once, at the height the chain holds it at.
    expect(new Set(acks.map((a) => a.hash)).size).toBe(400);
    expect(acks.every((a) => a.status === 'ok')).toBe(true);
    for (const a of acks.filter((_, k) => k % 40 === 0)) {
      const receipt = await h.clients[1]!.call('tx_getReceipt', { hash: fromHex(a.hash) });
      expect(receipt.height).toBe(a.height);
    }
  });

  it('at a fixed rate, and counts refusals and reverts apart from successes', async () => {
    h = await startHarness({ network: { mempoolMaxTxs: 10_000 } });
    stop = h.net.autoProduce(10);
    // `ticker.fail` always reverts: committed, not ok.
    const report = await runLoad({
      urls: h.urls,
      workload: callWorkload('ticker', 'fail', null),
      txs: 50,
      senders: 5,
      rate: 500,
    });
    expect(report).toMatchObject({ sent: 50, succeeded: 0, failed: 50, unconfirmed: 0, targetRate: 500 });
    expect(report.sendRate).toBeLessThan(700);
    // A gas limit above the block's: every node refuses it at the door.
    const refused = await runLoad({
      urls: h.urls,
      workload: callWorkload('ticker', 'tick', { count: 1 }),
      txs: 6,
      senders: 2,
      gasLimit: 60_000_000,
      idleTimeoutMs: 200,
    });
    expect(refused).toMatchObject({ sent: 0, succeeded: 0, unconfirmed: 0, sendFailures: { GAS_LIMIT: 6 } });
  });
});
