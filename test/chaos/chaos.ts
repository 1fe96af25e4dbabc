/**
 * The chaos harness: a real 4-validator cluster (one `trellis start` process each, real libp2p
 * and LevelDB, see ../cluster/harness.ts) under bounded load from `trellis bench` (a separate
 * process at a fixed rate), with faults injected from outside, never more than one at a time:
 * SIGKILL then a restart from disk, SIGSTOP then SIGCONT (a slow node), and network partitions
 * 2|2 and 1|3 through a TCP fault proxy between the nodes (./faultProxy.ts: each node's genesis
 * copy lists its peers at proxy addresses, and the proxy cuts the links between the two sides).
 *
 * Checked through JSON-RPC only, as an auditor would: during a 2|2 partition no node commits a
 * block (neither side has a quorum); during a 1|3 partition the three keep committing and the one
 * does not; after every fault blocks commit again on every node within a bound; and once the load
 * stops and every node has recovered: one block per height across nodes, equal state roots,
 * certificates for that one block whose signatures verify against the genesis validator set, and
 * every transaction `trellis bench` saw acknowledged as committed present on every node.
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../../core/bytes.ts';
import { checkCertificate, validatorOf, type CommitCertificate, type Validator } from '../../core/types.ts';
import type { LocalNetwork } from '../../node/cli/init.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import type { AckRecord, LoadReport } from '../../rpc/loadgen.ts';
import { createClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { TOKEN_SOURCE } from '../rpc/realNode.ts';
import { createCluster, type Cluster } from '../cluster/harness.ts';
import { createFaultProxy, type FaultProxy, type FaultProxyStats } from './faultProxy.ts';
import { seededRandom } from '../seededRandom.ts';

const BIN = fileURLToPath(new URL('../../bin/trellis.js', import.meta.url));

/** The kinds of fault the harness injects. */
export const FAULT_KINDS = ['kill', 'stop', 'partition-2-2', 'partition-1-3'] as const;
/**
 * A fault kind: `kill` is SIGKILL then a restart from disk; `stop` is SIGSTOP then SIGCONT;
 * `partition-2-2` and `partition-1-3` cut every link between two sides of that size, both ways.
 */
export type FaultKind = (typeof FAULT_KINDS)[number];

/**
 * Prefix of violations that are missed liveness bounds (heal-to-commit, the quorum side making
 * progress during a partition), as opposed to safety violations (forks, diverging state, lost
 * acknowledged transactions, commits without a quorum, crashes).
 */
export const LIVENESS_PREFIX = 'liveness: ';

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** First p2p port of the cluster (RPC ports at base + 1000). */
  readonly basePort: number;
  /** First port of the fault proxy's listeners (16 of them for 4 nodes). */
  readonly proxyBasePort: number;
  /** How long the load is sent and faults start, ms. */
  readonly durationMs: number;
  /** Fixed send rate of `trellis bench`, transactions per second. */
  readonly rate: number;
  /**
   * The load's workload: `mint` (default) is one token mint per fresh sender key (nonce 0), so a
   * transaction lost with a killed node's mempool never strands later transactions of its sender
   * behind a nonce hole, and "not seen committed" counts exactly the transactions lost; `transfer`
   * is bench's default workload (token transfers among `senders` funded senders).
   */
  readonly workload?: 'mint' | 'transfer';
  /** Distinct senders of the `transfer` workload. Default 100. */
  readonly senders?: number;
  /** A fault starts every this many ms (later if the previous one has not healed yet). */
  readonly faultEveryMs: number;
  /** How long a killed or stopped node stays down before it heals, ms. */
  readonly faultHoldMs: number;
  /** How long a partition lasts, ms; includes `partitionSettleMs`. Default 4 s. */
  readonly partitionHoldMs?: number;
  /**
   * After a partition starts, votes that arrived just before the cut may still complete a commit;
   * commits are counted as "during the partition" only after this long. Default 1 s.
   */
  readonly partitionSettleMs?: number;
  /** The fault kinds, used in turn. */
  readonly faults: readonly FaultKind[];
  /**
   * Faults to inject at least, past `durationMs` if recovery is slow (a busy machine), so a run
   * always exercises what it claims. Default 0.
   */
  readonly minFaults?: number;
  /** Bound on heal-to-commit on every node, ms; a longer wait is a violation. Default 30 s. */
  readonly healBoundMs?: number;
  /** How long `trellis bench` waits for commits without one before it stops watching. Default 20 s. */
  readonly benchIdleTimeoutMs?: number;
  /**
   * The cluster's base round timeout, ms; default the cluster harness's 1 s. A busy machine
   * executes a large block slower than a short timeout, and every needless round change slows
   * the next block further; the genesis default is 2 s.
   */
  readonly roundTimeoutMs?: number;
  /** Seed of the fault schedule's random choices (which validator, which sides). Default 1. */
  readonly seed?: number;
  /** Progress lines; default silent. */
  readonly log?: (line: string) => void;
}

