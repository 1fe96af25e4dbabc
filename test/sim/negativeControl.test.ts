// Goal: the checker is not blind. With the quorum deliberately broken to 2f it finds a fork, and
// with a safety store that never fsyncs a crash makes an "honest" validator sign a conflict.
import { describe, expect, it } from 'vitest';
import { runSimulation, type SimResult } from './harness/simulation.ts';

async function firstViolation(
  maxSeeds: number,
  options: (seed: number) => Parameters<typeof runSimulation>[0],
): Promise<SimResult | null> {
  for (let seed = 0; seed < maxSeeds; seed++) {
    const r = await runSimulation(options(seed));
    if (r.violations.length > 0) return r;
  }
  return null;
}

describe('negative controls', () => {
  it('with a 2f quorum (test-only option) the checker finds a fork', async () => {
    const found = await firstViolation(60, (seed) => ({ seed, validators: 4, unsafeQuorum: 2 }));
    expect(found, 'no fork found in 60 seeds with quorum 2f').not.toBeNull();
    expect(found!.violations[0]).toMatch(/FORK: height \d+ committed as/);
    process.stdout.write(`negative control (2f quorum): seed ${found!.seed}: ${found!.violations[0]}\n`);
    // The same configuration with the real quorum on that seed is safe.
    const honest = await runSimulation({ seed: found!.seed, validators: 4 });
    expect(honest.violations).toEqual([]);
  });

  it('with a safety store that never fsyncs, a crash leads to a conflicting signature', async () => {
    const found = await firstViolation(80, (seed) => ({ seed, validators: 4, safetyStoreSkipsSync: true }));
    expect(found, 'no conflict found in 80 seeds without fsync').not.toBeNull();
    expect(found!.violations[0]).toMatch(/CONFLICTING_SIGNATURE: honest node \d+ signed two different/);
    expect(found!.stats.crashes).toBeGreaterThan(0);
    process.stdout.write(`negative control (no fsync): seed ${found!.seed}: ${found!.violations[0]}\n`);
  });
});
