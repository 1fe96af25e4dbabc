// Goal: under any sequence of warehouse-receipt operations (inbound, inspection, listing, trades,
// endorsed transfers and splits, pledges with approval, lock, release, default and sale, delivery,
// freezes, stock attestations, expiry, retries), a pledged receipt never moves, live receipts never
// exceed the attested stock, quantities are conserved per lot, each receipt's encumbrance matches
// its status, a refused operation changes nothing, and replaying the events rebuilds the records.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import type { Value } from '../../core/codec.ts';
import { closeConsortium, dump, dumpAll, str } from './helpers.ts';
import {
  createPropertyHarness,
  expectEncumbrancesRebuilt,
  expectRebuilt,
  propertyParameters,
  recordsOf,
} from './propertyHarness.ts';

afterAll(closeConsortium);

const OURS = ['warehouseReceipts', 'encumbrances'] as const;
const PEOPLE = ['t1', 't2', 'distributorAdmin'];
const LIVE = ['ISSUED', 'LISTED', 'PLEDGE_PENDING', 'PLEDGED', 'ENFORCEMENT', 'DELIVERY_PENDING'];

interface R {
  id: string;
  root: string;
  parent: string | null;
  quantity: bigint;
  holder: string;
  status: string;
  prevStatus: string | null;
  bank: string | null;
  warehouse: string;
  sku: string;
}

function receipts(all: Map<string, Value> | undefined): R[] {
  return recordsOf<R>(all, 'r:', ['quantity']);
}

const op = fc.oneof(
  fc.record({ k: fc.constant('attest'), q: fc.integer({ min: 0, max: 1500 }), wrong: fc.nat(5) }),
  fc.record({
    k: fc.constant('inbound'),
    q: fc.integer({ min: 1, max: 400 }),
    who: fc.nat(2),
    inspect: fc.boolean(),
  }),
  fc.record({ k: fc.constant('list'), pick: fc.nat(), delist: fc.boolean(), wrong: fc.nat(5) }),
  fc.record({ k: fc.constant('trade'), pick: fc.nat(), buyer: fc.nat(2), wrong: fc.nat(5) }),
  fc.record({ k: fc.constant('transfer'), pick: fc.nat(), to: fc.nat(2), endorse: fc.boolean() }),
  fc.record({
    k: fc.constant('split'),
    pick: fc.nat(),
    parts: fc.integer({ min: 2, max: 3 }),
    endorse: fc.boolean(),
  }),
  fc.record({
    k: fc.constant('pledge'),
    pick: fc.nat(),
    bank: fc.nat(1),
    approve: fc.nat(3),
    lock: fc.nat(3),
    window: fc.integer({ min: 5, max: 40 }),
  }),
  fc.record({
    k: fc.constant('bank'),
    pick: fc.nat(),
    action: fc.constantFrom('releasePledge', 'declareDefault', 'enforcementSale', 'rejectPledge'),
    wrong: fc.nat(5),
  }),
  fc.record({
    k: fc.constant('delivery'),
    pick: fc.nat(),
    pct: fc.integer({ min: 1, max: 100 }),
    out: fc.boolean(),
  }),
  fc.record({ k: fc.constant('freeze'), pick: fc.nat(), unfreeze: fc.boolean() }),
  fc.record({ k: fc.constant('advance'), seconds: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ k: fc.constant('retry') }),
);

