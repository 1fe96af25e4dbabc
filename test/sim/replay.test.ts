// Goal: a simulation is a pure function of its seed, so a failing seed replays exactly:
//   SIM_SEED=1234 npx vitest run test/sim/replay.test.ts      (add SIM_TRACE=1 to print every event)
import { describe, expect, it } from 'vitest';
import { replayHint, runSimulation } from './harness/simulation.ts';

describe('replay', () => {
  it('runs the same seed to the identical event trace, twice', async () => {
    const a = await runSimulation({ seed: 4242 });
    const b = await runSimulation({ seed: 4242 });
    expect(b.digest).toBe(a.digest);
    expect(b.heights).toEqual(a.heights);
    expect(b.stats).toEqual(a.stats);
    expect(a.stats.events).toBeGreaterThan(100);
    const other = await runSimulation({ seed: 4243 });
    expect(other.digest).not.toBe(a.digest);
  });

  const seed = process.env['SIM_SEED'];
  it.runIf(seed !== undefined)(`replays SIM_SEED=${seed ?? '-'}`, async () => {
    const r = await runSimulation({ seed: Number(seed), trace: process.env['SIM_TRACE'] === '1' });
    process.stdout.write(
      `seed ${r.seed}: ${r.validators} validators, byzantine ${String(r.byzantine)}, heights ${r.heights.join(',')}, ` +
        `${r.stats.events} events, digest ${r.digest}\n${JSON.stringify(r.stats)}\n`,
    );
    if (r.violations.length > 0)
      throw new Error(`${r.violations.join('\n')}\n${replayHint(r.seed, 'test/sim/replay.test.ts')}`);
  });
});
