// Goal: a real 4-validator cluster under 50 tx/s from `trellis bench`, with validators killed and
// restarted from disk, one stopped as a slow node, and the network partitioned 2|2 and 1|3, keeps
// one chain: no new block without a quorum, same blocks, state roots and valid certificates on every
// node, every transaction bench saw committed everywhere, and commits again soon after each heal.
import { describe, expect, it } from 'vitest';
import { runChaos, type ChaosReport } from './chaos.ts';

describe('chaos: faults under load on a real cluster', () => {
  it('holds every invariant through kills, a slow node and 2|2 and 1|3 partitions at 50 tx/s', async () => {
    const report: ChaosReport = await runChaos({
      basePort: 22900,
      proxyBasePort: 28000,
      durationMs: 30_000,
      rate: 50,
      faultEveryMs: 5_000,
      faultHoldMs: 1_500,
      partitionHoldMs: 4_000,
      faults: ['kill', 'partition-2-2', 'stop', 'partition-1-3', 'kill'],
      seed: 7,
      minFaults: 5,
      benchIdleTimeoutMs: 15_000,
      ...(process.env['CHAOS_LOG'] === undefined ? {} : { log: (line: string) => console.log(line) }),
    });
    expect(report.violations).toEqual([]);
    // The run did what it claims: every kind of fault, load committed, every check ran.
    const k = report.faultsByKind;
    expect(k.kill).toBeGreaterThanOrEqual(2);
    expect(k.stop).toBeGreaterThanOrEqual(1);
    expect(k['partition-2-2']).toBeGreaterThanOrEqual(1);
    expect(k['partition-1-3']).toBeGreaterThanOrEqual(1);
    expect(report.load).not.toBeNull();
    expect(report.acknowledged).toBeGreaterThan(report.load!.sent / 2);
    expect(report.checks['no new block without a quorum during a partition']).toBe(
      2 * k['partition-2-2'] + k['partition-1-3'],
    );
    expect(report.checks['the quorum side commits during a partition']).toBe(k['partition-1-3']);
    expect(report.checks['a partition cuts live connections between its sides']).toBe(
      k['partition-2-2'] + k['partition-1-3'],
    );
    expect(report.checks['one block per height']).toBe(report.finalHeight);
    expect(report.checks['certificate signatures verify']).toBe(report.finalHeight * 4);
    expect(report.checks['acknowledged transaction on every node']).toBe(report.acknowledged * 4);
    for (const f of report.faults) expect(f.healToCommitMs).toBeLessThan(30_000);
  }, 240_000);
});
