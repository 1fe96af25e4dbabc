/**
 * The smallest useful contract: a counter per key, with an event per change.
 */
import type { Context, Methods, ViewContext, Views } from '../api.ts';

const MAX_STEP = 1_000_000;

function read(ctx: ViewContext, name: string): number {
  return Number(ctx.state.get(`count:${name}`) ?? 0);
}

export const methods = {
  increment(ctx: Context, args: { name: string; by?: number }) {
    const by = args.by ?? 1;
    if (!Number.isSafeInteger(by) || by < 1 || by > MAX_STEP)
      ctx.revert('BAD_STEP', `by must be 1..${MAX_STEP}`);
    const n = read(ctx, args.name) + by;
    ctx.state.set(`count:${args.name}`, n);
    ctx.emit('Incremented', { name: args.name, by, value: n });
    return n;
  },
  reset(ctx: Context, args: { name: string }) {
    ctx.state.delete(`count:${args.name}`);
  },
} satisfies Methods;

export const views = {
  get: (ctx: ViewContext, args: { name: string }) => read(ctx, args.name),
  list(ctx: ViewContext, args: { limit?: number }) {
    return ctx.state.range('count:', args.limit ?? 100).map(([k, v]) => [k.slice(6), v]);
  },
} satisfies Views;
