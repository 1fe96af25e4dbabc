// Goal: the approvals engine decides as its policies say: threshold trees (AND/OR over members,
// organisations and roles), versions pinned per proposal, rejection, cancellation and scheduled
// expiry telling the target, offline signature bundles anyone may relay, the rules of who may
// propose what, governance of membership, parameters and contract lifecycle (with the node's
// lifecycle hook, node/scfGenesis.ts), and the genesis wiring `trellis init` writes.
import { afterAll, describe, expect, it } from 'vitest';
import { toHex, utf8 } from '../../core/bytes.ts';
import type { Value } from '../../core/codec.ts';
import { sha256 } from '../../core/hash.ts';
import { keyPairFromSecret, sign } from '../../core/keys.ts';
import { DEFAULT_CONSENSUS_PARAMS, validateGenesis } from '../../node/genesis.ts';
import { DEFAULT_ORGANISATIONS } from '../../node/cli/init.ts';
import { runtimeId } from '../../node/runtime.ts';
import { SCF_CONTRACTS, scfGenesisContracts, scfLifecyclePolicy } from '../../node/scfGenesis.ts';
import { createExecutor } from '../../vm/executor.ts';
import { createTestChain } from '../../vm/testing.ts';
import {
  CONTRACTS,
  GAS,
  accountAddress,
  closeConsortium,
  consortium,
  ok,
  recorder,
  snapshot,
  type Recorder,
} from './helpers.ts';

afterAll(closeConsortium);

const DAY = 24 * 3600 * 1000;

function issue(rec: Recorder, opId: string, amount = 1000): { id: string; proposalId: string } {
  const r = ok(
    rec.call(
      'receivables',
      'issue',
      {
        opId,
        debtor: 'acme',
        holder: rec.chain.account('t1').address,
        amount,
        maturity: rec.chain.time + 30 * DAY,
      },
      'acmeClerk',
    ),
  );
  return r.returnValue as { id: string; proposalId: string };
}
const status = (rec: Recorder, contract: string, view: string, id: string) =>
  (rec.chain.view(contract, view, { id }).returnValue as { status: string }).status;

/** Proposes under governance as t1 and approves with three admins; returns the proposal. */
function govern(rec: Recorder, target: string, method: string, args: Value): Record<string, Value> {
  const id = ok(rec.call('approvals', 'propose', { policy: 'governance', target, method, args }, 't1'))
    .returnValue as string;
  for (const who of ['t1', 't2', 'bankAdmin']) ok(rec.call('approvals', 'approve', { id }, who));
  return rec.chain.view('approvals', 'proposal', { id }).returnValue as Record<string, Value>;
}

