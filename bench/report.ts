/**
 * `npm run bench`: the performance report. Receivable transfers (contracts/receivables.ts: a slice
 * of a confirmed voucher to another supplier, as bench/receivablesWorkload.ts describes) sent
 * through JSON-RPC by the load generator to a 1-validator and a 4-validator network (each
 * validator its own process on this machine), at fixed send rates and at the maximum, next to the
 * single-core pipeline ceiling measured in the same run. Writes JSON and a markdown table to
 * bench/results/.
 *
 *   npm run bench [-- --txs 3000] [-- --workload transfer]
 *
 * `--workload transfer` loads the minimal token transfer (2 reads, 2 writes, 1 event; the
 * bench:vm call) on a bare network instead, to separate the contracts' cost from the node's.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { toHex } from '../core/bytes.ts';
import { addressOf } from '../core/keys.ts';
import { loadKeyFile } from '../node/keystore.ts';
import { benchSenders, runLoad, transferWorkload, type LoadReport, type Workload } from '../rpc/loadgen.ts';
import { createClient } from '../rpc/sdk/client.ts';
import { createWallet } from '../rpc/sdk/wallet.ts';
import { createCluster, type Cluster } from '../test/cluster/harness.ts';
import { TOKEN_SOURCE } from '../test/rpc/realNode.ts';
import { measurePipeline, type PipelineFigures } from './pipeline.ts';
import { createVoucherBook, receivablesWorkload } from './receivablesWorkload.ts';

const { values } = parseArgs({ options: { txs: { type: 'string' }, workload: { type: 'string' } } });
const maxTxs = Number(values.txs ?? 3000);
const workloadName = values.workload ?? 'receivables';
if (workloadName !== 'receivables' && workloadName !== 'transfer') {
  throw new Error(`--workload: receivables or transfer, not ${workloadName}`);
}
const SENDERS = 100;
const DEBTOR = 'acme';

interface Run {
  readonly validators: number;
  readonly rate: number | null;
  readonly report: LoadReport;
}

/** Starts a network ready for the workload; returns it and a workload factory per run. */
async function prepare(
  validators: number,
  basePort: number,
  seed: string,
): Promise<{ cluster: Cluster; workloadFor: (txs: number) => Workload }> {
  const consensus = { heartbeatMs: 200, roundTimeoutMs: 3000 };
  if (workloadName === 'transfer') {
    const cluster = await createCluster({ validators, basePort, contracts: [], consensus });
    await cluster.waitFor('every node committing', async () =>
      (await Promise.all(cluster.nodes.map((_, i) => cluster.height(i)))).every((h) => h >= 1),
    );
    const client = createClient({ url: cluster.nodes[0]!.rpcUrl });
    const admin = await loadKeyFile(cluster.network.admins[0]!.keyFile, { allowUnencrypted: true });
    const deployed = await createWallet(client, admin).sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    client.close();
    if (deployed.receipt.status !== 'ok') throw new Error(`token deploy failed: ${deployed.receipt.error}`);
    return { cluster, workloadFor: () => transferWorkload };
  }
  // The senders are supplier staff, registered at genesis (half tier 1, half tier 2).
  const members = benchSenders(seed, SENDERS).map((k, i) => ({
    address: toHex(addressOf(k.publicKey)),
    org: i % 2 === 0 ? 'tier1-supplier' : 'tier2-supplier',
    roles: ['operations'],
  }));
  const cluster = await createCluster({ validators, basePort, consensus, members });
  await cluster.waitFor('every node committing', async () =>
    (await Promise.all(cluster.nodes.map((_, i) => cluster.height(i)))).every((h) => h >= 1),
  );
  const adminFile = cluster.network.admins.find((a) => a.organisation === DEBTOR)?.keyFile;
  if (adminFile === undefined) throw new Error(`no admin of ${DEBTOR} in the network`);
  const approver = await loadKeyFile(adminFile, { allowUnencrypted: true });
  const book = createVoucherBook();
  return {
    cluster,
    workloadFor: (txs) =>
      receivablesWorkload({ debtor: DEBTOR, approver, book, txsPerSender: Math.ceil(txs / SENDERS) }),
  };
}

async function network(
  validators: number,
  basePort: number,
  rates: ReadonlyArray<number | null>,
): Promise<Run[]> {
  const seed = `report-${validators}`;
  const { cluster, workloadFor } = await prepare(validators, basePort, seed);
  const runs: Run[] = [];
  try {
    for (const rate of rates) {
      const txs = rate === null ? maxTxs : Math.min(maxTxs, rate * 15);
      const report = await runLoad({
        urls: cluster.nodes.map((n) => n.rpcUrl),
        workload: workloadFor(txs),
        txs,
        senders: SENDERS,
        seed,
        ...(rate === null ? {} : { rate }),
      });
      runs.push({ validators, rate, report });
      console.error(
        `${validators} validator(s) at ${rate ?? 'max'} tx/s: ${report.throughput.toFixed(1)} tx/s committed`,
      );
    }
  } finally {
    await cluster.stop();
  }
  return runs;
}

