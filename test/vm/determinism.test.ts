// Goal: one block sequence gives identical state roots, receipts and gas in a fresh process and on
// a warm executor, and no call can leave anything behind for the next one.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeReceipt } from '../../core/types.ts';
import { fromHex } from '../../core/bytes.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';
import { API_PROBE, PERSISTENCE_ATTEMPTS, example } from './helpers/contracts.ts';
import { runScenario, type ScenarioSummary } from './helpers/scenario.ts';

function inChild(script: string, input?: string): string {
  const r = spawnSync(process.execPath, ['--no-warnings', fileURLToPath(new URL(script, import.meta.url))], {
    input,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
  return r.stdout;
}

const chains: TestChain[] = [];
afterAll(() => chains.forEach((c) => c.close()));

describe('determinism', () => {
  it('a fresh process and a warm executor agree on every root, receipt and gas figure', () => {
    const fresh = JSON.parse(inChild('./helpers/runScenario.ts')) as ScenarioSummary;

    // Warm one executor: same contracts, other state, many calls (contexts warm, code optimised).
    const warmer = createTestChain();
    chains.push(warmer);
    runScenario(warmer);
    for (let i = 0; i < 300; i++) {
      warmer.call('rcv', 'transfer', { to: warmer.account('carol').address, amount: 1 }, { from: 'alice' });
      warmer.call('attempts', 'moduleObject');
    }
    // The same executor (warm isolate, warm contexts) runs the scenario on a fresh state.
    const warm = createTestChain({ sharedExecutor: warmer.executor });
    expect(runScenario(warm)).toEqual(fresh);

    // And a second run in-process on yet another fresh state gives the same again.
    const again = createTestChain();
    chains.push(again);
    expect(runScenario(again)).toEqual(fresh);
  });

  it('state kept in module scope, on prototypes or on the global fails identically every time', () => {
    const run = (chain: TestChain): string[] => {
      chain.deploy('attempts', PERSISTENCE_ATTEMPTS);
      const out: string[] = [];
      for (let round = 0; round < 3; round++) {
        for (const m of [
          'moduleObject',
          'moduleArray',
          'staticField',
          'functionProperty',
          'arrayPrototype',
          'objectPrototype',
          'hiddenPrototype',
          'globalObject',
          'globalDefine',
          'replaceBuiltin',
          'errorLimit',
          'counters',
          'ctxObject',
        ]) {
          const r = chain.call('attempts', m);
          out.push(`${m}:${r.status}:${r.errorCode}:${JSON.stringify(r.returnValue)}:${r.error}`);
        }
      }
      return out;
    };
    const warmer = createTestChain();
    chains.push(warmer);
    warmer.deploy('attempts', PERSISTENCE_ATTEMPTS);
    for (let i = 0; i < 200; i++) warmer.call('attempts', i % 2 === 0 ? 'moduleObject' : 'arrayPrototype');
    const warm = run(createTestChain({ sharedExecutor: warmer.executor }));
    const freshChain = createTestChain();
    chains.push(freshChain);
    const fresh = run(freshChain);
    expect(warm).toEqual(fresh);
    // Every attempt to write outside the call's own frame is refused; nothing counts up.
    for (const line of warm) {
      const [method, status] = line.split(':');
      if (method === 'counters') expect(status).toBe('ok');
      else expect(status, line).toBe('reverted');
    }
    // Round 2 and 3 see exactly what round 1 saw.
    expect(warm.slice(0, 13)).toEqual(warm.slice(13, 26));
    expect(warm.slice(0, 13)).toEqual(warm.slice(26, 39));
  });

  it('the nondeterministic APIs are absent and the intrinsics are frozen', () => {
    const chain = createTestChain();
    chains.push(chain);
    chain.deploy('probe', API_PROBE);
    const r = chain.view('probe', 'probe');
    expect(r.status).toBe('ok');
    const v = r.returnValue as Record<string, unknown>;
    expect(v['present']).toEqual([]);
    expect(v['mathRandom']).toBe('undefined');
    expect(v['symbolFor']).toBe('undefined');
    expect(v['localeCompare']).toBe('undefined');
    expect(v['frozenGlobal']).toBe(true);
    expect(v['frozenArrayProto']).toBe(true);
    expect(v['frozenIteratorProto']).toBe(true);
    expect(v['globals']).toMatchSnapshot();
  });

  it('identical source gives identical artifact bytes in separate processes', () => {
    const source = example('receivable');
    const a = JSON.parse(inChild('./helpers/compileInChild.ts', source)) as {
      artifact: string;
      hash: string;
    };
    const b = JSON.parse(inChild('./helpers/compileInChild.ts', source)) as {
      artifact: string;
      hash: string;
    };
    expect(a.artifact).toBe(b.artifact);
    const chain = createTestChain();
    chains.push(chain);
    const deployed = chain.deploy('rcv', source);
    expect(deployed.status).toBe('ok');
    const artifactHash = (deployed.returnValue as Record<string, Uint8Array>)['artifactHash']!;
    expect(Buffer.from(artifactHash).toString('hex')).toBe(a.hash.slice(2));
  });

  it('receipts in the summary decode as canonical receipts', () => {
    const chain = createTestChain();
    chains.push(chain);
    const s = runScenario(chain);
    for (const hex of s.receipts) expect(() => decodeReceipt(fromHex(hex))).not.toThrow();
  });
});
