// Goal: two engines other contracts build on behave exactly like their models under random
// sequences. The encumbrance registry holds at most one encumbrance per asset whoever asks, only
// in the caller's namespace, with freezes covering and restoring what was there. The approvals
// engine executes a proposal exactly when a random threshold tree over members, organisations and
// roles holds for its eligible approvers, and rejects it exactly at `rejectMin` eligible rejections.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Value } from '../../core/codec.ts';
import {
  GAS,
  MEMBERS,
  ORGS,
  closeConsortium,
  consortium,
  dump,
  norm,
  ok,
  recorder,
  snapshot,
  stringify,
  str,
} from './helpers.ts';

afterAll(closeConsortium);

const PROBE = readFileSync(new URL('./fixtures/probe.ts', import.meta.url), 'utf8');

describe('encumbrance registry', () => {
  it('one encumbrance per asset, namespaced by caller, freezes cover and restore (model check)', () => {
    const op = fc.record({
      probe: fc.constantFrom('probeA', 'probeB'),
      method: fc.constantFrom('encumber', 'release', 'freeze', 'unfreeze'),
      id: fc.constantFrom('x', 'y'),
      kind: fc.constantFrom('pledge', 'assignment'),
      beneficiary: fc.constantFrom('bank', 'bank2'),
    });
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 12 }), (ops) => {
        const chain = consortium();
        const rec = recorder(chain);
        for (const p of ['probeA', 'probeB']) ok(chain.deploy(p, PROBE, { from: 'tester', gasLimit: GAS }));
        type E = { kind: string; beneficiary: string; under: E | null };
        const model = new Map<string, E>();
        try {
          for (const o of ops) {
            const asset = `${o.probe}:${o.id}`;
            const cur = model.get(asset);
            let expected: string;
            let next: E | null | undefined; // undefined: unchanged
            if (o.method === 'encumber') {
              expected = cur === undefined ? 'ok' : 'ALREADY_ENCUMBERED';
              next = { kind: o.kind, beneficiary: o.beneficiary, under: null };
            } else if (o.method === 'release') {
              if (cur?.kind === o.kind) [expected, next] = ['ok', null];
              else if (cur?.kind === 'freeze' && cur.under?.kind === o.kind)
                [expected, next] = ['ok', { ...cur, under: null }];
              else expected = 'NOT_ENCUMBERED';
            } else if (o.method === 'freeze') {
              expected = cur?.kind === 'freeze' ? 'ALREADY_FROZEN' : 'ok';
              next = { kind: 'freeze', beneficiary: o.beneficiary, under: cur ?? null };
            } else {
              expected = cur?.kind === 'freeze' ? 'ok' : 'NOT_FROZEN';
              next = cur?.under ?? null;
            }
            const args: Record<string, Value> = {
              id: o.id,
              kind: o.kind,
              beneficiary: o.beneficiary,
              by: o.beneficiary,
            };
            if (o.method === 'unfreeze') delete args['kind'];
            if (o.method !== 'encumber') delete args['beneficiary'];
            if (o.method !== 'freeze') delete args['by'];
            if (o.method === 'freeze') delete args['kind'];
            const before = snapshot(chain, ['encumbrances']);
            const r = rec.call(o.probe, 'forward', { method: o.method, args }, 't1');
            expect(r.status === 'ok' ? 'ok' : r.errorCode, `${o.method} ${asset}`).toBe(expected);
            if (expected === 'ok') {
              if (next === null) model.delete(asset);
              else if (next !== undefined) model.set(asset, next);
              expect(r.events.length).toBeGreaterThan(0);
            } else expect(snapshot(chain, ['encumbrances'])).toBe(before);
            // The registry holds exactly the model: one record per asset.
            const actual = dump(chain, 'encumbrances', 'e:');
            expect(actual.size).toBe(model.size);
            for (const [a, e] of model) {
              const got = actual.get(`e:${a}`) as unknown as E & { under: (E & { under: null }) | null };
              expect([got.kind, got.beneficiary, got.under?.kind ?? null]).toEqual([
                e.kind,
                e.beneficiary,
                e.under?.kind ?? null,
              ]);
            }
          }
          // Events alone rebuild the registry.
          const replay = new Map<string, Value>();
          for (const e of rec.events) {
            if (e.contract !== 'encumbrances') continue;
            const d = e.data as Record<string, Value>;
            if (d['encumbrance'] === null) replay.delete(`e:${str(d['asset'])}`);
            else replay.set(`e:${str(d['asset'])}`, d['encumbrance']!);
          }
          const canon = (m: Map<string, Value>) =>
            stringify([...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => [k, norm(v)]));
          expect(canon(replay)).toBe(canon(dump(chain, 'encumbrances', 'e:')));
        } finally {
          chain.close();
        }
      }),
      { numRuns: Number(process.env.RUNS ?? 500), seed: 17 },
    );
  });
});

// ---------------------------------------------------------------------------------------------

type Tree =
  | { kind: 'signer'; account: string }
  | {
      kind: 'members';
      org?: string | undefined;
      role?: string | undefined;
      orgRole?: string | undefined;
      min: number;
      perOrg?: boolean | undefined;
    }
  | { kind: 'threshold'; min: number; of: Tree[] };

const ACCOUNTS = [...Object.keys(MEMBERS), 'outsider'];
const ROLES = ['admin', 'treasury', 'credit'];

