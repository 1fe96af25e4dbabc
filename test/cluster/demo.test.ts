// Goal: `trellis demo` plays the whole supply-chain-finance story green against four real validator processes: every step's transaction is ok with the outcome it names, and the final states (vouchers SETTLED, order SETTLED, receipt DELIVERED, nothing left encumbered, credit restored) read back the same from every node.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Value } from '../../core/codec.ts';
import type { DemoReport } from '../../demo/runDemo.ts';
import { DEMO_PARTICIPANTS, demoChapters } from '../../demo/storyline.ts';
import { playDemo } from '../../node/cli/demo.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createCluster, type Cluster } from './harness.ts';

const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
/** Short maturities keep the run under a minute; 15 s leaves room for the 8 steps before the voucher matures on a loaded machine. */
const TIMING = { voucherMaturityMs: 15_000, orderMaturityMs: 15_000 };

let cluster: Cluster;
let report: DemoReport;
const lines: string[] = [];

beforeAll(async () => {
  cluster = await createCluster({ validators: 4, basePort: 22500 });
  await cluster.waitFor('every node past height 1', async () =>
    (await Promise.all([0, 1, 2, 3].map((i) => cluster.height(i)))).every((h) => h >= 1),
  );
}, 60_000);

afterAll(async () => {
  await cluster?.stop();
});

function field(v: Value | undefined, name: string): Value | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
    ? v[name]
    : undefined;
}
/** A string field, or '' (so a missing one fails the comparison that follows). */
function text(v: Value | undefined, name: string): string {
  const f = field(v, name);
  return typeof f === 'string' ? f : '';
}
/** An integer field as bigint (amounts come back as numbers when small), or -1n when missing. */
function amount(v: Value | undefined, name: string): bigint {
  const f = field(v, name);
  return typeof f === 'number' || typeof f === 'bigint' ? BigInt(f) : -1n;
}

describe('trellis demo on a 4-validator cluster', () => {
  it('runs every step of the story with the outcome it names', async () => {
    report = await playDemo({
      dir: cluster.dir,
      rpcUrl: cluster.nodes[0]!.rpcUrl,
      seed: 'cluster-test',
      timing: TIMING,
      print: (line) => lines.push(line),
    });
    console.log(lines.join('\n'));
    const failed = report.steps.filter((s) => !s.ok);
    expect(failed, JSON.stringify(failed, null, 2)).toEqual([]);
    const planned = demoChapters(TIMING).flatMap((c) => c.steps);
    expect(report.steps.map((s) => s.title)).toEqual(planned.map((s) => s.title));
    for (const s of report.steps) {
      expect(s.status, s.title).toBe('ok');
      expect(s.txHash, s.title).toMatch(/^0x[0-9a-f]{64}$/);
      if (s.outcome !== null) expect(s.outcome.actual, s.title).toBe(s.outcome.expected);
    }
    expect(report.ok).toBe(true);
    // The maturities came from scheduled callbacks in blocks after the steps that scheduled them.
    const awaited = report.steps.filter((s) => s.kind === 'await');
    expect(awaited.map((s) => s.method)).toEqual(['Matured', 'OrderSettled']);
    // One readable line per step, each with its hash.
    const stepLines = lines.filter((l) => /^\s*\d+\. /.test(l));
    expect(stepLines).toHaveLength(report.steps.length);
    for (const l of stepLines) expect(l).toMatch(/: ok \| .*(tx|callback) 0x[0-9a-f]{16}… block \d+$/);
  }, 150_000);

  it('leaves the final states on every node: settled, delivered, unencumbered, credit restored', async () => {
    expect(report?.ok).toBe(true);
    const { voucher, order, receipt } = report.ids;
    const head = await cluster.rpc<{ height: number }>(0, 'chain_getHead');
    await cluster.waitFor('every node at the demo’s last block', async () =>
      (await Promise.all([1, 2, 3].map((i) => cluster.height(i)))).every((h) => h >= head.height),
    );
    const clients: TrellisClient[] = cluster.nodes.map((n) => createClient({ url: n.rpcUrl }));
    try {
      for (const client of clients) {
        // Read at each node's head: nothing after the demo changes these records (and range-scan
        // views such as `tree` are served at the head only).
        const tree = (await client.view('receivables', 'tree', { root: voucher! })) as Value[];
        expect(tree).toHaveLength(4);
        const byStatus = tree.map((v) => `${text(v, 'id')}:${text(v, 'status')}`).sort();
        // Root (remainder) and the two pieces settled; the transferred voucher became the split parent.
        expect(byStatus.filter((s) => s.endsWith(':SETTLED'))).toHaveLength(3);
        expect(byStatus.filter((s) => s.endsWith(':SPLIT'))).toHaveLength(1);
        let settledSum = 0n;
        for (const v of tree) if (text(v, 'status') === 'SETTLED') settledSum += amount(v, 'amount');
        expect(settledSum).toBe(100_000_000n);
        const financed = tree.find((v) => field(v, 'financed') === true);
        expect(field(financed, 'bank')).toBe('harbour-bank');
        expect(field(financed, 'status')).toBe('SETTLED');
        const credit = await client.view('receivables', 'creditLine', { org: 'acme' });
        expect(amount(credit, 'used')).toBe(0n);

        const o = await client.view('orderFinancing', 'order', { id: order! });
        expect(field(o, 'status')).toBe('SETTLED');
        expect(amount(o, 'margin')).toBe(50_000_000n);
        expect(amount(o, 'received')).toBe(50_000_000n);

        const r = await client.view('warehouseReceipts', 'receipt', { id: receipt! });
        expect(field(r, 'status')).toBe('DELIVERED');
        const tier1 = report.participants.find((p) => p.name === 'tier1-ops')!;
        expect(field(r, 'holder')).toBe(tier1.address);

        for (const asset of [
          ...tree.map((v) => `receivables:${text(v, 'id')}`),
          `orderFinancing:${order}`,
          `warehouseReceipts:${receipt}`,
        ]) {
          expect(await client.view('encumbrances', 'isEncumbered', { asset }), asset).toBe(false);
        }
        for (const p of DEMO_PARTICIPANTS) {
          const m = await client.view('membership', 'member', {
            address: report.participants.find((x) => x.name === p.name)!.address,
          });
          expect(field(m, 'org'), p.name).toBe(p.org);
        }
      }
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('refuses bad arguments with a usage error before touching the network', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, [BIN, 'demo', ...args], { encoding: 'utf8', timeout: 30_000 });
    const bad = run(['--dir', cluster.dir, '--maturity', 'soon']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--maturity: expected an integer/);
    const none = run(['--dir', `${cluster.dir}/nowhere`]);
    expect(none.status).toBe(2);
    expect(none.stderr).toMatch(/holds no network/);
  });
});
