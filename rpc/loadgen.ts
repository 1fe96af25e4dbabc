/**
 * The load generator behind `trellis bench`, in the manner of Hyperledger Caliper: it pre-signs
 * the transactions of a workload from many senders, sends them to one or several nodes at a fixed
 * rate or as fast as they are accepted, watches blocks commit, and reports send rate, throughput,
 * latency (send to commit, seen through the new-head feed) and the outcome of every transaction.
 */
import { toHex, utf8 } from '../core/bytes.ts';
import type { Value } from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import { addressOf, keyPairFromSecret, type KeyPair } from '../core/keys.ts';
import { signTx, type SignedTransaction } from '../core/types.ts';
import { RpcError } from './errors.ts';
import { createClient, type TrellisClient } from './sdk/client.ts';
import { createWallet } from './sdk/wallet.ts';

/** What one transaction of a workload calls. */
export interface WorkloadCall {
  readonly contract: string;
  readonly method: string;
  readonly args: Value;
}

/** Context a workload builds its calls from. */
export interface WorkloadContext {
  readonly senders: readonly KeyPair[];
}

/** A workload: optional setup (not timed), then one call per transaction. */
export interface Workload {
  readonly name: string;
  /** Runs before the timed phase, e.g. funding every sender. */
  setup?(ctx: WorkloadContext, client: TrellisClient): Promise<void>;
  /** The call of the `seq`-th transaction of sender `index`. */
  build(ctx: WorkloadContext, index: number, seq: number): WorkloadCall;
}

/** The default workload: token transfers between senders, each sender funded first. */
export const transferWorkload: Workload = {
  name: 'transfer',
  async setup(ctx, client) {
    // Funding in parallel, one mint per sender, from the sender itself (the harness token
    // lets anyone mint; a permissioned token needs its own setup).
    await Promise.all(
      ctx.senders.map((key) =>
        createWallet(client, key, { window: 1 }).sendAndWait({
          contract: 'token',
          method: 'mint',
          args: { to: addressOf(key.publicKey), amount: 1_000_000_000 },
        }),
      ),
    );
  },
  build(ctx, index) {
    const to = ctx.senders[(index + 1) % ctx.senders.length]!;
    return { contract: 'token', method: 'transfer', args: { to: addressOf(to.publicKey), amount: 1 } };
  },
};

/**
 * A workload of any contract call. In `args`, the strings "$sender" and "$peer" become the
 * sender's and the next sender's address, and "$seq" the transaction's sequence number.
 */
export function callWorkload(contract: string, method: string, args: Value): Workload {
  const fill = (v: Value, ctx: WorkloadContext, index: number, seq: number): Value => {
    if (v === '$sender') return addressOf(ctx.senders[index]!.publicKey);
    if (v === '$peer') return addressOf(ctx.senders[(index + 1) % ctx.senders.length]!.publicKey);
    if (v === '$seq') return seq;
    if (Array.isArray(v)) return v.map((x) => fill(x, ctx, index, seq));
    if (typeof v === 'object' && v !== null && !(v instanceof Uint8Array)) {
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, ctx, index, seq)]));
    }
    return v;
  };
  return {
    name: `${contract}.${method}`,
    build: (ctx, index, seq) => ({ contract, method, args: fill(args, ctx, index, seq) }),
  };
}

/** Load options. */
export interface LoadOptions {
  /** Node URLs; transaction k goes to node k mod n. The first also feeds the commit watch. */
  readonly urls: readonly string[];
  readonly workload: Workload;
  /** Transactions to send. */
  readonly txs: number;
  /** Distinct senders (keys), round-robin over the transactions. Default 100. */
  readonly senders?: number;
  /** Fixed send rate, transactions per second; absent: as fast as accepted. */
  readonly rate?: number;
  /** Most sends awaiting an answer at once. Default 256. */
  readonly concurrency?: number;
  /**
   * Most transactions per JSON-RPC batch request. Sends ready at the same moment go in one
   * request (never delayed to fill one), so one HTTP exchange carries many transactions when the
   * rate allows. Default 50; 1 sends each on its own.
   */
  readonly batch?: number;
  /** Seed of the sender keys (same seed, same senders). Default "trellis-bench". */
  readonly seed?: string;
  /** Gas limit per transaction. Default 1,000,000. */
  readonly gasLimit?: number;
  /** Give up on commits after this long without progress. Default 60 s. */
  readonly idleTimeoutMs?: number;
  /**
   * Called with the transactions of each committed block that this run sent, as soon as the
   * watched node reports the block: the acknowledgements a client waiting on them would get. At
   * most once per transaction, so the calls add up to at most `txs` records. Must not throw.
   */
  readonly onAcknowledged?: (acks: readonly AckRecord[]) => void;
}

