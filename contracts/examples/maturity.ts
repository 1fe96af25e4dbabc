/**
 * Scheduled execution: a voucher opened with a maturity date turns DUE at the first block whose
 * time reaches it, with nobody sending a transaction.
 */
import type { Context, Methods, ViewContext, Views } from '../api.ts';

export const methods = {
  open(ctx: Context, args: { id: string; maturesAt: number }) {
    if (ctx.state.has(`v:${args.id}`)) ctx.revert('EXISTS', `voucher ${args.id} exists`);
    ctx.state.set(`v:${args.id}`, { status: 'ACTIVE', maturesAt: args.maturesAt });
    ctx.schedule(args.maturesAt, 'mature', { id: args.id });
    ctx.emit('Opened', { id: args.id, maturesAt: args.maturesAt });
  },
  mature(ctx: Context, args: { id: string }) {
    // Only the scheduler runs a contract with itself as sender.
    if (ctx.sender !== ctx.contract || !ctx.scheduled)
      ctx.revert('NOT_SCHEDULER', 'mature runs only when scheduled');
    const v = ctx.state.get(`v:${args.id}`) as { status: string; maturesAt: number } | undefined;
    if (v === undefined || v.status !== 'ACTIVE') return;
    ctx.state.set(`v:${args.id}`, { status: 'DUE', maturesAt: v.maturesAt, dueAt: ctx.time });
    ctx.emit('Due', { id: args.id, at: ctx.time });
  },
} satisfies Methods;

export const views = {
  status: (ctx: ViewContext, args: { id: string }) => ctx.state.get(`v:${args.id}`) ?? null,
} satisfies Views;
