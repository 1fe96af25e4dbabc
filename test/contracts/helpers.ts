/**
 * Shared set-up of the supply-chain-finance contract tests: one deployed consortium (the six
 * contracts, seven organisations and their members) built once and cloned per test or per
 * property run, so every run starts from the same state without redeploying.
 */
import { existsSync, readFileSync } from 'node:fs';
import { toHex, utf8 } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { addressOf, keyPairFromSecret } from '../../core/keys.ts';
import { decodeValue, type Value } from '../../core/codec.ts';
import type { Receipt } from '../../core/types.ts';
import { SCF_CONTRACTS } from '../../node/scfGenesis.ts';
import { createExecutor, type Executor } from '../../vm/executor.ts';
import type { MemoryState } from '../../vm/memoryState.ts';
import { createTestChain, type TestChain } from '../../vm/testing.ts';

/** Source of one of our contracts. */
export function source(name: string): string {
  return readFileSync(new URL(`../../contracts/${name}.ts`, import.meta.url), 'utf8');
}

/** The test consortium: organisation id → roles, and named accounts → (org, member roles). */
export const ORGS = [
  { id: 'acme', name: 'Acme', roles: ['core-enterprise'] },
  { id: 'tier1', name: 'Tier 1', roles: ['supplier'] },
  { id: 'tier2', name: 'Tier 2', roles: ['supplier'] },
  { id: 'bank', name: 'Harbour Bank', roles: ['bank'] },
  { id: 'bank2', name: 'Second Bank', roles: ['bank'] },
  { id: 'warehouse', name: 'Central Warehouse', roles: ['warehouse'] },
  { id: 'exchange', name: 'Commodity Exchange', roles: ['exchange'] },
  { id: 'regulator', name: 'Regulator', roles: ['regulator'] },
  { id: 'distributor', name: 'Distributor', roles: ['supplier'] },
] as const;

/** Account name → [org, member roles]. */
export const MEMBERS: Record<string, [string, string[]]> = {
  acmeAdmin: ['acme', ['admin']],
  treasurer1: ['acme', ['treasury']],
  treasurer2: ['acme', ['treasury']],
  treasurer3: ['acme', ['treasury']],
  acmeClerk: ['acme', []],
  t1: ['tier1', ['admin']],
  t2: ['tier2', ['admin']],
  bankAdmin: ['bank', ['admin']],
  banker: ['bank', ['credit']],
  bank2Admin: ['bank2', ['admin']],
  warehouseAdmin: ['warehouse', ['admin']],
  keeper: ['warehouse', []],
  exchangeAdmin: ['exchange', ['admin']],
  regulatorAdmin: ['regulator', ['admin']],
  distributorAdmin: ['distributor', ['admin']],
};

/**
 * Deployment order and names: the genesis order (each contract calls only those before it) without
 * the IoT contract, which test/iot sets up on its own.
 */
export const CONTRACTS = SCF_CONTRACTS.filter((n) => n !== 'iot');

export const CREDIT_LIMIT = 1_000_000n;

/** Gas limit of every test transaction (within the VM's maximum). */
export const GAS = 10_000_000;

/** The address createTestChain gives account `name`. */
export function accountAddress(name: string): string {
  return toHex(addressOf(keyPairFromSecret(sha256(utf8(`trellis.test-account.${name}`))).publicKey));
}

let base: { state: MemoryState; executor: Executor } | null = null;

/** Deploys everything once (as 'deployer') and returns a clone of that state with a shared executor. */
export function consortium(): TestChain {
  if (base === null) {
    // 'tester' deploys test-only contracts into a cloned consortium (its nonce starts at 0 there).
    const executor = createExecutor({ admins: [accountAddress('deployer'), accountAddress('tester')] });
    const chain = createTestChain({ sharedExecutor: executor });
    const addr = (n: string) => chain.account(n).address;
    const initArgs: Record<string, Value> = {
      membership: {
        organisations: ORGS.map((o) => ({ ...o, roles: [...o.roles] })),
        members: Object.entries(MEMBERS).map(([n, [org, roles]]) => ({ address: addr(n), org, roles })),
      },
      approvals: {
        governance: { tree: { kind: 'members', role: 'admin', min: 3 } },
        policies: [
          {
            id: 'acme.confirm',
            tree: {
              kind: 'threshold',
              min: 1,
              of: [{ kind: 'members', org: 'acme', role: 'treasury', min: 2 }],
            },
          },
        ],
      },
      encumbrances: null,
      receivables: { creditLines: [{ org: 'acme', limit: CREDIT_LIMIT }] },
      warehouseReceipts: null,
      orderFinancing: null,
    };
    for (const c of CONTRACTS.filter((n) =>
      existsSync(new URL(`../../contracts/${n}.ts`, import.meta.url)),
    )) {
      const r = chain.deploy(c, source(c), {
        from: 'deployer',
        initArgs: initArgs[c] ?? null,
        gasLimit: GAS,
      });
      if (r.status !== 'ok') throw new Error(`deploy ${c}: ${r.errorCode} ${r.error}`);
    }
    base = { state: chain.state, executor };
  }
  // Time moves only through advance(), so a transaction's block never runs callbacks by itself
  // and a refused transaction can be checked to change nothing.
  //
  // The state's Merkle root (recomputed over every entry, contract code included, after each
  // block) is the VM's concern and tested there; it dominated these tests' time, so blocks here
  // report a zero root and the tests compare the exact state bytes instead (snapshot()).
  const state = Object.create(base.state.clone()) as MemoryState;
  Object.defineProperty(state, 'root', { value: () => new Uint8Array(32) });
  return createTestChain({ sharedExecutor: base.executor, state, blockTimeMs: 0 });
}

