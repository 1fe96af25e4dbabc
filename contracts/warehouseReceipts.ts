/**
 * Warehouse receipts: title to a lot of goods held by a warehouse, traded on an exchange and
 * pledged to banks (four parties: warehouse, depositor/holder, bank, exchange; docs/contracts-scf.md
 * has the state machine).
 *
 * - A depositor requests inbound; the warehouse inspects and the receipt is ISSUED to the
 *   depositor. One physical lot (warehouse, lot) has one receipt tree.
 * - The holder lists it (LISTED) and delists; the exchange settles a trade (ISSUED, new holder).
 * - Transfer and split need the holder's request and the warehouse's endorsement.
 * - A pledge: the holder requests (a pledge encumbrance is placed at once, so nobody can pledge
 *   the receipt twice), the bank approves and the warehouse locks: PLEDGED. The bank releases it
 *   (ISSUED) or declares a default (ENFORCEMENT) and sells it (ISSUED to the buyer). An
 *   unanswered request expires (scheduled).
 * - Delivery: the holder asks for a quantity, the warehouse lets the goods out: DELIVERED, with the
 *   remainder ISSUED as a child receipt.
 * - A regulator freezes and unfreezes any live receipt.
 *
 * Invariants: a pledged receipt cannot be listed, transferred, split or delivered (and never
 * changes holder or quantity); the quantity of live receipts per (warehouse, SKU) never exceeds the
 * stock the warehouse attested. Every transition emits an event with the changed receipt records
 * (`receipts`) and stock (`stock`). Every user method takes an `opId` (idempotent retries).
 */
import type { Context, Methods, Value, ViewContext, Views } from './api.ts';

const MAX_DEPTH = 6;
const MAX_SPLIT = 8;
const MAX_QUANTITY = (1n << 62n) - 1n;
const DEFAULT_PLEDGE_WINDOW_MS = 3 * 24 * 3600 * 1000;
const MAX_PLEDGE_WINDOW_MS = 30 * 24 * 3600 * 1000;
/** Statuses whose quantity counts against the attested stock. */
const LIVE = ['ISSUED', 'LISTED', 'PLEDGE_PENDING', 'PLEDGED', 'ENFORCEMENT', 'DELIVERY_PENDING'];

interface Member {
  address: string;
  org: string;
  roles: string[];
  orgRoles: string[];
}
interface Receipt {
  id: string;
  root: string;
  parent: string | null;
  depth: number;
  lot: string;
  warehouse: string;
  sku: string;
  quantity: bigint;
  depositor: string;
  holder: string;
  status: string;
  prevStatus: string | null;
  bank: string | null;
  loan: bigint;
  bankApproved: boolean;
  locked: boolean;
  pledgeSeq: number;
  price: bigint;
  pending: { op: string; to: string | null; quantities: bigint[] } | null;
  deliveryQty: bigint;
}
interface Stock {
  warehouse: string;
  sku: string;
  attested: bigint;
  live: bigint;
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
function text(ctx: ViewContext, v: unknown, what: string, max = 64): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > max)
    ctx.revert('BAD_ARGS', `${what} must be a string of 1..${max} characters`);
  return v;
}
function qty(ctx: ViewContext, v: unknown, what = 'quantity', allowZero = false): bigint {
  if ((typeof v !== 'number' || !Number.isSafeInteger(v)) && typeof v !== 'bigint')
    ctx.revert('BAD_AMOUNT', `${what} must be an integer`);
  const q = BigInt(v);
  if (q < (allowZero ? 0n : 1n) || q > MAX_QUANTITY)
    ctx.revert('BAD_AMOUNT', `${what} must be ${allowZero ? 0 : 1}..${MAX_QUANTITY}`);
  return q;
}

