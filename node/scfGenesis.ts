/**
 * Genesis wiring of the supply-chain-finance contracts (contracts/membership.ts, approvals.ts,
 * encumbrances.ts, receivables.ts, warehouseReceipts.ts, orderFinancing.ts) and the lifecycle
 * policy that lets governance approvals, rather than genesis admins, decide deploys, upgrades,
 * freezes and unfreezes.
 *
 * The genesis deployer (node/chain.ts genesisDeployerKey) signs the deploys, so no contract trusts
 * `ctx.sender` in `init`: everything they need comes from the initArgs built here.
 */
import { readFileSync } from 'node:fs';
import { fromHex, toHex, utf8, type Bytes } from '../core/bytes.ts';
import { decodeValue, type Value } from '../core/codec.ts';
import { addressOf } from '../core/keys.ts';
import type { LifecyclePolicy } from '../vm/executor.ts';
import { readCodeEntry } from '../vm/systemState.ts';

/** The contracts, in deployment order (each only calls contracts deployed before it). */
export const SCF_CONTRACTS = [
  'membership',
  'approvals',
  'encumbrances',
  'receivables',
  'warehouseReceipts',
  'orderFinancing',
  'iot',
] as const;

/** Credit line of each core enterprise at genesis, in minor units, unless the caller names one. */
export const DEFAULT_CREDIT_LINE = 100_000_000_000;

/** An organisation as a genesis names it (admins are Ed25519 public keys, bytes or hex). */
export interface ScfOrganisation {
  readonly id: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly admins: ReadonlyArray<Bytes | string>;
}

/** Options of {@link scfGenesisContracts}. */
export interface ScfGenesisOptions {
  /**
   * Organisations whose admins must approve a governance proposal (default: more than two thirds
   * of the organisations with admins, the BFT quorum, so f organisations cannot change the
   * consortium alone, however many admins each has).
   */
  readonly governanceThreshold?: number;
  /** Credit lines by core-enterprise organisation id (default {@link DEFAULT_CREDIT_LINE} each). */
  readonly creditLines?: Readonly<Record<string, number>>;
  /** Members besides the organisation admins (e.g. the load generator's senders), address as 0x-hex. */
  readonly members?: ReadonlyArray<{
    readonly address: string;
    readonly org: string;
    readonly roles: readonly string[];
  }>;
}

/** One genesis contract entry (the genesis file's `contracts` items, with inline source). */
export interface ScfGenesisContract {
  readonly name: string;
  readonly source: string;
  readonly initArgs: Value;
}

/** Reads a contract's TypeScript source from contracts/. */
export function scfContractSource(name: (typeof SCF_CONTRACTS)[number]): string {
  return readFileSync(new URL(`../contracts/${name}.ts`, import.meta.url), 'utf8');
}

/**
 * The `contracts` array of a genesis: the six contracts with their initArgs. Every organisation
 * admin becomes a member of its organisation with member role `admin`; governance needs admins of
 * `governanceThreshold` distinct organisations; each core enterprise gets a credit line.
 */
export function scfGenesisContracts(
  organisations: readonly ScfOrganisation[],
  options: ScfGenesisOptions = {},
): ScfGenesisContract[] {
  const members = [
    ...organisations.flatMap((o) =>
      o.admins.map((a) => ({
        address: toHex(addressOf(typeof a === 'string' ? fromHex(a) : a)),
        org: o.id,
        roles: ['admin'],
      })),
    ),
    ...(options.members ?? []).map((m) => ({ address: m.address, org: m.org, roles: [...m.roles] })),
  ];
  const governed = organisations.filter((o) => o.admins.length > 0).length;
  if (governed === 0) throw new Error('a consortium needs at least one organisation admin');
  const threshold = options.governanceThreshold ?? Math.floor((2 * governed) / 3) + 1;
  if (!Number.isSafeInteger(threshold) || threshold < 1 || threshold > governed)
    throw new Error(`governanceThreshold must be 1..${governed} (the organisations with admins)`);
  const creditLines = organisations
    .filter((o) => o.roles.includes('core-enterprise'))
    .map((o) => ({ org: o.id, limit: options.creditLines?.[o.id] ?? DEFAULT_CREDIT_LINE }));
  const initArgs: Record<(typeof SCF_CONTRACTS)[number], Value> = {
    membership: {
      organisations: organisations.map((o) => ({ id: o.id, name: o.name, roles: [...o.roles] })),
      members,
    },
    approvals: { governance: { tree: { kind: 'members', role: 'admin', min: threshold, perOrg: true } } },
    encumbrances: null,
    receivables: { creditLines },
    warehouseReceipts: null,
    orderFinancing: null,
    // IoT supervision (docs/iot.md): enterprises and their roles come from membership.
    iot: { membership: 'membership' },
  };
  return SCF_CONTRACTS.map((name) => ({ name, source: scfContractSource(name), initArgs: initArgs[name] }));
}

/** Options of {@link scfLifecyclePolicy}. */
export interface ScfLifecyclePolicyOptions {
  /** Name of the approvals contract (default 'approvals'). */
  readonly approvals?: string;
  /** Decides when no grant applies (default: refuse). */
  readonly fallback?: LifecyclePolicy;
}

/**
 * The governance lifecycle hook: a deploy, upgrade, freeze or unfreeze of `contract` is allowed
 * when an executed governance proposal granted it (approvals' `grant:<kind>:<contract>` record,
 * written by its `grantLifecycle` action) and the grant still applies: when it names a sender,
 * only that address may send the transaction; an upgrade grant with `fromVersion` applies only
 * while the code is at that version, so one approval upgrades once. Pure and deterministic: it
 * reads only the state it is given.
 */
export function scfLifecyclePolicy(options: ScfLifecyclePolicyOptions = {}): LifecyclePolicy {
  const approvals = options.approvals ?? 'approvals';
  const fallback = options.fallback ?? (() => false);
  return (request) => {
    const raw = request.state.get(approvals, utf8(`grant:${request.kind}:${request.contract}`));
    if (raw === undefined) return fallback(request);
    const grant = decodeValue(raw) as { sender?: string | null; fromVersion?: number | null };
    if (grant.sender !== null && grant.sender !== undefined && grant.sender !== request.sender)
      return fallback(request);
    if (request.kind === 'upgrade' && grant.fromVersion !== null && grant.fromVersion !== undefined) {
      if (readCodeEntry(request.state, request.contract)?.version !== grant.fromVersion)
        return fallback(request);
    }
    return true;
  };
}
