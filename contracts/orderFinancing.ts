/**
 * Order financing (prepayment financing): a distributor buys goods from a core enterprise with a
 * bank's money and takes delivery in tranches as it pays margin.
 *
 * - The distributor opens an order (REQUESTED) naming the core enterprise, the bank, the order
 *   value, the release ratio and the maturity; the bank accepts (ACTIVE) and a voucher payable to
 *   the core enterprise for the order value is issued, carrying an assignment to the bank in the
 *   encumbrance registry for the order's whole life; or the bank declines / the distributor
 *   cancels.
 * - The distributor pays margin; the bank releases goods in tranches, never beyond the cover:
 *   `released ≤ min(orderValue, margin × releaseRatioBps / 10000)`; the core enterprise ships no
 *   more than released; the distributor confirms receipt of no more than shipped.
 * - The core enterprise may commit to a buy-back or a guarantee. At maturity (scheduled) a fully
 *   paid order is SETTLED; a shortfall with a commitment is COVER_DUE until the core enterprise
 *   covers it (COVERED); without one the order is DEFAULTED (the assignment stays with the bank).
 *
 * Every transition emits an event with the changed order record (`order`); every user method takes
 * an `opId` (idempotent retries).
 */
import type { Context, Methods, Value, ViewContext, Views } from './api.ts';

const MAX_AMOUNT = (1n << 62n) - 1n;
const MAX_RATIO_BPS = 1_000_000;

interface Member {
  address: string;
  org: string;
  roles: string[];
  orgRoles: string[];
}
interface Order {
  id: string;
  distributor: string;
  distributorOrg: string;
  core: string;
  bank: string;
  orderValue: bigint;
  releaseRatioBps: number;
  maturity: number;
  margin: bigint;
  released: bigint;
  shipped: bigint;
  received: bigint;
  cover: string;
  shortfall: bigint;
  voucher: string | null;
  status: string;
}

function cfg(ctx: ViewContext): { membership: string; encumbrances: string } {
  return ctx.state.get('cfg') as { membership: string; encumbrances: string };
}
function requireMember(ctx: ViewContext, address: string, orgRole: string | null, what: string): Member {
  const m = ctx.call(cfg(ctx).membership, 'member', { address }) as Member | null;
  if (m === null) ctx.revert('NOT_MEMBER', `${what} ${address} is not a member`);
  if (orgRole !== null && !m.orgRoles.includes(orgRole))
    ctx.revert('WRONG_ROLE', `${what} ${address} (${m.org}) is not a ${orgRole}`);
  return m;
}
function orgHasRole(ctx: ViewContext, org: string, role: string): boolean {
  const o = ctx.call(cfg(ctx).membership, 'organisation', { id: org }) as { roles: string[] } | null;
  return o !== null && o.roles.includes(role);
}
function text(ctx: ViewContext, v: unknown, what: string, max = 64): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > max)
    ctx.revert('BAD_ARGS', `${what} must be a string of 1..${max} characters`);
  return v;
}
function amountOf(ctx: ViewContext, v: unknown, what: string): bigint {
  if ((typeof v !== 'number' || !Number.isSafeInteger(v)) && typeof v !== 'bigint')
    ctx.revert('BAD_AMOUNT', `${what} must be an integer in minor units`);
  const a = BigInt(v);
  if (a < 1n || a > MAX_AMOUNT) ctx.revert('BAD_AMOUNT', `${what} must be 1..${MAX_AMOUNT}`);
  return a;
}
function load(ctx: ViewContext, id: unknown): Order {
  const o = ctx.state.get(`o:${text(ctx, id, 'id')}`) as unknown as Order | undefined;
  if (o === undefined) ctx.revert('NO_ORDER', `no order ${String(id)}`);
  return {
    ...o,
    orderValue: BigInt(o.orderValue),
    margin: BigInt(o.margin),
    released: BigInt(o.released),
    shipped: BigInt(o.shipped),
    received: BigInt(o.received),
    shortfall: BigInt(o.shortfall),
  };
}
function save(ctx: Context, o: Order): void {
  ctx.state.set(`o:${o.id}`, o as never);
}
/** What the margin paid lets the bank release: `min(orderValue, margin × ratio / 10000)`. */
function coverOf(o: Order): bigint {
  const c = (o.margin * BigInt(o.releaseRatioBps)) / 10_000n;
  return c < o.orderValue ? c : o.orderValue;
}
function emit(ctx: Context, name: string, o: Order, data: Record<string, Value> = {}): void {
  ctx.emit(name, {
    id: o.id,
    distributor: o.distributor,
    core: o.core,
    bank: o.bank,
    status: o.status,
    ...data,
    order: o as never,
  });
}
function once(ctx: Context, opId: unknown, method: string, run: () => Value): Value {
  const key = `op:${ctx.sender}:${text(ctx, opId, 'opId')}`;
  const seen = ctx.state.get(key) as { method: string; result: Value } | undefined;
  if (seen !== undefined) {
    if (seen.method !== method) ctx.revert('OP_CONFLICT', `opId ${String(opId)} was used for ${seen.method}`);
    return seen.result;
  }
  const result = run();
  ctx.state.set(key, { method, result });
  return result;
}
function requireStatus(ctx: ViewContext, o: Order, ...statuses: string[]): void {
  if (!statuses.includes(o.status))
    ctx.revert('WRONG_STATUS', `order ${o.id} is ${o.status}; expected ${statuses.join(' or ')}`);
}
function requireDistributor(ctx: ViewContext, o: Order): void {
  if (ctx.sender !== o.distributor)
    ctx.revert('NOT_DISTRIBUTOR', `only the distributor ${o.distributor} may do this with ${o.id}`);
}
function requireOrg(ctx: ViewContext, org: string, role: string): void {
  const m = requireMember(ctx, ctx.sender, role, 'sender');
  if (m.org !== org) ctx.revert('NOT_AUTHORIZED', `only ${org} may do this`);
}

