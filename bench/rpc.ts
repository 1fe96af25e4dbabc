/**
 * `trellis bench` figures for a local consortium of 1 and of 4 validators: each network is written
 * with `trellis init` into a temp folder (on free ports), every node runs as its own process
 * (`trellis start`), the test token is deployed by a genesis admin, and the load generator
 * (rpc/loadgen.ts) sends pre-signed transfers round-robin to every node as fast as they are
 * accepted. A third run measures the RPC layer alone over the in-process harness (no consensus,
 * no VM) as a ceiling.
 *
 *   npx node bench/rpc.ts [--txs N] [--senders N] [--rate TPS] [--only 1|4|harness] [--json]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { toHex, utf8 } from '../core/bytes.ts';
import { addressOf, type KeyPair } from '../core/keys.ts';
import { validatorOf, type Validator } from '../core/types.ts';
import { writeLocalNetwork } from '../node/cli/init.ts';
import { nodeHomeLayout } from '../node/config.ts';
import { loadKeyFile } from '../node/keystore.ts';
import { formatLoadReport, runLoad, transferWorkload, type LoadReport } from '../rpc/loadgen.ts';
import { createClient } from '../rpc/sdk/client.ts';
import { createLightClient } from '../rpc/sdk/proofs.ts';
import { createWallet } from '../rpc/sdk/wallet.ts';
import { startHarness } from '../test/rpc/harness.ts';
import { TOKEN_SOURCE } from '../test/rpc/realNode.ts';

const { values } = parseArgs({
  options: {
    txs: { type: 'string' },
    senders: { type: 'string' },
    only: { type: 'string' },
    rate: { type: 'string' },
    json: { type: 'boolean' },
  },
});
const txs = Number(values.txs ?? 5000);
const senders = Number(values.senders ?? 100);
const rate = values.rate === undefined ? undefined : Number(values.rate);
const load = {
  workload: transferWorkload,
  txs,
  senders,
  concurrency: 256,
  ...(rate === undefined ? {} : { rate }),
};
const BIN = new URL('../bin/trellis.js', import.meta.url).pathname;

/** Rewrites the network's ports (p2p and rpc) so the bench never collides with a running network. */
function movePorts(dir: string, homes: readonly string[], base: number): number[] {
  const genesisFile = join(dir, 'genesis.json');
  const genesis = JSON.parse(readFileSync(genesisFile, 'utf8')) as {
    validators: Array<{ p2p: string[]; rpcPort?: number }>;
  };
  const rpcPorts: number[] = [];
  genesis.validators.forEach((v, i) => {
    v.p2p = [`/ip4/127.0.0.1/tcp/${base + i}`];
    v.rpcPort = base + 100 + i;
  });
  writeFileSync(genesisFile, JSON.stringify(genesis, null, 2));
  homes.forEach((home, i) => {
    const file = nodeHomeLayout(home).configFile;
    const config = JSON.parse(readFileSync(file, 'utf8')) as {
      p2p: { port: number };
      rpc: { port: number };
      logLevel: string;
    };
    config.p2p.port = base + i;
    config.rpc.port = base + 100 + i;
    config.logLevel = 'warn';
    writeFileSync(file, JSON.stringify(config, null, 2));
    rpcPorts.push(base + 100 + i);
  });
  return rpcPorts;
}

async function waitReady(url: string, timeoutMs: number): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${url}/ready`);
      if (res.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (performance.now() > end) throw new Error(`${url} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function network(validators: number): Promise<LoadReport> {
  const dir = mkdtempSync(join(tmpdir(), `trellis-bench-${validators}-`));
  const children: ChildProcess[] = [];
  try {
    const net = await writeLocalNetwork({ dir, validators, contracts: [] });
    // Below the ephemeral range (32768+), where outgoing connections take their ports.
    const base = 20000 + Math.floor(Math.random() * 100) * 100;
    const ports = movePorts(
      dir,
      net.nodes.map((nd) => nd.home),
      base,
    );
    for (const nd of net.nodes) {
      const child = spawn(process.execPath, [BIN, 'start', '--home', nd.home], {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      children.push(child);
    }
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    const died = new Promise<never>((_, reject) => {
      for (const c of children)
        c.once('exit', (code) => reject(new Error(`a node exited (code ${code}) before the run ended`)));
    });
    died.catch(() => undefined);
    for (const url of urls) await Promise.race([waitReady(url, 60_000), died]);
    const client = createClient({ url: urls[0]! });
    const admin = await loadKeyFile(net.admins[0]!.keyFile, { allowUnencrypted: true });
    const deployed = await createWallet(client, admin).sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    client.close();
    if (deployed.receipt.status !== 'ok') throw new Error(`deploy failed: ${deployed.receipt.error}`);
    const report = await runLoad({ urls, ...load });
    await checkProofs(
      urls,
      net.genesis.chainId,
      net.genesis.validators.map((v) => validatorOf(v.publicKey)),
      admin,
    );
    return report;
  } finally {
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(
      children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    );
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A state value and a transaction, proven by the first node, verified against the certified
 * header served by the last one (a different process with its own store).
 */
async function checkProofs(
  urls: string[],
  chainId: string,
  validators: Validator[],
  key: KeyPair,
): Promise<void> {
  const first = createClient({ url: urls[0]! });
  const last = createClient({ url: urls[urls.length - 1]! });
  try {
    const to = addressOf(key.publicKey);
    const r = await createWallet(first, key).sendAndWait({
      contract: 'token',
      method: 'mint',
      args: { to, amount: 5 },
    });
    // The last node may commit the block a moment after the first.
    await last.waitTx(r.receipt.txHash, 10_000);
    const light = createLightClient({ chainId, validatorsAt: () => validators });
    const sources = { proofFrom: first, headerFrom: last };
    const state = await light.verifyState('token', utf8(`bal/${toHex(to)}`), sources);
    const tx = await light.verifyTx(r.receipt.txHash, sources);
    console.error(
      `proofs: state value (height ${state.height}) and transaction (height ${tx.height}) from ${urls[0]} ` +
        `verified against certified headers from ${urls[urls.length - 1]}`,
    );
  } finally {
    first.close();
    last.close();
  }
}

async function harness(): Promise<LoadReport> {
  const h = await startHarness({ network: { maxBlockTxs: 5000, mempoolMaxTxs: 50_000 } });
  const stop = h.net.autoProduce(50);
  try {
    return await runLoad({ urls: h.urls, ...load });
  } finally {
    stop();
    await h.close();
  }
}

const runs: Array<[string, () => Promise<LoadReport>]> = [
  ['1 validator (real node, separate process)', () => network(1)],
  ['4 validators (real nodes, separate processes)', () => network(4)],
  ['RPC layer only (in-process harness, no consensus or VM)', harness],
];
const only = values.only;
const selected = runs.filter(([name]) =>
  only === undefined ? true : only === 'harness' ? name.startsWith('RPC') : name.startsWith(`${only} `),
);
const results: Record<string, LoadReport> = {};
for (const [name, run] of selected) {
  const report = await run();
  results[name] = report;
  if (values.json !== true)
    console.log(
      `\n${name}: ${txs} transfers from ${senders} senders, ${rate === undefined ? 'as fast as accepted' : `${rate} tx/s`}\n${formatLoadReport(report)}`,
    );
}
if (values.json === true) console.log(JSON.stringify(results, null, 2));