describe('warehouse receipts under random operation sequences', () => {
  it('never move a pledged receipt, never exceed attested stock, conserve quantities and replay from events', () => {
    const h = createPropertyHarness({
      name: 'warehouseReceipts',
      contract: 'warehouseReceipts',
      watched: OURS,
    });
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 500 }),
        fc.array(op, { minLength: 4, maxLength: 10 }),
        (firstLot, ops) =>
          h.run(({ chain, rec, call, retry }) => {
            const addr = (n: string) => chain.account(n).address;
            const nameOf = new Map(
              [...PEOPLE, 'banker', 'bank2Admin', 'exchangeAdmin'].map((n) => [addr(n), n]),
            );
            const base = { state: dump(chain, 'warehouseReceipts'), enc: dump(chain, 'encumbrances', 'e:') };
            const issuedQty = new Map<string, bigint>();
            let seq = 0;
            let lots = 0;
            const tx = (method: string, args: Record<string, Value>, from: string) => {
              const prev = receipts(dumpAll(chain).get('warehouseReceipts'));
              const r = call('warehouseReceipts', method, { opId: `op${seq++}`, ...args }, from);
              for (const e of r.events)
                if (e.name === 'Issued' && e.contract === 'warehouseReceipts') {
                  const d = e.data as Record<string, Value>;
                  issuedQty.set(str(d['id']), BigInt(d['quantity'] as number));
                }
              check(prev);
              return r;
            };
            // A pledged receipt never moves: holder, quantity and lot stay; it only leaves PLEDGED by
            // release (ISSUED, same holder), default (ENFORCEMENT) or a freeze.
            const check = (prev: R[]): void => {
              const all = dumpAll(chain);
              const now = receipts(all.get('warehouseReceipts'));
              const byId = new Map(now.map((r) => [r.id, r]));
              for (const p of prev) {
                if (p.status !== 'PLEDGED') continue;
                const n = byId.get(p.id)!;
                expect(n.holder).toBe(p.holder);
                expect(n.quantity).toBe(p.quantity);
                expect(['PLEDGED', 'ISSUED', 'ENFORCEMENT', 'FROZEN']).toContain(n.status);
              }
              const wr = all.get('warehouseReceipts')!;
              const enc = all.get('encumbrances') ?? new Map<string, Value>();
              // Live receipts per (warehouse, SKU) equal the stock's live count and never exceed the attestation.
              for (const [k, raw] of wr) {
                if (!k.startsWith('st:')) continue;
                const s = raw as {
                  warehouse: string;
                  sku: string;
                  attested: number | bigint;
                  live: number | bigint;
                };
                const live = now
                  .filter(
                    (r) =>
                      r.warehouse === s.warehouse &&
                      r.sku === s.sku &&
                      (LIVE.includes(r.status) || (r.status === 'FROZEN' && LIVE.includes(r.prevStatus!))),
                  )
                  .reduce((a, r) => a + r.quantity, 0n);
                expect(BigInt(s.live)).toBe(live);
                expect(live <= BigInt(s.attested)).toBe(true);
              }
              // Quantities are conserved per lot: the leaves of each tree cover what was inspected.
              for (const [root, q] of issuedQty) {
                const leaves = now.filter((r) => r.root === root && r.status !== 'SPLIT');
                expect(leaves.reduce((a, r) => a + r.quantity, 0n)).toBe(q);
              }
              // One encumbrance per receipt, matching its status.
              for (const r of now) {
                const e = enc.get(`e:warehouseReceipts:${r.id}`) as
                  { kind: string; beneficiary: string } | undefined;
                if (r.status === 'FROZEN') expect(e?.kind).toBe('freeze');
                else if (['PLEDGE_PENDING', 'PLEDGED', 'ENFORCEMENT'].includes(r.status)) {
                  expect(e?.kind).toBe('pledge');
                  expect(e?.beneficiary).toBe(r.bank);
                } else expect(e).toBeUndefined();
              }
            };
            const inbound = (q: number, who: string, inspect: boolean) => {
              const r = tx(
                'requestInbound',
                { warehouse: 'warehouse', sku: 'steel', quantity: q, lot: `L${lots++}` },
                who,
              );
              if (r.status === 'ok' && inspect) tx('inspect', { id: r.returnValue }, 'keeper');
            };
            tx('attestStock', { sku: 'steel', quantity: 1000 }, 'keeper');
            inbound(firstLot, 't1', true);
            for (const o of ops) {
              const rs = receipts(dumpAll(chain).get('warehouseReceipts'));
              const pick = (n: number, ...statuses: string[]): R | undefined => {
                const pref = rs.filter((r) => statuses.includes(r.status));
                const xs = pref.length > 0 && n % 5 !== 0 ? pref : rs;
                return xs.length === 0 ? undefined : xs[n % xs.length];
              };
              const holderOf = (r: R) => nameOf.get(r.holder) ?? 't1';
              const bankOf = (r: R) => (r.bank === 'bank2' ? 'bank2Admin' : 'banker');
              switch (o.k) {
                case 'attest':
                  tx('attestStock', { sku: 'steel', quantity: o.q }, o.wrong === 0 ? 't1' : 'keeper');
                  break;
                case 'inbound':
                  inbound(o.q, PEOPLE[o.who]!, o.inspect);
                  break;
                case 'list': {
                  const r = pick(o.pick, o.delist ? 'LISTED' : 'ISSUED');
                  if (r === undefined) break;
                  const t = tx(
                    o.delist ? 'delist' : 'list',
                    o.delist ? { id: r.id } : { id: r.id, price: 5000 },
                    o.wrong === 0 ? 'keeper' : holderOf(r),
                  );
                  // A listing often trades at once on the exchange.
                  if (t.status === 'ok' && !o.delist && o.pick % 2 === 0)
                    tx(
                      'settleTrade',
                      { id: r.id, buyer: addr(holderOf(r) === 't2' ? 't1' : 't2'), price: 5000 },
                      'exchangeAdmin',
                    );
                  break;
                }
                case 'trade': {
                  const r = pick(o.pick, 'LISTED');
                  if (r === undefined) break;
                  tx(
                    'settleTrade',
                    { id: r.id, buyer: addr(PEOPLE[o.buyer]!), price: 4900 },
                    o.wrong === 0 ? 't1' : 'exchangeAdmin',
                  );
                  break;
                }
                case 'transfer': {
                  const r = pick(o.pick, 'ISSUED');
                  if (r === undefined) break;
                  const t = tx('requestTransfer', { id: r.id, to: addr(PEOPLE[o.to]!) }, holderOf(r));
                  if (t.status === 'ok' || o.endorse)
                    tx('endorse', { id: r.id }, o.endorse ? 'keeper' : 't2');
                  break;
                }
                case 'split': {
                  const r = pick(o.pick, 'ISSUED');
                  if (r === undefined) break;
                  const parts: bigint[] = [];
                  let left = r.quantity;
                  for (let i = 1; i < o.parts && left > 1n; i++) {
                    parts.push(left / 2n);
                    left -= left / 2n;
                  }
                  parts.push(left);
                  const t = tx('requestSplit', { id: r.id, quantities: parts }, holderOf(r));
                  if (t.status === 'ok')
                    tx(
                      o.endorse ? 'endorse' : 'cancelRequest',
                      { id: r.id },
                      o.endorse ? 'keeper' : holderOf(r),
                    );
                  break;
                }
                case 'pledge': {
                  const r = pick(o.pick, 'ISSUED');
                  if (r === undefined) break;
                  const bank = o.bank === 0 ? 'bank' : 'bank2';
                  const t = tx(
                    'pledgeRequest',
                    { id: r.id, bank, loan: 700, expiresInMs: o.window * 1000 },
                    holderOf(r),
                  );
                  if (t.status !== 'ok') break;
                  if (o.approve > 0)
                    tx('approvePledge', { id: r.id }, o.bank === 0 ? 'banker' : 'bank2Admin');
                  if (o.lock > 0) tx('lockPledge', { id: r.id }, 'keeper');
                  break;
                }
                case 'bank': {
                  const r = pick(o.pick, 'PLEDGED', 'ENFORCEMENT', 'PLEDGE_PENDING');
                  if (r === undefined) break;
                  // Mostly the action the status allows; sometimes any, to meet refusals too.
                  const fitting: Record<string, string> = {
                    PLEDGED: o.pick % 2 === 0 ? 'releasePledge' : 'declareDefault',
                    ENFORCEMENT: 'enforcementSale',
                    PLEDGE_PENDING: 'rejectPledge',
                  };
                  const action = o.pick % 4 === 0 ? o.action : (fitting[r.status] ?? o.action);
                  const args: Record<string, Value> =
                    action === 'enforcementSale' ? { id: r.id, buyer: addr('t2'), price: 600 } : { id: r.id };
                  const t = tx(action, args, o.wrong === 0 ? 'keeper' : bankOf(r));
                  if (t.status === 'ok' && action === 'declareDefault' && o.pick % 3 === 0)
                    tx(
                      'enforcementSale',
                      { id: r.id, buyer: addr(holderOf(r) === 't2' ? 't1' : 't2'), price: 600 },
                      bankOf(r),
                    );
                  break;
                }
                case 'delivery': {
                  const r = pick(o.pick, 'ISSUED');
                  if (r === undefined) break;
                  const q = 1n + ((r.quantity - 1n) * BigInt(o.pct)) / 100n;
                  const t = tx('requestDelivery', { id: r.id, quantity: q }, holderOf(r));
                  if (t.status === 'ok')
                    tx(o.out ? 'goodsOut' : 'cancelDelivery', { id: r.id }, o.out ? 'keeper' : holderOf(r));
                  break;
                }
                case 'freeze': {
                  const r = pick(o.pick, o.unfreeze ? 'FROZEN' : 'PLEDGED');
                  if (r === undefined) break;
                  tx(o.unfreeze ? 'unfreeze' : 'freeze', { id: r.id }, 'regulatorAdmin');
                  break;
                }
                case 'advance': {
                  const prev = receipts(dumpAll(chain).get('warehouseReceipts'));
                  rec.advance(o.seconds * 1000);
                  check(prev);
                  break;
                }
                case 'retry':
                  retry();
                  break;
              }
            }
            // Replaying the events rebuilds every receipt, stock record and encumbrance.
            const records = (m: Map<string, Value>) =>
              new Map([...m].filter(([k]) => k.startsWith('r:') || k.startsWith('st:')));
            const state = records(base.state);
            for (const e of rec.events) {
              if (e.contract !== 'warehouseReceipts') continue;
              const d = e.data as Record<string, Value>;
              for (const r of (d['receipts'] ?? []) as Array<Record<string, Value>>)
                state.set(`r:${str(r['id'])}`, r);
              const s = d['stock'] as Record<string, Value> | null;
              if (s !== null) state.set(`st:${str(s['warehouse'])}:${str(s['sku'])}`, s);
            }
            expectRebuilt(state, records(dump(chain, 'warehouseReceipts')));
            expectEncumbrancesRebuilt(chain, rec.events, base.enc);
          }),
      ),
      propertyParameters(11),
    );
    h.finish([
      'attestStock',
      'requestInbound',
      'inspect',
      'list',
      'delist',
      'settleTrade',
      'endorse',
      'pledgeRequest',
      'approvePledge',
      'lockPledge',
      'releasePledge',
      'declareDefault',
      'enforcementSale',
      'rejectPledge',
      'goodsOut',
      'cancelDelivery',
      'freeze',
      'unfreeze',
    ]);
  });
});
