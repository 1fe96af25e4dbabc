// Goal: every method of every supply-chain-finance contract, called by every account that may not
// call it (each member of the consortium and an outsider), is refused with a named error code and
// changes no contract state; the allowed caller then succeeds on the same state, so each refusal
// is about who called, not about a broken fixture.
import { afterAll, describe, expect, it } from 'vitest';
import type { Value } from '../../core/codec.ts';
import {
  CONTRACTS,
  MEMBERS,
  closeConsortium,
  consortium,
  ok,
  recorder,
  snapshot,
  source,
  type Recorder,
} from './helpers.ts';

afterAll(closeConsortium);

const EVERYONE = [...Object.keys(MEMBERS), 'outsider'];
const ACME = ['acmeAdmin', 'treasurer1', 'treasurer2', 'treasurer3', 'acmeClerk'];
const BANK = ['bankAdmin', 'banker'];
const WAREHOUSE = ['warehouseAdmin', 'keeper'];
const ADMINS = Object.entries(MEMBERS)
  .filter(([, [, roles]]) => roles.includes('admin'))
  .map(([n]) => n);
const FAR = 10_000_000;

interface Case {
  readonly method: string;
  /** Arguments (without opId: a fresh one is added per call), or a factory building a fresh fixture. */
  readonly args: Value | (() => Value);
  /** Who may call; [] for callbacks that only a contract or the scheduler may run. */
  readonly allowed: readonly string[];
}

/** Calls `method` as every account outside `allowed`, then as the first allowed one. */
function checkCase(rec: Recorder, contract: string, c: Case, withOpId: boolean): void {
  let n = 0;
  const fixed = typeof c.args === 'function' ? c.args() : c.args;
  const args = (): Value =>
    withOpId ? { ...(fixed as Record<string, Value>), opId: `perm-${c.method}-${n++}` } : fixed;
  for (const who of EVERYONE.filter((w) => !c.allowed.includes(w))) {
    const before = snapshot(rec.chain, CONTRACTS);
    const r = rec.call(contract, c.method, args(), who);
    expect(r.status, `${contract}.${c.method} by ${who}`).toBe('reverted');
    expect(r.errorCode, `${contract}.${c.method} by ${who}: ${r.error}`).toMatch(
      /^(NOT_[A-Z_]+|WRONG_ROLE|WRONG_ORG)$/,
    );
    expect(r.error.length).toBeGreaterThan(10);
    expect(snapshot(rec.chain, CONTRACTS), `${contract}.${c.method} by ${who} changed state`).toBe(before);
  }
  if (c.allowed.length > 0) {
    const r = rec.call(contract, c.method, args(), c.allowed[0]!);
    expect(r.status, `${contract}.${c.method} by ${c.allowed[0]}: ${r.errorCode} ${r.error}`).toBe('ok');
  }
}

function methodsOf(rec: Recorder, contract: string): string[] {
  return [...rec.chain.executor.compile(source(contract)).methods];
}