function load(ctx: ViewContext, id: unknown): Receipt {
  const r = ctx.state.get(`r:${text(ctx, id, 'id')}`) as unknown as Receipt | undefined;
  if (r === undefined) ctx.revert('NO_RECEIPT', `no receipt ${String(id)}`);
  return {
    ...r,
    quantity: BigInt(r.quantity),
    loan: BigInt(r.loan),
    price: BigInt(r.price),
    deliveryQty: BigInt(r.deliveryQty),
    pending:
      r.pending === null ? null : { ...r.pending, quantities: r.pending.quantities.map((q) => BigInt(q)) },
  };
}
function save(ctx: Context, r: Receipt): void {
  ctx.state.set(`r:${r.id}`, r as never);
}
function stockOf(ctx: ViewContext, warehouse: string, sku: string): Stock {
  const s = ctx.state.get(`st:${warehouse}:${sku}`) as Stock | undefined;
  return { warehouse, sku, attested: BigInt(s?.attested ?? 0), live: BigInt(s?.live ?? 0) };
}
function setStock(ctx: Context, s: Stock): void {
  ctx.state.set(`st:${s.warehouse}:${s.sku}`, s as never);
}
function nextId(ctx: Context): string {
  const seq = Number(ctx.state.get('seq') ?? 0) + 1;
  ctx.state.set('seq', seq);
  return `W${seq}`;
}
function emit(
  ctx: Context,
  name: string,
  data: Record<string, Value>,
  changed: Receipt[],
  stock?: Stock,
): void {
  ctx.emit(name, { ...data, receipts: changed as never, stock: (stock ?? null) as never });
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
function requireStatus(ctx: ViewContext, r: Receipt, ...statuses: string[]): void {
  if (!statuses.includes(r.status))
    ctx.revert('WRONG_STATUS', `receipt ${r.id} is ${r.status}; expected ${statuses.join(' or ')}`);
}
function requireHolder(ctx: ViewContext, r: Receipt): void {
  if (ctx.sender !== r.holder)
    ctx.revert('NOT_HOLDER', `only the holder ${r.holder} may do this with ${r.id}`);
}
function requireWarehouse(ctx: ViewContext, r: Receipt): Member {
  const m = requireMember(ctx, ctx.sender, 'warehouse', 'sender');
  if (m.org !== r.warehouse) ctx.revert('NOT_AUTHORIZED', `only ${r.warehouse} acts as warehouse of ${r.id}`);
  return m;
}
function requireBank(ctx: ViewContext, r: Receipt): Member {
  const m = requireMember(ctx, ctx.sender, 'bank', 'sender');
  if (m.org !== r.bank) ctx.revert('NOT_AUTHORIZED', `only ${String(r.bank)} acts as pledgee of ${r.id}`);
  return m;
}
function requireMovable(ctx: ViewContext, r: Receipt): void {
  requireStatus(ctx, r, 'ISSUED');
  if (ctx.call(cfg(ctx).encumbrances, 'isEncumbered', { asset: `${ctx.contract}:${r.id}` }) === true)
    ctx.revert('ENCUMBERED', `receipt ${r.id} is encumbered`);
}
function requireNoPending(ctx: ViewContext, r: Receipt): void {
  if (r.pending !== null)
    ctx.revert('PENDING_REQUEST', `receipt ${r.id} has a pending ${r.pending.op} awaiting endorsement`);
}
function enc(ctx: Context, method: string, args: Value): void {
  ctx.call(cfg(ctx).encumbrances, method, args);
}
function child(ctx: Context, parent: Receipt, quantity: bigint, status: string): Receipt {
  if (parent.depth + 1 > MAX_DEPTH)
    ctx.revert('TOO_DEEP', `receipt lineage depth is bounded by ${MAX_DEPTH}`);
  const c: Receipt = {
    ...parent,
    id: nextId(ctx),
    parent: parent.id,
    depth: parent.depth + 1,
    quantity,
    status,
    prevStatus: null,
    bank: null,
    loan: 0n,
    bankApproved: false,
    locked: false,
    pledgeSeq: 0,
    price: 0n,
    pending: null,
    deliveryQty: 0n,
  };
  save(ctx, c);
  return c;
}
function unpledge(r: Receipt): void {
  r.bank = null;
  r.loan = 0n;
  r.bankApproved = false;
  r.locked = false;
}

/** Genesis: `{ membership?, encumbrances? }`. */
export function init(ctx: Context, args: { membership?: string; encumbrances?: string } | null) {
  ctx.state.set('cfg', {
    membership: args?.membership ?? 'membership',
    encumbrances: args?.encumbrances ?? 'encumbrances',
  });
}

export const methods = {
  /** Attests the stock of `sku` held (not below what live receipts cover). Caller: a warehouse member. */
  attestStock(ctx: Context, args: { opId: string; sku: string; quantity: number | bigint }) {
    return once(ctx, args?.opId, 'attestStock', () => {
      const m = requireMember(ctx, ctx.sender, 'warehouse', 'sender');
      const s = stockOf(ctx, m.org, text(ctx, args.sku, 'sku'));
      const q = qty(ctx, args.quantity, 'quantity', true);
      if (q < s.live)
        ctx.revert(
          'STOCK_BELOW_RECEIPTS',
          `live receipts cover ${s.live} of ${s.sku}; attested ${q} is less`,
        );
      s.attested = q;
      setStock(ctx, s);
      emit(
        ctx,
        'StockAttested',
        { warehouse: m.org, sku: s.sku, attested: q, live: s.live, by: ctx.sender },
        [],
        s,
      );
      return null;
    });
  },
  /** Requests inbound of a lot; returns the receipt id. Caller: any member (the depositor). */
  requestInbound(
    ctx: Context,
    args: { opId: string; warehouse: string; sku: string; quantity: number | bigint; lot: string },
  ) {
    return once(ctx, args?.opId, 'requestInbound', () => {
      requireMember(ctx, ctx.sender, null, 'depositor');
      const warehouse = text(ctx, args.warehouse, 'warehouse');
      const o = ctx.call(cfg(ctx).membership, 'organisation', { id: warehouse }) as {
        roles: string[];
      } | null;
      if (o === null || !o.roles.includes('warehouse'))
        ctx.revert('WRONG_ROLE', `${warehouse} is not a warehouse`);
      const lot = text(ctx, args.lot, 'lot');
      if (ctx.state.has(`lot:${warehouse}:${lot}`))
        ctx.revert('LOT_EXISTS', `lot ${lot} at ${warehouse} already has a receipt`);
      const id = nextId(ctx);
      ctx.state.set(`lot:${warehouse}:${lot}`, id);
      const r: Receipt = {
        id,
        root: id,
        parent: null,
        depth: 0,
        lot,
        warehouse,
        sku: text(ctx, args.sku, 'sku'),
        quantity: qty(ctx, args.quantity),
        depositor: ctx.sender,
        holder: ctx.sender,
        status: 'INBOUND_REQUESTED',
        prevStatus: null,
        bank: null,
        loan: 0n,
        bankApproved: false,
        locked: false,
        pledgeSeq: 0,
        price: 0n,
        pending: null,
        deliveryQty: 0n,
      };
      save(ctx, r);
      emit(
        ctx,
        'InboundRequested',
        { id, warehouse, sku: r.sku, quantity: r.quantity, lot, depositor: ctx.sender },
        [r],
      );
      return id;
    });
  },
  /** Inspects the goods: → ISSUED to the depositor (quantity as inspected). Caller: the warehouse. */
  inspect(ctx: Context, args: { opId: string; id: string; quantity?: number | bigint }) {
    return once(ctx, args?.opId, 'inspect', () => {
      const r = load(ctx, args.id);
      requireWarehouse(ctx, r);
      requireStatus(ctx, r, 'INBOUND_REQUESTED');
      if (args.quantity !== undefined) r.quantity = qty(ctx, args.quantity);
      const s = stockOf(ctx, r.warehouse, r.sku);
      if (s.live + r.quantity > s.attested)
        ctx.revert(
          'STOCK_EXCEEDED',
          `${r.warehouse} attested ${s.attested} of ${r.sku}; live receipts would cover ${s.live + r.quantity}`,
        );
      s.live += r.quantity;
      setStock(ctx, s);
      r.status = 'ISSUED';
      save(ctx, r);
      emit(
        ctx,
        'Issued',
        { id: r.id, warehouse: r.warehouse, sku: r.sku, quantity: r.quantity, holder: r.holder },
        [r],
        s,
      );
      return null;
    });
  },
  /** Refuses an inbound request: → CANCELLED. Caller: the warehouse. */
  rejectInbound(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'rejectInbound', () => {
      const r = load(ctx, args.id);
      requireWarehouse(ctx, r);
      requireStatus(ctx, r, 'INBOUND_REQUESTED');
      r.status = 'CANCELLED';
      save(ctx, r);
      emit(
        ctx,
        'InboundRejected',
        { id: r.id, warehouse: r.warehouse, depositor: r.depositor, quantity: r.quantity },
        [r],
      );
      return null;
    });
  },
  /** Lists on the exchange at `price`: ISSUED → LISTED. Caller: the holder. */
  list(ctx: Context, args: { opId: string; id: string; price: number | bigint }) {
    return once(ctx, args?.opId, 'list', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireMovable(ctx, r);
      requireNoPending(ctx, r);
      r.price = qty(ctx, args.price, 'price');
      r.status = 'LISTED';
      save(ctx, r);
      emit(ctx, 'Listed', { id: r.id, holder: r.holder, quantity: r.quantity, price: r.price }, [r]);
      return null;
    });
  },
  /** Withdraws a listing: LISTED → ISSUED. Caller: the holder. */
  delist(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'delist', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireStatus(ctx, r, 'LISTED');
      r.status = 'ISSUED';
      r.price = 0n;
      save(ctx, r);
      emit(ctx, 'Delisted', { id: r.id, holder: r.holder, quantity: r.quantity }, [r]);
      return null;
    });
  },
  /** A trade settled on the exchange: LISTED → ISSUED to `buyer`. Caller: an exchange member. */
  settleTrade(ctx: Context, args: { opId: string; id: string; buyer: string; price: number | bigint }) {
    return once(ctx, args?.opId, 'settleTrade', () => {
      requireMember(ctx, ctx.sender, 'exchange', 'sender');
      const r = load(ctx, args.id);
      requireStatus(ctx, r, 'LISTED');
      const buyer = requireMember(ctx, text(ctx, args.buyer, 'buyer', 42), null, 'buyer');
      if (buyer.address === r.holder) ctx.revert('BAD_ARGS', 'the buyer already holds the receipt');
      const seller = r.holder;
      r.holder = buyer.address;
      r.status = 'ISSUED';
      r.price = 0n;
      save(ctx, r);
      emit(
        ctx,
        'TradeSettled',
        {
          id: r.id,
          seller,
          buyer: buyer.address,
          quantity: r.quantity,
          price: qty(ctx, args.price, 'price'),
          exchange: ctx.sender,
        },
        [r],
      );
      return null;
    });
  },
  /** Asks to transfer to member `to` (the warehouse endorses). Caller: the holder. */
  requestTransfer(ctx: Context, args: { opId: string; id: string; to: string }) {
    return once(ctx, args?.opId, 'requestTransfer', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireMovable(ctx, r);
      requireNoPending(ctx, r);
      const to = requireMember(ctx, text(ctx, args.to, 'to', 42), null, 'receiver');
      if (to.address === r.holder) ctx.revert('BAD_ARGS', 'cannot transfer to yourself');
      r.pending = { op: 'transfer', to: to.address, quantities: [] };
      save(ctx, r);
      emit(ctx, 'TransferRequested', { id: r.id, from: r.holder, to: to.address, quantity: r.quantity }, [r]);
      return null;
    });
  },
  /** Asks to split into quantities summing to the receipt's (the warehouse endorses). Caller: the holder. */
  requestSplit(ctx: Context, args: { opId: string; id: string; quantities: Array<number | bigint> }) {
    return once(ctx, args?.opId, 'requestSplit', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireMovable(ctx, r);
      requireNoPending(ctx, r);
      const parts = args.quantities;
      if (!Array.isArray(parts) || parts.length < 2 || parts.length > MAX_SPLIT)
        ctx.revert('BAD_ARGS', `quantities must list 2..${MAX_SPLIT} parts`);
      const quantities = parts.map((q) => qty(ctx, q));
      if (quantities.reduce((a, b) => a + b, 0n) !== r.quantity)
        ctx.revert('BAD_AMOUNT', `parts must sum to ${r.quantity}`);
      if (r.depth + 1 > MAX_DEPTH) ctx.revert('TOO_DEEP', `receipt lineage depth is bounded by ${MAX_DEPTH}`);
      r.pending = { op: 'split', to: null, quantities };
      save(ctx, r);
      emit(ctx, 'SplitRequested', { id: r.id, holder: r.holder, quantities }, [r]);
      return null;
    });
  },
  /** Withdraws a pending transfer or split. Caller: the holder. */
  cancelRequest(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'cancelRequest', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      if (r.pending === null) ctx.revert('NO_REQUEST', `receipt ${r.id} has no pending request`);
      r.pending = null;
      save(ctx, r);
      emit(ctx, 'RequestCancelled', { id: r.id, holder: r.holder }, [r]);
      return null;
    });
  },
  /** Endorses the pending transfer or split and carries it out. Caller: the warehouse. */
  endorse(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'endorse', () => {
      const r = load(ctx, args.id);
      requireWarehouse(ctx, r);
      requireMovable(ctx, r);
      const p = r.pending;
      if (p === null) ctx.revert('NO_REQUEST', `receipt ${r.id} has no pending request`);
      r.pending = null;
      if (p.op === 'transfer') {
        const from = r.holder;
        r.holder = p.to!;
        save(ctx, r);
        emit(
          ctx,
          'Transferred',
          { id: r.id, from, to: r.holder, quantity: r.quantity, warehouse: r.warehouse },
          [r],
        );
        return null;
      }
      const children = p.quantities.map((q) => child(ctx, r, q, 'ISSUED'));
      r.status = 'SPLIT';
      save(ctx, r);
      emit(
        ctx,
        'Split',
        { id: r.id, holder: r.holder, children: children.map((c) => c.id), quantities: p.quantities },
        [r, ...children],
      );
      return children.map((c) => c.id);
    });
  },
  /** Asks bank organisation `bank` for a loan against the receipt: → PLEDGE_PENDING. Caller: the holder. */
  pledgeRequest(
    ctx: Context,
    args: { opId: string; id: string; bank: string; loan: number | bigint; expiresInMs?: number },
  ) {
    return once(ctx, args?.opId, 'pledgeRequest', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireStatus(ctx, r, 'ISSUED');
      requireNoPending(ctx, r);
      const bank = text(ctx, args.bank, 'bank');
      const o = ctx.call(cfg(ctx).membership, 'organisation', { id: bank }) as { roles: string[] } | null;
      if (o === null || !o.roles.includes('bank')) ctx.revert('WRONG_ROLE', `${bank} is not a bank`);
      const loan = qty(ctx, args.loan, 'loan');
      const window = args.expiresInMs ?? DEFAULT_PLEDGE_WINDOW_MS;
      if (
        typeof window !== 'number' ||
        !Number.isSafeInteger(window) ||
        window < 1 ||
        window > MAX_PLEDGE_WINDOW_MS
      )
        ctx.revert('BAD_ARGS', `expiresInMs must be 1..${MAX_PLEDGE_WINDOW_MS}`);
      // The registry refuses a second encumbrance, whoever placed the first.
      enc(ctx, 'encumber', { id: r.id, kind: 'pledge', beneficiary: bank, ref: r.lot });
      r.status = 'PLEDGE_PENDING';
      r.bank = bank;
      r.loan = loan;
      r.pledgeSeq += 1;
      save(ctx, r);
      ctx.schedule(ctx.time + window, 'pledgeExpire', { id: r.id, seq: r.pledgeSeq });
      emit(
        ctx,
        'PledgeRequested',
        { id: r.id, holder: r.holder, bank, loan, quantity: r.quantity, expiresAt: ctx.time + window },
        [r],
      );
      return null;
    });
  },
  /** The bank agrees to the pledge (PLEDGED once the warehouse has locked the goods). Caller: the bank. */
  approvePledge(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'approvePledge', () => {
      const r = load(ctx, args.id);
      requireBank(ctx, r);
      requireStatus(ctx, r, 'PLEDGE_PENDING');
      if (r.bankApproved) ctx.revert('ALREADY_APPROVED', `the bank already approved the pledge of ${r.id}`);
      r.bankApproved = true;
      if (r.locked) r.status = 'PLEDGED';
      save(ctx, r);
      emit(
        ctx,
        r.status === 'PLEDGED' ? 'Pledged' : 'PledgeApproved',
        { id: r.id, holder: r.holder, bank: r.bank, loan: r.loan, quantity: r.quantity },
        [r],
      );
      return null;
    });
  },
  /** The warehouse locks the goods for the pledge (PLEDGED once the bank approved). Caller: the warehouse. */
  lockPledge(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'lockPledge', () => {
      const r = load(ctx, args.id);
      requireWarehouse(ctx, r);
      requireStatus(ctx, r, 'PLEDGE_PENDING');
      if (r.locked) ctx.revert('ALREADY_LOCKED', `the goods of ${r.id} are already locked`);
      r.locked = true;
      if (r.bankApproved) r.status = 'PLEDGED';
      save(ctx, r);
      emit(
        ctx,
        r.status === 'PLEDGED' ? 'Pledged' : 'PledgeLocked',
        { id: r.id, holder: r.holder, bank: r.bank, loan: r.loan, quantity: r.quantity },
        [r],
      );
      return null;
    });
  },
  /** The bank refuses the pledge: PLEDGE_PENDING → ISSUED. Caller: the bank. */
  rejectPledge(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'rejectPledge', () => {
      const r = load(ctx, args.id);
      requireBank(ctx, r);
      requireStatus(ctx, r, 'PLEDGE_PENDING');
      const bank = r.bank;
      enc(ctx, 'release', { id: r.id, kind: 'pledge' });
      unpledge(r);
      r.status = 'ISSUED';
      save(ctx, r);
      emit(ctx, 'PledgeRejected', { id: r.id, holder: r.holder, bank, reason: 'rejected' }, [r]);
      return null;
    });
  },
  /** An unanswered pledge request lapses: PLEDGE_PENDING → ISSUED. Caller: the scheduler. */
  pledgeExpire(ctx: Context, args: { id: string; seq: number }) {
    if (!ctx.scheduled || ctx.sender !== ctx.contract)
      ctx.revert('NOT_AUTHORIZED', 'runs only as a scheduled callback');
    const r = load(ctx, args.id);
    if (r.status !== 'PLEDGE_PENDING' || r.pledgeSeq !== args.seq) return;
    const bank = r.bank;
    enc(ctx, 'release', { id: r.id, kind: 'pledge' });
    unpledge(r);
    r.status = 'ISSUED';
    save(ctx, r);
    emit(ctx, 'PledgeRejected', { id: r.id, holder: r.holder, bank, reason: 'expired' }, [r]);
  },
  /** The loan is repaid: PLEDGED → ISSUED, pledge lifted. Caller: the bank. */
  releasePledge(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'releasePledge', () => {
      const r = load(ctx, args.id);
      requireBank(ctx, r);
      requireStatus(ctx, r, 'PLEDGED');
      const bank = r.bank;
      const loan = r.loan;
      enc(ctx, 'release', { id: r.id, kind: 'pledge' });
      unpledge(r);
      r.status = 'ISSUED';
      save(ctx, r);
      emit(ctx, 'PledgeReleased', { id: r.id, holder: r.holder, bank, loan, quantity: r.quantity }, [r]);
      return null;
    });
  },
  /** The borrower defaulted: PLEDGED → ENFORCEMENT. Caller: the bank. */
  declareDefault(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'declareDefault', () => {
      const r = load(ctx, args.id);
      requireBank(ctx, r);
      requireStatus(ctx, r, 'PLEDGED');
      r.status = 'ENFORCEMENT';
      save(ctx, r);
      emit(
        ctx,
        'Defaulted',
        { id: r.id, holder: r.holder, bank: r.bank, loan: r.loan, quantity: r.quantity },
        [r],
      );
      return null;
    });
  },
  /** The bank sells the goods: ENFORCEMENT → ISSUED to `buyer`, pledge lifted. Caller: the bank. */
  enforcementSale(ctx: Context, args: { opId: string; id: string; buyer: string; price: number | bigint }) {
    return once(ctx, args?.opId, 'enforcementSale', () => {
      const r = load(ctx, args.id);
      requireBank(ctx, r);
      requireStatus(ctx, r, 'ENFORCEMENT');
      const buyer = requireMember(ctx, text(ctx, args.buyer, 'buyer', 42), null, 'buyer');
      const price = qty(ctx, args.price, 'price');
      const bank = r.bank;
      const seller = r.holder;
      enc(ctx, 'release', { id: r.id, kind: 'pledge' });
      unpledge(r);
      r.holder = buyer.address;
      r.status = 'ISSUED';
      save(ctx, r);
      emit(
        ctx,
        'EnforcementSale',
        { id: r.id, seller, buyer: buyer.address, bank, price, quantity: r.quantity },
        [r],
      );
      return null;
    });
  },
  /** Asks for `quantity` of the goods: ISSUED → DELIVERY_PENDING. Caller: the holder. */
  requestDelivery(ctx: Context, args: { opId: string; id: string; quantity: number | bigint }) {
    return once(ctx, args?.opId, 'requestDelivery', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireMovable(ctx, r);
      requireNoPending(ctx, r);
      const q = qty(ctx, args.quantity);
      if (q > r.quantity)
        ctx.revert('INSUFFICIENT', `receipt ${r.id} covers ${r.quantity}, cannot deliver ${q}`);
      if (q < r.quantity && r.depth + 1 > MAX_DEPTH)
        ctx.revert('TOO_DEEP', `receipt lineage depth is bounded by ${MAX_DEPTH}`);
      r.deliveryQty = q;
      r.status = 'DELIVERY_PENDING';
      save(ctx, r);
      emit(ctx, 'DeliveryRequested', { id: r.id, holder: r.holder, quantity: q }, [r]);
      return null;
    });
  },
  /** Withdraws a delivery request: DELIVERY_PENDING → ISSUED. Caller: the holder. */
  cancelDelivery(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'cancelDelivery', () => {
      const r = load(ctx, args.id);
      requireHolder(ctx, r);
      requireStatus(ctx, r, 'DELIVERY_PENDING');
      r.deliveryQty = 0n;
      r.status = 'ISSUED';
      save(ctx, r);
      emit(ctx, 'DeliveryCancelled', { id: r.id, holder: r.holder }, [r]);
      return null;
    });
  },
  /**
   * The goods left the warehouse: → DELIVERED for the delivered quantity, the remainder ISSUED as
   * a child receipt; stock and attestation go down by the delivered quantity. Caller: the warehouse.
   */
  goodsOut(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'goodsOut', () => {
      const r = load(ctx, args.id);
      requireWarehouse(ctx, r);
      requireStatus(ctx, r, 'DELIVERY_PENDING');
      const delivered = r.deliveryQty;
      const remainder = r.quantity - delivered;
      const s = stockOf(ctx, r.warehouse, r.sku);
      s.live -= delivered;
      s.attested -= delivered;
      setStock(ctx, s);
      r.quantity = delivered;
      r.status = 'DELIVERED';
      const changed = [r];
      if (remainder > 0n) changed.push(child(ctx, r, remainder, 'ISSUED'));
      save(ctx, r);
      emit(
        ctx,
        'Delivered',
        {
          id: r.id,
          holder: r.holder,
          quantity: delivered,
          remainder,
          remainderId: remainder > 0n ? changed[1]!.id : null,
        },
        changed,
        s,
      );
      return remainder > 0n ? changed[1]!.id : null;
    });
  },
  /** Freezes a live receipt. Caller: a regulator's member. */
  freeze(ctx: Context, args: { opId: string; id: string; reason?: string }) {
    return once(ctx, args?.opId, 'freeze', () => {
      requireMember(ctx, ctx.sender, 'regulator', 'sender');
      const r = load(ctx, args.id);
      requireStatus(ctx, r, 'INBOUND_REQUESTED', ...LIVE);
      enc(ctx, 'freeze', {
        id: r.id,
        by: ctx.sender,
        ref: args.reason === undefined ? 'regulator' : text(ctx, args.reason, 'reason', 128),
      });
      r.prevStatus = r.status;
      r.status = 'FROZEN';
      save(ctx, r);
      emit(ctx, 'Frozen', { id: r.id, holder: r.holder, quantity: r.quantity, by: ctx.sender }, [r]);
      return null;
    });
  },
  /** Unfreezes: back to the status before the freeze. Caller: a regulator's member. */
  unfreeze(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'unfreeze', () => {
      requireMember(ctx, ctx.sender, 'regulator', 'sender');
      const r = load(ctx, args.id);
      requireStatus(ctx, r, 'FROZEN');
      enc(ctx, 'unfreeze', { id: r.id });
      r.status = r.prevStatus!;
      r.prevStatus = null;
      save(ctx, r);
      emit(ctx, 'Unfrozen', { id: r.id, holder: r.holder, quantity: r.quantity, by: ctx.sender }, [r]);
      return null;
    });
  },
} satisfies Methods;

export const views = {
  /** A receipt, or null. */
  receipt: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`r:${String(args?.id)}`) ?? null,
  /** Attested and live stock of (warehouse, sku). */
  stock: (ctx: ViewContext, args: { warehouse: string; sku: string }) =>
    stockOf(ctx, String(args?.warehouse), String(args?.sku)) as never,
} satisfies Views;
