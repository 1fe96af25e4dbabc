/**
 * Nested calls: forwards a call to another contract and records the outcome, so tests can see
 * checkpoints (the callee's writes are undone when it fails) and caller identity (the callee sees
 * this contract's name as ctx.sender).
 */
import type { Context, Methods, Value } from '../api.ts';

export const methods = {
  forward(
    ctx: Context,
    args: { contract: string; method: string; args?: Value; catchFailure?: boolean; gasLimit?: number },
  ) {
    ctx.state.set('calls', Number(ctx.state.get('calls') ?? 0) + 1);
    const options = args.gasLimit === undefined ? {} : { gasLimit: args.gasLimit };
    if (!args.catchFailure) return ctx.call(args.contract, args.method, args.args ?? null, options);
    try {
      return ctx.call(args.contract, args.method, args.args ?? null, options);
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'UNKNOWN';
      ctx.state.set('lastFailure', code);
      ctx.emit('CallFailed', { code });
      return null;
    }
  },
} satisfies Methods;