describe('threshold policies', () => {
  it('2 of 3 treasury officers confirm; other acme members are not eligible; one approval is not enough', () => {
    const rec = recorder(consortium());
    const v = issue(rec, 'a');
    expect(ok(rec.call('approvals', 'approve', { id: v.proposalId }, 'treasurer1')).returnValue).toBe(
      'PENDING',
    );
    const r = rec.call('approvals', 'approve', { id: v.proposalId }, 'acmeClerk');
    expect([r.status, r.errorCode]).toEqual(['reverted', 'NOT_ELIGIBLE']);
    expect(rec.call('approvals', 'approve', { id: v.proposalId }, 'treasurer1').errorCode).toBe(
      'ALREADY_VOTED',
    );
    expect(status(rec, 'receivables', 'voucher', v.id)).toBe('PENDING_CONFIRMATION');
    const done = ok(rec.call('approvals', 'approve', { id: v.proposalId }, 'treasurer3'));
    expect(done.returnValue).toBe('EXECUTED');
    expect(done.events.map((e) => e.name)).toEqual([
      'ProposalApprovedBy',
      'ProposalApproved',
      'Confirmed',
      'ProposalExecuted',
    ]);
    expect(status(rec, 'receivables', 'voucher', v.id)).toBe('ACTIVE');
    rec.chain.close();
  });

  it('a policy change (AND of treasury and the admin) applies to new proposals; open ones keep their pinned version', () => {
    const rec = recorder(consortium());
    const before = issue(rec, 'a');
    // acme's admin alone may set acme.* policies (implicit admins:acme).
    const tree = {
      kind: 'threshold',
      min: 2,
      of: [
        { kind: 'members', org: 'acme', role: 'treasury', min: 2 },
        { kind: 'signer', address: rec.chain.account('acmeAdmin').address },
      ],
    };
    const pid = ok(
      rec.call(
        'approvals',
        'propose',
        {
          policy: 'admins:acme',
          target: 'approvals',
          method: 'setPolicy',
          args: { id: 'acme.confirm', tree },
        },
        'acmeAdmin',
      ),
    ).returnValue as string;
    expect(ok(rec.call('approvals', 'approve', { id: pid }, 'acmeAdmin')).returnValue).toBe('EXECUTED');
    expect(
      (rec.chain.view('approvals', 'policy', { id: 'acme.confirm' }).returnValue as { version: number })
        .version,
    ).toBe(2);
    const after = issue(rec, 'b');
    for (const t of ['treasurer1', 'treasurer2']) {
      ok(rec.call('approvals', 'approve', { id: before.proposalId }, t));
      ok(rec.call('approvals', 'approve', { id: after.proposalId }, t));
    }
    expect(status(rec, 'approvals', 'proposal', before.proposalId)).toBe('EXECUTED'); // v1: 2 treasurers
    expect(status(rec, 'approvals', 'proposal', after.proposalId)).toBe('PENDING'); // v2: and the admin
    expect(ok(rec.call('approvals', 'approve', { id: after.proposalId }, 'acmeAdmin')).returnValue).toBe(
      'EXECUTED',
    );
    // A member of another organisation cannot set acme's policies through its own admins.
    const wrong = rec.call(
      'approvals',
      'propose',
      {
        policy: 'admins:tier1',
        target: 'approvals',
        method: 'setPolicy',
        args: { id: 'acme.confirm', tree },
      },
      't1',
    );
    expect(wrong.errorCode).toBe('WRONG_POLICY');
    rec.chain.close();
  });

  it('rejection, cancellation and expiry tell the target; a decided proposal takes no more votes', () => {
    const rec = recorder(consortium());
    const rejected = issue(rec, 'a');
    expect(ok(rec.call('approvals', 'reject', { id: rejected.proposalId }, 'treasurer2')).returnValue).toBe(
      'REJECTED',
    );
    expect(status(rec, 'receivables', 'voucher', rejected.id)).toBe('CANCELLED');
    expect(rec.call('approvals', 'approve', { id: rejected.proposalId }, 'treasurer1').errorCode).toBe(
      'NOT_PENDING',
    );

    const expiring = issue(rec, 'b');
    rec.advance(3 * DAY + 1);
    expect(status(rec, 'approvals', 'proposal', expiring.proposalId)).toBe('EXPIRED');
    expect(status(rec, 'receivables', 'voucher', expiring.id)).toBe('CANCELLED');
    const late = rec.call('approvals', 'approve', { id: expiring.proposalId }, 'treasurer1');
    expect(late.errorCode).toBe('NOT_PENDING');

    const cancelled = ok(
      rec.call(
        'approvals',
        'propose',
        { policy: 'governance', target: 'approvals', method: 'setParam', args: { key: 'k', value: 1 } },
        't1',
      ),
    ).returnValue as string;
    expect(rec.call('approvals', 'cancel', { id: cancelled }, 't2').errorCode).toBe('NOT_AUTHORIZED');
    ok(rec.call('approvals', 'cancel', { id: cancelled }, 't1'));
    expect(status(rec, 'approvals', 'proposal', cancelled)).toBe('CANCELLED');
    // The expiry callback of a decided proposal changes nothing.
    const before = snapshot(rec.chain, CONTRACTS);
    rec.advance(8 * DAY);
    expect(snapshot(rec.chain, CONTRACTS)).toBe(before);
    rec.chain.close();
  });
});

