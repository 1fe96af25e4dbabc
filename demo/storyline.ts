/**
 * The `trellis demo` storyline (issue 7, item 6) as data: who takes part, and the steps, each one
 * transaction or one wait for a scheduled callback, with the outcome it must produce. Nothing here
 * does I/O: demo/runDemo.ts plays it over JSON-RPC, and a test can play it anywhere else.
 *
 * The consortium is the genesis of `trellis init` (node/cli/init.ts DEFAULT_ORGANISATIONS, one
 * admin per organisation, contracts from node/scfGenesis.ts). The demo gives every organisation
 * fresh operating staff, registered through membership by its admin's `admins:<org>` proposals,
 * and two business policies (Acme's 2-of-3 treasury confirmation, the bank's credit-officer
 * financing approval); then it runs:
 * - receivables: issue → confirmation with 2 of 3 treasury approvals → transfer to tier 1 → tier 2
 *   splits → financing at the bank → a regulator's review (freeze, unfreeze) → maturity → payment →
 *   settled;
 * - an order-financing round: open, accept, margin, releases within the margin cover, shipments,
 *   receipts, full margin, maturity → settled;
 * - a warehouse receipt: issued → listed → traded → pledged → released → delivered.
 *
 * Maturities are seconds away; the scheduled maturity callbacks are awaited by their events.
 */
import type { Value } from '../core/codec.ts';

/** The organisations of the `trellis init` consortium that the demo uses, by part. */
export const DEMO_ORGS = {
  core: 'acme',
  bank: 'harbour-bank',
  warehouse: 'central-warehouse',
  regulator: 'market-regulator',
  exchange: 'commodity-exchange',
  tier1: 'tier1-supplier',
  tier2: 'tier2-supplier',
} as const;

/** A participant the demo creates: a fresh key, registered as a member of `org` with `roles`. */
export interface DemoParticipant {
  readonly name: string;
  readonly org: string;
  /** Member roles (policies select approvers by them). */
  readonly roles: readonly string[];
  /** How the output names them. */
  readonly label: string;
}

/** Everyone the demo registers, in registration order. */
export const DEMO_PARTICIPANTS: readonly DemoParticipant[] = [
  { name: 'acme-ops', org: DEMO_ORGS.core, roles: ['operations'], label: 'Acme operations' },
  { name: 'treasurer-1', org: DEMO_ORGS.core, roles: ['treasury'], label: 'Acme treasurer 1' },
  { name: 'treasurer-2', org: DEMO_ORGS.core, roles: ['treasury'], label: 'Acme treasurer 2' },
  { name: 'treasurer-3', org: DEMO_ORGS.core, roles: ['treasury'], label: 'Acme treasurer 3' },
  { name: 'tier1-ops', org: DEMO_ORGS.tier1, roles: ['operations'], label: 'tier-1 supplier' },
  { name: 'tier2-ops', org: DEMO_ORGS.tier2, roles: ['operations'], label: 'tier-2 supplier' },
  { name: 'bank-officer', org: DEMO_ORGS.bank, roles: ['credit'], label: 'bank credit officer' },
  { name: 'warehouse-clerk', org: DEMO_ORGS.warehouse, roles: ['operations'], label: 'warehouse clerk' },
  { name: 'exchange-desk', org: DEMO_ORGS.exchange, roles: ['trading'], label: 'exchange desk' },
  { name: 'inspector', org: DEMO_ORGS.regulator, roles: ['inspection'], label: 'regulator inspector' },
];

/** The actor name of an organisation's genesis admin. */
export function adminActor(org: string): string {
  return `admin:${org}`;
}

/** Timing of a run: how far ahead maturities are set. */
export interface DemoTiming {
  /** Receivable maturity after issue, ms (it must leave room for the 8 steps before it). */
  readonly voucherMaturityMs: number;
  /** Order maturity after opening, ms (it must leave room for the 9 steps before it). */
  readonly orderMaturityMs: number;
}