/** A transaction of the run acknowledged as committed. */
export interface AckRecord {
  /** 0x-hex transaction hash. */
  readonly hash: string;
  /** Height of the block that committed it. */
  readonly height: number;
  /** Receipt status (`ok`, or the reason it committed without effect). */
  readonly status: string;
}

/** Latency figures, milliseconds. */
export interface LatencyFigures {
  readonly avg: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

/** What a run measured. */
export interface LoadReport {
  readonly workload: string;
  readonly nodes: number;
  readonly senders: number;
  readonly txs: number;
  /** Requested send rate (tx/s), or null for as fast as accepted. */
  readonly targetRate: number | null;
  /** Accepted by a node. */
  readonly sent: number;
  /** Refused for good, by reason. */
  readonly sendFailures: Readonly<Record<string, number>>;
  /** Committed with status ok. */
  readonly succeeded: number;
  /** Committed with another status (reverted, out of gas). */
  readonly failed: number;
  /** Accepted but not seen committed before the idle timeout. */
  readonly unconfirmed: number;
  /** Accepted transactions per second over the send phase. */
  readonly sendRate: number;
  /** Committed transactions per second, from the first send to the last commit. */
  readonly throughput: number;
  /** Send to commit (as the new-head feed reports it), over committed transactions. */
  readonly latencyMs: LatencyFigures;
  readonly durationMs: number;
}

/** Refusals that pass with time: the same transaction is sent again. */
const RETRY_REASONS = new Set(['MEMPOOL_FULL', 'SENDER_FULL', 'NONCE_TOO_HIGH']);
/**
 * Failures after which the node may or may not hold the transaction: sent again, since a second
 * copy is refused as DUPLICATE (which then counts as accepted). Giving up would leave a nonce hole
 * that strands every later transaction of the sender.
 */
const RETRY_CODES = new Set(['RATE_LIMITED', 'TRANSPORT', 'TIMEOUT', 'UNAVAILABLE']);

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** Sender keys of a seed. */
export function benchSenders(seed: string, n: number): KeyPair[] {
  return Array.from({ length: n }, (_, i) => keyPairFromSecret(sha256(utf8(`${seed}/${i}`))));
}

/** Runs a load and reports what it measured. */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  if (options.urls.length === 0) throw new RangeError('runLoad: at least one node URL');
  const concurrency = options.concurrency ?? 256;
  const clients = options.urls.map((url) => createClient({ url, maxSockets: concurrency }));
  try {
    return await run(options, clients, concurrency);
  } finally {
    for (const c of clients) c.close();
  }
}