/** Genesis: `{ membership?, encumbrances? }`. */
export function init(ctx: Context, args: { membership?: string; encumbrances?: string } | null) {
  ctx.state.set('cfg', {
    membership: args?.membership ?? 'membership',
    encumbrances: args?.encumbrances ?? 'encumbrances',
  });
}

export const methods = {
  /**
   * Opens an order `{ opId, core, bank, orderValue, releaseRatioBps, maturity }`; returns its id.
   * Caller: a member of a supplier (distributor) organisation.
   */
  open(
    ctx: Context,
    args: {
      opId: string;
      core: string;
      bank: string;
      orderValue: number | bigint;
      releaseRatioBps: number;
      maturity: number;
    },
  ) {
    return once(ctx, args?.opId, 'open', () => {
      const m = requireMember(ctx, ctx.sender, 'supplier', 'distributor');
      const core = text(ctx, args.core, 'core');
      const bank = text(ctx, args.bank, 'bank');
      if (!orgHasRole(ctx, core, 'core-enterprise'))
        ctx.revert('WRONG_ROLE', `${core} is not a core enterprise`);
      if (!orgHasRole(ctx, bank, 'bank')) ctx.revert('WRONG_ROLE', `${bank} is not a bank`);
      const ratio = args.releaseRatioBps;
      if (typeof ratio !== 'number' || !Number.isSafeInteger(ratio) || ratio < 1 || ratio > MAX_RATIO_BPS)
        ctx.revert('BAD_ARGS', `releaseRatioBps must be 1..${MAX_RATIO_BPS}`);
      if (
        typeof args.maturity !== 'number' ||
        !Number.isSafeInteger(args.maturity) ||
        args.maturity <= ctx.time
      )
        ctx.revert('BAD_ARGS', 'maturity must be a time after now');
      const seq = Number(ctx.state.get('seq') ?? 0) + 1;
      ctx.state.set('seq', seq);
      const o: Order = {
        id: `O${seq}`,
        distributor: ctx.sender,
        distributorOrg: m.org,
        core,
        bank,
        orderValue: amountOf(ctx, args.orderValue, 'orderValue'),
        releaseRatioBps: ratio,
        maturity: args.maturity,
        margin: 0n,
        released: 0n,
        shipped: 0n,
        received: 0n,
        cover: 'none',
        shortfall: 0n,
        voucher: null,
        status: 'REQUESTED',
      };
      save(ctx, o);
      emit(ctx, 'OrderOpened', o, { orderValue: o.orderValue, releaseRatioBps: ratio, maturity: o.maturity });
      return o.id;
    });
  },
  /** Accepts: → ACTIVE; the voucher to the core enterprise is issued, assigned to the bank. Caller: the bank. */
  accept(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'accept', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.bank, 'bank');
      requireStatus(ctx, o, 'REQUESTED');
      if (o.maturity <= ctx.time) ctx.revert('MATURED', `order ${o.id} matured before acceptance`);
      ctx.call(cfg(ctx).encumbrances, 'encumber', {
        id: o.id,
        kind: 'assignment',
        beneficiary: o.bank,
        ref: `voucher:${o.id}`,
      });
      o.voucher = `voucher:${o.id}`;
      o.status = 'ACTIVE';
      save(ctx, o);
      ctx.schedule(o.maturity, 'mature', { id: o.id });
      emit(ctx, 'OrderAccepted', o, { voucher: o.voucher, payee: o.core, amount: o.orderValue });
      return null;
    });
  },
  /** Declines: REQUESTED → DECLINED. Caller: the bank. */
  decline(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'decline', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.bank, 'bank');
      requireStatus(ctx, o, 'REQUESTED');
      o.status = 'DECLINED';
      save(ctx, o);
      emit(ctx, 'OrderDeclined', o);
      return null;
    });
  },
  /** Withdraws: REQUESTED → CANCELLED. Caller: the distributor. */
  cancel(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'cancel', () => {
      const o = load(ctx, args.id);
      requireDistributor(ctx, o);
      requireStatus(ctx, o, 'REQUESTED');
      o.status = 'CANCELLED';
      save(ctx, o);
      emit(ctx, 'OrderCancelled', o);
      return null;
    });
  },
  /** Pays margin (the total never exceeds the order value). Caller: the distributor. */
  payMargin(ctx: Context, args: { opId: string; id: string; amount: number | bigint }) {
    return once(ctx, args?.opId, 'payMargin', () => {
      const o = load(ctx, args.id);
      requireDistributor(ctx, o);
      requireStatus(ctx, o, 'ACTIVE');
      const amount = amountOf(ctx, args.amount, 'amount');
      if (o.margin + amount > o.orderValue)
        ctx.revert('EXCEEDS_ORDER', `margin would be ${o.margin + amount}, order value is ${o.orderValue}`);
      o.margin += amount;
      save(ctx, o);
      emit(ctx, 'MarginPaid', o, { amount, margin: o.margin, cover: coverOf(o) });
      return o.margin;
    });
  },
  /** Releases a tranche of goods of `value`, within the margin cover. Caller: the bank. */
  release(ctx: Context, args: { opId: string; id: string; value: number | bigint }) {
    return once(ctx, args?.opId, 'release', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.bank, 'bank');
      requireStatus(ctx, o, 'ACTIVE');
      const value = amountOf(ctx, args.value, 'value');
      const cover = coverOf(o);
      if (o.released + value > cover)
        ctx.revert(
          'EXCEEDS_COVER',
          `releasing ${value} would make ${o.released + value}, the margin covers ${cover}`,
        );
      o.released += value;
      save(ctx, o);
      emit(ctx, 'GoodsReleased', o, { value, released: o.released, cover });
      return o.released;
    });
  },
  /** Ships goods of `value` (no more than released). Caller: the core enterprise. */
  ship(ctx: Context, args: { opId: string; id: string; value: number | bigint }) {
    return once(ctx, args?.opId, 'ship', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.core, 'core-enterprise');
      requireStatus(ctx, o, 'ACTIVE');
      const value = amountOf(ctx, args.value, 'value');
      if (o.shipped + value > o.released)
        ctx.revert('EXCEEDS_RELEASED', `shipping ${value} would exceed the ${o.released} released`);
      o.shipped += value;
      save(ctx, o);
      emit(ctx, 'Shipped', o, { value, shipped: o.shipped });
      return o.shipped;
    });
  },
  /** Confirms receipt of goods of `value` (no more than shipped). Caller: the distributor. */
  confirmReceipt(ctx: Context, args: { opId: string; id: string; value: number | bigint }) {
    return once(ctx, args?.opId, 'confirmReceipt', () => {
      const o = load(ctx, args.id);
      requireDistributor(ctx, o);
      requireStatus(ctx, o, 'ACTIVE');
      const value = amountOf(ctx, args.value, 'value');
      if (o.received + value > o.shipped)
        ctx.revert('EXCEEDS_SHIPPED', `receiving ${value} would exceed the ${o.shipped} shipped`);
      o.received += value;
      save(ctx, o);
      emit(ctx, 'ReceiptConfirmed', o, { value, received: o.received });
      return o.received;
    });
  },
  /** Commits to cover a shortfall at maturity by `buyback` or `guarantee`. Caller: the core enterprise. */
  commitCover(ctx: Context, args: { opId: string; id: string; kind: string }) {
    return once(ctx, args?.opId, 'commitCover', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.core, 'core-enterprise');
      requireStatus(ctx, o, 'REQUESTED', 'ACTIVE');
      if (args.kind !== 'buyback' && args.kind !== 'guarantee')
        ctx.revert('BAD_ARGS', 'kind must be buyback or guarantee');
      if (o.cover !== 'none') ctx.revert('ALREADY_COVERED', `order ${o.id} already has a ${o.cover}`);
      o.cover = args.kind;
      save(ctx, o);
      emit(ctx, 'CoverCommitted', o, { kind: o.cover });
      return null;
    });
  },
  /** Maturity: SETTLED when fully paid, else COVER_DUE or DEFAULTED. Caller: the scheduler. */
  mature(ctx: Context, args: { id: string }) {
    if (!ctx.scheduled || ctx.sender !== ctx.contract)
      ctx.revert('NOT_AUTHORIZED', 'runs only as a scheduled callback');
    const o = load(ctx, args.id);
    if (o.status !== 'ACTIVE') return;
    o.shortfall = o.orderValue - o.margin;
    if (o.shortfall === 0n) {
      ctx.call(cfg(ctx).encumbrances, 'release', { id: o.id, kind: 'assignment' });
      o.status = 'SETTLED';
    } else o.status = o.cover === 'none' ? 'DEFAULTED' : 'COVER_DUE';
    save(ctx, o);
    emit(
      ctx,
      o.status === 'SETTLED' ? 'OrderSettled' : o.status === 'DEFAULTED' ? 'OrderDefaulted' : 'CoverDue',
      o,
      {
        orderValue: o.orderValue,
        margin: o.margin,
        shortfall: o.shortfall,
      },
    );
  },
  /** Pays the shortfall under the buy-back or guarantee: COVER_DUE → COVERED. Caller: the core enterprise. */
  cover(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'cover', () => {
      const o = load(ctx, args.id);
      requireOrg(ctx, o.core, 'core-enterprise');
      requireStatus(ctx, o, 'COVER_DUE');
      ctx.call(cfg(ctx).encumbrances, 'release', { id: o.id, kind: 'assignment' });
      o.status = 'COVERED';
      save(ctx, o);
      emit(ctx, 'ShortfallCovered', o, { kind: o.cover, shortfall: o.shortfall, payer: ctx.sender });
      return o.shortfall;
    });
  },
} satisfies Methods;

export const views = {
  /** An order, or null. */
  order: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`o:${String(args?.id)}`) ?? null,
  /** What the bank may still release: cover − released. */
  releasable(ctx: ViewContext, args: { id: string }) {
    const o = load(ctx, args?.id);
    return coverOf(o) - o.released;
  },
} satisfies Views;
