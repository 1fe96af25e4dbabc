/**
 * Shared set-up of the IoT contract tests: membership (an enterprise, a bank, a regulator, an
 * outsider bank) and the iot contract on a fake chain, with one gateway at a plant site.
 */
import { readFileSync } from 'node:fs';
import type { Value } from '../../core/codec.ts';
import type { Receipt } from '../../core/types.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';

/** Source of one of our contracts. */
export function contractSource(name: string): string {
  return readFileSync(new URL(`../../contracts/${name}.ts`, import.meta.url), 'utf8');
}

/** Window length of the test gateway. */
export const WINDOW_MS = 1_000;
/** Heartbeat of the test gateway. */
export const HEARTBEAT_MS = 20_000;

/** A chain with membership + iot deployed and gateway `gw1` (account 'gw') registered. */
export function iotChain(): TestChain {
  const chain = createTestChain({ startTime: 1_700_000_000_000, blockTimeMs: 1_000, admins: ['deployer'] });
  const addr = (n: string) => chain.account(n).address;
  ok(
    chain.deploy('membership', contractSource('membership'), {
      from: 'deployer',
      initArgs: {
        organisations: [
          { id: 'acme', name: 'Acme', roles: ['core-enterprise', 'gateway'] },
          { id: 'bank', name: 'Harbour Bank', roles: ['bank'] },
          { id: 'bank2', name: 'Other Bank', roles: ['bank'] },
          { id: 'regulator', name: 'Regulator', roles: ['regulator'] },
        ],
        members: [
          { address: addr('acmeAdmin'), org: 'acme', roles: ['admin'] },
          { address: addr('acmeClerk'), org: 'acme', roles: [] },
          { address: addr('banker'), org: 'bank', roles: ['credit'] },
          { address: addr('banker2'), org: 'bank2', roles: ['credit'] },
          { address: addr('regulatorAdmin'), org: 'regulator', roles: ['admin'] },
        ],
      },
    }),
  );
  ok(
    chain.deploy('iot', contractSource('iot'), { from: 'deployer', initArgs: { membership: 'membership' } }),
  );
  ok(
    chain.call(
      'iot',
      'registerGateway',
      {
        id: 'gw1',
        enterprise: 'acme',
        site: 'plant',
        publicKey: chain.account('gw').keys.publicKey,
        windowMs: WINDOW_MS,
        heartbeatMs: HEARTBEAT_MS,
      },
      { from: 'acmeAdmin' },
    ),
  );
  return chain;
}

/** Asserts a receipt is ok (with the error in the message when it is not) and returns it. */
export function ok(r: Receipt): Receipt {
  if (r.status !== 'ok') throw new Error(`expected ok, got ${r.status} ${r.errorCode}: ${r.error}`);
  return r;
}

/** Names of a receipt's events. */
export function eventNames(r: Receipt): string[] {
  return r.events.map((e) => e.name);
}

/** The data of the first event named `name`. */
export function eventData(r: Receipt, name: string): Record<string, Value> | undefined {
  return r.events.find((e) => e.name === name)?.data as Record<string, Value> | undefined;
}

/**
 * Anchor arguments for the window starting at `start` with the given metric sums (n = 1 each),
 * naming `devices` (sorted here) as those that reported.
 */
export function batch(
  seqNo: number,
  start: number,
  sums: Record<string, number>,
  gateway = 'gw1',
  devices?: string[],
): Value {
  const metrics = Object.entries(sums).map(([metric, sum]) => ({ metric, n: 1, min: sum, max: sum, sum }));
  return {
    gateway,
    seqNo,
    windowStart: start,
    windowEnd: start + WINDOW_MS,
    count: Math.max(metrics.length, devices?.length ?? 0),
    root: new Uint8Array(32).fill(seqNo % 256),
    batchHash: new Uint8Array(32).fill(7),
    metrics,
    ...(devices === undefined ? {} : { devices: [...devices].sort() }),
  };
}

/** The aligned window start just before the chain's next block time. */
export function windowBefore(chain: TestChain): number {
  return Math.floor(chain.time / WINDOW_MS) * WINDOW_MS - WINDOW_MS;
}
