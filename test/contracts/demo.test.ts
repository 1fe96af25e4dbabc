// Goal: the `trellis demo` storyline (test/contracts/demoStory.ts) runs green in-process on the
// genesis `trellis init` writes: every step's transaction succeeds with the outcome it names, and
// at the end the credit line is restored and no asset is left encumbered.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { DEFAULT_ORGANISATIONS } from '../../node/cli/init.ts';
import { scfGenesisContracts } from '../../node/scfGenesis.ts';
import { createTestChain } from '../../vm/testing.ts';
import { demoSteps, type DemoContext } from './demoStory.ts';
import { GAS, dump, ok } from './helpers.ts';

describe('demo storyline', () => {
  it('runs every step with the outcome it names', () => {
    const chain = createTestChain({ admins: ['deployer'], blockTimeMs: 1_000 });
    const orgs = DEFAULT_ORGANISATIONS.map((o) => ({
      ...o,
      admins: [chain.account(`${o.id}-admin`).keys.publicKey],
    }));
    for (const c of scfGenesisContracts(orgs))
      ok(chain.deploy(c.name, c.source, { from: 'deployer', initArgs: c.initArgs, gasLimit: GAS }));
    const results = new Map<string, Value>();
    const ctx = (): DemoContext => ({ results, address: (a) => chain.account(a).address, now: chain.time });
    const log: string[] = [];
    for (const [i, step] of demoSteps().entries()) {
      if (step.waitMs !== undefined) {
        chain.advance(step.waitMs);
        log.push(`${i + 1}. ${step.title}: waited ${step.waitMs} ms`);
      } else {
        const r = chain.call(step.contract!, step.method!, step.args!(ctx()), {
          from: step.actor!,
          gasLimit: GAS,
        });
        log.push(
          `${i + 1}. ${step.title}: ${toHex(r.txHash).slice(0, 18)} ${r.status}${r.errorCode ? ` ${r.errorCode}` : ''}, gas ${r.gasUsed}`,
        );
        expect(r.status, `${step.title}: ${r.errorCode} ${r.error}`).toBe('ok');
        if (step.key !== undefined) results.set(step.key, r.returnValue);
      }
      if (step.expect !== undefined) {
        const v = chain.view(step.expect.contract, step.expect.view, step.expect.args(ctx()));
        expect((v.returnValue as { status?: string } | null)?.status, step.title).toBe(step.expect.status);
      }
    }
    console.log(log.join('\n'));
    expect(chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({ used: 0 });
    expect(dump(chain, 'encumbrances', 'e:').size).toBe(0);
    chain.close();
  });
});
