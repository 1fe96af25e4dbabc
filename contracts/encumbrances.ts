/**
 * Encumbrances: the one registry that makes double financing impossible. An asset (named
 * `<contract>:<id>`, where `<contract>` is the asset contract that registers it) carries at most
 * one encumbrance at a time: a pledge, an assignment or a freeze, whoever asks.
 *
 * Only contracts call the methods, and a contract may only encumber assets in its own namespace
 * (the asset id is always prefixed with the caller's name), so one asset contract cannot block or
 * release another's assets. A regulator's freeze of an already pledged or assigned asset replaces
 * the live encumbrance and keeps it underneath (`under`); unfreezing restores it. The record is
 * still one encumbrance per asset.
 */
import type { Context, Methods, Value, ViewContext, Views } from './api.ts';

const KINDS = ['pledge', 'assignment'];

interface Encumbrance {
  asset: string;
  kind: string;
  beneficiary: string;
  ref: string;
  since: number;
  under: Encumbrance | null;
}

function checkText(ctx: ViewContext, v: unknown, what: string, max = 128): string {
  if (typeof v !== 'string' || v.length < 1 || v.length > max)
    ctx.revert('BAD_ARGS', `${what} must be a string of 1..${max} characters`);
  return v;
}

/** Callers are contracts: their names never start with 0x, addresses always do. */
function assetOf(ctx: Context, id: unknown): string {
  if (ctx.sender.startsWith('0x') || ctx.sender === '')
    ctx.revert('NOT_AUTHORIZED', 'only asset contracts register encumbrances');
  return `${ctx.sender}:${checkText(ctx, id, 'asset id', 160)}`;
}

function emit(
  ctx: Context,
  name: string,
  e: Encumbrance | null,
  asset: string,
  extra: Record<string, Value> = {},
): void {
  ctx.emit(name, {
    asset,
    kind: e?.kind ?? null,
    beneficiary: e?.beneficiary ?? null,
    ref: e?.ref ?? null,
    ...extra,
    encumbrance: e as never,
  });
}

export const methods = {
  /** Places a pledge or an assignment on the caller's asset. Caller: an asset contract. */
  encumber(ctx: Context, args: { id: string; kind: string; beneficiary: string; ref?: string }) {
    const asset = assetOf(ctx, args?.id);
    if (!KINDS.includes(args.kind)) ctx.revert('BAD_ARGS', `kind must be one of ${KINDS.join(', ')}`);
    const existing = ctx.state.get(`e:${asset}`) as Encumbrance | undefined;
    if (existing !== undefined)
      ctx.revert(
        'ALREADY_ENCUMBERED',
        `${asset} already carries a ${existing.kind} for ${existing.beneficiary}`,
      );
    const e: Encumbrance = {
      asset,
      kind: args.kind,
      beneficiary: checkText(ctx, args.beneficiary, 'beneficiary'),
      ref: args.ref === undefined ? '' : checkText(ctx, args.ref, 'ref'),
      since: ctx.time,
      under: null,
    };
    ctx.state.set(`e:${asset}`, e as never);
    emit(ctx, 'Encumbered', e, asset);
  },
  /**
   * Lifts the caller's pledge or assignment (`kind` must match), also from under a freeze.
   * Caller: the asset contract.
   */
  release(ctx: Context, args: { id: string; kind: string }) {
    const asset = assetOf(ctx, args?.id);
    const e = ctx.state.get(`e:${asset}`) as Encumbrance | undefined;
    if (e?.kind === 'freeze' && e.under !== null && e.under.kind === args.kind) {
      // Lifting what a freeze covers: the freeze stays, with nothing underneath.
      const frozen: Encumbrance = { ...e, under: null };
      ctx.state.set(`e:${asset}`, frozen as never);
      emit(ctx, 'Released', frozen, asset, { released: e.under as never });
      return;
    }
    if (e === undefined || e.kind !== args.kind)
      ctx.revert('NOT_ENCUMBERED', `${asset} carries no ${String(args.kind)}`);
    ctx.state.delete(`e:${asset}`);
    emit(ctx, 'Released', null, asset, { released: e as never });
  },
  /** Freezes the asset (keeping a pledge or assignment underneath). Caller: the asset contract. */
  freeze(ctx: Context, args: { id: string; by: string; ref?: string }) {
    const asset = assetOf(ctx, args?.id);
    const existing = ctx.state.get(`e:${asset}`) as Encumbrance | undefined;
    if (existing?.kind === 'freeze') ctx.revert('ALREADY_FROZEN', `${asset} is frozen`);
    const e: Encumbrance = {
      asset,
      kind: 'freeze',
      beneficiary: checkText(ctx, args.by, 'by'),
      ref: args.ref === undefined ? '' : checkText(ctx, args.ref, 'ref'),
      since: ctx.time,
      under: existing ?? null,
    };
    ctx.state.set(`e:${asset}`, e as never);
    emit(ctx, 'Frozen', e, asset);
  },
  /** Lifts a freeze, restoring what it covered. Caller: the asset contract. */
  unfreeze(ctx: Context, args: { id: string }) {
    const asset = assetOf(ctx, args?.id);
    const e = ctx.state.get(`e:${asset}`) as Encumbrance | undefined;
    if (e?.kind !== 'freeze') ctx.revert('NOT_FROZEN', `${asset} is not frozen`);
    if (e.under === null) ctx.state.delete(`e:${asset}`);
    else ctx.state.set(`e:${asset}`, e.under as never);
    emit(ctx, 'Unfrozen', e.under, asset);
  },
} satisfies Methods;

export const views = {
  /** The encumbrance of `asset` (`<contract>:<id>`), or null. */
  get: (ctx: ViewContext, args: { asset: string }) => ctx.state.get(`e:${String(args?.asset)}`) ?? null,
  /** True when `asset` carries an encumbrance. */
  isEncumbered: (ctx: ViewContext, args: { asset: string }) => ctx.state.has(`e:${String(args?.asset)}`),
} satisfies Views;
