// Goal: the `trellis demo` storyline (demo/storyline.ts) runs green in-process on the genesis
// `trellis init` writes: every step's transaction succeeds with the outcome it names, and at the
// end the credit line is restored and no asset is left encumbered.
import { describe, expect, it } from 'vitest';
import { demoChapters } from '../../demo/storyline.ts';
import { demoGenesisChain, formatPlayedStep, playInProcess } from '../demo/playInProcess.ts';
import { dump } from './helpers.ts';

describe('demo storyline', () => {
  it('runs every step with the outcome it names', () => {
    const chain = demoGenesisChain();
    try {
      const report = playInProcess(chain, { run: 'contracts' });
      console.log(report.steps.map(formatPlayedStep).join('\n'));
      expect(report.steps.filter((s) => !s.ok)).toEqual([]);
      expect(report.steps).toHaveLength(demoChapters().flatMap((c) => c.steps).length);
      expect(chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({ used: 0 });
      expect(dump(chain, 'encumbrances', 'e:').size).toBe(0);
    } finally {
      chain.close();
    }
  });
});
