// Goal: under any sequence of order-financing operations (open, accept/decline/cancel, margin
// payments, releases, shipments, receipts, cover commitments, maturity, cover, retries), releases
// never exceed the margin cover, shipments never exceed releases and receipts never exceed
// shipments, the voucher's assignment lives exactly while the bank's claim does, a refused
// operation changes nothing, and replaying the events rebuilds every order.
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

const OURS = ['orderFinancing', 'encumbrances'] as const;

interface O {
  id: string;
  status: string;
  orderValue: bigint;
  margin: bigint;
  released: bigint;
  shipped: bigint;
  received: bigint;
  releaseRatioBps: number;
  bank: string;
}

function orders(all: Map<string, Value> | undefined): O[] {
  return recordsOf<O>(all, 'o:', ['orderValue', 'margin', 'released', 'shipped', 'received']);
}

/** What the margin paid so far allows the bank to release. */
const coverOf = (o: O): bigint => (o.margin * BigInt(o.releaseRatioBps)) / 10_000n;

const bankOf = (o: O): string => (o.bank === 'bank2' ? 'bank2Admin' : 'banker');

/**
 * The goods flow in three steps, each bounded by the one before: the bank releases within the
 * margin cover, the core enterprise ships what is released, the distributor confirms what is
 * shipped. `room` is what a step may still move, `by` who may do it, `wrong` someone who may not.
 */
const FLOW = {
  release: {
    method: 'release',
    room: (o: O) => coverOf(o) - o.released,
    by: bankOf,
    wrong: 'distributorAdmin',
  },
  ship: { method: 'ship', room: (o: O) => o.released - o.shipped, by: () => 'acmeClerk', wrong: 'banker' },
  receive: {
    method: 'confirmReceipt',
    room: (o: O) => o.shipped - o.received,
    by: () => 'distributorAdmin',
    wrong: 'acmeClerk',
  },
} as const;

const op = fc.oneof(
  fc.record({
    k: fc.constant('open'),
    value: fc.integer({ min: 1, max: 100_000 }),
    ratio: fc.integer({ min: 5_000, max: 60_000 }),
    maturity: fc.integer({ min: 5, max: 40 }),
    bank: fc.nat(1),
    decide: fc.nat(3),
  }),
  fc.record({
    k: fc.constant('margin'),
    pick: fc.nat(),
    pct: fc.integer({ min: 1, max: 120 }),
    wrong: fc.nat(5),
    follow: fc.nat(3),
    share: fc.integer({ min: 1, max: 100 }),
  }),
  fc.record({
    k: fc.constant('release'),
    pick: fc.nat(),
    pct: fc.integer({ min: 1, max: 150 }),
    wrong: fc.nat(5),
  }),
  fc.record({
    k: fc.constant('ship'),
    pick: fc.nat(),
    pct: fc.integer({ min: 1, max: 120 }),
    wrong: fc.nat(5),
  }),
  fc.record({
    k: fc.constant('receive'),
    pick: fc.nat(),
    pct: fc.integer({ min: 1, max: 120 }),
    wrong: fc.nat(5),
  }),
  fc.record({
    k: fc.constant('commit'),
    pick: fc.nat(),
    kind: fc.constantFrom('buyback', 'guarantee', 'other'),
    wrong: fc.nat(5),
  }),
  fc.record({ k: fc.constant('cover'), pick: fc.nat(), wrong: fc.nat(5) }),
  fc.record({ k: fc.constant('advance'), seconds: fc.integer({ min: 1, max: 30 }) }),
  fc.record({ k: fc.constant('retry') }),
);

const pctOf = (x: bigint, pct: number): bigint => 1n + (x * BigInt(pct)) / 100n;