/** One injected fault and how the cluster came back from it. */
export interface FaultRecord {
  readonly kind: FaultKind;
  /** The node killed or stopped; for a partition, the smaller side (either side for 2|2). */
  readonly nodes: readonly number[];
  /** For a partition, both sides. */
  readonly sides?: readonly (readonly number[])[];
  /** Ms from the cluster's start. */
  readonly at: number;
  /** Proxied connections the partition reset (0 for other faults). */
  readonly connectionsCut: number;
  /** For a partition: blocks the side with a quorum committed during it (0 for 2|2). */
  readonly blocksDuringPartition?: number;
  /** Ms from the heal until some node committed a block above the highest head at the heal. */
  readonly healToFirstCommitMs: number;
  /** Ms from the heal until every node committed a block above the highest head at the heal. */
  readonly healToCommitMs: number;
}

/** What a chaos run injected, checked and found. */
export interface ChaosReport {
  readonly faults: readonly FaultRecord[];
  readonly faultsByKind: Readonly<Record<FaultKind, number>>;
  /** Invariant checks run, by invariant. */
  readonly checks: Readonly<Record<string, number>>;
  /** Every violation found, one line each; must be empty. */
  readonly violations: readonly string[];
  /**
   * `trellis bench`'s own report of the load (sent, failures, throughput, latency); null when it
   * had not finished draining within its bound and was killed (its acked file is checked anyway).
   */
  readonly load: LoadReport | null;
  /** Transactions `trellis bench` saw acknowledged as committed (its acked file). */
  readonly acknowledged: number;
  /** Acknowledged transactions per second, first send to last commit (bench's; 0 without its report). */
  readonly throughput: number;
  /** Height every node reached after recovery (all heights up to it were checked). */
  readonly finalHeight: number;
  /** The fault proxy's counters over the run. */
  readonly proxy: FaultProxyStats;
  readonly durationMs: number;
}

interface RpcCall {
  readonly method: string;
  readonly params?: unknown;
}

interface RpcAnswer {
  readonly result?: unknown;
  readonly error?: { code: number; message: string };
}

/** What `chain_getCommit` answers (the fields the audit reads). */
export interface WireCommit {
  header: { height: number; stateRoot: string };
  certificate: {
    height: number;
    round: number;
    blockHash: string;
    signatures: Array<{ validator: string; signature: string }>;
  };
}

/** What `chain_getBlock` answers (the fields the audit reads). */
export interface WireBlock {
  hash: string;
  header: { height: number; stateRoot: string; prevHash: string };
  receipts?: Array<{ txHash: string }>;
}

/**
 * Audits one height across nodes (`null`: the node has no block there, itself a violation the
 * caller reports): one block hash, one state root, certificates for that one block (a validator
 * signing two blocks at a height shows as certificates for different blocks), and every node's
 * certificate verifying against `validators` (signatures, known signers, quorum). Reports each
 * violation through `violate`; returns the checks it ran, by invariant.
 */
