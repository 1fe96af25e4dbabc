/**
 * A real local consortium for end-to-end tests: `trellis init` writes the network into a temp
 * dir, and each validator runs as its own `trellis start` process (real libp2p on 127.0.0.1, real
 * LevelDB), reached only through JSON-RPC, so tests see what an operator sees.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeLocalNetwork, type LocalNetwork, type LocalNetworkOptions } from '../../node/cli/init.ts';
import type { ConsensusParams } from '../../node/genesis.ts';

const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));
/** Extra Node.js flags for every node process, e.g. `--cpu-prof --cpu-prof-dir=DIR` to profile a run. */
const NODE_FLAGS = (process.env['CLUSTER_NODE_FLAGS'] ?? '').split(' ').filter((f) => f !== '');

/** One node of the cluster. */
export interface ClusterNode {
  readonly index: number;
  readonly name: string;
  readonly home: string;
  readonly address: string;
  readonly rpcUrl: string;
  process: ChildProcess | null;
}

/** Options of {@link createCluster}. */
export interface ClusterOptions {
  readonly validators: number;
  /** Registered observers, started after the validators (node index validators + j). */
  readonly observers?: number;
  /**
   * First p2p port; RPC ports start at base + 1000. Distinct per test file (files run in parallel),
   * and below Linux's ephemeral range (32768+), where outgoing connections take their source ports:
   * a listen port in that range can be taken by any connection on the machine.
   */
  readonly basePort: number;
  readonly consensus?: Partial<ConsensusParams>;
  /**
   * Genesis contracts; default: the supply-chain-finance consortium (governed: deploys need an
   * approvals grant). `[]` gives a bare network whose genesis admins deploy.
   */
  readonly contracts?: LocalNetworkOptions['contracts'];
  /** Extra genesis members of the default consortium contracts. */
  readonly members?: LocalNetworkOptions['members'];
  /**
   * Runs after the network is written and before any node starts, e.g. to point each node's
   * genesis copy at a fault proxy (test/chaos/faultProxy.ts).
   */
  readonly beforeStart?: (network: LocalNetwork) => void | Promise<void>;
}

/** A running cluster and the operations tests need. */
export interface Cluster {
  readonly dir: string;
  readonly network: LocalNetwork;
  readonly nodes: readonly ClusterNode[];
  start(i: number): void;
  /** Sends a signal (default SIGKILL) and waits for the process to exit (not for SIGSTOP). */
  signal(i: number, sig?: NodeJS.Signals): Promise<void>;
  rpc<T = unknown>(i: number, method: string, params?: unknown): Promise<T>;
  /** The node's committed head height, or -1 when it does not answer. */
  height(i: number): Promise<number>;
  /** Polls until `check` is true; throws naming `what` after `timeoutMs`. */
  waitFor(what: string, check: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Writes a network into a temp dir and starts every validator. */
export async function createCluster(options: ClusterOptions): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'trellis-cluster-'));
  const network = await writeLocalNetwork({
    dir,
    validators: options.validators,
    ...(options.observers === undefined ? {} : { observers: options.observers }),
    basePorts: { p2p: options.basePort, rpc: options.basePort + 1000 },
    consensus: { roundTimeoutMs: 1000, heartbeatMs: 300, ...options.consensus },
    ...(options.contracts === undefined ? {} : { contracts: options.contracts }),
    ...(options.members === undefined ? {} : { members: options.members }),
  });
  const nodes: ClusterNode[] = network.nodes.map((n, index) => ({
    index,
    name: n.name,
    home: n.home,
    address: n.address,
    rpcUrl: `http://127.0.0.1:${n.rpcPort}`,
    process: null,
  }));
  let nextId = 1;
  /** Exits the test did not ask for, reported when a wait times out (the usual cause). */
  const unexpectedExits: string[] = [];
  const expected = new Set<ChildProcess>();

  const cluster: Cluster = {
    dir,
    network,
    nodes,
    start(i) {
      const node = nodes[i]!;
      const log = createWriteStream(join(dir, `${node.name}.log`), { flags: 'a' });
      const child = spawn(process.execPath, [...NODE_FLAGS, BIN, 'start', '--home', node.home], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.pipe(log);
      child.stderr.pipe(log);
      node.process = child;
      child.on('exit', (code, sig) => {
        if (!expected.has(child)) unexpectedExits.push(`${node.name} exited (${sig ?? code})`);
        if (node.process === child) node.process = null;
      });
    },
    async signal(i, sig = 'SIGKILL') {
      const child = nodes[i]!.process;
      if (child === null) return;
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      if (sig !== 'SIGSTOP' && sig !== 'SIGCONT') expected.add(child);
      child.kill(sig);
      if (sig !== 'SIGSTOP' && sig !== 'SIGCONT') await exited;
    },
    async rpc<T>(i: number, method: string, params?: unknown): Promise<T> {
      const res = await fetch(nodes[i]!.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: nextId++,
          method,
          ...(params === undefined ? {} : { params }),
        }),
        signal: AbortSignal.timeout(5_000),
      });
      const body = (await res.json()) as { result?: T; error?: { code: number; message: string } };
      if (body.error !== undefined) throw new Error(`${method}: ${body.error.code} ${body.error.message}`);
      return body.result as T;
    },
    async height(i) {
      try {
        const head = await cluster.rpc<{ height: number } | null>(i, 'chain_getHead');
        return head?.height ?? 0;
      } catch {
        return -1;
      }
    },
    async waitFor(what, check, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (await check().catch(() => false)) return;
        await new Promise((r) => setTimeout(r, 200));
      }
      const exits = unexpectedExits.map((e) => {
        const name = e.slice(0, e.indexOf(' '));
        const log = readFileSync(join(dir, `${name}.log`), 'utf8')
          .trimEnd()
          .split('\n')
          .slice(-5);
        return `\n  ${e}; its log ends:\n    ${log.join('\n    ')}`;
      });
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for: ${what} (logs in ${dir})${exits.join('')}`,
      );
    },
    async stop() {
      await Promise.all(
        nodes.map(async (n, i) => {
          if (n.process === null) return;
          n.process.kill('SIGCONT');
          await cluster.signal(i, 'SIGTERM');
        }),
      );
      if (process.env['KEEP_CLUSTER'] === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
  await options.beforeStart?.(network);
  for (let i = 0; i < nodes.length; i++) cluster.start(i);
  return cluster;
}
