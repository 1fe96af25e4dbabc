/**
 * The chaos harness: a real 4-validator cluster (one `trellis start` process each, real libp2p
 * and LevelDB, see ../cluster/harness.ts) under a bounded load, with faults injected from outside
 * (SIGKILL then restart from disk, SIGSTOP then SIGCONT as a slow node), never more than f = 1
 * faulty at once. After the load stops and every node has recovered, the invariants are checked
 * through JSON-RPC only, as an auditor would: one block per height across nodes, equal state roots,
 * certificates for the same block on every node whose signatures verify against the genesis
 * validator set, every transaction acknowledged as committed present on every node, and blocks
 * committing again on every node within a bound after each fault heals.
 */
import { fromHex, toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { addressOf, keyPairFromSecret } from '../../core/keys.ts';
import {
  checkCertificate,
  signTx,
  validatorOf,
  type CommitCertificate,
  type Validator,
} from '../../core/types.ts';
import { loadKeyFile } from '../../node/keystore.ts';
import { RpcError } from '../../rpc/errors.ts';
import { createClient, type TrellisClient } from '../../rpc/sdk/client.ts';
import { createWallet } from '../../rpc/sdk/wallet.ts';
import { TOKEN_SOURCE } from '../rpc/realNode.ts';
import { createCluster, type Cluster } from '../cluster/harness.ts';

/** The kinds of fault the harness injects. */
export const FAULT_KINDS = ['kill', 'stop'] as const;
/** A fault kind: `kill` is SIGKILL then a restart from disk; `stop` is SIGSTOP then SIGCONT. */
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Options of {@link runChaos}. */
export interface ChaosOptions {
  /** First p2p port of the cluster (RPC ports at base + 1000). */
  readonly basePort: number;
  /** How long load and faults run, ms. */
  readonly durationMs: number;
  /** Fixed send rate, transactions per second. */
  readonly rate: number;
  /** A fault starts every this many ms (later if the previous one has not healed yet). */
  readonly faultEveryMs: number;
  /** How long a faulty node stays down or stopped before it heals, ms. */
  readonly faultHoldMs: number;
  /** The fault kinds, used in turn. */
  readonly faults: readonly FaultKind[];
  /**
   * Faults to inject at least, past `durationMs` if recovery is slow (a busy machine), so a run
   * always exercises what it claims. Default 0.
   */
  readonly minFaults?: number;
  /** Bound on heal-to-commit on every node, ms; a longer wait is a violation. Default 30 s. */
  readonly healBoundMs?: number;
  /** Seed of the fault schedule's random choices (which validator). Default 1. */
  readonly seed?: number;
  /** Progress lines; default silent. */
  readonly log?: (line: string) => void;
}

/** One injected fault and how the cluster came back from it. */
export interface FaultRecord {
  readonly kind: FaultKind;
  readonly node: number;
  /** Ms from the cluster's start. */
  readonly at: number;
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
  /** Transactions the load generator sent (accepted by some node, or possibly held by one). */
  readonly sent: number;
  /** Sends refused or failed for good, by reason. */
  readonly sendFailures: Readonly<Record<string, number>>;
  /** Transactions a node acknowledged as committed (seen in a committed block) during the run. */
  readonly acknowledged: number;
  /** Acknowledged transactions per second over the load phase. */
  readonly throughput: number;
  /** Height every node reached after recovery (all heights up to it were checked). */
  readonly finalHeight: number;
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

/** A small deterministic PRNG (mulberry32) so a run's fault schedule is reproducible by seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Starts a 4-validator cluster, runs load and faults, recovers, checks every invariant. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const cluster = await createCluster({ validators: 4, basePort: options.basePort, contracts: [] });
  try {
    return await chaos(cluster, options);
  } finally {
    await cluster.stop();
  }
}

async function chaos(cluster: Cluster, options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? (() => undefined);
  const n = cluster.nodes.length;
  const t0 = performance.now();
  const healBound = options.healBoundMs ?? 30_000;
  const violations: string[] = [];
  const checks: Record<string, number> = {};
  const count = (name: string, k = 1) => (checks[name] = (checks[name] ?? 0) + k);
  const violate = (line: string) => {
    if (violations.length < 1000) violations.push(line);
  };
  /** Nodes that neither are down nor stopped: the only ones load and watchers talk to. */
  const healthy = new Set(Array.from({ length: n }, (_, i) => i));

  await cluster.waitFor(
    'every validator at height 2',
    async () => {
      const hs = await Promise.all(cluster.nodes.map((_, i) => cluster.height(i)));
      return hs.every((h) => h >= 2);
    },
    // Generous: on a busy 2-core machine four processes can take long to load and connect.
    120_000,
  );
  const clients: TrellisClient[] = cluster.nodes.map((nd) => createClient({ url: nd.rpcUrl }));
  try {
    const admin = await loadKeyFile(cluster.network.admins[0]!.keyFile, { allowUnencrypted: true });
    const deployed = await createWallet(clients[0]!, admin).sendAndWait({
      kind: 'deploy',
      contract: 'token',
      args: { source: TOKEN_SOURCE },
    });
    if (deployed.receipt.status !== 'ok') throw new Error(`token deploy failed: ${deployed.receipt.error}`);
    const chainId = cluster.network.genesis.chainId;
    log(`cluster up in ${cluster.dir}; token deployed at height ${deployed.height}`);

    // Acknowledgement watch: scans committed blocks from any healthy node; a transaction seen in a
    // committed block is acknowledged as committed (what a client waiting on it would be told).
    const attempted = new Set<string>();
    const acked = new Map<string, number>();
    let scanned = 0;
    let loadOn = true;
    let lastAckAt = 0;
    const watch = (async () => {
      let k = 0;
      while (loadOn) {
        await sleep(300);
        const i = [...healthy][k++ % Math.max(1, healthy.size)];
        if (i === undefined) continue;
        try {
          const head = (await cluster.rpc<{ height: number } | null>(i, 'chain_getHead'))?.height ?? 0;
          for (let from = scanned + 1; from <= head; from += BATCH) {
            const hs = Array.from({ length: Math.min(BATCH, head - from + 1) }, (_, j) => from + j);
            const answers = await batch(
              cluster.nodes[i]!.rpcUrl,
              hs.map((height) => ({ method: 'chain_getBlock', params: { height, full: true } })),
            );
            for (const a of answers) {
              if (a.error !== undefined) throw new Error(a.error.message);
              const block = a.result as WireBlock;
              for (const r of block.receipts ?? []) {
                if (attempted.has(r.txHash) && !acked.has(r.txHash)) {
                  acked.set(r.txHash, block.header.height);
                  lastAckAt = performance.now();
                }
              }
              scanned = block.header.height;
            }
          }
        } catch {
          // The node died or stalled mid-scan: the next healthy node continues from `scanned`.
        }
      }
    })();

    // Load: a fixed rate of token mints, each from a fresh key (nonce 0), so a transaction lost
    // with a killed node's mempool never strands later transactions of its sender behind a nonce
    // hole; every one is a state change. Each goes to a healthy node, and to another on failure.
    const sendFailures: Record<string, number> = {};
    const seed = `chaos/${options.seed ?? 1}/${Date.now()}`;
    const loadStart = performance.now();
    const total = Math.floor((options.rate * options.durationMs) / 1000);
    const inFlight = new Set<Promise<void>>();
    async function sendOne(k: number): Promise<void> {
      const key = keyPairFromSecret(sha256(utf8(`${seed}/${k}`)));
      const tx = signTx(
        {
          chainId,
          from: key.publicKey,
          nonce: 0,
          kind: 'call',
          contract: 'token',
          method: 'mint',
          args: { to: addressOf(key.publicKey), amount: 1 + (k % 1000) },
          gasLimit: 1_000_000,
        },
        key.secretKey,
      );
      const hash = toHex(tx.hash);
      attempted.add(hash);
      let reason = 'NO_HEALTHY_NODE';
      for (let attempt = 0; attempt < 4; attempt++) {
        const ids = [...healthy];
        const i = ids[(k + attempt) % Math.max(1, ids.length)];
        if (i === undefined) break;
        try {
          await clients[i]!.sendTx(tx.bytes);
          return;
        } catch (err) {
          reason =
            err instanceof RpcError
              ? typeof err.meta['reason'] === 'string'
                ? err.meta['reason']
                : err.code
              : err instanceof Error
                ? err.name
                : 'ERROR';
          if (attempt > 0 && reason === 'DUPLICATE') return;
          await sleep(50);
        }
      }
      sendFailures[reason] = (sendFailures[reason] ?? 0) + 1;
    }
    const load = (async () => {
      for (let k = 0; k < total; k++) {
        const wait = loadStart + (k * 1000) / options.rate - performance.now();
        if (wait > 1) await sleep(wait);
        // Bounded: at most 512 sends in flight, so a stalled cluster slows the load, not memory.
        while (inFlight.size >= 512) await Promise.race(inFlight);
        const p = sendOne(k).finally(() => inFlight.delete(p));
        inFlight.add(p);
      }
      await Promise.all(inFlight);
    })();

    // Faults, one at a time: the next starts only once every node commits again after the last.
    const faults: FaultRecord[] = [];
    const random = prng(options.seed ?? 1);
    const heights = () => Promise.all(cluster.nodes.map((_, i) => cluster.height(i)));
    let f = 0;
    const minFaults = options.minFaults ?? 0;
    const more = (at: number) => at - loadStart < options.durationMs || f < minFaults;
    for (let next = performance.now(); more(next); next += options.faultEveryMs) {
      if (next > performance.now()) await sleep(next - performance.now());
      if (!more(performance.now())) break;
      const kind = options.faults[f++ % options.faults.length]!;
      const node = Math.floor(random() * n);
      const at = performance.now() - t0;
      healthy.delete(node);
      await cluster.signal(node, kind === 'kill' ? 'SIGKILL' : 'SIGSTOP');
      await sleep(options.faultHoldMs);
      if (kind === 'kill') cluster.start(node);
      else await cluster.signal(node, 'SIGCONT');
      const healedAt = performance.now();
      const mark = Math.max(...(await heights()));
      // Heal-to-commit: every node, the healed one included, commits above the head at the heal.
      let healToCommitMs = Number.POSITIVE_INFINITY;
      let healToFirstCommitMs = Number.POSITIVE_INFINITY;
      try {
        await cluster.waitFor(
          `every node above height ${mark} after ${kind} of node ${node}`,
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
        violate(`no commit on every node within ${healBound} ms after healing ${kind} of node ${node}`);
      }
      count('heal-to-commit within bound');
      healthy.add(node);
      faults.push({ kind, node, at, healToFirstCommitMs, healToCommitMs });
      log(
        `${kind} node ${node} at ${(at / 1000).toFixed(1)} s: first commit ${healToFirstCommitMs.toFixed(0)} ms, every node ${healToCommitMs.toFixed(0)} ms after the heal`,
      );
    }
    await load;
    const loadEnd = performance.now();
    // Drain: the cluster commits its backlog (bounded: stops once acknowledgements stall for 10 s).
    const accepted = () => attempted.size - Object.values(sendFailures).reduce((a, b) => a + b, 0);
    for (let seen = -1, since = performance.now(); acked.size < accepted(); await sleep(500)) {
      if (acked.size !== seen) [seen, since] = [acked.size, performance.now()];
      else if (performance.now() - since > 10_000) break;
    }

    // Recovery: every node reaches the same head, past every block the watch has not scanned.
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
    // Let the watch scan up to the recovered head, then stop it.
    await cluster.waitFor(
      'the acknowledgement watch scans the head',
      () => Promise.resolve(scanned >= final),
      30_000,
    );
    loadOn = false;
    await watch;
    log(`load done: ${attempted.size} sent, ${acked.size} acknowledged; checking heights 1..${final}`);

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

    // Every acknowledged transaction is on every node, at the height it was acknowledged at.
    const ackList = [...acked];
    for (let from = 0; from < ackList.length; from += BATCH) {
      const slice = ackList.slice(from, from + BATCH);
      const perNode = await Promise.all(
        cluster.nodes.map((nd) =>
          batch(
            nd.rpcUrl,
            slice.map(([hash]) => ({ method: 'tx_getReceipt', params: { hash } })),
          ),
        ),
      );
      count('acknowledged transaction on every node', slice.length * n);
      perNode.forEach((answers, i) =>
        answers.forEach((a, j) => {
          const [hash, height] = slice[j]!;
          if (a.error !== undefined)
            violate(`node ${i}: acknowledged tx ${hash} missing (${a.error.message})`);
          else if ((a.result as { height: number }).height !== height) {
            violate(`node ${i}: tx ${hash} at another height than acknowledged`);
          }
        }),
      );
    }

    const faultsByKind = { kill: 0, stop: 0 };
    for (const fr of faults) faultsByKind[fr.kind]++;
    return {
      faults,
      faultsByKind,
      checks,
      violations,
      sent: accepted(),
      sendFailures,
      acknowledged: acked.size,
      throughput: acked.size / Math.max(1e-3, ((lastAckAt || loadEnd) - loadStart) / 1000),
      finalHeight: final,
      durationMs: performance.now() - t0,
    };
  } finally {
    for (const c of clients) c.close();
  }
}