export function auditHeight(
  height: number,
  perNode: ReadonlyArray<{ readonly block: WireBlock; readonly commit: WireCommit } | null>,
  chainId: string,
  validators: readonly Validator[],
  violate: (line: string) => void,
): Record<string, number> {
  const present = perNode.flatMap((x, node) => (x === null ? [] : [{ ...x, node }]));
  if (new Set(present.map((x) => x.block.hash)).size > 1)
    violate(`height ${height}: different blocks across nodes`);
  if (new Set(present.map((x) => x.block.header.stateRoot)).size > 1) {
    violate(`height ${height}: different state roots across nodes`);
  }
  if (new Set(present.map((x) => x.commit.certificate.blockHash)).size > 1) {
    violate(`height ${height}: certificates for different blocks (conflicting votes)`);
  }
  for (const { block, commit, node } of present) {
    const cert: CommitCertificate = {
      height: commit.certificate.height,
      round: commit.certificate.round,
      blockHash: fromHex(commit.certificate.blockHash),
      signatures: commit.certificate.signatures.map((s) => ({
        validator: fromHex(s.validator),
        signature: fromHex(s.signature),
      })),
    };
    const fault = checkCertificate(cert, chainId, fromHex(block.hash), height, validators);
    if (fault !== null) violate(`node ${node} height ${height}: certificate ${fault}`);
  }
  return {
    'one block per height': 1,
    'equal state roots per height': 1,
    'certificates for one block per height': 1,
    'certificate signatures verify': present.length,
  };
}

/** Most calls in one JSON-RPC batch (the server's limit, docs/rpc.md). */
const BATCH = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One JSON-RPC batch to a node; answers in call order. */
async function batch(url: string, calls: readonly RpcCall[]): Promise<RpcAnswer[]> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(calls.map((c, id) => ({ jsonrpc: '2.0', id, method: c.method, params: c.params }))),
    signal: AbortSignal.timeout(15_000),
  });
  const answers = (await res.json()) as Array<RpcAnswer & { id: number }>;
  const byId = new Map(answers.map((a) => [a.id, a]));
  return calls.map((_, id) => byId.get(id) ?? { error: { code: 0, message: 'no answer' } });
}

/**
 * Points each node's view of its peers at the fault proxy: node i gets its own genesis copy in its
 * home, listing peer j at the proxy address of link (i, j), and its config reads that copy. The
 * p2p addresses are not part of the genesis hash, so every copy names the same network.
 */
function routeThroughProxy(network: LocalNetwork, proxy: FaultProxy): void {
  const genesis = JSON.parse(readFileSync(network.genesisFile, 'utf8')) as {
    validators: Array<{ publicKey: string; p2p: string[] }>;
  };
  const indexOf = (publicKey: string): number => {
    const j = network.nodes.findIndex((nd) => nd.publicKey.toLowerCase() === publicKey.toLowerCase());
    if (j < 0) throw new Error(`chaos: genesis validator ${publicKey} is not a node of the cluster`);
    return j;
  };
  network.nodes.forEach((nd, i) => {
    const own = {
      ...genesis,
      validators: genesis.validators.map((v) => {
        const j = indexOf(v.publicKey);
        return j === i ? v : { ...v, p2p: [proxy.addr(i, j)] };
      }),
    };
    writeFileSync(join(nd.home, 'genesis.json'), JSON.stringify(own, null, 2) + '\n');
    const configFile = join(nd.home, 'config.json');
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(configFile, JSON.stringify({ ...config, genesisFile: 'genesis.json' }, null, 2) + '\n');
  });
}

