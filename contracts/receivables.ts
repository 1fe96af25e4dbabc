/**
 * Receivable vouchers: a core enterprise's confirmed debt that moves and splits down its supply
 * chain and is financed by banks (docs/contracts-scf.md has the state machine).
 *
 * - A voucher is issued PENDING_CONFIRMATION; the core enterprise confirms it through an approvals
 *   proposal under its `<org>.confirm` policy (or `admins:<org>`), which consumes its credit line.
 * - ACTIVE vouchers transfer (a child for the receiver, the remainder stays; a holder who
 *   transfers everything keeps a TRANSFERRED voucher of amount 0) and split (SPLIT, amount 0,
 *   plus children). Children inherit the root's maturity; depth is bounded.
 * - Financing places an assignment in the encumbrance registry and proposes to the bank's
 *   `<bank>.finance` policy (or `admins:<bank>`); approval makes it FINANCED, rejection or expiry
 *   lifts the assignment.
 * - At maturity (scheduled) live vouchers turn DUE; after the grace period OVERDUE. The core
 *   enterprise pays a whole tree at once: every DUE or OVERDUE voucher is SETTLED (paid to the
 *   financing bank when financed, else the holder) and the credit line is restored. A financing
 *   bank may write off an OVERDUE voucher. A regulator freezes and unfreezes any live voucher.
 *
 * Invariant per root: the sum of `amount` over the tree's confirmed vouchers equals the face
 * amount; live outstanding + settled + written off = face. Every transition emits an event with
 * the changed vouchers (`vouchers`), so replaying events rebuilds every voucher record.
 *
 * Every user method takes `opId` (1..64 chars): a retried operation with the same opId from the
 * same sender returns the first result and changes nothing.
 */
import type { Context, Methods, Value, ViewContext, Views } from './api.ts';

const MAX_DEPTH = 6;
/** Vouchers in one root's tree (bounds maturity and payment loops). */
const MAX_TREE = 64;
const MAX_SPLIT = 8;
const DEFAULT_GRACE_MS = 7 * 24 * 3600 * 1000;
const MAX_GRACE_MS = 90 * 24 * 3600 * 1000;
const DEFAULT_DECISION_MS = 3 * 24 * 3600 * 1000;
const MAX_AMOUNT = (1n << 62n) - 1n;
const LIVE = ['PENDING_CONFIRMATION', 'ACTIVE', 'FINANCING', 'FINANCED', 'DUE', 'OVERDUE'];

interface Member {
  address: string;
  org: string;
  roles: string[];
  orgRoles: string[];
}
interface Voucher {
  id: string;
  root: string;
  parent: string | null;
  depth: number;
  debtor: string;
  holder: string;
  holderOrg: string;
  amount: bigint;
  face: bigint;
  maturity: number;
  graceMs: number;
  status: string;
  prevStatus: string | null;
  bank: string | null;
  financeAmount: bigint;
  financed: boolean;
  proposalId: string | null;
  ref: string;
}
interface Cfg {
  membership: string;
  approvals: string;
  encumbrances: string;
}

function cfg(ctx: ViewContext): Cfg {
  return ctx.state.get('cfg') as unknown as Cfg;
}
function member(ctx: ViewContext, address: string): Member | null {
  return ctx.call(cfg(ctx).membership, 'member', { address }) as Member | null;
}
function requireMember(ctx: ViewContext, address: string, orgRole: string | null, what: string): Member {
  const m = member(ctx, address);
  if (m === null) ctx.revert('NOT_MEMBER', `${what} ${address} is not a member`);
  if (orgRole !== null && !m.orgRoles.includes(orgRole))
    ctx.revert('WRONG_ROLE', `${what} ${address} (${m.org}) is not a ${orgRole}`);
  return m;
}
function orgHasRole(ctx: ViewContext, org: string, role: string): boolean {
  const o = ctx.call(cfg(ctx).membership, 'organisation', { id: org }) as { roles: string[] } | null;
  return o !== null && o.roles.includes(role);
}
function amountOf(ctx: ViewContext, v: unknown, what = 'amount'): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint')
    ctx.revert('BAD_AMOUNT', `${what} must be an integer in minor units`);
  if (typeof v === 'number' && !Number.isSafeInteger(v))
    ctx.revert('BAD_AMOUNT', `${what} must be an integer in minor units`);
  const a = BigInt(v);
  if (a <= 0n || a > MAX_AMOUNT) ctx.revert('BAD_AMOUNT', `${what} must be 1..${MAX_AMOUNT}`);
  return a;
}
function intIn(ctx: ViewContext, v: unknown, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    ctx.revert('BAD_ARGS', `${what} must be an integer ${min}..${max}`);
  return v;
}
function text(ctx: ViewContext, v: unknown, what: string, max = 64): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > max)
    ctx.revert('BAD_ARGS', `${what} must be a string of 1..${max} characters`);
  return v;
}

