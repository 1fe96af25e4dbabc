// Goal: the `trellis demo` storyline (demo/storyline.ts) plays green in-process on the genesis `trellis init` writes, twice in a row with the same participants (a re-run skips their registration and starts a fresh story), so a contract change that breaks the demo fails here in seconds, before the cluster test.
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { DEFAULT_ORGANISATIONS } from '../../node/cli/init.ts';
import { scfGenesisContracts } from '../../node/scfGenesis.ts';
import { createTestChain, TEST_GAS_LIMIT, type TestChain } from '../../vm/testing.ts';
import { adminActor, demoChapters, type DemoContext } from '../../demo/storyline.ts';

function genesisChain(): TestChain {
  const chain = createTestChain({ admins: ['deployer'], blockTimeMs: 1_000 });
  const orgs = DEFAULT_ORGANISATIONS.map((o) => ({
    ...o,
    admins: [chain.account(adminActor(o.id)).keys.publicKey],
  }));
  for (const c of scfGenesisContracts(orgs)) {
    const r = chain.deploy(c.name, c.source, {
      from: 'deployer',
      initArgs: c.initArgs,
      gasLimit: TEST_GAS_LIMIT,
    });
    expect(r.status, `deploy ${c.name}: ${r.error}`).toBe('ok');
  }
  return chain;
}

function statusOf(v: Value): string | null {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return null;
  return typeof v['status'] === 'string' ? v['status'] : null;
}

/** Plays every chapter once; returns "title: outcome" lines. */
function play(chain: TestChain, run: string): string[] {
  const results = new Map<string, Value>();
  const times = new Map<string, number>();
  const ctx = (): DemoContext => ({
    results,
    address: (a) => chain.account(a).address,
    now: chain.time,
    run,
  });
  const log: string[] = [];
  for (const chapter of demoChapters()) {
    for (const step of chapter.steps) {
      if (step.kind === 'tx') {
        if (step.skipIf !== undefined) {
          const v = chain.view(step.skipIf.contract, step.skipIf.view, step.skipIf.args(ctx())).returnValue;
          if (step.skipIf.holds(v)) {
            log.push(`${step.title}: skipped`);
            continue;
          }
        }
        const now = chain.time;
        const r = chain.call(step.contract, step.method, step.args(ctx()), {
          from: step.actor,
          gasLimit: TEST_GAS_LIMIT,
        });
        expect(r.status, `${step.title}: ${r.errorCode} ${r.error}`).toBe('ok');
        if (step.key !== undefined) {
          results.set(step.key, r.returnValue);
          times.set(step.key, now);
        }
        log.push(`${step.title}: ${toHex(r.txHash).slice(0, 12)} ok`);
      } else {
        // Blocks go by until the scheduled callback's event appears; it must come once it is due.
        const due = times.get(step.since)! + step.dueInMs;
        let found = false;
        while (!found) {
          expect(chain.time, `${step.title}: no ${step.event} by ${due}`).toBeLessThanOrEqual(due + 2_000);
          const block = chain.advance(1_000);
          found = block.events.some(
            (e) => e.contract === step.contract && e.name === step.event && step.match(e.data, ctx()),
          );
        }
        expect(chain.time).toBeGreaterThanOrEqual(due);
        log.push(`${step.title}: ${step.event}`);
      }
      if (step.expect !== undefined) {
        const v = chain.view(step.expect.contract, step.expect.view, step.expect.args(ctx())).returnValue;
        expect(statusOf(v), `${step.title} (${step.expect.label(ctx())})`).toBe(step.expect.status);
      }
    }
  }
  return log;
}

describe('demo storyline in-process', () => {
  it('runs every step with the outcome it names, and again with the same participants', () => {
    const chain = genesisChain();
    try {
      const first = play(chain, 'first');
      expect(first.filter((l) => l.endsWith('skipped'))).toEqual([]);
      const second = play(chain, 'second');
      // The second run finds its staff registered and skips exactly those 20 steps.
      expect(second.filter((l) => l.endsWith('skipped'))).toHaveLength(20);
      expect(second.length).toBe(first.length);
      expect(chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({ used: 0 });
    } finally {
      chain.close();
    }
  });
});
