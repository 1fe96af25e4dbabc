// Goal: the `trellis demo` storyline (demo/storyline.ts) plays green in-process on the genesis `trellis init` writes, twice in a row with the same participants (a re-run skips their registration and starts a fresh story), so a contract change that breaks the demo fails here in seconds, before the cluster test.
import { describe, expect, it } from 'vitest';
import { DEMO_PARTICIPANTS, demoChapters } from '../../demo/storyline.ts';
import { demoGenesisChain, playInProcess } from './playInProcess.ts';

describe('demo storyline in-process', () => {
  it('runs every step with the outcome it names, and again with the same participants', () => {
    const chain = demoGenesisChain();
    try {
      const planned = demoChapters().flatMap((c) => c.steps.map((s) => s.title));
      const first = playInProcess(chain, { run: 'first' });
      expect(first.steps.filter((s) => !s.ok)).toEqual([]);
      expect(first.steps.map((s) => s.title)).toEqual(planned);
      expect(first.steps.filter((s) => s.status === 'skipped')).toEqual([]);
      const second = playInProcess(chain, { run: 'second' });
      expect(second.steps.filter((s) => !s.ok)).toEqual([]);
      expect(second.steps.map((s) => s.title)).toEqual(planned);
      // The second run finds its staff registered and skips exactly their proposals and approvals.
      expect(second.steps.filter((s) => s.status === 'skipped')).toHaveLength(2 * DEMO_PARTICIPANTS.length);
      expect(chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({ used: 0 });
    } finally {
      chain.close();
    }
  });
});