/** Reads a voucher with its amounts as bigint (integers come back as numbers when small). */
function load(ctx: ViewContext, id: unknown): Voucher {
  const v = ctx.state.get(`v:${text(ctx, id, 'id')}`) as unknown as Voucher | undefined;
  if (v === undefined) ctx.revert('NO_VOUCHER', `no voucher ${String(id)}`);
  return { ...v, amount: BigInt(v.amount), face: BigInt(v.face), financeAmount: BigInt(v.financeAmount) };
}
function save(ctx: Context, v: Voucher): void {
  ctx.state.set(`v:${v.id}`, v as never);
}
function treeOf(ctx: ViewContext, root: string): Voucher[] {
  return ctx.state.range(`t:${root}:`, MAX_TREE).map(([k]) => load(ctx, k.slice(root.length + 3)));
}
function nextId(ctx: Context): string {
  const seq = Number(ctx.state.get('seq') ?? 0) + 1;
  ctx.state.set('seq', seq);
  return `V${seq}`;
}
function creditOf(ctx: ViewContext, org: string): { org: string; limit: bigint; used: bigint } {
  const c = ctx.state.get(`cl:${org}`) as { limit: bigint; used: bigint } | undefined;
  return { org, limit: BigInt(c?.limit ?? 0), used: BigInt(c?.used ?? 0) };
}
function setCredit(ctx: Context, c: { org: string; limit: bigint; used: bigint }): void {
  ctx.state.set(`cl:${c.org}`, c);
}
function asset(ctx: ViewContext, id: string): string {
  return `${ctx.contract}:${id}`;
}
function requireUnencumbered(ctx: ViewContext, v: Voucher): void {
  if (ctx.call(cfg(ctx).encumbrances, 'isEncumbered', { asset: asset(ctx, v.id) }) === true)
    ctx.revert('ENCUMBERED', `voucher ${v.id} is encumbered`);
}
function requireStatus(ctx: ViewContext, v: Voucher, ...statuses: string[]): void {
  if (!statuses.includes(v.status))
    ctx.revert('WRONG_STATUS', `voucher ${v.id} is ${v.status}; expected ${statuses.join(' or ')}`);
}
function requireHolder(ctx: ViewContext, v: Voucher): void {
  if (ctx.sender !== v.holder)
    ctx.revert('NOT_HOLDER', `only the holder ${v.holder} may do this with ${v.id}`);
}
function onlyApprovals(ctx: ViewContext): void {
  if (ctx.sender !== cfg(ctx).approvals)
    ctx.revert('NOT_AUTHORIZED', 'only the approvals contract calls this');
}
function onlyScheduler(ctx: ViewContext): void {
  if (!ctx.scheduled || ctx.sender !== ctx.contract)
    ctx.revert('NOT_AUTHORIZED', 'runs only as a scheduled callback');
}

/** Emits a transition event: ids, parties and amounts, plus the changed voucher records. */
function emit(
  ctx: Context,
  name: string,
  data: Record<string, Value>,
  changed: Voucher[],
  credit?: { org: string; limit: bigint; used: bigint },
): void {
  ctx.emit(name, { ...data, vouchers: changed as never, credit: (credit ?? null) as never });
}

/** opId idempotency: the first result of (sender, opId) is returned again, with no change. */
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

function policyFor(ctx: Context, org: string, step: string): string {
  const id = `${org}.${step}`;
  return ctx.call(cfg(ctx).approvals, 'hasPolicy', { id }) === true ? id : `admins:${org}`;
}

