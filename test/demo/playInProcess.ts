/**
 * Plays the `trellis demo` storyline (demo/storyline.ts) in-process, on a vm/testing.ts chain that
 * holds the genesis `trellis init` writes, with the semantics demo/runDemo.ts has over JSON-RPC:
 * a group of steps goes out together (here: in one block), a step whose `skipIf` holds is skipped,
 * each transaction's outcome is read back through its `expect` view, an awaited callback is found
 * by its event from the block of the step that scheduled it, and the run stops at the first failed
 * step. Where runDemo sleeps until the event appears, this moves the test chain's clock: straight to
 * the callback's due time, then a block at a time until `callbackGraceMs` after it.
 *
 * It reports runDemo's {@link DemoStepResult}s (with the gas each used), so a test can print them
 * as `trellis demo` does and assert on the same fields.
 */
import type { Bytes } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import type { Event } from '../../core/types.ts';
import {
  awaitStepResult,
  demoOutcome,
  DemoError,
  failedStep,
  skippedStep,
  txStepResult,
  type DemoOutcome,
  type DemoStepOutcome,
  type DemoStepResult,
} from '../../demo/runDemo.ts';
import {
  adminActor,
  DEFAULT_DEMO_TIMING,
  demoChapters,
  type DemoAwaitStep,
  type DemoContext,
  type DemoExpect,
  type DemoStep,
  type DemoTiming,
  type DemoTxStep,
} from '../../demo/storyline.ts';
import { formatStep } from '../../node/cli/demo.ts';
import { DEFAULT_ORGANISATIONS } from '../../node/cli/init.ts';
import { scfGenesisContracts } from '../../node/scfGenesis.ts';
import type { BlockResult } from '../../vm/executor.ts';
import { createTestChain, TEST_GAS_LIMIT, type TestChain } from '../../vm/testing.ts';

/** Block interval of {@link demoGenesisChain}, ms: the clock moves this much after every block. */
export const DEMO_BLOCK_MS = 1_000;

/**
 * A test chain with the `trellis init` consortium deployed (node/scfGenesis.ts over
 * DEFAULT_ORGANISATIONS), each organisation administered by test account `adminActor(org)`, so
 * the storyline's actor names are the chain's account names. Close it when done.
 */
export function demoGenesisChain(): TestChain {
  const chain = createTestChain({ admins: ['deployer'], blockTimeMs: DEMO_BLOCK_MS });
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
    if (r.status !== 'ok') {
      chain.close();
      throw new Error(`demo genesis: deploy ${c.name}: ${r.errorCode} ${r.error}`);
    }
  }
  return chain;
}

/** One finished step, as runDemo reports it, with the gas its transaction or callback used. */
export interface PlayedStep extends DemoStepResult {
  /** Null when the step was skipped or could not run. */
  readonly gasUsed: number | null;
}

/** Options of {@link playInProcess}. */
export interface PlayOptions {
  /** The per-run tag in opIds, lots and references (distinct per play on one chain). */
  readonly run: string;
  readonly timing?: DemoTiming;
  /**
   * How long after a callback is due the player gives up, ms of chain time (default 5 s: on a
   * test chain a callback runs in the first block at or after its due time).
   */
  readonly callbackGraceMs?: number;
}

/** What a play did: every finished step in story order (it stops after the first failed one). */
export interface PlayReport {
  readonly ok: boolean;
  readonly steps: readonly PlayedStep[];
}

/** An event with where it came from, recorded from every block the player makes. */
interface SeenEvent extends Event {
  readonly height: number;
  readonly timestamp: number;
  readonly txHash: Bytes;
  readonly gasUsed: number;
}

type StepOutcome = DemoStepOutcome & { readonly gasUsed: number | null };

/** The `trellis demo` output line of a step, with its gas. */
export function formatPlayedStep(s: PlayedStep): string {
  return s.gasUsed === null ? formatStep(s) : `${formatStep(s)} | gas ${s.gasUsed}`;
}

