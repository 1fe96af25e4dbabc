/**
 * A receivable ledger in its simplest form: the issuer (the deployer) issues amounts of a
 * voucher to holders, holders transfer parts of their holding. A transfer is the benchmark's
 * unit of work: two reads, two writes and one event.
 */
import type { Context, Methods, ViewContext, Views } from '../api.ts';

function balance(ctx: ViewContext, holder: string): bigint {
  return BigInt((ctx.state.get(`bal:${holder}`) ?? 0) as number | bigint);
}

function amountOf(ctx: ViewContext, v: unknown): bigint {
  if (typeof v !== 'number' && typeof v !== 'bigint') ctx.revert('BAD_AMOUNT', 'amount must be an integer');
  const a = BigInt(v);
  if (a <= 0n) ctx.revert('BAD_AMOUNT', 'amount must be positive');
  return a;
}

export function init(ctx: Context, args: { name?: string } | null) {
  ctx.state.set('issuer', ctx.sender);
  ctx.state.set('name', args?.name ?? 'voucher');
}

export const methods = {
  issue(ctx: Context, args: { to: string; amount: number | bigint }) {
    if (ctx.sender !== ctx.state.get('issuer')) ctx.revert('NOT_ISSUER', 'only the issuer may issue');
    const amount = amountOf(ctx, args.amount);
    ctx.state.set(`bal:${args.to}`, balance(ctx, args.to) + amount);
    ctx.state.set('supply', BigInt((ctx.state.get('supply') ?? 0) as number | bigint) + amount);
    ctx.emit('Issued', { to: args.to, amount });
  },
  transfer(ctx: Context, args: { to: string; amount: number | bigint }) {
    const amount = amountOf(ctx, args.amount);
    const from = ctx.sender;
    if (args.to === from) ctx.revert('SELF_TRANSFER', 'cannot transfer to yourself');
    const held = balance(ctx, from);
    if (held < amount) ctx.revert('INSUFFICIENT', `holding ${held} is less than ${amount}`);
    const theirs = balance(ctx, args.to);
    ctx.state.set(`bal:${from}`, held - amount);
    ctx.state.set(`bal:${args.to}`, theirs + amount);
    ctx.emit('Transfer', { from, to: args.to, amount });
  },
} satisfies Methods;

export const views = {
  balanceOf: (ctx: ViewContext, args: { holder: string }) => balance(ctx, args.holder),
  supply: (ctx: ViewContext) => BigInt((ctx.state.get('supply') ?? 0) as number | bigint),
} satisfies Views;