function child(ctx: Context, parent: Voucher, holder: Member, amount: bigint): Voucher {
  if (parent.depth + 1 > MAX_DEPTH) ctx.revert('TOO_DEEP', `lineage depth is bounded by ${MAX_DEPTH}`);
  const count = Number(ctx.state.get(`tc:${parent.root}`) ?? 0);
  if (count >= MAX_TREE) ctx.revert('TREE_FULL', `a voucher tree holds at most ${MAX_TREE} vouchers`);
  ctx.state.set(`tc:${parent.root}`, count + 1);
  const v: Voucher = {
    ...parent,
    id: nextId(ctx),
    parent: parent.id,
    depth: parent.depth + 1,
    holder: holder.address,
    holderOrg: holder.org,
    amount,
    face: amount,
    status: 'ACTIVE',
    prevStatus: null,
    bank: null,
    financeAmount: 0n,
    financed: false,
    proposalId: null,
  };
  ctx.state.set(`t:${v.root}:${v.id}`, true);
  save(ctx, v);
  return v;
}

/** Genesis: `{ membership?, approvals?, encumbrances?, creditLines?: [{ org, limit }] }`. */
export function init(
  ctx: Context,
  args: {
    membership?: string;
    approvals?: string;
    encumbrances?: string;
    creditLines?: Array<{ org: string; limit: number | bigint }>;
  } | null,
) {
  ctx.state.set('cfg', {
    membership: args?.membership ?? 'membership',
    approvals: args?.approvals ?? 'approvals',
    encumbrances: args?.encumbrances ?? 'encumbrances',
  });
  for (const c of args?.creditLines ?? []) {
    if ((typeof c.limit !== 'number' && typeof c.limit !== 'bigint') || BigInt(c.limit) < 0n)
      ctx.revert('BAD_AMOUNT', 'limit must be a non-negative integer');
    const credit = { org: text(ctx, c.org, 'org'), limit: BigInt(c.limit), used: 0n };
    setCredit(ctx, credit);
    ctx.emit('CreditLineSet', { org: credit.org, limit: credit.limit, used: 0n, credit });
  }
}

