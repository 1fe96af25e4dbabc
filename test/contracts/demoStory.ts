/**
 * The `trellis demo` storyline (issue 7, item 6) as data: actors, and steps that each send one
 * transaction (or wait) and name the outcome to check. It runs in-process in
 * test/contracts/demo.test.ts through vm/testing.ts, and the demo CLI can replay the same steps over
 * RPC with an SDK-backed {@link DemoRunner}.
 *
 * The consortium is the genesis of `trellis init` (node/cli/init.ts DEFAULT_ORGANISATIONS, one
 * admin per organisation, deployed by node/scfGenesis.ts). The demo adds three treasury officers
 * to the core enterprise and its 2-of-3 confirmation policy, then runs:
 * - receivables: issue → confirmation with 2 of 3 treasury approvals → tier 1 transfers part to
 *   tier 2 → tier 2 splits it → financing of one piece at the bank → maturity → payment → settled;
 * - an order-financing round: open, accept, margin, releases within the margin cover, shipments,
 *   receipts, full margin, maturity → settled;
 * - a warehouse receipt: inbound → issued → listed → traded → pledged → released → delivered.
 */
import type { Value } from '../../core/codec.ts';

/** Who acts: `<org>-admin` accounts exist at genesis; the others are added by the demo. */
export const DEMO_ORGS = {
  core: 'acme',
  bank: 'harbour-bank',
  warehouse: 'central-warehouse',
  regulator: 'market-regulator',
  exchange: 'commodity-exchange',
  tier1: 'tier1-supplier',
  tier2: 'tier2-supplier',
} as const;

/** Accounts the demo creates (name → organisation and member roles). */
export const DEMO_NEW_MEMBERS: Readonly<Record<string, { org: string; roles: string[] }>> = {
  'treasurer-1': { org: 'acme', roles: ['treasury'] },
  'treasurer-2': { org: 'acme', roles: ['treasury'] },
  'treasurer-3': { org: 'acme', roles: ['treasury'] },
};

const admin = (org: string) => `${org}-admin`;
const SECOND = 1_000;

/** What a step's arguments may read: earlier results, actor addresses and the chain time. */
export interface DemoContext {
  /** Return values of earlier steps, by step `key`. */
  readonly results: ReadonlyMap<string, Value>;
  address(actor: string): string;
  /** Time of the next block (ms). */
  readonly now: number;
}

/** One step: a transaction, or a wait for scheduled work (maturity). */
export interface DemoStep {
  readonly title: string;
  /** Stores the return value for later steps. */
  readonly key?: string;
  readonly actor?: string;
  readonly contract?: string;
  readonly method?: string;
  readonly args?: (c: DemoContext) => Value;
  /** Milliseconds to let pass (a wait step has no transaction). */
  readonly waitMs?: number;
  /** A view whose `status` field the step must have produced. */
  readonly expect?: DemoExpect;
}

/** An outcome check: `view(args).status` must equal `status`. */
export interface DemoExpect {
  readonly contract: string;
  readonly view: string;
  readonly args: (c: DemoContext) => Value;
  readonly status: string;
}

const id = (c: DemoContext, key: string): string => {
  const v = c.results.get(key);
  if (typeof v === 'string') return v;
  if (
    v !== null &&
    typeof v === 'object' &&
    !Array.isArray(v) &&
    !(v instanceof Uint8Array) &&
    typeof v['id'] === 'string'
  )
    return v['id'];
  throw new Error(`demo: no id from step ${key}`);
};
const piece = (c: DemoContext, key: string, i: number): string => (c.results.get(key) as string[])[i]!;
const voucher = (key: string, status: string, i?: number): DemoExpect => ({
  contract: 'receivables',
  view: 'voucher',
  args: (c) => ({ id: i === undefined ? id(c, key) : piece(c, key, i) }),
  status,
});
const proposal = (key: string, status: string): DemoExpect => ({
  contract: 'approvals',
  view: 'proposal',
  args: (c) => ({ id: id(c, key) }),
  status,
});

