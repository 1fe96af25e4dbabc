// Goal: a real 4-validator cluster under 50 tx/s, with validators killed and restarted from disk
// and one stopped as a slow node, keeps one chain: same blocks, state roots and valid certificates
// on every node, every acknowledged transaction everywhere, and commits again soon after each heal.
import { describe, expect, it } from 'vitest';
import { runChaos, type ChaosReport } from './chaos.ts';

describe('chaos: faults under load on a real cluster', () => {
  it('holds every invariant through SIGKILL/restart and SIGSTOP/SIGCONT faults at 50 tx/s', async () => {
    const report: ChaosReport = await runChaos({
      basePort: 22900,
      durationMs: 30_000,
      rate: 50,
      faultEveryMs: 5_000,
      faultHoldMs: 1_500,
      faults: ['kill', 'stop', 'kill'],
      seed: 7,
      minFaults: 3,
    });
    expect(report.violations).toEqual([]);
    // The run did what it claims: faults of both kinds, load committed, every check ran.
    expect(report.faultsByKind.kill).toBeGreaterThanOrEqual(2);
    expect(report.faultsByKind.stop).toBeGreaterThanOrEqual(1);
    expect(report.acknowledged).toBeGreaterThan(report.sent / 2);
    expect(report.checks['one block per height']).toBe(report.finalHeight);
    expect(report.checks['certificate signatures verify']).toBe(report.finalHeight * 4);
    expect(report.checks['acknowledged transaction on every node']).toBe(report.acknowledged * 4);
    for (const f of report.faults) expect(f.healToCommitMs).toBeLessThan(30_000);
  }, 240_000);
});