export const methods = {
  /**
   * Issues a voucher `{ opId, debtor, holder, amount, maturity, graceMs?, ref? }` awaiting the
   * debtor's confirmation; returns `{ id, proposalId }`. Caller: a member of the debtor (a core
   * enterprise) or the holder itself (a supplier registering its claim).
   */
  issue(
    ctx: Context,
    args: {
      opId: string;
      debtor: string;
      holder: string;
      amount: number | bigint;
      maturity: number;
      graceMs?: number;
      ref?: string;
    },
  ) {
    return once(ctx, args?.opId, 'issue', () => {
      const debtor = text(ctx, args.debtor, 'debtor');
      const amount = amountOf(ctx, args.amount);
      const maturity = intIn(
        ctx,
        args.maturity,
        ctx.time + 1,
        Number.MAX_SAFE_INTEGER,
        'maturity (after now)',
      );
      const graceMs = intIn(ctx, args.graceMs ?? DEFAULT_GRACE_MS, 0, MAX_GRACE_MS, 'graceMs');
      if (!orgHasRole(ctx, debtor, 'core-enterprise'))
        ctx.revert('WRONG_ROLE', `debtor ${debtor} is not a core enterprise`);
      const sender = requireMember(ctx, ctx.sender, null, 'sender');
      const holder = requireMember(ctx, text(ctx, args.holder, 'holder', 42), null, 'holder');
      if (sender.org !== debtor && ctx.sender !== holder.address)
        ctx.revert('NOT_AUTHORIZED', `only a member of ${debtor} or the holder may issue`);
      if (holder.org === debtor) ctx.revert('BAD_ARGS', 'the debtor cannot hold its own voucher');
      const id = nextId(ctx);
      const proposalId = ctx.call(cfg(ctx).approvals, 'propose', {
        policy: policyFor(ctx, debtor, 'confirm'),
        target: ctx.contract,
        method: 'confirm',
        args: { id },
        onReject: 'onConfirmRejected',
        expiresInMs: Math.min(DEFAULT_DECISION_MS, maturity - ctx.time),
      }) as string;
      const v: Voucher = {
        id,
        root: id,
        parent: null,
        depth: 0,
        debtor,
        holder: holder.address,
        holderOrg: holder.org,
        amount,
        face: amount,
        maturity,
        graceMs,
        status: 'PENDING_CONFIRMATION',
        prevStatus: null,
        bank: null,
        financeAmount: 0n,
        financed: false,
        proposalId,
        ref: args.ref === undefined ? '' : text(ctx, args.ref, 'ref', 128),
      };
      save(ctx, v);
      ctx.state.set(`t:${id}:${id}`, true);
      ctx.state.set(`tc:${id}`, 1);
      emit(
        ctx,
        'Issued',
        { id, debtor, holder: v.holder, amount, maturity, proposalId, issuer: ctx.sender },
        [v],
      );
      return { id, proposalId };
    });
  },

  /** The debtor's policy approved: PENDING_CONFIRMATION → ACTIVE, consuming credit. Caller: approvals. */
  confirm(ctx: Context, args: { id: string }) {
    onlyApprovals(ctx);
    const v = load(ctx, args?.id);
    requireStatus(ctx, v, 'PENDING_CONFIRMATION');
    if (v.maturity <= ctx.time) ctx.revert('MATURED', `voucher ${v.id} matured before confirmation`);
    const c = creditOf(ctx, v.debtor);
    if (c.used + v.amount > c.limit)
      ctx.revert(
        'CREDIT_LINE_EXCEEDED',
        `${v.debtor} has ${c.limit - c.used} of credit left, voucher needs ${v.amount}`,
      );
    c.used += v.amount;
    setCredit(ctx, c);
    v.status = 'ACTIVE';
    save(ctx, v);
    ctx.schedule(v.maturity, 'mature', { root: v.id });
    emit(
      ctx,
      'Confirmed',
      { id: v.id, debtor: v.debtor, holder: v.holder, amount: v.amount, proposalId: v.proposalId },
      [v],
      c,
    );
  },

  /** Confirmation rejected, cancelled or expired: → CANCELLED. Caller: approvals. */
  onConfirmRejected(ctx: Context, args: { proposalId: string; reason: string; args: { id: string } }) {
    onlyApprovals(ctx);
    const v = load(ctx, args?.args?.id);
    if (v.status === 'PENDING_CONFIRMATION') v.status = 'CANCELLED';
    else if (v.status === 'FROZEN' && v.prevStatus === 'PENDING_CONFIRMATION') v.prevStatus = 'CANCELLED';
    else return;
    save(ctx, v);
    emit(
      ctx,
      'Cancelled',
      { id: v.id, debtor: v.debtor, holder: v.holder, amount: v.amount, reason: String(args.reason) },
      [v],
    );
  },

  /** Transfers `amount` to member `to` as a child voucher; returns the child id. Caller: the holder. */
  transfer(ctx: Context, args: { opId: string; id: string; to: string; amount: number | bigint }) {
    return once(ctx, args?.opId, 'transfer', () => {
      const v = load(ctx, args.id);
      requireHolder(ctx, v);
      requireStatus(ctx, v, 'ACTIVE');
      requireUnencumbered(ctx, v);
      const amount = amountOf(ctx, args.amount);
      if (amount > v.amount)
        ctx.revert('INSUFFICIENT', `voucher ${v.id} holds ${v.amount}, cannot transfer ${amount}`);
      const to = requireMember(ctx, text(ctx, args.to, 'to', 42), null, 'receiver');
      if (to.address === v.holder) ctx.revert('BAD_ARGS', 'cannot transfer to yourself');
      if (to.org === v.debtor) ctx.revert('BAD_ARGS', 'the debtor cannot hold its own voucher');
      const c = child(ctx, v, to, amount);
      v.amount -= amount;
      if (v.amount === 0n) v.status = 'TRANSFERRED';
      save(ctx, v);
      emit(
        ctx,
        'Transferred',
        { id: v.id, child: c.id, root: v.root, from: v.holder, to: to.address, amount, remainder: v.amount },
        [v, c],
      );
      return c.id;
    });
  },

  /** Splits into parts summing to the amount; returns the child ids. Caller: the holder. */
  split(ctx: Context, args: { opId: string; id: string; amounts: Array<number | bigint> }) {
    return once(ctx, args?.opId, 'split', () => {
      const v = load(ctx, args.id);
      requireHolder(ctx, v);
      requireStatus(ctx, v, 'ACTIVE');
      requireUnencumbered(ctx, v);
      const parts = args.amounts;
      if (!Array.isArray(parts) || parts.length < 2 || parts.length > MAX_SPLIT)
        ctx.revert('BAD_ARGS', `amounts must list 2..${MAX_SPLIT} parts`);
      const amounts = parts.map((a) => amountOf(ctx, a));
      let sum = 0n;
      for (const a of amounts) sum += a;
      if (sum !== v.amount)
        ctx.revert('BAD_AMOUNT', `parts sum to ${sum}, voucher ${v.id} holds ${v.amount}`);
      const holder: Member = { address: v.holder, org: v.holderOrg, roles: [], orgRoles: [] };
      const children = amounts.map((a) => child(ctx, v, holder, a));
      v.amount = 0n;
      v.status = 'SPLIT';
      save(ctx, v);
      emit(
        ctx,
        'Split',
        { id: v.id, root: v.root, holder: v.holder, children: children.map((c) => c.id), amounts },
        [v, ...children],
      );
      return children.map((c) => c.id);
    });
  },

  /**
   * Asks bank organisation `bank` to finance `amount` against the voucher: → FINANCING with an
   * assignment encumbrance; returns the proposal id. Caller: the holder.
   */
  financeRequest(
    ctx: Context,
    args: { opId: string; id: string; bank: string; amount: number | bigint; expiresInMs?: number },
  ) {
    return once(ctx, args?.opId, 'financeRequest', () => {
      const v = load(ctx, args.id);
      requireHolder(ctx, v);
      requireStatus(ctx, v, 'ACTIVE');
      const amount = amountOf(ctx, args.amount);
      if (amount > v.amount)
        ctx.revert('INSUFFICIENT', `voucher ${v.id} holds ${v.amount}, cannot finance ${amount}`);
      const bank = text(ctx, args.bank, 'bank');
      if (!orgHasRole(ctx, bank, 'bank')) ctx.revert('WRONG_ROLE', `${bank} is not a bank`);
      const window = intIn(
        ctx,
        args.expiresInMs ?? DEFAULT_DECISION_MS,
        1,
        DEFAULT_DECISION_MS * 30,
        'expiresInMs',
      );
      // The registry refuses a second encumbrance (ALREADY_ENCUMBERED), whoever placed the first.
      ctx.call(cfg(ctx).encumbrances, 'encumber', {
        id: v.id,
        kind: 'assignment',
        beneficiary: bank,
        ref: v.root,
      });
      const proposalId = ctx.call(cfg(ctx).approvals, 'propose', {
        policy: policyFor(ctx, bank, 'finance'),
        target: ctx.contract,
        method: 'approveFinancing',
        args: { id: v.id },
        onReject: 'onFinancingRejected',
        expiresInMs: Math.max(1, Math.min(window, v.maturity - ctx.time)),
      }) as string;
      v.status = 'FINANCING';
      v.bank = bank;
      v.financeAmount = amount;
      v.proposalId = proposalId;
      save(ctx, v);
      emit(
        ctx,
        'FinancingRequested',
        { id: v.id, root: v.root, holder: v.holder, bank, amount, proposalId },
        [v],
      );
      return proposalId;
    });
  },

  /** The bank's policy approved: FINANCING → FINANCED. Caller: approvals. */
  approveFinancing(ctx: Context, args: { id: string }) {
    onlyApprovals(ctx);
    const v = load(ctx, args?.id);
    if (v.status === 'FROZEN' && v.prevStatus === 'FINANCING') v.prevStatus = 'FINANCED';
    else {
      requireStatus(ctx, v, 'FINANCING');
      v.status = 'FINANCED';
    }
    v.financed = true;
    save(ctx, v);
    emit(
      ctx,
      'Financed',
      {
        id: v.id,
        root: v.root,
        holder: v.holder,
        bank: v.bank,
        amount: v.financeAmount,
        proposalId: v.proposalId,
      },
      [v],
    );
  },

  /** Financing rejected, cancelled or expired: FINANCING → ACTIVE, assignment lifted. Caller: approvals. */
  onFinancingRejected(ctx: Context, args: { proposalId: string; reason: string; args: { id: string } }) {
    onlyApprovals(ctx);
    const v = load(ctx, args?.args?.id);
    if (v.proposalId !== args.proposalId) return;
    if (v.status === 'FINANCING') v.status = 'ACTIVE';
    else if (v.status === 'FROZEN' && v.prevStatus === 'FINANCING') v.prevStatus = 'ACTIVE';
    else return;
    ctx.call(cfg(ctx).encumbrances, 'release', { id: v.id, kind: 'assignment' });
    const bank = v.bank;
    v.bank = null;
    v.financeAmount = 0n;
    save(ctx, v);
    emit(
      ctx,
      'FinancingRejected',
      {
        id: v.id,
        root: v.root,
        holder: v.holder,
        bank,
        reason: String(args.reason),
        proposalId: args.proposalId,
      },
      [v],
    );
  },

  /** Maturity of a root: live vouchers of its tree → DUE. Caller: the scheduler. */
  mature(ctx: Context, args: { root: string }) {
    onlyScheduler(ctx);
    const changed: Voucher[] = [];
    const enc = cfg(ctx).encumbrances;
    for (const v of treeOf(ctx, args.root)) {
      const frozen = v.status === 'FROZEN';
      const s = frozen ? v.prevStatus : v.status;
      if (s !== 'ACTIVE' && s !== 'FINANCED' && s !== 'FINANCING') continue;
      if (s === 'FINANCING') {
        // An unapproved financing lapses at maturity; a late approval then fails.
        ctx.call(enc, 'release', { id: v.id, kind: 'assignment' });
        v.bank = null;
        v.financeAmount = 0n;
      }
      if (frozen) v.prevStatus = 'DUE';
      else v.status = 'DUE';
      save(ctx, v);
      changed.push(v);
    }
    const root = load(ctx, args.root);
    ctx.schedule(root.maturity + root.graceMs, 'overdue', { root: args.root });
    emit(
      ctx,
      'Matured',
      { root: args.root, debtor: root.debtor, at: ctx.time, ids: changed.map((v) => v.id) },
      changed,
    );
  },

  /** The grace period passed: DUE → OVERDUE. Caller: the scheduler. */
  overdue(ctx: Context, args: { root: string }) {
    onlyScheduler(ctx);
    const changed: Voucher[] = [];
    for (const v of treeOf(ctx, args.root)) {
      if (v.status === 'DUE') v.status = 'OVERDUE';
      else if (v.status === 'FROZEN' && v.prevStatus === 'DUE') v.prevStatus = 'OVERDUE';
      else continue;
      save(ctx, v);
      changed.push(v);
    }
    if (changed.length > 0) {
      const root = load(ctx, args.root);
      emit(
        ctx,
        'Overdue',
        {
          root: args.root,
          debtor: root.debtor,
          ids: changed.map((v) => v.id),
          amount: changed.reduce((s, v) => s + v.amount, 0n),
        },
        changed,
      );
    }
  },

  /**
   * Pays every DUE or OVERDUE voucher of a root's tree (none may be frozen): → SETTLED, paid to
   * the financing bank or the holder; restores the credit line. Caller: a member of the debtor.
   */
  pay(ctx: Context, args: { opId: string; root: string }) {
    return once(ctx, args?.opId, 'pay', () => {
      const root = load(ctx, args.root);
      const payer = requireMember(ctx, ctx.sender, 'core-enterprise', 'payer');
      if (payer.org !== root.debtor) ctx.revert('NOT_DEBTOR', `only ${root.debtor} pays voucher ${root.id}`);
      const tree = treeOf(ctx, root.id);
      if (tree.some((v) => v.status === 'FROZEN')) ctx.revert('FROZEN', `a voucher of ${root.id} is frozen`);
      const payable = tree.filter((v) => v.status === 'DUE' || v.status === 'OVERDUE');
      if (payable.length === 0) ctx.revert('NOTHING_DUE', `nothing of ${root.id} is due`);
      const payments: Value[] = [];
      let total = 0n;
      for (const v of payable) {
        const payee = v.financed ? v.bank! : v.holder;
        if (v.financed) ctx.call(cfg(ctx).encumbrances, 'release', { id: v.id, kind: 'assignment' });
        v.status = 'SETTLED';
        save(ctx, v);
        total += v.amount;
        payments.push({ id: v.id, payee, holder: v.holder, amount: v.amount });
      }
      const c = creditOf(ctx, root.debtor);
      c.used = c.used > total ? c.used - total : 0n;
      setCredit(ctx, c);
      emit(
        ctx,
        'Settled',
        { root: root.id, debtor: root.debtor, payer: ctx.sender, total, payments },
        payable,
        c,
      );
      return total;
    });
  },

  /** Writes off an OVERDUE voucher the caller's bank financed: → WRITTEN_OFF. Caller: that bank's member. */
  writeOff(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'writeOff', () => {
      const v = load(ctx, args.id);
      const m = requireMember(ctx, ctx.sender, 'bank', 'sender');
      if (!v.financed || m.org !== v.bank)
        ctx.revert('NOT_AUTHORIZED', `only the financing bank may write off ${v.id}`);
      requireStatus(ctx, v, 'OVERDUE');
      ctx.call(cfg(ctx).encumbrances, 'release', { id: v.id, kind: 'assignment' });
      v.status = 'WRITTEN_OFF';
      save(ctx, v);
      emit(ctx, 'WrittenOff', { id: v.id, root: v.root, bank: v.bank, holder: v.holder, amount: v.amount }, [
        v,
      ]);
      return null;
    });
  },

  /** Freezes a live voucher. Caller: a regulator's member. */
  freeze(ctx: Context, args: { opId: string; id: string; reason?: string }) {
    return once(ctx, args?.opId, 'freeze', () => {
      requireMember(ctx, ctx.sender, 'regulator', 'sender');
      const v = load(ctx, args.id);
      requireStatus(ctx, v, ...LIVE);
      ctx.call(cfg(ctx).encumbrances, 'freeze', {
        id: v.id,
        by: ctx.sender,
        ref: args.reason === undefined ? 'regulator' : text(ctx, args.reason, 'reason', 128),
      });
      v.prevStatus = v.status;
      v.status = 'FROZEN';
      save(ctx, v);
      emit(ctx, 'Frozen', { id: v.id, root: v.root, holder: v.holder, amount: v.amount, by: ctx.sender }, [
        v,
      ]);
      return null;
    });
  },

  /** Unfreezes: back to the status before the freeze (as moved on by maturity). Caller: a regulator's member. */
  unfreeze(ctx: Context, args: { opId: string; id: string }) {
    return once(ctx, args?.opId, 'unfreeze', () => {
      requireMember(ctx, ctx.sender, 'regulator', 'sender');
      const v = load(ctx, args.id);
      requireStatus(ctx, v, 'FROZEN');
      ctx.call(cfg(ctx).encumbrances, 'unfreeze', { id: v.id });
      v.status = v.prevStatus!;
      v.prevStatus = null;
      save(ctx, v);
      emit(ctx, 'Unfrozen', { id: v.id, root: v.root, holder: v.holder, amount: v.amount, by: ctx.sender }, [
        v,
      ]);
      return null;
    });
  },

  /** Sets a core enterprise's credit line limit. Caller: approvals (governance proposal). */
  govSetCreditLine(ctx: Context, args: { org: string; limit: number | bigint }) {
    onlyApprovals(ctx);
    const org = text(ctx, args?.org, 'org');
    if (!orgHasRole(ctx, org, 'core-enterprise')) ctx.revert('WRONG_ROLE', `${org} is not a core enterprise`);
    if ((typeof args.limit !== 'number' && typeof args.limit !== 'bigint') || BigInt(args.limit) < 0n)
      ctx.revert('BAD_AMOUNT', 'limit must be a non-negative integer');
    const c = creditOf(ctx, org);
    c.limit = BigInt(args.limit);
    setCredit(ctx, c);
    ctx.emit('CreditLineSet', { org, limit: c.limit, used: c.used, credit: c });
  },
} satisfies Methods;

export const views = {
  /** A voucher, or null. */
  voucher: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`v:${String(args?.id)}`) ?? null,
  /** Every voucher of a root's tree (at most 64). */
  tree: (ctx: ViewContext, args: { root: string }) => treeOf(ctx, String(args?.root)) as never,
  /** A core enterprise's credit line `{ org, limit, used }`. */
  creditLine: (ctx: ViewContext, args: { org: string }) => creditOf(ctx, String(args?.org)),
} satisfies Views;
