/**
 * The contract authoring API: the types a Trellis contract imports (`import type`, never a
 * runtime import). See docs/contracts.md for the rules and the reasons behind them.
 *
 * A contract is a TypeScript module that exports, by name:
 * - `methods`: an object literal of functions `(ctx: Context, args) => result` that may write state;
 * - `views`: an object literal of functions `(ctx: ViewContext, args) => result` that only read;
 * - `init` (optional): run once by the deploy transaction with its `initArgs`;
 * - `migrate` (optional): run once by an upgrade transaction with its `migrateArgs`.
 *
 * ```ts
 * import type { Context, Methods, ViewContext, Views } from '../api.ts';
 *
 * export const methods = {
 *   increment(ctx: Context, args: { by: number }) {
 *     const n = Number(ctx.state.get('n') ?? 0) + args.by;
 *     ctx.state.set('n', n);
 *     ctx.emit('Incremented', { by: args.by, n });
 *   },
 * } satisfies Methods;
 *
 * export const views = {
 *   current: (ctx: ViewContext) => ctx.state.get('n') ?? 0,
 * } satisfies Views;
 * ```
 */

/** Raw bytes. */
export type Bytes = Uint8Array;

/**
 * A canonical value: what arguments, state values, events and return values may hold. No floats,
 * no undefined (use null), plain objects only. An integer has one encoding whatever JavaScript type
 * carried it: it arrives as a number when it is a safe integer and as a bigint beyond, and must fit
 * in 64 bits. Normalise amounts with `BigInt(x)` before arithmetic.
 */
export type Value = null | boolean | number | bigint | string | Bytes | Value[] | { [key: string]: Value };

/** Read access to this contract's own key-value state. Keys are strings (at most 512 UTF-8 bytes). */
export interface ReadonlyState {
  /** The value under `key`, or undefined when absent. */
  get(key: string): Value | undefined;
  has(key: string): boolean;
  /**
   * Entries whose keys start with `prefix`, in ascending byte order of key, strictly after `after`
   * when given, at most `limit` (1..1000) of them. Page with the last key returned.
   */
  range(prefix: string, limit: number, after?: string): Array<[string, Value]>;
}

/** Read and write access to this contract's own state. Writes are undone if the call fails. */
export interface State extends ReadonlyState {
  set(key: string, value: Value): void;
  delete(key: string): void;
}

/** Options of a nested call. */
export interface CallOptions {
  /** Gas the callee may use (default: all that is left). */
  readonly gasLimit?: number;
}

/** Options of a scheduled callback. */
export interface ScheduleOptions {
  /** Gas of the callback (default 1,000,000; at most 10,000,000). */
  readonly gasLimit?: number;
}

/** What every call sees. */
export interface ViewContext {
  /** This contract's name. */
  readonly contract: string;
  /**
   * Who called: the 0x-hex address of the transaction's signer for a top-level call, the calling
   * contract's name for a nested call, and this contract's own name for a scheduled callback.
   */
  readonly sender: string;
  /** The 0x-hex address that signed the transaction ('' in a scheduled callback). */
  readonly origin: string;
  /** 0x-hex hash of the transaction (or of the schedule entry, in a callback). */
  readonly txHash: string;
  /** Height of the block being executed. */
  readonly height: number;
  /** Time of the block, in milliseconds since the Unix epoch (chosen by the proposer). */
  readonly time: number;
  /** True in a scheduled callback. */
  readonly scheduled: boolean;
  readonly state: ReadonlyState;
  /**
   * Calls another contract's method or view. The callee runs in its own checkpoint: if it fails,
   * its writes are undone and this throws an Error whose `code` is the callee's error code (catch
   * it to carry on). A contract cannot call itself, directly or through others.
   */
  call(contract: string, method: string, args?: Value, options?: CallOptions): Value;
  /** Ends the call: its writes are undone and the receipt carries `code` (a name) and `message`. */
  revert(code: string, message?: string): never;
  /** SHA-256 of bytes, or of a string's UTF-8 encoding. */
  sha256(data: Bytes | string): Bytes;
  /** Ed25519 signature verification (RFC 8032); false for malformed input. */
  verifyEd25519(signature: Bytes, message: Bytes | string, publicKey: Bytes): boolean;
  /**
   * 32 deterministic bytes derived from the transaction hash, this contract's name and `label`:
   * the same label gives the same bytes within a transaction. Public to anyone who sees the
   * transaction: not a secret and not unpredictable by its sender.
   */
  random(label: string): Bytes;
  /** Gas left in this call. */
  gasLeft(): number;
}

/** What a method sees: everything a view does, plus writing. */
export interface Context extends ViewContext {
  readonly state: State;
  /** Records an event in the receipt (only if the transaction succeeds). `name` is a name. */
  emit(name: string, data?: Value): void;
  /**
   * Runs `method` of this contract at the start of the first block whose time is at least `time`
   * (milliseconds), with its own gas and receipt. Callbacks due at the same block run in the order
   * they were scheduled. At most 10,000 pending per contract.
   */
  schedule(time: number, method: string, args?: Value, options?: ScheduleOptions): void;
}

/** A method: may write state. `args` is the transaction's (or caller's) argument value. */
export type Method = (ctx: Context, args: any) => Value | void; // eslint-disable-line @typescript-eslint/no-explicit-any
/** A view: reads only. */
export type View = (ctx: ViewContext, args: any) => Value | void; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The `methods` export. */
export type Methods = Record<string, Method>;
/** The `views` export. */
export type Views = Record<string, View>;

/** The shape of a contract module (checked by `trellis contract check`). */
export interface ContractModule {
  readonly methods?: Methods;
  readonly views?: Views;
  readonly init?: Method;
  readonly migrate?: Method;
}