async function run(options: LoadOptions, clients: TrellisClient[], concurrency: number): Promise<LoadReport> {
  const watcher = clients[0]!;
  const senderCount = Math.min(options.senders ?? 100, options.txs);
  const senders = benchSenders(options.seed ?? 'trellis-bench', senderCount);
  const ctx: WorkloadContext = { senders };
  const chainId = await watcher.chainId();
  await options.workload.setup?.(ctx, watcher);

  // Pre-sign everything: the timed phase only sends.
  const nonces = await Promise.all(senders.map((k) => watcher.nextNonce(addressOf(k.publicKey))));
  const txs: SignedTransaction[] = [];
  const seqOf = new Array<number>(senderCount).fill(0);
  for (let k = 0; k < options.txs; k++) {
    const i = k % senderCount;
    const seq = seqOf[i]!++;
    const call = options.workload.build(ctx, i, seq);
    txs.push(
      signTx(
        {
          chainId,
          from: senders[i]!.publicKey,
          nonce: nonces[i]! + seq,
          kind: 'call',
          contract: call.contract,
          method: call.method,
          args: call.args,
          gasLimit: options.gasLimit ?? 1_000_000,
        },
        senders[i]!.secretKey,
      ),
    );
  }

  // Commit watch: every head is fetched in full to learn which transactions it committed and how.
  const sentAt = new Map<string, number>();
  const outcome = new Map<string, { at: number; ok: boolean }>();
  let lastCommitAt = 0;
  let lastProgress = performance.now();
  let draining: Promise<void> = Promise.resolve();
  let watching = true;
  /**
   * The head's block, from the watched node or, while it fails (killed, restarting, stalled),
   * from the others in turn, with capped backoff; undefined once the run has stopped watching.
   */
  async function fetchBlock(
    height: number,
  ): Promise<Awaited<ReturnType<TrellisClient['getBlock']>> | undefined> {
    for (let attempt = 0; watching; attempt++) {
      try {
        return await clients[attempt % clients.length]!.getBlock({ height }, true);
      } catch {
        await new Promise((r) => setTimeout(r, Math.min(1_000, 25 * 2 ** Math.min(attempt, 6))));
      }
    }
    return undefined;
  }
  const sub = await watcher.subscribeHeads({}, (head) => {
    const at = performance.now();
    // One block at a time, in height order; a failed fetch never breaks the chain of later heads.
    draining = draining.then(async () => {
      const block = await fetchBlock(head.height);
      if (block === undefined) return;
      const acks: AckRecord[] = [];
      for (const r of block.receipts ?? []) {
        const key = toHex(r.txHash);
        if (!sentAt.has(key) || outcome.has(key)) continue;
        outcome.set(key, { at, ok: r.status === 'ok' });
        acks.push({ hash: key, height: head.height, status: r.status });
        lastCommitAt = at;
        lastProgress = performance.now();
      }
      if (acks.length > 0) options.onAcknowledged?.(acks);
    });
  });

  const sendFailures: Record<string, number> = {};
  let sent = 0;
  let lastSendAt = 0;
  const start = performance.now();
  let inFlight = 0;
  let slot: (() => void) | undefined;

  // Sends queued per client in the same turn of the event loop leave as one batch request.
  const maxBatch = Math.max(1, Math.min(options.batch ?? 50, 100));
  const queues = clients.map(() => [] as Array<{ tx: SignedTransaction; done: (e?: unknown) => void }>);
  function flush(c: number): void {
    const items = queues[c]!.splice(0, queues[c]!.length);
    for (let i = 0; i < items.length; i += maxBatch) {
      const part = items.slice(i, i + maxBatch);
      clients[c]!.sendTxs(part.map((x) => x.tx.bytes)).then(
        (results) => part.forEach((x, j) => x.done(results[j] instanceof Error ? results[j] : undefined)),
        (err: unknown) => part.forEach((x) => x.done(err)),
      );
    }
  }
  function submit(c: number, tx: SignedTransaction): Promise<void> {
    if (maxBatch === 1) return clients[c]!.sendTx(tx.bytes).then(() => undefined);
    return new Promise((resolve, reject) => {
      const q = queues[c]!;
      q.push({
        tx,
        done: (e) =>
          e === undefined ? resolve() : reject(e instanceof Error ? e : new Error('send failed')),
      });
      if (q.length === 1) setImmediate(() => flush(c));
      else if (q.length >= maxBatch) flush(c);
    });
  }

  async function sendOne(k: number, tx: SignedTransaction): Promise<void> {
    const c = k % clients.length;
    const key = toHex(tx.hash);
    const t0 = performance.now();
    sentAt.set(key, t0);
    let backoff = 5;
    let retried = false;
    for (;;) {
      try {
        await submit(c, tx);
        sent++;
        lastSendAt = performance.now();
        return;
      } catch (err) {
        const reason =
          err instanceof RpcError
            ? typeof err.meta['reason'] === 'string'
              ? err.meta['reason']
              : err.code
            : err instanceof Error
              ? err.name
              : 'ERROR';
        if (retried && reason === 'DUPLICATE') {
          sent++;
          lastSendAt = performance.now();
          return;
        }
        const retry = err instanceof RpcError && (RETRY_REASONS.has(reason) || RETRY_CODES.has(err.code));
        retried = true;
        if (!retry || performance.now() - t0 > 30_000) {
          sentAt.delete(key);
          sendFailures[reason] = (sendFailures[reason] ?? 0) + 1;
          return;
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(200, backoff * 2);
      }
    }
  }

  const pending: Promise<void>[] = [];
  for (let k = 0; k < txs.length; k++) {
    if (options.rate !== undefined) {
      const due = start + (k * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    while (inFlight >= concurrency) await new Promise<void>((r) => (slot = r));
    inFlight++;
    pending.push(
      sendOne(k, txs[k]!).finally(() => {
        inFlight--;
        slot?.();
        slot = undefined;
      }),
    );
  }
  await Promise.all(pending);
  const sendEnd = lastSendAt || performance.now();
  lastProgress = performance.now();

  const idle = options.idleTimeoutMs ?? 60_000;
  while ([...sentAt.keys()].some((k) => !outcome.has(k)) && performance.now() - lastProgress < idle) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await sub.close();
  watching = false;
  await draining;

  const latencies: number[] = [];
  let succeeded = 0;
  let failed = 0;
  for (const [key, t0] of sentAt) {
    const o = outcome.get(key);
    if (o === undefined) continue;
    latencies.push(o.at - t0);
    if (o.ok) succeeded++;
    else failed++;
  }
  latencies.sort((a, b) => a - b);
  const committed = succeeded + failed;
  const avg = latencies.length === 0 ? 0 : latencies.reduce((a, b) => a + b, 0) / latencies.length;
  return {
    workload: options.workload.name,
    nodes: clients.length,
    senders: senderCount,
    txs: txs.length,
    targetRate: options.rate ?? null,
    sent,
    sendFailures,
    succeeded,
    failed,
    unconfirmed: sentAt.size - committed,
    sendRate: sent / Math.max(1e-3, (sendEnd - start) / 1000),
    throughput: committed / Math.max(1e-3, ((lastCommitAt || performance.now()) - start) / 1000),
    latencyMs: {
      avg,
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      min: latencies[0] ?? 0,
      max: latencies[latencies.length - 1] ?? 0,
    },
    durationMs: performance.now() - start,
  };
}

/** The report as a table, in the manner of Caliper's summary. */
export function formatLoadReport(r: LoadReport): string {
  const fixed = (n: number, d = 1) => n.toFixed(d);
  const rows: Array<[string, string]> = [
    ['Workload', r.workload],
    ['Nodes', String(r.nodes)],
    ['Senders', String(r.senders)],
    ['Transactions', String(r.txs)],
    ['Target rate (tx/s)', r.targetRate === null ? 'max' : fixed(r.targetRate)],
    ['Sent (accepted)', String(r.sent)],
    [
      'Send failures',
      Object.keys(r.sendFailures).length === 0
        ? '0'
        : Object.entries(r.sendFailures)
            .map(([k, v]) => `${k}: ${v}`)
            .join(', '),
    ],
    ['Succeeded', String(r.succeeded)],
    ['Failed (committed, not ok)', String(r.failed)],
    ['Unconfirmed', String(r.unconfirmed)],
    ['Send rate (tx/s)', fixed(r.sendRate)],
    ['Throughput (tx/s)', fixed(r.throughput)],
    ['Latency avg (ms)', fixed(r.latencyMs.avg)],
    ['Latency p50 (ms)', fixed(r.latencyMs.p50)],
    ['Latency p95 (ms)', fixed(r.latencyMs.p95)],
    ['Latency p99 (ms)', fixed(r.latencyMs.p99)],
    ['Latency min/max (ms)', `${fixed(r.latencyMs.min)} / ${fixed(r.latencyMs.max)}`],
    ['Duration (s)', fixed(r.durationMs / 1000, 2)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  const v = Math.max(...rows.map(([, x]) => x.length));
  const line = `+${'-'.repeat(w + 2)}+${'-'.repeat(v + 2)}+`;
  return [line, ...rows.map(([k, x]) => `| ${k.padEnd(w)} | ${x.padStart(v)} |`), line].join('\n');
}
