// Goal: round timers grow per round (base × growth^round), stop at the cap, and every timer the
// machine arms is for its current (height, round); bad timer options are refused up front.
import { describe, expect, it } from 'vitest';
import { resolveConsensusConfig, roundTimeoutMs } from '../../consensus/config.ts';
import { startConsensus, step } from '../../consensus/stateMachine.ts';
import { optionsFor, outputsOf, startOf, validatorsOf } from './helpers.ts';

const vs = validatorsOf(4);

describe('round timeouts', () => {
  const config = resolveConsensusConfig({
    ...optionsFor(vs[0]!),
    roundTimeoutBaseMs: 1000,
    roundTimeoutGrowth: 2,
    roundTimeoutMaxMs: 10_000,
  });

  it('grow geometrically and stop at the cap, even for absurd rounds', () => {
    expect([0, 1, 2, 3, 4, 5].map((r) => roundTimeoutMs(config, r))).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
    expect(roundTimeoutMs(config, 5000)).toBe(10_000);
    expect(roundTimeoutMs(config, Number.MAX_SAFE_INTEGER)).toBe(10_000);
  });

  it('use the defaults when not configured', () => {
    const d = resolveConsensusConfig({ chainId: 'c', self: vs[0]!.address });
    expect([roundTimeoutMs(d, 0), roundTimeoutMs(d, 1), roundTimeoutMs(d, 50)]).toEqual([2000, 3000, 30_000]);
  });

  it('refuses options that could not run', () => {
    const base = optionsFor(vs[0]!);
    expect(() => resolveConsensusConfig({ ...base, roundTimeoutBaseMs: 0 })).toThrow(/roundTimeoutBaseMs/);
    expect(() =>
      resolveConsensusConfig({ ...base, roundTimeoutBaseMs: 5000, roundTimeoutMaxMs: 1000 }),
    ).toThrow(/roundTimeoutMaxMs/);
    expect(() => resolveConsensusConfig({ ...base, roundTimeoutGrowth: 0.5 })).toThrow(/roundTimeoutGrowth/);
    expect(() => resolveConsensusConfig({ ...base, chainId: '' })).toThrow(/chainId/);
    expect(() => resolveConsensusConfig({ ...base, maxFutureRounds: 1.5 })).toThrow(/maxFutureRounds/);
  });
});

describe('timers armed by the state machine', () => {
  it('arms the round-0 timer at start and the grown timer for each new round', () => {
    const o = {
      ...optionsFor(vs[3]!),
      roundTimeoutBaseMs: 1000,
      roundTimeoutGrowth: 2,
      roundTimeoutMaxMs: 5000,
    };
    const started = startConsensus(o, startOf(vs));
    expect(outputsOf(started.outputs, 'scheduleTimer').map((t) => [t.height, t.round, t.delayMs])).toEqual([
      [1, 0, 1000],
    ]);
    let state = started.state;
    const delays: number[] = [];
    for (let round = 0; round < 4; round++) {
      // Mark the round live as a quorum would, so the timeout advances instead of staying.
      const r = step(state, { kind: 'timeout', height: 1, round });
      delays.push(...outputsOf(r.outputs, 'scheduleTimer').map((t) => t.delayMs));
      state = { ...r.state, roundLive: true };
    }
    expect(delays).toEqual([2000, 4000, 5000, 5000]);
    expect(state.round).toBe(4);
  });

  it('ignores a timer for another height or round', () => {
    const { state } = startConsensus(optionsFor(vs[3]!), startOf(vs));
    for (const [height, round] of [
      [1, 1],
      [0, 0],
      [2, 0],
    ] as const) {
      const r = step(state, { kind: 'timeout', height, round });
      expect(r.outputs).toEqual([]);
      expect(r.state.round).toBe(0);
    }
  });
});
