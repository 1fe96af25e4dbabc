/**
 * bench:consensus — blocks per second and commit latency of a 4-validator consortium, each
 * validator its own `trellis start` process on 127.0.0.1 (real libp2p, LevelDB, VM): first with
 * empty blocks (the heartbeat at its 100 ms minimum, so a new height starts 100 ms after the last
 * block), then with full blocks under a transfer load from the load generator. Commit latency is
 * what each validator's driver logs: time from the start of a height to its commit.
 *
 *   npm run bench:consensus [-- --seconds 15 --txs 4000]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadKeyFile } from '../node/keystore.ts';
import { formatLoadReport, runLoad, transferWorkload } from '../rpc/loadgen.ts';
import { createClient } from '../rpc/sdk/client.ts';
import { createWallet } from '../rpc/sdk/wallet.ts';
import { createCluster, type Cluster } from '../test/cluster/harness.ts';
import { TOKEN_SOURCE } from '../test/rpc/realNode.ts';

const { values } = parseArgs({ options: { seconds: { type: 'string' }, txs: { type: 'string' } } });
const seconds = Number(values.seconds ?? 15);
const txs = Number(values.txs ?? 4000);

interface Commit {
  readonly height: number;
  readonly txs: number;
  readonly ms: number;
  readonly t: number;
}

function commitsOf(cluster: Cluster, node: number): Commit[] {
  const text = readFileSync(join(cluster.dir, `${cluster.nodes[node]!.name}.log`), 'utf8');
  const out: Commit[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"msg":"COMMITTED"')) continue;
    const o = JSON.parse(line) as { t: string; height: number; txs: number; ms: number };
    out.push({ height: o.height, txs: o.txs, ms: o.ms, t: Date.parse(o.t) });
  }
  return out;
}

function pct(sorted: readonly number[], p: number): number {
  return sorted.length === 0
    ? 0
    : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function summarise(name: string, commits: readonly Commit[]): string {
  if (commits.length < 2) return `| ${name} | too few blocks | | | | |`;
  const span = (commits.at(-1)!.t - commits[0]!.t) / 1000;
  const lat = commits.map((c) => c.ms).sort((a, b) => a - b);
  const txTotal = commits.reduce((a, c) => a + c.txs, 0);
  return `| ${name} | ${commits.length} | ${((commits.length - 1) / span).toFixed(2)} | ${(txTotal / commits.length).toFixed(1)} | ${pct(lat, 50)} / ${pct(lat, 95)} / ${pct(lat, 99)} | ${(txTotal / span).toFixed(0)} |`;
}

const rows: string[] = [];
const cluster = await createCluster({
  validators: 4,
  basePort: 26400,
  consensus: { heartbeatMs: 100, roundTimeoutMs: 2000 },
  contracts: [],
});
try {
  await cluster.waitFor('all nodes committing', async () =>
    (await Promise.all([0, 1, 2, 3].map((i) => cluster.height(i)))).every((h) => h >= 2),
  );
  const from = Date.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const empty = commitsOf(cluster, 0).filter((c) => c.t >= from);
  rows.push(summarise(`empty blocks, ${seconds} s`, empty));

  const client = createClient({ url: cluster.nodes[0]!.rpcUrl });
  const admin = await loadKeyFile(cluster.network.admins[0]!.keyFile, { allowUnencrypted: true });
  const deployed = await createWallet(client, admin).sendAndWait({
    kind: 'deploy',
    contract: 'token',
    args: { source: TOKEN_SOURCE },
  });
  if (deployed.receipt.status !== 'ok') throw new Error(`token deploy failed: ${deployed.receipt.error}`);
  client.close();
  const loadFrom = Date.now();
  const report = await runLoad({
    urls: cluster.nodes.map((n) => n.rpcUrl),
    workload: transferWorkload,
    txs,
    senders: 100,
  });
  const full = commitsOf(cluster, 0).filter((c) => c.t >= loadFrom && c.txs > 0);
  rows.push(summarise(`full blocks (${txs} transfers, max rate)`, full));
  console.log(
    `# bench:consensus: 4 validators, separate processes on one ${(await import('node:os')).cpus().length}-core machine, Node.js ${process.version}\n`,
  );
  console.log(
    '| run | blocks | blocks/s | txs/block | commit latency p50 / p95 / p99 (ms) | committed tx/s |',
  );
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(r);
  console.log('\nLoad generator report for the full-block run:\n');
  console.log(formatLoadReport(report));
} finally {
  await cluster.stop();
}
