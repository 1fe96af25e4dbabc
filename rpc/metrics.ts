import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CommitNotification, NodeApi } from './nodeApi.ts';

/**
 * The Prometheus metrics of one node, in a registry of its own (several nodes may share a process
 * in tests). Gauges read the node on each scrape; commit figures arrive from the commit feed.
 * The node may register further metrics in `registry`.
 */
export interface RpcMetrics {
  readonly registry: Registry;
  /** Counts a committed block: transactions, blocks, and its commit latency when measured. */
  observeCommit(commit: CommitNotification): void;
  /** Counts one JSON-RPC call by method (unknown names count as "unknown") and outcome. */
  observeRequest(method: string, outcome: 'ok' | 'error'): void;
}

/** Commit latency buckets, seconds: sub-second commits up to slow rounds with round changes. */
const COMMIT_LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

/**
 * Creates the metrics of a node. `knownMethods` bounds the `method` label so a client cannot grow
 * the label set by calling made-up names.
 */
export function createRpcMetrics(node: NodeApi, knownMethods: ReadonlySet<string>): RpcMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const health = () => node.health();
  new Gauge({
    name: 'trellis_height',
    help: 'Committed head height',
    registers: [registry],
    collect() {
      this.set(health().height);
    },
  });
  new Gauge({
    name: 'trellis_round',
    help: 'Current consensus round',
    registers: [registry],
    collect() {
      this.set(health().round);
    },
  });
  new Gauge({
    name: 'trellis_peers',
    help: 'Connected peers',
    registers: [registry],
    collect() {
      this.set(health().peers);
    },
  });
  new Gauge({
    name: 'trellis_mempool_size',
    help: 'Transactions in the mempool',
    registers: [registry],
    collect() {
      this.set(health().mempoolSize);
    },
  });
  const latency = new Histogram({
    name: 'trellis_commit_latency_seconds',
    help: 'Time from the start of a height to its commit',
    buckets: COMMIT_LATENCY_BUCKETS,
    registers: [registry],
  });
  const committedTxs = new Counter({
    name: 'trellis_committed_transactions_total',
    help: 'Transactions committed',
    registers: [registry],
  });
  const committedBlocks = new Counter({
    name: 'trellis_committed_blocks_total',
    help: 'Blocks committed',
    registers: [registry],
  });
  const requests = new Counter({
    name: 'trellis_rpc_requests_total',
    help: 'JSON-RPC calls by method and outcome',
    labelNames: ['method', 'outcome'] as const,
    registers: [registry],
  });
  return {
    registry,
    observeCommit(commit) {
      committedBlocks.inc();
      committedTxs.inc(commit.block.txs.length);
      if (commit.latencyMs !== undefined) latency.observe(commit.latencyMs / 1000);
    },
    observeRequest(method, outcome) {
      requests.inc({ method: knownMethods.has(method) ? method : 'unknown', outcome });
    },
  };
}