describe('permissions', () => {
  it('membership: only the approvals contract changes membership', () => {
    const rec = recorder(consortium());
    const a = rec.chain.account('outsider').address;
    const cases: Case[] = [
      { method: 'addOrganisation', args: { id: 'newco', name: 'New Co', roles: ['supplier'] }, allowed: [] },
      { method: 'setOrganisationRoles', args: { id: 'tier1', roles: ['supplier', 'bank'] }, allowed: [] },
      { method: 'addMember', args: { address: a, org: 'tier1', roles: [] }, allowed: [] },
      {
        method: 'setMemberRoles',
        args: { address: rec.chain.account('t1').address, org: 'tier1', roles: ['admin', 'x'] },
        allowed: [],
      },
      {
        method: 'removeMember',
        args: { address: rec.chain.account('t1').address, org: 'tier1' },
        allowed: [],
      },
    ];
    expect(cases.map((c) => c.method).sort()).toEqual(methodsOf(rec, 'membership'));
    for (const c of cases) checkCase(rec, 'membership', c, false);
    rec.chain.close();
  });

  it('encumbrances: only asset contracts place, lift, freeze and unfreeze', () => {
    const rec = recorder(consortium());
    const cases: Case[] = [
      { method: 'encumber', args: { id: 'x', kind: 'pledge', beneficiary: 'bank' }, allowed: [] },
      { method: 'release', args: { id: 'x', kind: 'pledge' }, allowed: [] },
      { method: 'freeze', args: { id: 'x', by: 'me' }, allowed: [] },
      { method: 'unfreeze', args: { id: 'x' }, allowed: [] },
    ];
    expect(cases.map((c) => c.method).sort()).toEqual(methodsOf(rec, 'encumbrances'));
    for (const c of cases) checkCase(rec, 'encumbrances', c, false);
    rec.chain.close();
  });

  it('approvals: members propose, the policy names the voters, the proposer cancels, only the scheduler expires', () => {
    const rec = recorder(consortium());
    const proposal = () =>
      ok(
        rec.call(
          'approvals',
          'propose',
          {
            policy: 'governance',
            target: 'membership',
            method: 'addOrganisation',
            args: { id: 'newco', name: 'New Co', roles: ['supplier'] },
          },
          't1',
        ),
      ).returnValue as string;
    const p1 = proposal();
    const p2 = proposal();
    const p3 = proposal();
    const cases: Case[] = [
      {
        method: 'propose',
        args: {
          policy: 'admins:tier1',
          target: 'membership',
          method: 'addMember',
          args: { address: rec.chain.account('outsider').address, org: 'tier1', roles: [] },
        },
        allowed: Object.keys(MEMBERS),
      },
      // Governance is 3 admins of any organisation: every admin is named, nobody else.
      { method: 'approve', args: { id: p1 }, allowed: ADMINS },
      { method: 'reject', args: { id: p2 }, allowed: ADMINS },
      { method: 'cancel', args: { id: p3 }, allowed: ['t1'] },
      { method: 'expire', args: { id: p1 }, allowed: [] },
    ];
    // submitSignatures is open to anyone; its permission is the signers' (approvals.test.ts).
    expect([...cases.map((c) => c.method), 'submitSignatures'].sort()).toEqual(methodsOf(rec, 'approvals'));
    for (const c of cases) checkCase(rec, 'approvals', c, false);
    rec.chain.close();
  });

  it('receivables: holders move, the debtor pays, the financing bank writes off, the regulator freezes', () => {
    const rec = recorder(consortium());
    const addr = (n: string) => rec.chain.account(n).address;
    let op = 0;
    const issue = (maturityMs: number, graceMs = 1_000): string => {
      const r = ok(
        rec.call(
          'receivables',
          'issue',
          {
            opId: `fx${op++}`,
            debtor: 'acme',
            holder: addr('t1'),
            amount: 1000,
            maturity: rec.chain.time + maturityMs,
            graceMs,
          },
          'acmeClerk',
        ),
      );
      return (r.returnValue as { id: string }).id;
    };
    const proposalOf = (id: string) =>
      (rec.chain.view('receivables', 'voucher', { id }).returnValue as { proposalId: string }).proposalId;
    const confirm = (id: string) => {
      ok(rec.call('approvals', 'approve', { id: proposalOf(id) }, 'treasurer1'));
      ok(rec.call('approvals', 'approve', { id: proposalOf(id) }, 'treasurer2'));
    };
    const finance = (id: string) => {
      ok(
        rec.call('receivables', 'financeRequest', { opId: `fx${op++}`, id, bank: 'bank', amount: 500 }, 't1'),
      );
      ok(rec.call('approvals', 'approve', { id: proposalOf(id) }, 'bankAdmin'));
    };
    const activeOne = (): string => {
      const id = issue(FAR);
      confirm(id);
      return id;
    };
    const active = activeOne();
    const frozenOne = (): string => {
      const id = activeOne();
      ok(rec.call('receivables', 'freeze', { opId: `fx${op++}`, id }, 'regulatorAdmin'));
      return id;
    };
    const due = issue(5_000, 1_000_000);
    confirm(due);
    const overdue = issue(5_000, 1_000);
    confirm(overdue);
    finance(overdue);
    rec.advance(10_000);
    const cases: Case[] = [
      {
        method: 'issue',
        args: { debtor: 'acme', holder: addr('t1'), amount: 10, maturity: rec.chain.time + FAR },
        allowed: [...ACME, 't1'],
      },
      { method: 'transfer', args: () => ({ id: activeOne(), to: addr('t2'), amount: 1 }), allowed: ['t1'] },
      { method: 'split', args: () => ({ id: activeOne(), amounts: [1, 999] }), allowed: ['t1'] },
      {
        method: 'financeRequest',
        args: () => ({ id: activeOne(), bank: 'bank', amount: 1 }),
        allowed: ['t1'],
      },
      { method: 'pay', args: { root: due }, allowed: ACME },
      { method: 'writeOff', args: { id: overdue }, allowed: BANK },
      { method: 'freeze', args: () => ({ id: activeOne() }), allowed: ['regulatorAdmin'] },
      { method: 'unfreeze', args: () => ({ id: frozenOne() }), allowed: ['regulatorAdmin'] },
      { method: 'confirm', args: { id: active }, allowed: [] },
      {
        method: 'onConfirmRejected',
        args: { proposalId: 'P1', reason: 'x', args: { id: active } },
        allowed: [],
      },
      { method: 'approveFinancing', args: { id: active }, allowed: [] },
      {
        method: 'onFinancingRejected',
        args: { proposalId: 'P1', reason: 'x', args: { id: active } },
        allowed: [],
      },
      { method: 'mature', args: { root: active }, allowed: [] },
      { method: 'overdue', args: { root: active }, allowed: [] },
      { method: 'govSetCreditLine', args: { org: 'acme', limit: 1 }, allowed: [] },
    ];
    expect(cases.map((c) => c.method).sort()).toEqual(methodsOf(rec, 'receivables'));
    const callbacks = new Set([
      'confirm',
      'onConfirmRejected',
      'approveFinancing',
      'onFinancingRejected',
      'mature',
      'overdue',
      'govSetCreditLine',
    ]);
    for (const c of cases) checkCase(rec, 'receivables', c, !callbacks.has(c.method));
    rec.chain.close();
  });

  it('warehouse receipts: holder, warehouse, bank, exchange and regulator each act only in their step', () => {
    const rec = recorder(consortium());
    const addr = (n: string) => rec.chain.account(n).address;
    let op = 0;
    const call = (method: string, args: Record<string, Value>, from: string) =>
      ok(rec.call('warehouseReceipts', method, { opId: `fx${op++}`, ...args }, from)).returnValue;
    call('attestStock', { sku: 'steel', quantity: 10_000 }, 'keeper');
    const receipt = (inspect = true): string => {
      const id = call(
        'requestInbound',
        { warehouse: 'warehouse', sku: 'steel', quantity: 100, lot: `lot${op}` },
        't1',
      ) as string;
      if (inspect) call('inspect', { id }, 'keeper');
      return id;
    };
    const pledgeOf = (id: string, approve: boolean, lock: boolean) => {
      call('pledgeRequest', { id, bank: 'bank', loan: 50, expiresInMs: FAR }, 't1');
      if (approve) call('approvePledge', { id }, 'banker');
      if (lock) call('lockPledge', { id }, 'keeper');
      return id;
    };
    const withPending = () => {
      const id = receipt();
      call('requestTransfer', { id, to: addr('t2') }, 't1');
      return id;
    };
    const listedOne = () => {
      const id = receipt();
      call('list', { id, price: 10 }, 't1');
      return id;
    };
    const deliveryOne = () => {
      const id = receipt();
      call('requestDelivery', { id, quantity: 40 }, 't1');
      return id;
    };
    const cases: Case[] = [
      { method: 'attestStock', args: { sku: 'steel', quantity: 20_000 }, allowed: WAREHOUSE },
      {
        method: 'requestInbound',
        args: { warehouse: 'warehouse', sku: 'steel', quantity: 1, lot: 'new-lot' },
        allowed: Object.keys(MEMBERS),
      },
      { method: 'inspect', args: () => ({ id: receipt(false) }), allowed: WAREHOUSE },
      { method: 'rejectInbound', args: () => ({ id: receipt(false) }), allowed: WAREHOUSE },
      { method: 'list', args: () => ({ id: receipt(), price: 10 }), allowed: ['t1'] },
      { method: 'delist', args: () => ({ id: listedOne() }), allowed: ['t1'] },
      {
        method: 'settleTrade',
        args: () => ({ id: listedOne(), buyer: addr('t2'), price: 10 }),
        allowed: ['exchangeAdmin'],
      },
      { method: 'requestTransfer', args: () => ({ id: receipt(), to: addr('t2') }), allowed: ['t1'] },
      { method: 'requestSplit', args: () => ({ id: receipt(), quantities: [50, 50] }), allowed: ['t1'] },
      { method: 'cancelRequest', args: () => ({ id: withPending() }), allowed: ['t1'] },
      { method: 'endorse', args: () => ({ id: withPending() }), allowed: WAREHOUSE },
      { method: 'pledgeRequest', args: () => ({ id: receipt(), bank: 'bank', loan: 1 }), allowed: ['t1'] },
      { method: 'approvePledge', args: () => ({ id: pledgeOf(receipt(), false, false) }), allowed: BANK },
      { method: 'lockPledge', args: () => ({ id: pledgeOf(receipt(), false, false) }), allowed: WAREHOUSE },
      { method: 'rejectPledge', args: () => ({ id: pledgeOf(receipt(), false, false) }), allowed: BANK },
      {
        method: 'pledgeExpire',
        args: () => ({ id: pledgeOf(receipt(), false, false), seq: 1 }),
        allowed: [],
      },
      { method: 'releasePledge', args: () => ({ id: pledgeOf(receipt(), true, true) }), allowed: BANK },
      { method: 'declareDefault', args: () => ({ id: pledgeOf(receipt(), true, true) }), allowed: BANK },
      {
        method: 'enforcementSale',
        args: () => {
          const id = pledgeOf(receipt(), true, true);
          call('declareDefault', { id }, 'banker');
          return { id, buyer: addr('t2'), price: 10 };
        },
        allowed: BANK,
      },
      { method: 'requestDelivery', args: () => ({ id: receipt(), quantity: 1 }), allowed: ['t1'] },
      { method: 'cancelDelivery', args: () => ({ id: deliveryOne() }), allowed: ['t1'] },
      { method: 'goodsOut', args: () => ({ id: deliveryOne() }), allowed: WAREHOUSE },
      { method: 'freeze', args: () => ({ id: receipt() }), allowed: ['regulatorAdmin'] },
      {
        method: 'unfreeze',
        args: () => {
          const id = receipt();
          call('freeze', { id }, 'regulatorAdmin');
          return { id };
        },
        allowed: ['regulatorAdmin'],
      },
    ];
    expect(cases.map((c) => c.method).sort()).toEqual(methodsOf(rec, 'warehouseReceipts'));
    for (const c of cases) checkCase(rec, 'warehouseReceipts', c, c.method !== 'pledgeExpire');
    rec.chain.close();
  });

  it('order financing: distributor, bank and core enterprise each act only in their step', () => {
    const rec = recorder(consortium());
    let op = 0;
    const call = (method: string, args: Record<string, Value>, from: string) =>
      ok(rec.call('orderFinancing', method, { opId: `fx${op++}`, ...args }, from)).returnValue;
    const requested = () =>
      call(
        'open',
        {
          core: 'acme',
          bank: 'bank',
          orderValue: 10_000,
          releaseRatioBps: 20_000,
          maturity: rec.chain.time + FAR,
        },
        'distributorAdmin',
      ) as string;
    const active = (margin = 0, released = 0, shipped = 0) => {
      const id = requested();
      call('accept', { id }, 'banker');
      if (margin > 0) call('payMargin', { id, amount: margin }, 'distributorAdmin');
      if (released > 0) call('release', { id, value: released }, 'banker');
      if (shipped > 0) call('ship', { id, value: shipped }, 'acmeClerk');
      return id;
    };
    const coverDue = (() => {
      const id = requested();
      call('accept', { id }, 'banker');
      call('commitCover', { id, kind: 'buyback' }, 'acmeClerk');
      return id;
    })();
    const shortId = call(
      'open',
      {
        core: 'acme',
        bank: 'bank',
        orderValue: 10_000,
        releaseRatioBps: 20_000,
        maturity: rec.chain.time + 5_000,
      },
      'distributorAdmin',
    ) as string;
    call('accept', { id: shortId }, 'banker');
    call('commitCover', { id: shortId, kind: 'guarantee' }, 'acmeClerk');
    rec.advance(10_000);
    expect(
      (rec.chain.view('orderFinancing', 'order', { id: shortId }).returnValue as { status: string }).status,
    ).toBe('COVER_DUE');
    void coverDue;
    const cases: Case[] = [
      {
        method: 'open',
        args: {
          core: 'acme',
          bank: 'bank',
          orderValue: 10,
          releaseRatioBps: 10_000,
          maturity: rec.chain.time + FAR,
        },
        allowed: ['t1', 't2', 'distributorAdmin'],
      },
      { method: 'accept', args: () => ({ id: requested() }), allowed: BANK },
      { method: 'decline', args: () => ({ id: requested() }), allowed: BANK },
      { method: 'cancel', args: () => ({ id: requested() }), allowed: ['distributorAdmin'] },
      { method: 'payMargin', args: () => ({ id: active(), amount: 100 }), allowed: ['distributorAdmin'] },
      { method: 'release', args: () => ({ id: active(1_000), value: 100 }), allowed: BANK },
      { method: 'ship', args: () => ({ id: active(1_000, 500), value: 100 }), allowed: ACME },
      {
        method: 'confirmReceipt',
        args: () => ({ id: active(1_000, 500, 200), value: 100 }),
        allowed: ['distributorAdmin'],
      },
      { method: 'commitCover', args: () => ({ id: active(), kind: 'buyback' }), allowed: ACME },
      { method: 'cover', args: { id: shortId }, allowed: ACME },
      { method: 'mature', args: () => ({ id: active() }), allowed: [] },
    ];
    expect(cases.map((c) => c.method).sort()).toEqual(methodsOf(rec, 'orderFinancing'));
    for (const c of cases) checkCase(rec, 'orderFinancing', c, c.method !== 'mature');
    rec.chain.close();
  });
});