/** Starts a 4-validator cluster behind a fault proxy, runs load and faults, checks every invariant. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const validators = 4;
  const proxy = createFaultProxy({
    targets: Array.from({ length: validators }, (_, i) => options.basePort + i),
    basePort: options.proxyBasePort,
  });
  await proxy.start();
  try {
    const cluster = await createCluster({
      validators,
      basePort: options.basePort,
      contracts: [],
      ...(options.roundTimeoutMs === undefined
        ? {}
        : { consensus: { roundTimeoutMs: options.roundTimeoutMs } }),
      beforeStart: (network) => {
        const ports = network.nodes.map((nd) => nd.p2pPort);
        if (ports.some((p, i) => p !== options.basePort + i)) {
          throw new Error(`chaos: nodes listen on ${ports.join(', ')}, the proxy forwards to basePort + i`);
        }
        routeThroughProxy(network, proxy);
      },
    });
    try {
      return await chaos(cluster, proxy, options);
    } finally {
      await cluster.stop();
    }
  } finally {
    await proxy.stop();
  }
}

/** A `trellis bench` process and its outcome. */
interface BenchRun {
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  kill(): void;
}

/** Runs `trellis bench` as its own process, as an operator would; output collected (bounded). */
function startBench(args: readonly string[]): BenchRun {
  const child = spawn(process.execPath, [BIN, 'bench', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  // Bounded: the JSON report is about a kilobyte; stderr keeps its last 64 KiB for the error message.
  const MAX = 64 * 1024;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-MAX)));
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-MAX)));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { done, kill: () => child.kill('SIGKILL') };
}

/** Reads the acked file `trellis bench --acked-file` wrote: one JSON record per line. */
function readAcks(file: string, violate: (line: string) => void): AckRecord[] {
  const out: AckRecord[] = [];
  const seen = new Set<string>();
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, k) => {
    if (line === '') return;
    const r = JSON.parse(line) as AckRecord;
    if (typeof r.hash !== 'string' || !Number.isSafeInteger(r.height) || r.height < 1) {
      violate(`acked file line ${k + 1}: not a {hash, height, status} record`);
    } else if (seen.has(r.hash)) {
      violate(`acked file line ${k + 1}: transaction ${r.hash} acknowledged twice`);
    } else {
      seen.add(r.hash);
      out.push(r);
    }
  });
  return out;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** A seeded shuffle of 0..n-1 (Fisher-Yates). */