describe('order financing under random operation sequences', () => {
  it('never releases beyond the margin cover, keeps the assignment while the claim lives, and replays from events', () => {
    const h = createPropertyHarness({ name: 'orderFinancing', contract: 'orderFinancing', watched: OURS });
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 100_000 }),
        fc.integer({ min: 5_000, max: 60_000 }),
        fc.array(op, { minLength: 4, maxLength: 10 }),
        (value, ratio, ops) =>
          h.run(({ chain, rec, call, retry }) => {
            let seq = 0;
            const check = (): void => {
              const all = dumpAll(chain);
              const enc = all.get('encumbrances') ?? new Map<string, Value>();
              for (const o of orders(all.get('orderFinancing'))) {
                expect(o.released <= coverOf(o) && o.released <= o.orderValue).toBe(true);
                expect(o.shipped <= o.released).toBe(true);
                expect(o.received <= o.shipped).toBe(true);
                expect(o.margin <= o.orderValue).toBe(true);
                const e = enc.get(`e:orderFinancing:${o.id}`) as
                  { kind: string; beneficiary: string } | undefined;
                if (['ACTIVE', 'COVER_DUE', 'DEFAULTED'].includes(o.status)) {
                  expect(e?.kind).toBe('assignment');
                  expect(e?.beneficiary).toBe(o.bank);
                } else expect(e).toBeUndefined();
              }
            };
            const tx = (method: string, args: Record<string, Value>, from: string) => {
              const r = call('orderFinancing', method, { opId: `op${seq++}`, ...args }, from);
              check();
              return r;
            };
            // Each run starts with one accepted order, so the random operations meet a live one.
            const first = tx(
              'open',
              {
                core: 'acme',
                bank: 'bank',
                orderValue: value,
                releaseRatioBps: ratio,
                maturity: chain.time + 30_000,
              },
              'distributorAdmin',
            );
            tx('accept', { id: first.returnValue }, 'banker');
            for (const o of ops) {
              const os = orders(dumpAll(chain).get('orderFinancing'));
              const pick = (n: number): O | undefined => {
                const active = os.filter((x) => x.status === 'ACTIVE' || x.status === 'COVER_DUE');
                const xs = active.length > 0 && n % 5 !== 0 ? active : os;
                return xs.length === 0 ? undefined : xs[n % xs.length];
              };
              switch (o.k) {
                case 'open': {
                  const r = tx(
                    'open',
                    {
                      core: 'acme',
                      bank: o.bank === 0 ? 'bank' : 'bank2',
                      orderValue: o.value,
                      releaseRatioBps: o.ratio,
                      maturity: chain.time + o.maturity * 1000,
                    },
                    'distributorAdmin',
                  );
                  if (r.status !== 'ok') break;
                  const id = r.returnValue as string;
                  const banker = o.bank === 0 ? 'banker' : 'bank2Admin';
                  if (o.decide === 0) tx('decline', { id }, banker);
                  else if (o.decide === 1) tx('cancel', { id }, 'distributorAdmin');
                  else tx('accept', { id }, banker);
                  break;
                }
                case 'margin': {
                  const x = pick(o.pick);
                  if (x === undefined) break;
                  const m = tx(
                    'payMargin',
                    {
                      id: x.id,
                      amount:
                        o.pct > 100 && x.orderValue > x.margin
                          ? x.orderValue - x.margin
                          : pctOf(x.orderValue, o.pct) / 2n + 1n,
                    },
                    o.wrong === 0 ? 't1' : 'distributorAdmin',
                  );
                  if (m.status !== 'ok') break;
                  // Often the goods then flow: release, ship and receive a share of what is allowed.
                  const share = (room: bigint) => (room * BigInt(o.share)) / 100n || 1n;
                  for (const f of [FLOW.release, FLOW.ship, FLOW.receive].slice(0, o.follow)) {
                    const y = orders(dumpAll(chain).get('orderFinancing')).find((z) => z.id === x.id)!;
                    tx(f.method, { id: x.id, value: share(f.room(y)) }, f.by(x));
                  }
                  break;
                }
                case 'release':
                case 'ship':
                case 'receive': {
                  const x = pick(o.pick);
                  if (x === undefined) break;
                  const f = FLOW[o.k];
                  const room = f.room(x);
                  tx(
                    f.method,
                    { id: x.id, value: pctOf(room > 0n ? room : 1n, o.pct) },
                    o.wrong === 0 ? f.wrong : f.by(x),
                  );
                  break;
                }
                case 'commit': {
                  const x = pick(o.pick);
                  if (x === undefined) break;
                  tx(
                    'commitCover',
                    { id: x.id, kind: o.kind },
                    o.wrong === 0 ? 'distributorAdmin' : 'acmeClerk',
                  );
                  break;
                }
                case 'cover': {
                  const x = pick(o.pick);
                  if (x === undefined) break;
                  tx('cover', { id: x.id }, o.wrong === 0 ? 'banker' : 'acmeClerk');
                  break;
                }
                case 'advance':
                  rec.advance(o.seconds * 1000);
                  check();
                  break;
                case 'retry':
                  retry();
                  break;
              }
            }
            for (const e of rec.events)
              if (['OrderSettled', 'OrderDefaulted', 'CoverDue'].includes(e.name)) h.count(e.name);
            // Replaying the events rebuilds every order and the registry.
            const state = new Map<string, Value>();
            for (const e of rec.events)
              if (e.contract === 'orderFinancing') {
                const d = e.data as Record<string, Value>;
                state.set(`o:${str(d['id'])}`, d['order']!);
              }
            expectRebuilt(state, dump(chain, 'orderFinancing', 'o:'));
            expectEncumbrancesRebuilt(chain, rec.events);
          }),
      ),
      propertyParameters(13),
    );
    h.finish([
      'open',
      'accept',
      'decline',
      'cancel',
      'payMargin',
      'release',
      'ship',
      'confirmReceipt',
      'commitCover',
      'cover',
      'OrderSettled',
      'OrderDefaulted',
      'CoverDue',
    ]);
  });
});