describe('a failed execution', () => {
  it('is recorded and told to the proposer: a confirmation beyond the credit line cancels the voucher', () => {
    const rec = recorder(consortium());
    govern(rec, 'receivables', 'govSetCreditLine', { org: 'acme', limit: 500 });
    const v = issue(rec, 'a', 1000);
    ok(rec.call('approvals', 'approve', { id: v.proposalId }, 'treasurer1'));
    const r = ok(rec.call('approvals', 'approve', { id: v.proposalId }, 'treasurer2'));
    expect(r.returnValue).toBe('FAILED');
    expect(r.events.map((e) => e.name)).toEqual([
      'ProposalApprovedBy',
      'ProposalApproved',
      'ProposalFailed',
      'Cancelled',
    ]);
    expect(rec.chain.view('approvals', 'proposal', { id: v.proposalId }).returnValue).toMatchObject({
      result: 'CREDIT_LINE_EXCEEDED',
    });
    expect(status(rec, 'receivables', 'voucher', v.id)).toBe('CANCELLED');
    expect(rec.chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({
      used: 0,
    });
    rec.chain.close();
  });
});

describe('offline signature bundles', () => {
  const keyOf = (name: string) => keyPairFromSecret(sha256(utf8(`trellis.test-account.${name}`)));
  const signed = (rec: Recorder, id: string, name: string, decision: string, tamper = false) => {
    const message = rec.chain.view('approvals', 'signingMessage', { id, decision }).returnValue as string;
    const k = keyOf(name);
    const signature = sign(utf8(tamper ? `${message}x` : message), k.secretKey);
    return { publicKey: toHex(k.publicKey), signature: toHex(signature), decision };
  };

  it('anyone relays a bundle of eligible signatures and the proposal executes', () => {
    const rec = recorder(consortium());
    const v = issue(rec, 'a');
    const bundle = [
      signed(rec, v.proposalId, 'treasurer1', 'approve'),
      signed(rec, v.proposalId, 'treasurer2', 'approve'),
    ];
    const r = ok(
      rec.call('approvals', 'submitSignatures', { id: v.proposalId, signatures: bundle }, 'outsider'),
    );
    expect(r.returnValue).toBe('EXECUTED');
    const p = rec.chain.view('approvals', 'proposal', { id: v.proposalId }).returnValue as {
      approvals: string[];
    };
    expect(p.approvals).toEqual([accountAddress('treasurer1'), accountAddress('treasurer2')]);
    expect(status(rec, 'receivables', 'voucher', v.id)).toBe('ACTIVE');
    rec.chain.close();
  });

  it('a forged, ineligible or malformed signature is refused and changes nothing', () => {
    const rec = recorder(consortium());
    const v = issue(rec, 'a');
    const cases: Array<[Value, string]> = [
      [[signed(rec, v.proposalId, 'treasurer1', 'approve', true)], 'BAD_SIGNATURE'],
      [[signed(rec, v.proposalId, 'acmeClerk', 'approve')], 'NOT_ELIGIBLE'],
      // A signature for "reject" does not count as an approval.
      [[{ ...signed(rec, v.proposalId, 'treasurer1', 'reject'), decision: 'approve' }], 'BAD_SIGNATURE'],
      [[{ publicKey: '00', signature: '00', decision: 'approve' }], 'BAD_ARGS'],
      [[], 'BAD_ARGS'],
    ];
    for (const [signatures, code] of cases) {
      const before = snapshot(rec.chain, CONTRACTS);
      const r = rec.call('approvals', 'submitSignatures', { id: v.proposalId, signatures }, 'outsider');
      expect(r.errorCode).toBe(code);
      expect(snapshot(rec.chain, CONTRACTS)).toBe(before);
    }
    rec.chain.close();
  });
});

describe('who may propose what', () => {
  it('refuses non-members, wrong policies and targets outside governance', () => {
    const rec = recorder(consortium());
    const a = rec.chain.account('outsider').address;
    const tries: Array<[string, Value, string]> = [
      [
        'outsider',
        {
          policy: 'governance',
          target: 'membership',
          method: 'addMember',
          args: { address: a, org: 'tier1', roles: [] },
        },
        'NOT_MEMBER',
      ],
      [
        't2',
        {
          policy: 'admins:tier2',
          target: 'membership',
          method: 'addMember',
          args: { address: a, org: 'tier1', roles: [] },
        },
        'WRONG_POLICY',
      ],
      [
        't1',
        {
          policy: 'admins:tier1',
          target: 'membership',
          method: 'addOrganisation',
          args: { id: 'x', name: 'X', roles: ['bank'] },
        },
        'WRONG_POLICY',
      ],
      [
        't1',
        { policy: 'governance', target: 'receivables', method: 'confirm', args: { id: 'V1' } },
        'BAD_TARGET',
      ],
      [
        't1',
        { policy: 'governance', target: 'approvals', method: 'expire', args: { id: 'P1' } },
        'BAD_TARGET',
      ],
      [
        't1',
        { policy: 'nope', target: 'approvals', method: 'setParam', args: { key: 'k', value: 1 } },
        'NO_POLICY',
      ],
      [
        't1',
        {
          policy: 'governance',
          target: 'approvals',
          method: 'setPolicy',
          args: { id: 'p', tree: { kind: 'members', min: 1 } },
        },
        'BAD_POLICY',
      ],
      [
        't1',
        {
          policy: 'governance',
          target: 'approvals',
          method: 'grantLifecycle',
          args: { kind: 'destroy', contract: 'x' },
        },
        'BAD_ARGS',
      ],
      [
        't1',
        { policy: 'governance', target: 'approvals', method: 'setValidators', args: { validators: [] } },
        'BAD_ARGS',
      ],
    ];
    for (const [who, args, code] of tries) {
      const before = snapshot(rec.chain, CONTRACTS);
      const r = rec.call('approvals', 'propose', args, who);
      expect(r.errorCode, JSON.stringify(args)).toBe(code);
      expect(snapshot(rec.chain, CONTRACTS)).toBe(before);
    }
    rec.chain.close();
  });
});

describe('governance', () => {
  it('membership changes through approvals: an organisation by governance, a member by its own admin', () => {
    const rec = recorder(consortium());
    const p = govern(rec, 'membership', 'addOrganisation', {
      id: 'newbank',
      name: 'New Bank',
      roles: ['bank'],
    });
    expect(p['status']).toBe('EXECUTED');
    const member = rec.chain.account('newbie').address;
    const add = ok(
      rec.call(
        'approvals',
        'propose',
        {
          policy: 'admins:tier1',
          target: 'membership',
          method: 'addMember',
          args: { address: member, org: 'tier1', roles: ['treasury'] },
        },
        't1',
      ),
    ).returnValue as string;
    ok(rec.call('approvals', 'approve', { id: add }, 't1'));
    expect(rec.chain.view('membership', 'member', { address: member }).returnValue).toEqual({
      address: member,
      org: 'tier1',
      roles: ['treasury'],
      orgRoles: ['supplier'],
    });
    const tier1 = rec.chain.view('membership', 'members', { org: 'tier1' }).returnValue as Array<{
      address: string;
    }>;
    expect(tier1.map((m) => m.address).sort()).toEqual([rec.chain.account('t1').address, member].sort());
    expect(
      (rec.chain.view('membership', 'organisation', { id: 'newbank' }).returnValue as { roles: string[] })
        .roles,
    ).toEqual(['bank']);
    // Two admins are not a governance quorum.
    const id = ok(
      rec.call(
        'approvals',
        'propose',
        { policy: 'governance', target: 'approvals', method: 'setParam', args: { key: 'fee', value: 5 } },
        't1',
      ),
    ).returnValue as string;
    ok(rec.call('approvals', 'approve', { id }, 't1'));
    expect(ok(rec.call('approvals', 'approve', { id }, 'bankAdmin')).returnValue).toBe('PENDING');
    expect(ok(rec.call('approvals', 'approve', { id }, 'regulatorAdmin')).returnValue).toBe('EXECUTED');
    expect(rec.chain.view('approvals', 'param', { key: 'fee' }).returnValue).toBe(5);
    // Credit lines are a governance call to receivables (methods named gov*).
    expect(govern(rec, 'receivables', 'govSetCreditLine', { org: 'acme', limit: 7 })['status']).toBe(
      'EXECUTED',
    );
    expect(rec.chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toEqual({
      org: 'acme',
      limit: 7,
      used: 0,
    });
    // A governance call the target refuses is recorded as FAILED, not reverted.
    expect(govern(rec, 'receivables', 'govSetCreditLine', { org: 'tier1', limit: 7 })).toMatchObject({
      status: 'FAILED',
      result: 'WRONG_ROLE',
    });
    // Validator-set changes are recorded for the node with the height they take effect.
    const vs = [{ name: 'v9', organisation: 'bank', publicKey: toHex(new Uint8Array(32).fill(7)) }];
    expect(govern(rec, 'approvals', 'setValidators', { validators: vs })['status']).toBe('EXECUTED');
    expect(rec.chain.view('approvals', 'pendingValidators').returnValue).toMatchObject({
      validators: vs,
      effectiveHeight: rec.chain.height + 2,
    });
    rec.chain.close();
  });

  it('contract deploy and upgrade need a governance grant (the node lifecycle hook)', () => {
    const deployer = accountAddress('deployer');
    // At genesis the deployer deploys; afterwards only grants decide.
    const executor = createExecutor({
      policy: scfLifecyclePolicy({
        fallback: (r) =>
          r.kind === 'deploy' && r.sender === deployer && ['membership', 'approvals'].includes(r.contract),
      }),
    });
    const chain = createTestChain({ sharedExecutor: executor, blockTimeMs: 0 });
    const addr = (n: string) => chain.account(n).address;
    const g = scfGenesisContracts([
      { id: 'tier1', name: 'T1', roles: ['supplier'], admins: [chain.account('t1').keys.publicKey] },
      { id: 'tier2', name: 'T2', roles: ['supplier'], admins: [chain.account('t2').keys.publicKey] },
      { id: 'bank', name: 'B', roles: ['bank'], admins: [chain.account('bankAdmin').keys.publicKey] },
    ]);
    for (const c of g.slice(0, 2))
      ok(chain.deploy(c.name, c.source, { from: 'deployer', initArgs: c.initArgs, gasLimit: GAS }));
    const rec = recorder(chain);
    const counter =
      'export const methods = { inc(ctx: any) { ctx.state.set("n", Number(ctx.state.get("n") ?? 0) + 1); } };';
    const counter2 =
      'export const methods = { inc(ctx: any) { ctx.state.set("n", Number(ctx.state.get("n") ?? 0) + 2); } };';
    expect(chain.deploy('counter', counter, { from: 't1', gasLimit: GAS }).errorCode).toBe('UNAUTHORIZED');
    expect(
      govern(rec, 'approvals', 'grantLifecycle', { kind: 'deploy', contract: 'counter', sender: addr('t1') })[
        'status'
      ],
    ).toBe('EXECUTED');
    expect(chain.deploy('counter', counter, { from: 't2', gasLimit: GAS }).errorCode).toBe('UNAUTHORIZED');
    ok(chain.deploy('counter', counter, { from: 't1', gasLimit: GAS }));
    expect(chain.upgrade('counter', counter2, { from: 't1', gasLimit: GAS }).errorCode).toBe('UNAUTHORIZED');
    govern(rec, 'approvals', 'grantLifecycle', { kind: 'upgrade', contract: 'counter', fromVersion: 1 });
    ok(chain.upgrade('counter', counter2, { from: 't2', gasLimit: GAS }));
    // The grant named version 1: one approval upgrades once.
    expect(chain.upgrade('counter', counter, { from: 't2', gasLimit: GAS }).errorCode).toBe('UNAUTHORIZED');
    expect(chain.freeze('counter', { from: 't1', gasLimit: GAS }).errorCode).toBe('UNAUTHORIZED');
    govern(rec, 'approvals', 'grantLifecycle', { kind: 'freeze', contract: 'counter' });
    ok(chain.freeze('counter', { from: 'bankAdmin', gasLimit: GAS }));
    chain.close();
    executor.close();
  });
});

describe('genesis wiring', () => {
  it('trellis init organisations give a genesis every node accepts, and the contracts deploy as the genesis deployer', () => {
    const admins = DEFAULT_ORGANISATIONS.map((o) => keyPairFromSecret(sha256(utf8(`admin.${o.id}`))));
    const orgs = DEFAULT_ORGANISATIONS.map((o, i) => ({ ...o, admins: [admins[i]!.publicKey] }));
    const contracts = scfGenesisContracts(orgs);
    expect(contracts.map((c) => c.name)).toEqual([...SCF_CONTRACTS]);
    const genesis = validateGenesis({
      chainId: 'scf-test',
      genesisTimeMs: 1_700_000_000_000,
      runtime: runtimeId(),
      organisations: orgs.map((o) => ({
        id: o.id,
        name: o.name,
        roles: [...o.roles],
        admins: o.admins.map((a) => toHex(a)),
      })),
      validators: [
        {
          name: 'v0',
          organisation: 'acme',
          publicKey: toHex(admins[0]!.publicKey),
          p2p: ['/ip4/127.0.0.1/tcp/1'],
        },
      ],
      consensus: { ...DEFAULT_CONSENSUS_PARAMS },
      contracts,
    });
    expect(genesis.contracts).toHaveLength(SCF_CONTRACTS.length);
    const chain = createTestChain({ admins: ['deployer'], blockTimeMs: 0 });
    for (const c of genesis.contracts)
      ok(chain.deploy(c.name, c.source, { from: 'deployer', initArgs: c.initArgs, gasLimit: GAS }));
    expect((chain.view('membership', 'organisations').returnValue as unknown[]).length).toBe(7);
    // Governance: admins of more than two thirds of the seven organisations.
    expect(chain.view('approvals', 'policy', { id: 'governance' }).returnValue).toMatchObject({
      tree: { kind: 'members', role: 'admin', min: 5, perOrg: true },
    });
    expect(chain.view('receivables', 'creditLine', { org: 'acme' }).returnValue).toMatchObject({
      limit: 100_000_000_000,
    });
    chain.close();
  });
});
