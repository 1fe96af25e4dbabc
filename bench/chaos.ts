/**
 * `npm run chaos`: the long chaos profile. A real 4-validator cluster under 200 tx/s from
 * `trellis bench` for 2 minutes, one validator killed (SIGKILL, restarted from disk) every 5 s,
 * with a SIGSTOP/SIGCONT slow node and 2|2 and 1|3 network partitions (through the fault proxy)
 * among the kills; then every invariant checked through RPC. Prints the faults by kind, the checks
 * run, the violations (must be none: exit code 1 otherwise), heal-to-commit times and throughput.
 */
import { availableParallelism, loadavg } from 'node:os';
import { LIVENESS_PREFIX, runChaos, type ChaosReport, type FaultKind } from '../test/chaos/chaos.ts';

const DURATION_MS = 120_000;
const RATE = 200;
// Ten faults in turn: six kills, a slow node, a 2|2 and a 1|3 partition, and one more kill.
const FAULTS: FaultKind[] = [
  'kill',
  'kill',
  'partition-2-2',
  'kill',
  'stop',
  'kill',
  'partition-1-3',
  'kill',
  'kill',
  'kill',
];

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function print(r: ChaosReport): void {
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const figures = (xs: number[]) =>
    xs.length === 0
      ? 'none'
      : `min ${xs[0]!.toFixed(0)}, p50 ${percentile(xs, 50).toFixed(0)}, p95 ${percentile(xs, 95).toFixed(0)}, max ${xs[xs.length - 1]!.toFixed(0)}`;
  const heal = (kinds: readonly FaultKind[]) => {
    const of = r.faults.filter((f) => kinds.includes(f.kind));
    return `first commit ${figures(sorted(of.map((f) => f.healToFirstCommitMs)))}; every node ${figures(sorted(of.map((f) => f.healToCommitMs)))}`;
  };
  const partitions = r.faults.filter((f) => f.sides !== undefined);
  const l = r.load;
  const load =
    l === null
      ? [
          `Load (trellis bench): killed while still draining its backlog; ${r.acknowledged} transactions it acknowledged as committed checked on every node`,
        ]
      : [
          `Load (trellis bench): ${l.txs} transactions, ${l.sent} sent, ${r.acknowledged} acknowledged as committed (checked on every node), ${l.unconfirmed} not seen committed; send failures: ${
            Object.entries(l.sendFailures)
              .map(([k, v]) => `${k} ${v}`)
              .join(', ') || '0'
          }`,
          `Throughput (acknowledged, tx/s): ${r.throughput.toFixed(1)}; latency p50 ${l.latencyMs.p50.toFixed(0)} ms, p95 ${l.latencyMs.p95.toFixed(0)} ms, p99 ${l.latencyMs.p99.toFixed(0)} ms, max ${l.latencyMs.max.toFixed(0)} ms`,
        ];
  const lines = [
    '',
    `Chaos report: 4 validators, ${RATE} tx/s from trellis bench for ${DURATION_MS / 1000} s, a fault every 5 s`,
    `Faults injected: ${r.faults.length} (SIGKILL+restart: ${r.faultsByKind.kill}, SIGSTOP/SIGCONT: ${r.faultsByKind.stop}, partition 2|2: ${r.faultsByKind['partition-2-2']}, partition 1|3: ${r.faultsByKind['partition-1-3']})`,
    `  killed or stopped, by node: ${[0, 1, 2, 3].map((i) => `${i}: ${r.faults.filter((f) => f.sides === undefined && f.nodes[0] === i).length}`).join(', ')}`,
    ...partitions.map(
      (f) =>
        `  ${f.kind} ${f.sides!.map((s) => `{${s.join(',')}}`).join('|')} at ${(f.at / 1000).toFixed(1)} s: ${f.connectionsCut} connections cut, ${f.kind === 'partition-2-2' ? 'no commit on either side' : `${f.blocksDuringPartition ?? 0} blocks by the quorum side`} during it`,
    ),
    `  fault proxy: ${r.proxy.forwarded} connections forwarded, ${r.proxy.refused} refused while cut, ${r.proxy.cut} reset by partitions`,
    'Invariant checks run:',
    ...Object.entries(r.checks).map(([k, v]) => `  ${k}: ${v}`),
    `Violations: ${r.violations.length} (safety: ${r.violations.filter((v) => !v.startsWith(LIVENESS_PREFIX)).length}, liveness bounds missed: ${r.violations.filter((v) => v.startsWith(LIVENESS_PREFIX)).length})`,
    ...r.violations.slice(0, 20).map((v) => `  ${v}`),
    'Heal to the next commit (ms; "every node": the healed node caught up too):',
    `  SIGKILL+restart: ${heal(['kill'])}`,
    `  SIGSTOP/SIGCONT: ${heal(['stop'])}`,
    `  partitions: ${heal(['partition-2-2', 'partition-1-3'])}`,
    ...load,
    `Final height (checked on every node): ${r.finalHeight}`,
    `Duration: ${(r.durationMs / 1000).toFixed(1)} s; machine load average (1 min) ${loadAtStart.toFixed(1)} at the start, ${loadavg()[0]!.toFixed(1)} at the end, on ${availableParallelism()} cores`,
  ];
  console.log(lines.join('\n'));
}

const loadAtStart = loadavg()[0]!;
const report = await runChaos({
  basePort: 26700,
  proxyBasePort: 29000,
  durationMs: DURATION_MS,
  rate: RATE,
  faultEveryMs: 5_000,
  faultHoldMs: 1_000,
  // Production timing (the genesis default round timeout) and partitions long enough for the
  // three to commit through a round change or two on a busy machine.
  roundTimeoutMs: 2_000,
  partitionHoldMs: 6_000,
  faults: FAULTS,
  minFaults: FAULTS.length,
  seed: 2026,
  log: (line) => console.log(line),
});
print(report);
process.exitCode = report.violations.length === 0 ? 0 : 1;