const pipeline: PipelineFigures = await measurePipeline(workloadName);
console.error(`pipeline ceiling: ${pipeline.ceilingTps.toFixed(0)} tx/s on one core`);
const runs = [...(await network(1, 26100, [100, 400, null])), ...(await network(4, 26200, [50, 150, null]))];

/**
 * Where the limit lies, from the pipeline figures of this run: every validator verifies, admits,
 * executes and commits every transaction, so N validators sharing C cores cannot exceed
 * C / (N x per-transaction CPU), before RPC, gossip, consensus messages, disk syncs and the load
 * generator (which share the same cores) take their part.
 */
function budget(p: PipelineFigures): string[] {
  const cores = availableParallelism();
  const perTx = p.verifyUsPerTx + p.admitUsPerTx + p.executeUsPerTx + p.commitUsPerTx;
  const mainThread = p.admitUsPerTx + p.executeUsPerTx + p.commitUsPerTx;
  // One node: verification runs on the spare cores' workers, the rest on the main thread.
  const oneNode = Math.min(
    1e6 / mainThread,
    ((cores - 1 || 1) * 1e6) / p.verifyUsPerTx,
    (cores * 1e6) / perTx,
  );
  const fourNodes = (cores * 1e6) / (4 * perTx);
  return [
    `CPU budget: a validator spends ${f(perTx)} µs of one core per transaction (${f(mainThread)} µs on its main`,
    `thread). With ${cores} cores, that bounds one node at ${f(oneNode)} tx/s (main thread and verify workers in`,
    `parallel) and 4 validators, which each do all of it, at ${f(fourNodes)} tx/s, before RPC, gossip, consensus`,
    `messages, disk syncs and the load generator take their share of the same cores. The targets (6,000 tx/s on`,
    `one node, 3,000 on four) need at most ${f(1e6 / 6000)} µs on the main thread and ${f((cores * 1e6) / (4 * 3000))} µs`,
    `in all per transaction and validator.`,
  ];
}

const at = new Date().toISOString();
const f = (n: number, d = 0): string => n.toFixed(d);
const lines = [
  `# Trellis performance report`,
  '',
  `${at}, ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), Node.js ${process.version}. Workload: ${workloadName === 'receivables' ? 'receivable transfers (contracts/receivables.ts: a slice of a confirmed voucher to another supplier as a child voucher)' : 'token transfers (2 reads, 2 writes, 1 event)'}`,
  `signed by ${SENDERS} senders, sent through JSON-RPC to every node round-robin; latency is`,
  'send to commit as the new-head feed reports it. Every validator is its own process on this one machine.',
  '',
  `Single-core pipeline ceiling (decode + verify + admit, execute in 500-tx blocks, commit to LevelDB; no network):`,
  `**${f(pipeline.ceilingTps)} tx/s** (verify ${f(pipeline.verifyUsPerTx, 1)} µs, admit ${f(pipeline.admitUsPerTx, 1)} µs, execute ${f(pipeline.executeUsPerTx, 1)} µs,`,
  `commit ${f(pipeline.commitUsPerTx, 1)} µs per transaction).`,
  '',
  ...budget(pipeline),
  '',
  '| validators | send rate (target) | sent tx/s | committed tx/s | p50 ms | p95 ms | p99 ms | ok | failed | unconfirmed |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...runs.map(
    (r) =>
      `| ${r.validators} | ${r.rate ?? 'max'} | ${f(r.report.sendRate, 1)} | ${f(r.report.throughput, 1)} | ${f(r.report.latencyMs.p50)} | ${f(r.report.latencyMs.p95)} | ${f(r.report.latencyMs.p99)} | ${r.report.succeeded} | ${r.report.failed} | ${r.report.unconfirmed} |`,
  ),
  '',
];
const markdown = lines.join('\n');
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const stamp = at.replace(/[:.]/g, '-');
writeFileSync(
  new URL(`./results/report-${stamp}.json`, import.meta.url),
  JSON.stringify({ at, workload: workloadName, pipeline, runs }, null, 2) + '\n',
);
writeFileSync(new URL(`./results/report-${stamp}.md`, import.meta.url), markdown);
writeFileSync(new URL('./results/latest.md', import.meta.url), markdown);
console.log(markdown);