/** Plays every chapter once on `chain` (from {@link demoGenesisChain}). Never throws for a failed step. */
export function playInProcess(chain: TestChain, options: PlayOptions): PlayReport {
  const timing = options.timing ?? DEFAULT_DEMO_TIMING;
  const graceMs = options.callbackGraceMs ?? 5_000;
  const results = new Map<string, Value>();
  /** Height and chain time at which each keyed step ran (what an await step searches from). */
  const marks = new Map<string, { height: number; now: number }>();
  const events: SeenEvent[] = [];
  const ctx = (): DemoContext => ({
    results,
    address: (actor) => chain.account(actor).address,
    now: chain.time,
    run: options.run,
  });

  const record = (timestamp: number, b: BlockResult): void => {
    for (const r of b.receipts)
      for (const e of r.events)
        events.push({ ...e, height: chain.height, timestamp, txHash: r.txHash, gasUsed: r.gasUsed });
  };

  const check = (expect: DemoExpect | undefined): DemoOutcome | null => {
    if (expect === undefined) return null;
    const c = ctx();
    return demoOutcome(expect, c, chain.view(expect.contract, expect.view, expect.args(c)).returnValue);
  };
  const failure = (step: DemoStep, err: unknown): StepOutcome => ({
    ...failedStep(step, err),
    gasUsed: null,
  });

  /** The steps of one group: skips settled first, then every remaining transaction in one block. */
  function runTxs(batch: readonly DemoTxStep[]): StepOutcome[] {
    const c = ctx();
    const out: Array<StepOutcome | undefined> = [];
    const sent: Array<{ i: number; step: DemoTxStep; args: Value }> = [];
    for (const [i, step] of batch.entries()) {
      try {
        const skip = step.skipIf;
        if (skip !== undefined && skip.holds(chain.view(skip.contract, skip.view, skip.args(c)).returnValue))
          out[i] = { ...skippedStep(step), gasUsed: null };
        else sent.push({ i, step, args: step.args(c) });
      } catch (err) {
        out[i] = failure(step, err);
      }
    }
    if (sent.length > 0) {
      const now = chain.time;
      const b = chain.block(
        sent.map((s) => ({
          contract: s.step.contract,
          method: s.step.method,
          args: s.args,
          from: s.step.actor,
          gasLimit: TEST_GAS_LIMIT,
        })),
      );
      record(now, b);
      for (const [k, { i, step }] of sent.entries()) {
        const r = b.receipts[b.scheduled + k]!;
        const ok = r.status === 'ok';
        if (ok && step.key !== undefined) {
          results.set(step.key, r.returnValue);
          marks.set(step.key, { height: chain.height, now });
        }
        try {
          const outcome = ok ? check(step.expect) : null;
          out[i] = { ...txStepResult(step, r, chain.height, outcome), gasUsed: r.gasUsed };
        } catch (err) {
          out[i] = failure(step, err);
        }
      }
    }
    return out.map((o) => o!);
  }

  function runAwait(step: DemoAwaitStep): StepOutcome {
    const mark = marks.get(step.since);
    if (mark === undefined)
      throw new Error(`demo: await step "${step.title}" names no earlier step ${step.since}`);
    const due = mark.now + step.dueInMs;
    // Every pass either finds the event or makes a block, and every block moves the clock by at
    // least DEMO_BLOCK_MS, so this ends by the deadline.
    for (;;) {
      const hit = events.find(
        (e) =>
          e.height >= mark.height &&
          e.contract === step.contract &&
          e.name === step.event &&
          step.match(e.data, ctx()),
      );
      if (hit !== undefined) {
        const found = awaitStepResult(step, hit.txHash, hit.height, check(step.expect));
        // A scheduled callback must not run before its due time; over RPC the wall clock hides
        // this, here the block times are exact.
        if (hit.timestamp < due)
          return {
            ...found,
            error: `EARLY: ran in the block at ${hit.timestamp}, due at ${due}`,
            ok: false,
            gasUsed: hit.gasUsed,
          };
        return { ...found, gasUsed: hit.gasUsed };
      }
      if (chain.time > due + graceMs)
        throw new DemoError(
          'TIMEOUT',
          `no ${step.contract}.${step.event} event within ${graceMs} ms after it was due`,
          { contract: step.contract, event: step.event },
        );
      const ms = Math.max(0, due - chain.time);
      const timestamp = chain.time + ms;
      record(timestamp, chain.advance(ms));
    }
  }

  const steps: PlayedStep[] = [];
  for (const chapter of demoChapters(timing)) {
    const list = chapter.steps;
    for (let i = 0; i < list.length;) {
      // A run of steps sharing a group goes out together (runDemo's rule); others one at a time.
      const first = list[i]!;
      let j = i + 1;
      if (first.kind === 'tx' && first.group !== undefined)
        while (j < list.length) {
          const s = list[j]!;
          if (s.kind !== 'tx' || s.group !== first.group) break;
          j++;
        }
      let done: StepOutcome[];
      if (first.kind === 'await') {
        try {
          done = [runAwait(first)];
        } catch (err) {
          done = [failure(first, err)];
        }
      } else done = runTxs(list.slice(i, j) as DemoTxStep[]);
      for (const d of done) steps.push({ index: steps.length + 1, chapter: chapter.title, ...d });
      if (done.some((d) => !d.ok)) return { ok: false, steps };
      i = j;
    }
  }
  return { ok: true, steps };
}