/** Default timing: short enough to watch, long enough for a loaded 4-validator laptop network. */
export const DEFAULT_DEMO_TIMING: DemoTiming = { voucherMaturityMs: 20_000, orderMaturityMs: 20_000 };

/** What a step's arguments may read. */
export interface DemoContext {
  /** Return values of earlier steps, by step `key`. */
  readonly results: ReadonlyMap<string, Value>;
  /** 0x-hex address of an actor (a participant name or `admin:<org>`). */
  address(actor: string): string;
  /** The chain's current time, ms (for maturities). */
  readonly now: number;
  /** Unique per run: makes opIds, lots and references distinct when the demo runs again. */
  readonly run: string;
}

/** The record whose `status` a step must leave behind: a view returning `{ status }`. */
export interface DemoExpect {
  readonly contract: string;
  readonly view: string;
  readonly args: (c: DemoContext) => Value;
  readonly status: string;
  /** How the output names the record (e.g. "voucher V3"). */
  readonly label: (c: DemoContext) => string;
}

/** One transaction. */
export interface DemoTxStep {
  readonly kind: 'tx';
  readonly title: string;
  readonly actor: string;
  readonly contract: string;
  readonly method: string;
  readonly args: (c: DemoContext) => Value;
  /** Stores the return value under this key for later steps. */
  readonly key?: string;
  readonly expect?: DemoExpect;
  /**
   * Steps sharing a group (consecutive in the list) are independent and may be sent together;
   * the runner waits for all of them before the next step.
   */
  readonly group?: string;
  /** Skips the step when this view's result says it is already done (a re-run with the same seed). */
  readonly skipIf?: DemoCheck;
}

/** A view and a predicate over its result. */
export interface DemoCheck {
  readonly contract: string;
  readonly view: string;
  readonly args: (c: DemoContext) => Value;
  readonly holds: (v: Value) => boolean;
}

/** A wait for an event a scheduled callback emits (maturity), found from the height of `since`. */
export interface DemoAwaitStep {
  readonly kind: 'await';
  readonly title: string;
  readonly contract: string;
  readonly event: string;
  /** True for the awaited event's data. */
  readonly match: (data: Value, c: DemoContext) => boolean;
  /** Key of the step whose transaction scheduled the callback (the search starts at its block). */
  readonly since: string;
  /** The callback is due this long after the chain time of the `since` step (the wait gives up well after). */
  readonly dueInMs: number;
  readonly expect?: DemoExpect;
}

/** A step of the storyline. */
export type DemoStep = DemoTxStep | DemoAwaitStep;

/** The part of the story a step belongs to (for headings). */
export interface DemoChapter {
  readonly title: string;
  readonly steps: readonly DemoStep[];
}

const record = (v: Value | undefined): Record<string, Value> | null =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) ? v : null;

/** The `status` field of a view's result (what a {@link DemoExpect} compares); null when it has none. */
export function statusOf(v: Value): string | null {
  const s = record(v)?.['status'];
  return typeof s === 'string' ? s : null;
}

/** The id an earlier step returned: a string, or the `id` field of a record. */
export function resultId(c: DemoContext, key: string): string {
  const v = c.results.get(key);
  if (typeof v === 'string') return v;
  const id = record(v)?.['id'];
  if (typeof id === 'string') return id;
  throw new Error(`demo: step "${key}" returned no id`);
}

function resultField(c: DemoContext, key: string, field: string): string {
  const v = record(c.results.get(key))?.[field];
  if (typeof v !== 'string') throw new Error(`demo: step "${key}" returned no ${field}`);
  return v;
}

function piece(c: DemoContext, key: string, i: number): string {
  const v = c.results.get(key);
  const id = Array.isArray(v) ? v[i] : undefined;
  if (typeof id !== 'string') throw new Error(`demo: step "${key}" returned no piece ${i}`);
  return id;
}

