/**
 * What the property tests of the supply-chain-finance contracts (receivables, order financing,
 * warehouse receipts) share: each run plays random operations on a fresh clone of the test
 * consortium through a recorder, every call is checked the same way (a refusal is a clean revert
 * that changes nothing, a success that changes state says so in an event, a retry with the same
 * opId returns the first result and changes nothing), and at the end the contract's records and
 * the encumbrance registry are rebuilt from the recorded events alone and compared with the state.
 * The tests keep their own generators, invariants and event replays.
 */
import { expect } from 'vitest';
import type { Value } from '../../core/codec.ts';
import type { Event, Receipt } from '../../core/types.ts';
import type { TestChain } from '../../vm/testing.ts';
import { consortium, dump, norm, recorder, snapshot, stringify, str, type Recorder } from './helpers.ts';

/** Runs of each property: `RUNS` from the environment (for a quick local pass), 500 by default. */
export const PROPERTY_RUNS = Number(process.env.RUNS ?? 500);

/** fast-check parameters: {@link PROPERTY_RUNS} runs from a fixed seed, so a failure replays exactly. */
export function propertyParameters(seed: number): { numRuns: number; seed: number } {
  return { numRuns: PROPERTY_RUNS, seed };
}

/** One property run: a fresh consortium clone and its recorder. */
export interface PropertyRun {
  readonly chain: TestChain;
  readonly rec: Recorder;
  /**
   * Sends one call and checks it: a success is counted, must emit an event if it changed the
   * watched contracts' state, and (on the harness's contract) becomes what {@link retry} repeats;
   * a refusal must be a revert with an UPPER_CASE code and change nothing.
   */
  readonly call: (contract: string, method: string, args: Value, from: string) => Receipt;
  /**
   * Sends the last successful call again (same opId, same sender): it must return the first
   * result, emit nothing and change nothing. Does nothing before the run's first success.
   */
  readonly retry: () => void;
}

/** Options of {@link createPropertyHarness}. */
export interface PropertyHarnessOptions {
  /** Names the counts in the log (e.g. "receivables"). */
  readonly name: string;
  /** The contract under test: its successful calls are the ones {@link PropertyRun.retry} repeats. */
  readonly contract: string;
  /** Contracts whose state a refused call must leave byte for byte as it was. */
  readonly watched: readonly string[];
}

/** Runs and success counts of one property, across all its runs. */
export interface PropertyHarness {
  /** Plays one run on a fresh consortium clone, closed afterwards whatever happens. */
  run(body: (run: PropertyRun) => void): void;
  /** Counts one success of `name` (a method, or an event a scheduled callback emitted). */
  count(name: string): void;
  /**
   * After fc.assert: every run ran, the counts are logged, and each of `reached` succeeded at
   * least once (otherwise the property would hold vacuously).
   */
  finish(reached: readonly string[]): void;
}

/** A harness for one property `it`. */
export function createPropertyHarness(options: PropertyHarnessOptions): PropertyHarness {
  let runs = 0;
  const succeeded = new Map<string, number>();
  const count = (name: string): void => {
    succeeded.set(name, (succeeded.get(name) ?? 0) + 1);
  };
  return {
    count,
    run(body) {
      runs++;
      const chain = consortium();
      const rec = recorder(chain);
      let last: { contract: string; method: string; args: Value; from: string; result: Value } | null = null;
      const watched = (): string => snapshot(chain, options.watched);
      try {
        body({
          chain,
          rec,
          call: (contract, method, args, from) => {
            const before = watched();
            const r = rec.call(contract, method, args, from);
            if (r.status === 'ok') {
              count(method);
              if (watched() !== before) expect(r.events.length).toBeGreaterThan(0);
              if (contract === options.contract)
                last = { contract, method, args, from, result: r.returnValue };
            } else {
              if (process.env.DEBUG_OPS) console.log(method, r.errorCode, r.error);
              expect(r.status).toBe('reverted');
              expect(r.errorCode).toMatch(/^[A-Z_]+$/);
              expect(watched()).toBe(before);
            }
            return r;
          },
          retry: () => {
            if (last === null) return;
            const before = watched();
            const r = rec.call(last.contract, last.method, last.args, last.from);
            expect(r.status).toBe('ok');
            expect(stringify(norm(r.returnValue))).toBe(stringify(norm(last.result)));
            expect(r.events).toEqual([]);
            expect(watched()).toBe(before);
          },
        });
      } finally {
        chain.close();
      }
    },
    finish(reached) {
      expect(runs).toBe(PROPERTY_RUNS);
      console.log(`${options.name}: successful operations`, Object.fromEntries(succeeded));
      for (const m of reached) expect(succeeded.get(m) ?? 0, m).toBeGreaterThan(0);
    },
  };
}

/**
 * The records stored under `prefix` in one contract's decoded state (from dumpAll or dump), with
 * the named integer fields as bigints (small integers decode as numbers).
 */
export function recordsOf<T>(
  state: ReadonlyMap<string, Value> | undefined,
  prefix: string,
  integers: readonly (keyof T & string)[],
): T[] {
  return [...(state ?? new Map<string, Value>()).entries()]
    .filter(([k]) => k.startsWith(prefix))
    .map(([, raw]) => {
      const r = { ...(raw as Record<string, Value>) };
      for (const f of integers) r[f] = BigInt(r[f] as number | bigint);
      return r as unknown as T;
    });
}

/** Canonical text of records by key (sorted, integers as bigints), to compare rebuilt with stored. */
function canonical(records: ReadonlyMap<string, Value>): string {
  return stringify([...records.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, norm(v)]));
}

/** Records rebuilt from events equal the stored ones (same keys, same values). */
export function expectRebuilt(rebuilt: ReadonlyMap<string, Value>, stored: ReadonlyMap<string, Value>): void {
  expect(canonical(rebuilt)).toBe(canonical(stored));
}

/**
 * The encumbrance registry rebuilt from `base` (its entries before the run, by `e:<asset>` key)
 * and the registry's events, compared with the stored registry.
 */
export function expectEncumbrancesRebuilt(
  chain: TestChain,
  events: readonly Event[],
  base: ReadonlyMap<string, Value> = new Map(),
): void {
  const enc = new Map(base);
  for (const e of events) {
    if (e.contract !== 'encumbrances') continue;
    const d = e.data as Record<string, Value>;
    const key = `e:${str(d['asset'])}`;
    if (d['encumbrance'] === null) enc.delete(key);
    else enc.set(key, d['encumbrance']!);
  }
  expectRebuilt(enc, dump(chain, 'encumbrances', 'e:'));
}
