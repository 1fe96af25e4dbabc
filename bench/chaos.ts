/**
 * `npm run chaos`: the long chaos profile. A real 4-validator cluster under 200 tx/s for 2
 * minutes, one validator killed (SIGKILL, restarted from disk) every 5 s, with a SIGSTOP/SIGCONT
 * slow node every fourth fault; then every invariant checked through RPC. Prints the faults, the
 * checks run, the violations (must be none: exit code 1 otherwise), heal-to-commit times and
 * throughput.
 */
import { runChaos, type ChaosReport } from '../test/chaos/chaos.ts';

const DURATION_MS = 120_000;
const RATE = 200;

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function print(r: ChaosReport): void {
  const sorted = (xs: number[]) => xs.sort((a, b) => a - b);
  const heal = sorted(r.faults.map((f) => f.healToCommitMs));
  const first = sorted(r.faults.map((f) => f.healToFirstCommitMs));
  const figures = (xs: number[]) =>
    `min ${xs[0]?.toFixed(0)}, p50 ${percentile(xs, 50).toFixed(0)}, p95 ${percentile(xs, 95).toFixed(0)}, max ${xs[xs.length - 1]?.toFixed(0)}`;
  const lines = [
    '',
    `Chaos report: 4 validators, ${RATE} tx/s for ${DURATION_MS / 1000} s, a fault every 5 s`,
    `Faults injected: ${r.faults.length} (SIGKILL+restart: ${r.faultsByKind.kill}, SIGSTOP/SIGCONT: ${r.faultsByKind.stop})`,
    `  by node: ${[0, 1, 2, 3].map((i) => `${i}: ${r.faults.filter((f) => f.node === i).length}`).join(', ')}`,
    'Invariant checks run:',
    ...Object.entries(r.checks).map(([k, v]) => `  ${k}: ${v}`),
    `Violations: ${r.violations.length}`,
    ...r.violations.slice(0, 20).map((v) => `  ${v}`),
    `Heal to the next commit on some node (ms): ${figures(first)}`,
    `Heal to the next commit on every node, the healed one caught up (ms): ${figures(heal)}`,
    `Transactions: ${r.sent} sent, ${r.acknowledged} acknowledged as committed (${r.sent - r.acknowledged} accepted, not seen committed), send failures: ${
      Object.entries(r.sendFailures)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || '0'
    }`,
    `Throughput (acknowledged, tx/s): ${r.throughput.toFixed(1)}`,
    `Final height (checked on every node): ${r.finalHeight}`,
    `Duration: ${(r.durationMs / 1000).toFixed(1)} s`,
  ];
  console.log(lines.join('\n'));
}

const report = await runChaos({
  basePort: 26700,
  durationMs: DURATION_MS,
  rate: RATE,
  faultEveryMs: 5_000,
  faultHoldMs: 1_000,
  faults: ['kill', 'kill', 'kill', 'stop'],
  seed: 2026,
  log: (line) => console.log(line),
});
print(report);
process.exitCode = report.violations.length === 0 ? 0 : 1;