const voucher = (id: (c: DemoContext) => string, status: string): DemoExpect => ({
  contract: 'receivables',
  view: 'voucher',
  args: (c) => ({ id: id(c) }),
  status,
  label: (c) => `voucher ${id(c)}`,
});
const proposal = (key: string, status: string): DemoExpect => ({
  contract: 'approvals',
  view: 'proposal',
  args: (c) => ({ id: resultId(c, key) }),
  status,
  label: (c) => `proposal ${resultId(c, key)}`,
});
const order = (status: string): DemoExpect => ({
  contract: 'orderFinancing',
  view: 'order',
  args: (c) => ({ id: resultId(c, 'order') }),
  status,
  label: (c) => `order ${resultId(c, 'order')}`,
});
const receipt = (status: string): DemoExpect => ({
  contract: 'warehouseReceipts',
  view: 'receipt',
  args: (c) => ({ id: resultId(c, 'receipt') }),
  status,
  label: (c) => `receipt ${resultId(c, 'receipt')}`,
});

const op = (c: DemoContext, name: string): string => `demo-${c.run}-${name}`;

/** Amounts are in minor units (cents); this prints them as 1,000,000.00. */
export function money(minor: number): string {
  return (minor / 100).toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

/** The policies the demo sets up, proposed by the owning organisation's admin. */
const POLICIES = [
  {
    org: DEMO_ORGS.core,
    id: `${DEMO_ORGS.core}.confirm`,
    tree: { kind: 'members', org: DEMO_ORGS.core, role: 'treasury', min: 2 },
    title: 'Acme: vouchers are confirmed by 2 of its treasurers',
  },
  {
    org: DEMO_ORGS.bank,
    id: `${DEMO_ORGS.bank}.finance`,
    tree: { kind: 'members', org: DEMO_ORGS.bank, role: 'credit', min: 1 },
    title: 'Harbour Bank: financing is approved by a credit officer',
  },
] as const;

/** The storyline, in order, for the given timing. */
export function demoChapters(timing: DemoTiming = DEFAULT_DEMO_TIMING): DemoChapter[] {
  const setup: DemoStep[] = [];
  // Every organisation admin proposes its new staff and policies at once, then approves them.
  const registered = (p: DemoParticipant): DemoCheck => ({
    contract: 'membership',
    view: 'member',
    args: (c) => ({ address: c.address(p.name) }),
    holds: (v) => record(v)?.['org'] === p.org,
  });
  for (const p of DEMO_PARTICIPANTS) {
    setup.push({
      kind: 'tx',
      title: `${p.org} admin proposes ${p.label} (${p.roles.join(', ')})`,
      key: `add:${p.name}`,
      actor: adminActor(p.org),
      contract: 'approvals',
      method: 'propose',
      args: (c) => ({
        policy: `admins:${p.org}`,
        target: 'membership',
        method: 'addMember',
        args: { address: c.address(p.name), org: p.org, roles: [...p.roles] },
      }),
      group: 'propose',
      skipIf: registered(p),
    });
  }
  for (const pol of POLICIES) {
    setup.push({
      kind: 'tx',
      title: `${pol.org} admin proposes policy ${pol.id}`,
      key: `policy:${pol.id}`,
      actor: adminActor(pol.org),
      contract: 'approvals',
      method: 'propose',
      args: () => ({
        policy: `admins:${pol.org}`,
        target: 'approvals',
        method: 'setPolicy',
        args: { id: pol.id, tree: { ...pol.tree } },
      }),
      group: 'propose',
    });
  }
  for (const p of DEMO_PARTICIPANTS) {
    setup.push({
      kind: 'tx',
      title: `${p.org} admin approves: ${p.label} is a member`,
      actor: adminActor(p.org),
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: resultId(c, `add:${p.name}`) }),
      expect: proposal(`add:${p.name}`, 'EXECUTED'),
      group: 'approve',
      skipIf: registered(p),
    });
  }
  for (const pol of POLICIES) {
    setup.push({
      kind: 'tx',
      title: `${pol.org} admin approves: ${pol.title}`,
      actor: adminActor(pol.org),
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: resultId(c, `policy:${pol.id}`) }),
      expect: proposal(`policy:${pol.id}`, 'EXECUTED'),
      group: 'approve',
    });
  }

  const root = (c: DemoContext) => resultId(c, 'voucher');
  const tier2Piece = (c: DemoContext) => resultId(c, 'transfer');
  const financed = (c: DemoContext) => piece(c, 'split', 0);
  const kept = (c: DemoContext) => piece(c, 'split', 1);
  const confirmation = (c: DemoContext) => ({ id: resultField(c, 'voucher', 'proposalId') });
  const receivables: DemoStep[] = [
    {
      kind: 'tx',
      title: `Acme issues a ${money(100_000_000)} voucher to tier 1, due in ${timing.voucherMaturityMs / 1000} s`,
      key: 'voucher',
      actor: 'acme-ops',
      contract: 'receivables',
      method: 'issue',
      args: (c) => ({
        opId: op(c, 'issue'),
        debtor: DEMO_ORGS.core,
        holder: c.address('tier1-ops'),
        amount: 100_000_000,
        maturity: c.now + timing.voucherMaturityMs,
        graceMs: 3_600_000,
        ref: `PO-${c.run}`,
      }),
      expect: voucher(root, 'PENDING_CONFIRMATION'),
    },
    {
      kind: 'tx',
      title: 'treasurer 1 approves the confirmation (1 of 2)',
      actor: 'treasurer-1',
      contract: 'approvals',
      method: 'approve',
      args: confirmation,
      expect: voucher(root, 'PENDING_CONFIRMATION'),
    },
    {
      kind: 'tx',
      title: 'treasurer 2 approves (2 of 3 treasurers): confirmed',
      actor: 'treasurer-2',
      contract: 'approvals',
      method: 'approve',
      args: confirmation,
      expect: voucher(root, 'ACTIVE'),
    },
    {
      kind: 'tx',
      title: `tier 1 transfers ${money(40_000_000)} of it to tier 2`,
      key: 'transfer',
      actor: 'tier1-ops',
      contract: 'receivables',
      method: 'transfer',
      args: (c) => ({
        opId: op(c, 'transfer'),
        id: root(c),
        to: c.address('tier2-ops'),
        amount: 40_000_000,
      }),
      expect: voucher(tier2Piece, 'ACTIVE'),
    },
    {
      kind: 'tx',
      title: `tier 2 splits its ${money(40_000_000)} into ${money(25_000_000)} and ${money(15_000_000)}`,
      key: 'split',
      actor: 'tier2-ops',
      contract: 'receivables',
      method: 'split',
      args: (c) => ({ opId: op(c, 'split'), id: tier2Piece(c), amounts: [25_000_000, 15_000_000] }),
      expect: voucher(tier2Piece, 'SPLIT'),
    },
    {
      kind: 'tx',
      title: `tier 2 asks the bank to finance ${money(24_000_000)} against the ${money(25_000_000)} piece`,
      key: 'finance',
      actor: 'tier2-ops',
      contract: 'receivables',
      method: 'financeRequest',
      args: (c) => ({ opId: op(c, 'finance'), id: financed(c), bank: DEMO_ORGS.bank, amount: 24_000_000 }),
      expect: voucher(financed, 'FINANCING'),
    },
    {
      kind: 'tx',
      title: "the bank's credit officer approves the financing",
      actor: 'bank-officer',
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: resultId(c, 'finance') }),
      expect: voucher(financed, 'FINANCED'),
    },
    {
      kind: 'tx',
      title: `the regulator freezes the ${money(15_000_000)} piece for a review`,
      actor: 'inspector',
      contract: 'receivables',
      method: 'freeze',
      args: (c) => ({ opId: op(c, 'freeze'), id: kept(c), reason: 'routine review' }),
      expect: voucher(kept, 'FROZEN'),
    },
    {
      kind: 'tx',
      title: 'the regulator finds nothing and lifts the freeze',
      actor: 'inspector',
      contract: 'receivables',
      method: 'unfreeze',
      args: (c) => ({ opId: op(c, 'unfreeze'), id: kept(c) }),
      expect: voucher(kept, 'ACTIVE'),
    },
    {
      kind: 'await',
      title: 'maturity: the scheduled callback makes the tree due',
      contract: 'receivables',
      event: 'Matured',
      match: (data, c) => record(data)?.['root'] === root(c),
      since: 'voucher',
      dueInMs: timing.voucherMaturityMs,
      expect: voucher(financed, 'DUE'),
    },
    {
      kind: 'tx',
      title: 'Acme pays the whole tree: the bank for the financed piece, the holders for the rest',
      actor: 'acme-ops',
      contract: 'receivables',
      method: 'pay',
      args: (c) => ({ opId: op(c, 'pay'), root: root(c) }),
      expect: voucher(financed, 'SETTLED'),
    },
  ];

  const ofStep = (
    title: string,
    actor: string,
    method: string,
    name: string,
    extra: Record<string, Value>,
  ): DemoTxStep => ({
    kind: 'tx',
    title,
    actor,
    contract: 'orderFinancing',
    method,
    args: (c) => ({ opId: op(c, name), id: resultId(c, 'order'), ...extra }),
  });
  const orderFinancing: DemoStep[] = [
    {
      kind: 'tx',
      title: `tier 1 opens a ${money(50_000_000)} order with Acme, financed by the bank (release 2x margin)`,
      key: 'order',
      actor: 'tier1-ops',
      contract: 'orderFinancing',
      method: 'open',
      args: (c) => ({
        opId: op(c, 'order'),
        core: DEMO_ORGS.core,
        bank: DEMO_ORGS.bank,
        orderValue: 50_000_000,
        releaseRatioBps: 20_000,
        maturity: c.now + timing.orderMaturityMs,
      }),
      expect: order('REQUESTED'),
    },
    {
      ...ofStep(
        'the bank accepts: the voucher to Acme is assigned to the bank',
        'bank-officer',
        'accept',
        'accept',
        {},
      ),
      expect: order('ACTIVE'),
    },
    ofStep(`tier 1 pays ${money(10_000_000)} margin`, 'tier1-ops', 'payMargin', 'margin-1', {
      amount: 10_000_000,
    }),
    ofStep(
      `the bank releases ${money(20_000_000)} of goods (covered 2x)`,
      'bank-officer',
      'release',
      'release-1',
      {
        value: 20_000_000,
      },
    ),
    ofStep(`Acme ships ${money(20_000_000)}`, 'acme-ops', 'ship', 'ship-1', { value: 20_000_000 }),
    ofStep(`tier 1 confirms receipt of ${money(20_000_000)}`, 'tier1-ops', 'confirmReceipt', 'receipt-1', {
      value: 20_000_000,
    }),
    ofStep(`tier 1 pays the remaining ${money(40_000_000)}`, 'tier1-ops', 'payMargin', 'margin-2', {
      amount: 40_000_000,
    }),
    ofStep(`the bank releases the remaining ${money(30_000_000)}`, 'bank-officer', 'release', 'release-2', {
      value: 30_000_000,
    }),
    ofStep(`Acme ships ${money(30_000_000)}`, 'acme-ops', 'ship', 'ship-2', { value: 30_000_000 }),
    {
      ...ofStep(
        `tier 1 confirms receipt of ${money(30_000_000)}`,
        'tier1-ops',
        'confirmReceipt',
        'receipt-2',
        {
          value: 30_000_000,
        },
      ),
      expect: order('ACTIVE'),
    },
    {
      kind: 'await',
      title: 'maturity: the scheduled callback settles the fully paid order',
      contract: 'orderFinancing',
      event: 'OrderSettled',
      match: (data, c) => record(data)?.['id'] === resultId(c, 'order'),
      since: 'order',
      dueInMs: timing.orderMaturityMs,
      expect: order('SETTLED'),
    },
  ];

  const wr = (
    title: string,
    actor: string,
    method: string,
    name: string,
    extra: Record<string, Value>,
    status: string,
  ): DemoTxStep => ({
    kind: 'tx',
    title,
    actor,
    contract: 'warehouseReceipts',
    method,
    args: (c) => ({ opId: op(c, name), id: resultId(c, 'receipt'), ...extra }),
    expect: receipt(status),
  });
  const warehouse: DemoStep[] = [
    {
      kind: 'tx',
      title: 'the warehouse attests 1,000 t of copper cathode in stock',
      actor: 'warehouse-clerk',
      contract: 'warehouseReceipts',
      method: 'attestStock',
      args: (c) => ({ opId: op(c, 'attest'), sku: 'copper-cathode', quantity: 1_000 }),
    },
    {
      kind: 'tx',
      title: 'tier 2 requests inbound of a 600 t lot',
      key: 'receipt',
      actor: 'tier2-ops',
      contract: 'warehouseReceipts',
      method: 'requestInbound',
      args: (c) => ({
        opId: op(c, 'inbound'),
        warehouse: DEMO_ORGS.warehouse,
        sku: 'copper-cathode',
        quantity: 600,
        lot: `LOT-${c.run}`,
      }),
      expect: receipt('INBOUND_REQUESTED'),
    },
    wr(
      'the warehouse inspects the goods and issues the receipt',
      'warehouse-clerk',
      'inspect',
      'inspect',
      {},
      'ISSUED',
    ),
    wr(
      `tier 2 lists it on the exchange at ${money(420_000_000)}`,
      'tier2-ops',
      'list',
      'list',
      { price: 420_000_000 },
      'LISTED',
    ),
    {
      ...wr(
        'the exchange settles the trade: tier 1 now holds the receipt',
        'exchange-desk',
        'settleTrade',
        'trade',
        {},
        'ISSUED',
      ),
      args: (c) => ({
        opId: op(c, 'trade'),
        id: resultId(c, 'receipt'),
        buyer: c.address('tier1-ops'),
        price: 420_000_000,
      }),
    },
    wr(
      `tier 1 pledges it to the bank for a ${money(300_000_000)} loan`,
      'tier1-ops',
      'pledgeRequest',
      'pledge',
      { bank: DEMO_ORGS.bank, loan: 300_000_000 },
      'PLEDGE_PENDING',
    ),
    wr('the bank approves the pledge', 'bank-officer', 'approvePledge', 'pledge-ok', {}, 'PLEDGE_PENDING'),
    wr('the warehouse locks the goods: pledged', 'warehouse-clerk', 'lockPledge', 'lock', {}, 'PLEDGED'),
    wr(
      'the loan is repaid: the bank releases the pledge',
      'bank-officer',
      'releasePledge',
      'release',
      {},
      'ISSUED',
    ),
    wr(
      'tier 1 asks for delivery of all 600 t',
      'tier1-ops',
      'requestDelivery',
      'delivery',
      { quantity: 600 },
      'DELIVERY_PENDING',
    ),
    wr('the goods leave the warehouse: delivered', 'warehouse-clerk', 'goodsOut', 'out', {}, 'DELIVERED'),
  ];

  return [
    { title: 'Consortium set-up: staff and approval policies', steps: setup },
    { title: 'Receivables: issue, confirm, transfer, split, finance, mature, pay', steps: receivables },
    { title: 'Order financing: margin-covered releases, maturity', steps: orderFinancing },
    { title: 'Warehouse receipt: issue, list, trade, pledge, release, deliver', steps: warehouse },
  ];
}