function shuffled(n: number, random: () => number): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function chaos(cluster: Cluster, proxy: FaultProxy, options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const n = cluster.nodes.length;
  const quorum = Math.floor((2 * n) / 3) + 1;
  const t0 = performance.now();
  const healBound = options.healBoundMs ?? 30_000;
  const partitionHold = options.partitionHoldMs ?? 4_000;
  const settle = options.partitionSettleMs ?? 1_000;
  const violations: string[] = [];
  const checks: Record<string, number> = {};
  const count = (name: string, k = 1) => (checks[name] = (checks[name] ?? 0) + k);
  const violate = (line: string) => {
    if (violations.length < 1000) violations.push(line);
  };
  /** A liveness bound missed (heal-to-commit, progress during a partition); safety is the rest. */
  const violateLiveness = (line: string) => violate(`${LIVENESS_PREFIX}${line}`);
  /** A node whose process exited without the harness asking is a crash, reported once per exit. */
  const reportedExits = new Set<unknown>();
  const checkRunning = () => {
    count('every node running unless faulted');
    cluster.nodes.forEach((nd, i) => {
      if (nd.process !== null || reportedExits.has(nd)) return;
      reportedExits.add(nd);
      violate(`node ${i} exited on its own (log: ${join(cluster.dir, `${nd.name}.log`)})`);
    });
  };
  const heights = () => Promise.all(cluster.nodes.map((_, i) => cluster.height(i)));

  await cluster.waitFor(
    'every validator at height 2',
    async () => (await heights()).every((h) => h >= 2),
    // Generous: on a busy 2-core machine four processes can take long to load and connect.
    120_000,
  );
  const client = createClient({ url: cluster.nodes[0]!.rpcUrl });
  try {
    const admin = await loadKeyFile(cluster.network.admins[0]!.keyFile, { allowUnencrypted: true });
    const deployed = await createWallet(client, admin).sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    if (deployed.receipt.status !== 'ok') throw new Error(`token deploy failed: ${deployed.receipt.error}`);
    log(`cluster up in ${cluster.dir}; token deployed at height ${deployed.height}`);
  } finally {
    client.close();
  }
  const chainId = cluster.network.genesis.chainId;

  // Load: `trellis bench` at a fixed rate against every node (transaction k to node k mod 4), its
  // acknowledgements (transactions it saw in committed blocks) appended to a file as they come.
  const ackedFile = join(cluster.dir, 'acked.jsonl');
  const benchIdle = options.benchIdleTimeoutMs ?? 20_000;
  const txs = Math.max(1, Math.floor((options.rate * options.durationMs) / 1000));
  const workload =
    (options.workload ?? 'mint') === 'mint'
      ? ['--workload', 'call', '--contract', 'token', '--method', 'mint'].concat([
          '--args',
          JSON.stringify({ to: '$sender', amount: 1 }),
          '--senders',
          String(txs),
        ])
      : ['--senders', String(options.senders ?? 100)];
  const bench = startBench([
    '--rpc',
    cluster.nodes.map((nd) => nd.rpcUrl).join(','),
    '--txs',
    String(txs),
    '--rate',
    String(options.rate),
    ...workload,
    '--seed',
    `chaos-${options.seed ?? 1}`,
    '--idle-timeout-ms',
    String(benchIdle),
    '--acked-file',
    ackedFile,
    '--json',
  ]);
  let benchExited = false;
  void bench.done.then(() => (benchExited = true));
  // Faults start once the load commits (bench has set up its senders and is sending); generous
  // bound: on a busy machine bench takes a while to derive keys and sign every transaction.
  for (const deadline = performance.now() + 120_000; fileSize(ackedFile) === 0; await sleep(200)) {
    if (benchExited || performance.now() > deadline) {
      bench.kill();
      const { code, stderr } = await bench.done;
      throw new Error(
        `trellis bench saw none of its transactions committed (exit ${code ?? 'killed'}); stderr: ${stderr.slice(-2000)}`,
      );
    }
  }
  const loadStart = performance.now();
  log(`load committing ${((loadStart - t0) / 1000).toFixed(1)} s after start; faults begin`);

  /**
   * Holds a partition for `partitionHold` ms from `cutAt`, polling every node. A side without a
   * quorum can certify no new block: none of its nodes may pass the highest height any node had
   * committed once the partition settled (a lagging node may still apply, after the cut, blocks
   * certified before it: sync answers and votes it received in time). A side with a quorum must
   * keep committing. Returns the blocks the quorum side committed meanwhile (0 when none has one).
   */
  async function observePartition(sides: readonly (readonly number[])[], cutAt: number): Promise<number> {
    await sleep(Math.max(0, cutAt + settle - performance.now()));
    const sideMax = (hs: number[], side: readonly number[]) => Math.max(...side.map((i) => hs[i]!));
    const atSettle = await heights();
    const certified = Math.max(...atSettle);
    const marks = sides.map((side) => sideMax(atSettle, side));
    const highest = [...marks];
    let last = marks;
    while (performance.now() - cutAt < partitionHold) {
      await sleep(250);
      const hs = await heights();
      last = sides.map((side) => sideMax(hs, side));
      last.forEach((h, k) => (highest[k] = Math.max(highest[k]!, h)));
    }
    let progress = 0;
    sides.forEach((side, k) => {
      const name = `{${side.join(',')}}`;
      if (side.length < quorum) {
        count('no new block without a quorum during a partition');
        if (highest[k]! > certified) {
          violate(
            `side ${name} without a quorum reached height ${highest[k]} during a partition, above the ${certified} committed anywhere when it settled`,
          );
        }
      } else {
        count('the quorum side commits during a partition');
        progress = last[k]! - marks[k]!;
        if (progress <= 0) violateLiveness(`side ${name} with a quorum committed nothing during a partition`);
      }
    });
    return progress;
  }

  // Faults, one at a time: the next starts only once every node commits again after the last.
  const faults: FaultRecord[] = [];
  const random = seededRandom(options.seed ?? 1);
  let f = 0;
  const minFaults = options.minFaults ?? 0;
  const more = (at: number) => at - loadStart < options.durationMs || f < minFaults;
  for (let next = performance.now(); more(next); next += options.faultEveryMs) {
    if (next > performance.now()) await sleep(next - performance.now());
    if (!more(performance.now())) break;
    checkRunning();
    const kind = options.faults[f++ % options.faults.length]!;
    const at = performance.now() - t0;
    let nodes: number[];
    let sides: number[][] | undefined;
    let connectionsCut = 0;
    let blocksDuringPartition: number | undefined;
    if (kind === 'kill' || kind === 'stop') {
      const node = Math.floor(random() * n);
      nodes = [node];
      await cluster.signal(node, kind === 'kill' ? 'SIGKILL' : 'SIGSTOP');
      await sleep(options.faultHoldMs);
      if (kind === 'kill') cluster.start(node);
      else await cluster.signal(node, 'SIGCONT');
    } else {
      const order = shuffled(n, random);
      const small = kind === 'partition-2-2' ? 2 : 1;
      sides = [order.slice(0, small).sort((a, b) => a - b), order.slice(small).sort((a, b) => a - b)];
      nodes = sides[0]!;
      const cutBefore = proxy.stats().cut;
      const cutAt = performance.now();
      proxy.partition(sides);
      try {
        blocksDuringPartition = await observePartition(sides, cutAt);
      } finally {
        proxy.heal();
      }
      // The nodes talked through the proxy: cutting it reset live connections between the sides.
      connectionsCut = proxy.stats().cut - cutBefore;
      count('a partition cuts live connections between its sides');
      if (connectionsCut === 0)
        violate(`partition ${sides.map((s) => `{${s.join(',')}}`).join('|')} cut no connection`);
    }
    const healedAt = performance.now();
    const mark = Math.max(...(await heights()));
    // Heal-to-commit: every node, the healed one included, commits above the head at the heal.
    let healToCommitMs = Number.POSITIVE_INFINITY;
    let healToFirstCommitMs = Number.POSITIVE_INFINITY;
    const what =
      sides === undefined
        ? `${kind} of node ${nodes[0]}`
        : `${kind} ${sides.map((s) => `{${s.join(',')}}`).join('|')}`;
    try {
      await cluster.waitFor(
        `every node above height ${mark} after ${what}`,
        async () => {
          const hs = await heights();
          if (hs.some((h) => h > mark) && healToFirstCommitMs === Number.POSITIVE_INFINITY) {
            healToFirstCommitMs = performance.now() - healedAt;
          }
          return hs.every((h) => h > mark);
        },
        healBound,
      );
      healToCommitMs = performance.now() - healedAt;
    } catch {
      violateLiveness(`no commit on every node within ${healBound} ms after healing ${what}`);
    }
    count('heal-to-commit within bound');
    faults.push({
      kind,
      nodes,
      ...(sides === undefined ? {} : { sides }),
      at,
      connectionsCut,
      ...(blocksDuringPartition === undefined ? {} : { blocksDuringPartition }),
      healToFirstCommitMs,
      healToCommitMs,
    });
    log(
      `${what} at ${(at / 1000).toFixed(1)} s${
        blocksDuringPartition === undefined
          ? ''
          : ` (${connectionsCut} connections cut, ${kind === 'partition-2-2' ? 'no side with a quorum' : `${blocksDuringPartition} blocks by the quorum side`})`
      }: first commit ${healToFirstCommitMs.toFixed(0)} ms, every node ${healToCommitMs.toFixed(0)} ms after the heal`,
    );
  }

  // The load ends (bench drains its backlog, bounded by its idle timeout) and reports. A backlog
  // that keeps committing slowly (a starved machine) is cut off after a generous bound.
  const benchBound = 2 * options.durationMs + benchIdle + 300_000;
  const timer = setTimeout(() => bench.kill(), Math.max(0, loadStart + benchBound - performance.now()));
  const ran = await bench.done;
  clearTimeout(timer);
  let load: LoadReport | null = null;
  try {
    load = JSON.parse(ran.stdout) as LoadReport;
    log(
      `bench: ${load.sent} sent, ${load.succeeded + load.failed} committed, ${load.unconfirmed} unconfirmed, ${load.throughput.toFixed(1)} tx/s`,
    );
  } catch {
    if (ran.code !== null) {
      throw new Error(`trellis bench gave no report (exit ${ran.code}); stderr: ${ran.stderr.slice(-2000)}`);
    }
    log(`bench still draining ${(benchBound / 1000).toFixed(0)} s after the load started: killed`);
  }

  // Recovery: every node reaches the same head.
  let final = 0;
  await cluster.waitFor(
    'every node at one head after the load',
    async () => {
      const hs = await heights();
      final = Math.min(...hs);
      return hs.every((h) => h === hs[0]) && final > 0;
    },
    60_000,
  );

  checkRunning();

  // Invariants from outside, over heights 1..final on every node.
  const validators = cluster.network.genesis.validators.map((v) => validatorOf(v.publicKey));
  for (let from = 1; from <= final; from += BATCH / 2) {
    const hs = Array.from({ length: Math.min(BATCH / 2, final - from + 1) }, (_, j) => from + j);
    const perNode = await Promise.all(
      cluster.nodes.map((nd) =>
        batch(
          nd.rpcUrl,
          hs.flatMap((height) => [
            { method: 'chain_getBlock', params: { height } },
            { method: 'chain_getCommit', params: { height } },
          ]),
        ),
      ),
    );
    hs.forEach((h, j) => {
      const blocks = perNode.map((answers, i) => {
        const [b, c] = [answers[2 * j]!, answers[2 * j + 1]!];
        if (b.error !== undefined || c.error !== undefined) {
          violate(`node ${i} has no block or certificate at height ${h}`);
          return null;
        }
        return { block: b.result as WireBlock, commit: c.result as WireCommit };
      });
      for (const [name, k] of Object.entries(auditHeight(h, blocks, chainId, validators, violate))) {
        count(name, k);
      }
    });
  }

  // Every transaction bench saw acknowledged is on every node, at the height it was seen at.
  const acks = readAcks(ackedFile, violate);
  if (load !== null) {
    count('bench report agrees with its acknowledgements');
    if (acks.length !== load.succeeded + load.failed) {
      violate(
        `bench reported ${load.succeeded + load.failed} committed, its acked file holds ${acks.length}`,
      );
    }
  }
  for (let from = 0; from < acks.length; from += BATCH) {
    const slice = acks.slice(from, from + BATCH);
    const perNode = await Promise.all(
      cluster.nodes.map((nd) =>
        batch(
          nd.rpcUrl,
          slice.map(({ hash }) => ({ method: 'tx_getReceipt', params: { hash } })),
        ),
      ),
    );
    count('acknowledged transaction on every node', slice.length * n);
    perNode.forEach((answers, i) =>
      answers.forEach((a, j) => {
        const { hash, height } = slice[j]!;
        if (a.error !== undefined) violate(`node ${i}: acknowledged tx ${hash} missing (${a.error.message})`);
        else if ((a.result as { height: number }).height !== height) {
          violate(`node ${i}: tx ${hash} at another height than acknowledged`);
        }
      }),
    );
  }
  log(`checked heights 1..${final} and ${acks.length} acknowledged transactions on every node`);

  const faultsByKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  for (const fr of faults) faultsByKind[fr.kind]++;
  return {
    faults,
    faultsByKind,
    checks,
    violations,
    load,
    acknowledged: acks.length,
    throughput: load?.throughput ?? 0,
    finalHeight: final,
    proxy: proxy.stats(),
    durationMs: performance.now() - t0,
  };
}
