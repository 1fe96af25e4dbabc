import { afterAll, describe, expect, it } from 'vitest';
import { replayHint, runSimulation, type SimResult } from './simulation.ts';

/**
 * Registers one test per seed in [from, to) and a closing test that checks the faults were really
 * exercised (a simulation that never crashed anything proves nothing). When SIM_SEED is set the
 * ranges stand aside and test/sim/replay.test.ts runs that one seed.
 */
export function describeSeeds(from: number, to: number, file: string): void {
  const replaying = process.env['SIM_SEED'] !== undefined;
  describe.skipIf(replaying)(`simulation seeds ${from}..${to - 1}`, () => {
    const results: SimResult[] = [];
    afterAll(() => {
      const failed = results.filter((r) => r.violations.length > 0);
      if (failed.length > 0) {
        process.stderr.write(`failing seeds: ${failed.map((r) => r.seed).join(', ')}\n`);
      }
    });
    for (let seed = from; seed < to; seed++) {
      it(`seed ${seed}`, async () => {
        const r = await runSimulation({ seed });
        results.push(r);
        if (r.violations.length > 0) {
          throw new Error(
            `seed ${seed} broke an invariant:\n  ${r.violations.join('\n  ')}\n${replayHint(seed, file)}`,
          );
        }
        // Liveness: every honest node committed past the post-heal target.
        expect(Math.min(...r.heights.filter((_, i) => i !== r.byzantine))).toBeGreaterThanOrEqual(3);
      });
    }
    it('exercised every kind of fault across the range', () => {
      expect(results).toHaveLength(to - from);
      const sum = (f: (r: SimResult) => number) => results.reduce((a, r) => a + f(r), 0);
      const rejected = (code: string) => sum((r) => r.stats.rejected[code] ?? 0);
      const acts = (name: string) => sum((r) => r.stats.byzantineActs[name] ?? 0);
      expect(sum((r) => r.stats.messagesDropped)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.messagesDuplicated)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.partitions)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.crashes)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.crashesAfterPersist)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.restarts)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.syncedBlocks)).toBeGreaterThan(0);
      expect(sum((r) => r.stats.evidence)).toBeGreaterThan(0);
      expect(acts('equivocateProposal')).toBeGreaterThan(0);
      expect(acts('conflictingVotes')).toBeGreaterThan(0);
      expect(acts('forgedPreparedCertificate')).toBeGreaterThan(0);
      expect(acts('badSignature')).toBeGreaterThan(0);
      expect(rejected('BAD_SIGNATURE')).toBeGreaterThan(0);
      expect(rejected('BAD_ROUND_CHANGE')).toBeGreaterThan(0);
      expect(rejected('MALFORMED_MESSAGE')).toBeGreaterThan(0);
      expect(Math.max(...results.map((r) => r.stats.maxRound))).toBeGreaterThanOrEqual(3);
      expect(new Set(results.map((r) => r.validators))).toEqual(new Set([4, 5, 7]));
    });
  });
}