const leaf: fc.Arbitrary<Tree> = fc.oneof(
  fc.record({ kind: fc.constant('signer' as const), account: fc.constantFrom(...Object.keys(MEMBERS)) }),
  fc
    .record({
      kind: fc.constant('members' as const),
      org: fc.option(fc.constantFrom(...ORGS.map((o) => o.id)), { nil: undefined }),
      role: fc.option(fc.constantFrom(...ROLES), { nil: undefined }),
      orgRole: fc.option(fc.constantFrom('supplier', 'bank', 'core-enterprise'), { nil: undefined }),
      min: fc.integer({ min: 1, max: 2 }),
      perOrg: fc.option(fc.boolean(), { nil: undefined }),
    })
    .map((t) =>
      t.org === undefined && t.role === undefined && t.orgRole === undefined ? { ...t, role: 'admin' } : t,
    ),
);
const tree: fc.Arbitrary<Tree> = fc.oneof(
  leaf,
  fc
    .array(leaf, { minLength: 1, maxLength: 3 })
    .chain((of) =>
      fc.integer({ min: 1, max: of.length }).map((min) => ({ kind: 'threshold' as const, min, of })),
    ),
);

function memberInfo(name: string): { org: string; roles: string[]; orgRoles: string[] } | null {
  const m = MEMBERS[name];
  if (m === undefined) return null;
  return { org: m[0], roles: m[1], orgRoles: [...ORGS.find((o) => o.id === m[0])!.roles] };
}
function matches(t: Tree & { kind: 'members' }, name: string): boolean {
  const m = memberInfo(name)!;
  return (
    (t.org === undefined || t.org === m.org) &&
    (t.role === undefined || m.roles.includes(t.role)) &&
    (t.orgRole === undefined || m.orgRoles.includes(t.orgRole))
  );
}
function eligible(t: Tree, name: string): boolean {
  if (memberInfo(name) === null) return false;
  if (t.kind === 'signer') return t.account === name;
  if (t.kind === 'members') return matches(t, name);
  return t.of.some((c) => eligible(c, name));
}
function holds(t: Tree, voters: string[]): boolean {
  if (t.kind === 'signer') return voters.includes(t.account);
  if (t.kind === 'members') {
    const m = voters.filter((v) => matches(t, v));
    return (t.perOrg === true ? new Set(m.map((v) => memberInfo(v)!.org)).size : m.length) >= t.min;
  }
  return t.of.filter((c) => holds(c, voters)).length >= t.min;
}

describe('approvals engine', () => {
  it('executes exactly when the random threshold tree holds and rejects exactly at rejectMin (model check)', () => {
    let decided = 0;
    fc.assert(
      fc.property(
        tree,
        fc.integer({ min: 1, max: 2 }),
        fc.array(fc.record({ who: fc.constantFrom(...ACCOUNTS), approve: fc.nat(3) }), {
          minLength: 1,
          maxLength: 10,
        }),
        (t, rejectMin, votes) => {
          const chain = consortium();
          const rec = recorder(chain);
          const addr = (n: string) => chain.account(n).address;
          const toWire = (x: Tree): Value =>
            x.kind === 'signer'
              ? { kind: 'signer', address: addr(x.account) }
              : x.kind === 'members'
                ? (Object.fromEntries(Object.entries(x).filter(([, v]) => v !== undefined)) as Record<
                    string,
                    Value
                  >)
                : { kind: 'threshold', min: x.min, of: x.of.map(toWire) };
          try {
            ok(chain.deploy('probe', PROBE, { from: 'tester', gasLimit: GAS }));
            // The policy is set by governance (three admins).
            const set = ok(
              rec.call(
                'approvals',
                'propose',
                {
                  policy: 'governance',
                  target: 'approvals',
                  method: 'setPolicy',
                  args: { id: 'probe.policy', tree: toWire(t), rejectMin },
                },
                't1',
              ),
            ).returnValue as string;
            for (const a of ['t1', 't2', 'bankAdmin']) ok(rec.call('approvals', 'approve', { id: set }, a));
            const id = ok(rec.call('probe', 'proposeSelf', { policy: 'probe.policy' }, 't1'))
              .returnValue as string;
            const approvals: string[] = [];
            const rejections: string[] = [];
            let status = 'PENDING';
            for (const v of votes) {
              const decision = v.approve === 0 ? 'reject' : 'approve';
              let expected = 'ok';
              if (status !== 'PENDING') expected = 'NOT_PENDING';
              else if (approvals.includes(v.who) || rejections.includes(v.who)) expected = 'ALREADY_VOTED';
              else if (!eligible(t, v.who)) expected = 'NOT_ELIGIBLE';
              const before = snapshot(chain, ['approvals', 'probe']);
              const r = rec.call('approvals', decision, { id }, v.who);
              expect(r.status === 'ok' ? 'ok' : r.errorCode).toBe(expected);
              if (expected !== 'ok') {
                expect(snapshot(chain, ['approvals', 'probe'])).toBe(before);
                continue;
              }
              if (decision === 'approve') {
                approvals.push(v.who);
                if (holds(t, approvals)) status = 'EXECUTED';
              } else {
                rejections.push(v.who);
                if (rejections.length >= rejectMin) status = 'REJECTED';
              }
              expect(r.returnValue).toBe(status);
            }
            if (status !== 'PENDING') decided++;
            const probe = dump(chain, 'probe');
            expect(probe.get('done') ?? 0).toBe(status === 'EXECUTED' ? 1 : 0);
            expect(probe.get(`undone:${id}`) ?? null).toBe(status === 'REJECTED' ? 'rejected' : null);
          } finally {
            chain.close();
          }
        },
      ),
      { numRuns: Number(process.env.RUNS ?? 500), seed: 19 },
    );
    // Not vacuous: many runs reach a decision.
    expect(decided).toBeGreaterThan(Number(process.env.RUNS ?? 500) / 10);
  });
});