/** Closes the shared executor (call in afterAll). */
export function closeConsortium(): void {
  base?.executor.close();
  base = null;
}

/** Every state entry of one contract, decoded: key → value. */
export function dump(chain: TestChain, contract: string, prefix = ''): Map<string, Value> {
  const out = new Map<string, Value>();
  for (const [c, k, v] of chain.state.entries()) {
    const key = Buffer.from(k).toString('utf8');
    if (c === contract && key.startsWith(prefix)) out.set(key, decodeValue(v));
  }
  return out;
}

/** Every contract's state, decoded, in one pass: contract → key → value (system state skipped). */
export function dumpAll(chain: TestChain): Map<string, Map<string, Value>> {
  const out = new Map<string, Map<string, Value>>();
  for (const [c, k, v] of chain.state.entries()) {
    if (c.startsWith('$')) continue;
    let m = out.get(c);
    if (m === undefined) out.set(c, (m = new Map<string, Value>()));
    m.set(Buffer.from(k).toString('utf8'), decodeValue(v));
  }
  return out;
}

/** Normalises integers (numbers and bigints) to bigint, recursively, for comparisons. */
export function norm(v: unknown): unknown {
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  if (Array.isArray(v)) return v.map(norm);
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  }
  return v;
}

/** Throws with the receipt's error when it is not ok. */
export function ok(r: Receipt): Receipt {
  if (r.status !== 'ok') throw new Error(`expected ok, got ${r.status} ${r.errorCode}: ${r.error}`);
  return r;
}

/** A chain wrapper that records every event of every receipt, in order, for replay checks. */
export interface Recorder {
  readonly chain: TestChain;
  readonly events: Array<{ contract: string; name: string; data: Value }>;
  call(contract: string, method: string, args: Value, from: string): Receipt;
  advance(ms: number): void;
}

/** Wraps a chain so that every call and every block's scheduled callbacks record their events. */
export function recorder(chain: TestChain): Recorder {
  const events: Recorder['events'] = [];
  return {
    chain,
    events,
    call(contract, method, args, from) {
      const r = chain.block([{ contract, method, args, from, gasLimit: GAS }]);
      for (const e of r.events) events.push(e);
      return r.receipts[r.receipts.length - 1]!;
    },
    advance(ms) {
      // Callbacks scheduled for a time already passed run in the next block: run blocks until
      // none is due.
      let r = chain.advance(ms);
      for (const e of r.events) events.push(e);
      while (r.scheduled > 0) {
        r = chain.advance(0);
        for (const e of r.events) events.push(e);
      }
    },
  };
}

/** The exact bytes of some contracts' state (entries come sorted), to check that nothing changed. */
export function snapshot(chain: TestChain, contracts: readonly string[]): string {
  const parts: string[] = [];
  for (const [c, k, v] of chain.state.entries()) {
    if (contracts.includes(c))
      parts.push(`${c}|${Buffer.from(k).toString('latin1')}|${Buffer.from(v).toString('latin1')}`);
  }
  return parts.join('\n');
}

/** JSON with bigints and bytes. */
export function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    typeof x === 'bigint' ? `${x}n` : x instanceof Uint8Array ? Buffer.from(x).toString('hex') : x,
  );
}

/** A string field of an event or record (throws when it is not one). */
export function str(v: Value | undefined): string {
  if (typeof v !== 'string') throw new Error(`expected a string, got ${stringify(v)}`);
  return v;
}