/** The storyline, in order. Amounts are in minor units (cents). */
export function demoSteps(): DemoStep[] {
  const steps: DemoStep[] = [];
  // Set-up: acme's admin adds three treasury officers and the 2-of-3 confirmation policy.
  for (const [name, m] of Object.entries(DEMO_NEW_MEMBERS)) {
    steps.push(
      {
        title: `acme proposes ${name} as a ${m.roles.join(', ')} officer`,
        key: `add-${name}`,
        actor: admin(m.org),
        contract: 'approvals',
        method: 'propose',
        args: (c) => ({
          policy: `admins:${m.org}`,
          target: 'membership',
          method: 'addMember',
          args: { address: c.address(name), org: m.org, roles: m.roles },
        }),
      },
      {
        title: `acme's admin approves ${name}`,
        actor: admin(m.org),
        contract: 'approvals',
        method: 'approve',
        args: (c) => ({ id: id(c, `add-${name}`) }),
        expect: proposal(`add-${name}`, 'EXECUTED'),
      },
    );
  }
  steps.push(
    {
      title: 'acme proposes its confirmation policy: 2 of 3 treasury officers',
      key: 'policy',
      actor: admin('acme'),
      contract: 'approvals',
      method: 'propose',
      args: () => ({
        policy: 'admins:acme',
        target: 'approvals',
        method: 'setPolicy',
        args: { id: 'acme.confirm', tree: { kind: 'members', org: 'acme', role: 'treasury', min: 2 } },
      }),
    },
    {
      title: "acme's admin approves the policy",
      actor: admin('acme'),
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: id(c, 'policy') }),
      expect: proposal('policy', 'EXECUTED'),
    },
  );
  // Receivables.
  steps.push(
    {
      title: 'acme issues a 1,000,000.00 voucher to tier 1, due in 30 s',
      key: 'voucher',
      actor: admin('acme'),
      contract: 'receivables',
      method: 'issue',
      args: (c) => ({
        opId: 'demo-issue',
        debtor: 'acme',
        holder: c.address(admin(DEMO_ORGS.tier1)),
        amount: 100_000_000,
        maturity: c.now + 30 * SECOND,
        graceMs: 60 * SECOND,
        ref: 'PO-2026-0042',
      }),
      expect: voucher('voucher', 'PENDING_CONFIRMATION'),
    },
    {
      title: 'treasurer 1 approves the confirmation',
      actor: 'treasurer-1',
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: (c.results.get('voucher') as { proposalId: string }).proposalId }),
      expect: voucher('voucher', 'PENDING_CONFIRMATION'),
    },
    {
      title: 'treasurer 2 approves: 2 of 3, confirmed',
      actor: 'treasurer-2',
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: (c.results.get('voucher') as { proposalId: string }).proposalId }),
      expect: voucher('voucher', 'ACTIVE'),
    },
    {
      title: 'tier 1 transfers 400,000.00 to tier 2',
      key: 'transfer',
      actor: admin(DEMO_ORGS.tier1),
      contract: 'receivables',
      method: 'transfer',
      args: (c) => ({
        opId: 'demo-transfer',
        id: id(c, 'voucher'),
        to: c.address(admin(DEMO_ORGS.tier2)),
        amount: 40_000_000,
      }),
      expect: voucher('transfer', 'ACTIVE'),
    },
    {
      title: 'tier 2 splits its 400,000.00 into 250,000.00 and 150,000.00',
      key: 'split',
      actor: admin(DEMO_ORGS.tier2),
      contract: 'receivables',
      method: 'split',
      args: (c) => ({ opId: 'demo-split', id: id(c, 'transfer'), amounts: [25_000_000, 15_000_000] }),
      expect: voucher('transfer', 'SPLIT'),
    },
    {
      title: 'tier 2 asks the bank to finance 240,000.00 against the 250,000.00 piece',
      key: 'finance',
      actor: admin(DEMO_ORGS.tier2),
      contract: 'receivables',
      method: 'financeRequest',
      args: (c) => ({
        opId: 'demo-finance',
        id: piece(c, 'split', 0),
        bank: DEMO_ORGS.bank,
        amount: 24_000_000,
      }),
      expect: voucher('split', 'FINANCING', 0),
    },
    {
      title: 'the bank approves the financing',
      actor: admin(DEMO_ORGS.bank),
      contract: 'approvals',
      method: 'approve',
      args: (c) => ({ id: id(c, 'finance') }),
      expect: voucher('split', 'FINANCED', 0),
    },
    { title: 'maturity passes', waitMs: 31 * SECOND, expect: voucher('split', 'DUE', 0) },
    {
      title: 'acme pays every holder of the voucher tree',
      actor: admin('acme'),
      contract: 'receivables',
      method: 'pay',
      args: (c) => ({ opId: 'demo-pay', root: id(c, 'voucher') }),
      expect: voucher('split', 'SETTLED', 0),
    },
  );
  // Order financing: tier 1 distributes acme's goods with the bank's money.
  const order = (status: string): DemoExpect => ({
    contract: 'orderFinancing',
    view: 'order',
    args: (c) => ({ id: id(c, 'order') }),
    status,
  });
  const tier1 = admin(DEMO_ORGS.tier1);
  const bank = admin(DEMO_ORGS.bank);
  steps.push(
    {
      title: 'tier 1 opens a 500,000.00 order with acme, financed by the bank (release ratio 2x margin)',
      key: 'order',
      actor: tier1,
      contract: 'orderFinancing',
      method: 'open',
      args: (c) => ({
        opId: 'demo-order',
        core: 'acme',
        bank: DEMO_ORGS.bank,
        orderValue: 50_000_000,
        releaseRatioBps: 20_000,
        maturity: c.now + 40 * SECOND,
      }),
      expect: order('REQUESTED'),
    },
    {
      title: 'the bank accepts; the voucher to acme is assigned to the bank',
      actor: bank,
      contract: 'orderFinancing',
      method: 'accept',
      args: (c) => ({ opId: 'demo-accept', id: id(c, 'order') }),
      expect: order('ACTIVE'),
    },
    {
      title: 'tier 1 pays 100,000.00 margin',
      actor: tier1,
      contract: 'orderFinancing',
      method: 'payMargin',
      args: (c) => ({ opId: 'demo-margin-1', id: id(c, 'order'), amount: 10_000_000 }),
      expect: order('ACTIVE'),
    },
    {
      title: 'the bank releases 200,000.00 of goods (the margin covers 2x)',
      actor: bank,
      contract: 'orderFinancing',
      method: 'release',
      args: (c) => ({ opId: 'demo-release-1', id: id(c, 'order'), value: 20_000_000 }),
    },
    {
      title: 'acme ships 200,000.00',
      actor: admin('acme'),
      contract: 'orderFinancing',
      method: 'ship',
      args: (c) => ({ opId: 'demo-ship-1', id: id(c, 'order'), value: 20_000_000 }),
    },
    {
      title: 'tier 1 confirms receipt of 200,000.00',
      actor: tier1,
      contract: 'orderFinancing',
      method: 'confirmReceipt',
      args: (c) => ({ opId: 'demo-receipt-1', id: id(c, 'order'), value: 20_000_000 }),
    },
    {
      title: 'tier 1 pays the remaining 400,000.00',
      actor: tier1,
      contract: 'orderFinancing',
      method: 'payMargin',
      args: (c) => ({ opId: 'demo-margin-2', id: id(c, 'order'), amount: 40_000_000 }),
    },
    {
      title: 'the bank releases the remaining 300,000.00',
      actor: bank,
      contract: 'orderFinancing',
      method: 'release',
      args: (c) => ({ opId: 'demo-release-2', id: id(c, 'order'), value: 30_000_000 }),
    },
    {
      title: 'acme ships 300,000.00',
      actor: admin('acme'),
      contract: 'orderFinancing',
      method: 'ship',
      args: (c) => ({ opId: 'demo-ship-2', id: id(c, 'order'), value: 30_000_000 }),
    },
    {
      title: 'tier 1 confirms receipt of 300,000.00',
      actor: tier1,
      contract: 'orderFinancing',
      method: 'confirmReceipt',
      args: (c) => ({ opId: 'demo-receipt-2', id: id(c, 'order'), value: 30_000_000 }),
    },
    { title: 'the order matures fully paid', waitMs: 41 * SECOND, expect: order('SETTLED') },
  );
  // Warehouse receipt: tier 2 deposits copper, sells it on the exchange to tier 1, who pledges it.
  const receipt = (status: string): DemoExpect => ({
    contract: 'warehouseReceipts',
    view: 'receipt',
    args: (c) => ({ id: id(c, 'receipt') }),
    status,
  });
  const wh = admin(DEMO_ORGS.warehouse);
  steps.push(
    {
      title: 'the warehouse attests 1,000 t of copper cathode in stock',
      actor: wh,
      contract: 'warehouseReceipts',
      method: 'attestStock',
      args: () => ({ opId: 'demo-attest', sku: 'copper-cathode', quantity: 1_000 }),
    },
    {
      title: 'tier 2 requests inbound of a 600 t lot',
      key: 'receipt',
      actor: admin(DEMO_ORGS.tier2),
      contract: 'warehouseReceipts',
      method: 'requestInbound',
      args: () => ({
        opId: 'demo-inbound',
        warehouse: DEMO_ORGS.warehouse,
        sku: 'copper-cathode',
        quantity: 600,
        lot: 'LOT-2026-001',
      }),
      expect: receipt('INBOUND_REQUESTED'),
    },
    {
      title: 'the warehouse inspects the goods and issues the receipt',
      actor: wh,
      contract: 'warehouseReceipts',
      method: 'inspect',
      args: (c) => ({ opId: 'demo-inspect', id: id(c, 'receipt') }),
      expect: receipt('ISSUED'),
    },
    {
      title: 'tier 2 lists the receipt at 4,200,000.00',
      actor: admin(DEMO_ORGS.tier2),
      contract: 'warehouseReceipts',
      method: 'list',
      args: (c) => ({ opId: 'demo-list', id: id(c, 'receipt'), price: 420_000_000 }),
      expect: receipt('LISTED'),
    },
    {
      title: 'the exchange settles the trade: tier 1 holds the receipt',
      actor: admin(DEMO_ORGS.exchange),
      contract: 'warehouseReceipts',
      method: 'settleTrade',
      args: (c) => ({
        opId: 'demo-trade',
        id: id(c, 'receipt'),
        buyer: c.address(tier1),
        price: 420_000_000,
      }),
      expect: receipt('ISSUED'),
    },
    {
      title: 'tier 1 asks the bank for a 3,000,000.00 loan against it',
      actor: tier1,
      contract: 'warehouseReceipts',
      method: 'pledgeRequest',
      args: (c) => ({ opId: 'demo-pledge', id: id(c, 'receipt'), bank: DEMO_ORGS.bank, loan: 300_000_000 }),
      expect: receipt('PLEDGE_PENDING'),
    },
    {
      title: 'the bank approves the pledge',
      actor: bank,
      contract: 'warehouseReceipts',
      method: 'approvePledge',
      args: (c) => ({ opId: 'demo-pledge-ok', id: id(c, 'receipt') }),
      expect: receipt('PLEDGE_PENDING'),
    },
    {
      title: 'the warehouse locks the goods: pledged',
      actor: wh,
      contract: 'warehouseReceipts',
      method: 'lockPledge',
      args: (c) => ({ opId: 'demo-lock', id: id(c, 'receipt') }),
      expect: receipt('PLEDGED'),
    },
    {
      title: 'the loan is repaid and the bank releases the pledge',
      actor: bank,
      contract: 'warehouseReceipts',
      method: 'releasePledge',
      args: (c) => ({ opId: 'demo-release', id: id(c, 'receipt') }),
      expect: receipt('ISSUED'),
    },
    {
      title: 'tier 1 asks for delivery of all 600 t',
      actor: tier1,
      contract: 'warehouseReceipts',
      method: 'requestDelivery',
      args: (c) => ({ opId: 'demo-delivery', id: id(c, 'receipt'), quantity: 600 }),
      expect: receipt('DELIVERY_PENDING'),
    },
    {
      title: 'the goods leave the warehouse: delivered',
      actor: wh,
      contract: 'warehouseReceipts',
      method: 'goodsOut',
      args: (c) => ({ opId: 'demo-out', id: id(c, 'receipt') }),
      expect: receipt('DELIVERED'),
    },
  );
  return steps;
}
