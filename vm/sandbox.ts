import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type IvmModule from 'isolated-vm';
import { MAX_VALUE_DEPTH, type Value } from '../core/codec.ts';
import { VmFault } from './errors.ts';
import { GUEST_CONFIG, VmLimits } from './gasTable.ts';

/**
 * The isolate that runs contracts: one isolated-vm isolate, one context per loaded contract
 * artifact (kept warm, least recently used evicted), the guest runtime (vm/guestRuntime.js)
 * evaluated in each, and the single host dispatch function each context may call.
 *
 * Only strings, numbers and booleans cross the boundary, copied: no isolated-vm object (Reference,
 * ExternalCopy, Callback) is ever reachable from contract code, and no compiled-code cache is
 * accepted. The memory limit and the wall-clock timeout are backstops: hitting one raises
 * {@link VmFault} (a local fault), never a receipt.
 */

const require = createRequire(import.meta.url);
// isolated-vm is a native CommonJS addon; the pinned version is in package.json.
const ivm = require('isolated-vm') as typeof IvmModule;

/** Source of the guest runtime, evaluated as a closure body in every context. */
const RUNTIME_SOURCE = readFileSync(new URL('./guestRuntime.js', import.meta.url), 'utf8');

/** Host operations a guest may request (see the dispatch switch in vm/executor.ts). */
export const HostOp = {
  get: 1,
  has: 2,
  range: 3,
  call: 4,
  hash: 5,
  verify: 6,
} as const;

/** What answers a guest's host calls while a contract runs: set by the executor per call. */
export type HostHandler = (
  op: number,
  a: unknown,
  b: unknown,
  c: unknown,
  d: unknown,
  e: unknown,
  f: unknown,
  g: unknown,
) => unknown;

/** Which entry point to run. */
export const InvokeKind = { method: 0, view: 1, init: 2, migrate: 3 } as const;
export type InvokeKindCode = (typeof InvokeKind)[keyof typeof InvokeKind];

/** One call into a loaded contract. */
export interface InvokeRequest {
  readonly kind: InvokeKindCode;
  readonly method: string;
  /** Canonical argument bytes as a latin1 string ('' for none). */
  readonly args: string;
  readonly contract: string;
  readonly sender: string;
  readonly origin: string;
  /** 0x-hex transaction hash (or schedule-entry hash). */
  readonly txHash: string;
  readonly height: number;
  readonly time: number;
  readonly scheduled: boolean;
  readonly gas: number;
  readonly stackUnits: number;
  /** Read-cache session of the executor (see `session` in vm/executor.ts). */
  readonly cacheSession: number;
}

/** The writes, events and schedules a call buffered, as the guest sent them. */
export interface GuestFlush {
  readonly writes: Array<[string, Uint8Array | null]>;
  /** Name and the canonical data bytes as the latin1 text the guest sent (one char per byte). */
  readonly events: Array<[string, string]>;
  readonly schedules: Array<[number, string, Uint8Array, number]>;
}

/** A call's outcome as the guest reported it. */
export interface InvokeResult {
  /** 0 ok, 1 reverted, 2 out of gas, 3 local fault. */
  readonly status: 0 | 1 | 2 | 3;
  readonly gasLeft: number;
  /** Canonical return value bytes, or null. */
  readonly ret: Uint8Array | null;
  readonly flush: GuestFlush;
  readonly code: string;
  readonly message: string;
}

/** One transaction of a batch (see {@link Sandbox.invokeBatch}). */
export interface BatchItem {
  /** InvokeKind.method or InvokeKind.view. */
  readonly kind: 0 | 1;
  readonly method: string;
  /** 0x-hex sender, also the origin. */
  readonly sender: string;
  readonly txHash: string;
  /** Canonical argument bytes as a latin1 string. */
  readonly args: string;
  readonly gas: number;
}

/**
 * A batch item in the form the guest reads (see ilength and invokeBatch in vm/guestRuntime.js):
 * kind ('0' or '1'), gas as four chars of one byte each (big-endian), then method, sender, txHash
 * and args, each as its length in one char (below 240; else \xff, decimal digits and a comma) and
 * its text. The executor encodes each transaction once, when it prepares it, so a batch's input
 * is one join of these and no item object is built per transaction.
 */
export function encodeBatchItem(item: BatchItem): string {
  const { kind, method, sender, txHash, args, gas } = item;
  // Kind, gas and method repeat from item to item: their text is made once for a run of them.
  if (kind !== lastKind || gas !== lastGas || method !== lastMethod) {
    if (!Number.isSafeInteger(gas) || gas < 0 || gas > 0xffffffff)
      throw new VmFault('HOST', `batch item gas ${gas} out of range`, {});
    lastKind = kind;
    lastGas = gas;
    lastMethod = method;
    lastHead = `${kind}${String.fromCharCode(gas >>> 24, (gas >>> 16) & 255, (gas >>> 8) & 255, gas & 255)}${shortLength(method.length)}${method}`;
  }
  // One template: separate strings per field would be concatenated again (measured).
  return `${lastHead}${shortLength(sender.length)}${sender}${shortLength(txHash.length)}${txHash}${shortLength(args.length)}${args}`;
}
let lastKind = -1;
let lastGas = -1;
let lastMethod = '';
let lastHead = '';

/** A field length as the guest's batch reader takes it (ilength in vm/guestRuntime.js). */
function shortLength(n: number): string {
  return n < 240 ? String.fromCharCode(n) : `\xff${n},`;
}

/** Consecutive top-level transactions of one contract, run in one entry into its context. */
export interface BatchRequest {
  readonly contract: string;
  readonly height: number;
  readonly time: number;
  /** The transactions, each as {@link encodeBatchItem} gives it. */
  readonly items: readonly string[];
  readonly stackUnits: number;
  readonly cacheSession: number;
}

/** A contract artifact loaded into its own context. */
export interface LoadedContract {
  readonly key: string;
  /** The handler answering this context's host calls; null when no call is running. */
  handler: HostHandler | null;
}

interface Slot extends LoadedContract {
  readonly context: IvmModule.Context;
  readonly invoke: IvmModule.Reference<(...args: unknown[]) => string>;
  readonly batch: IvmModule.Reference<(...args: unknown[]) => string>;
}

/** Options of {@link createSandbox}. */
export interface SandboxOptions {
  readonly memoryLimitMb?: number;
  readonly callTimeoutMs?: number;
  readonly maxContexts?: number;
}

/** The contract isolate. */
export interface Sandbox {
  /**
   * Returns the warm context under `key` (the executor uses contract name and artifact hash, so
   * one context never serves two contracts), creating it (runtime + module load) if needed.
   * Throws VmFault on a local fault; returns an error string when the module fails to load
   * (deterministic: the deploy is refused with it).
   */
  load(key: string, code: string): LoadedContract | string;
  /** Runs one call. `timeout`: apply the wall-clock backstop (top-level calls only). */
  invoke(contract: LoadedContract, request: InvokeRequest, timeout: boolean): InvokeResult;
  /**
   * Runs a batch of top-level transactions in one entry (vm/guestRuntime.js invokeBatch), under
   * one wall-clock backstop: the caller bounds the batch's total gas by one transaction's maximum.
   * Returns the results of the transactions that ran, in order, to be read through the returned
   * reader: fewer than requested means the next one needs the host mid-call and must run on its
   * own (a result with status 3, a local fault, is always the last). Then the batch's writes.
   */
  invokeBatch(contract: LoadedContract, request: BatchRequest): BatchResults;
  /** Contexts currently warm. */
  readonly size: number;
  /** Drops every context and the isolate; the next load starts afresh. */
  reset(): void;
  /** Recycles the isolate when its heap has grown past half the memory limit (between blocks). */
  recycleIfLarge(): void;
  dispose(): void;
}

function faultOf(err: unknown, isolate: IvmModule.Isolate | null): VmFault {
  const message = err instanceof Error ? err.message : String(err);
  if (/memory limit/i.test(message) || isolate?.isDisposed === true) {
    return new VmFault('MEMORY_LIMIT', `contract isolate hit its memory limit: ${message}`, {});
  }
  if (/timed out/i.test(message))
    return new VmFault('TIMEOUT', `contract call exceeded the wall-clock backstop: ${message}`, {});
  return new VmFault('ISOLATE', `contract isolate failed: ${message}`, {});
}

/** Creates the contract isolate. Contexts are created lazily, one per artifact. */
export function createSandbox(options: SandboxOptions = {}): Sandbox {
  const memoryLimitMb = options.memoryLimitMb ?? VmLimits.memoryLimitMb;
  const callTimeoutMs = options.callTimeoutMs ?? VmLimits.callTimeoutMs;
  const maxContexts = options.maxContexts ?? VmLimits.maxContexts;
  let isolate: IvmModule.Isolate | null = null;
  /** Key → slot, in least-recently-used order. Bounded by maxContexts. */
  const slots = new Map<string, Slot>();
  let catastrophe: string | null = null;

  const getIsolate = (): IvmModule.Isolate => {
    if (isolate === null || isolate.isDisposed) {
      slots.clear();
      isolate = new ivm.Isolate({
        memoryLimit: memoryLimitMb,
        onCatastrophicError: (message: string) => {
          catastrophe = message;
        },
      });
    }
    return isolate;
  };

  const reset = (): void => {
    for (const slot of slots.values()) slot.context.release();
    slots.clear();
    if (isolate !== null && !isolate.isDisposed) isolate.dispose();
    isolate = null;
  };

  const fail = (err: unknown): never => {
    const current = isolate;
    const f = err instanceof VmFault ? err : faultOf(err, current);
    reset();
    throw f;
  };

  const load = (key: string, code: string): LoadedContract | string => {
    const warm = slots.get(key);
    if (warm !== undefined) {
      slots.delete(key);
      slots.set(key, warm);
      return warm;
    }
    const iso = getIsolate();
    let context: IvmModule.Context | null = null;
    try {
      context = iso.createContextSync();
      const slotRef: { current: Slot | null } = { current: null };
      const dispatch = (
        op: number,
        a: unknown,
        b: unknown,
        c: unknown,
        d: unknown,
        e: unknown,
        f: unknown,
        g: unknown,
      ): unknown => {
        const handler = slotRef.current?.handler ?? null;
        if (handler === null) return -1;
        return handler(op, a, b, c, d, e, f, g);
      };
      const runtime = context.evalClosureSync(
        RUNTIME_SOURCE,
        [new ivm.Callback(dispatch), new ivm.ExternalCopy(GUEST_CONFIG).copyInto()],
        { result: { reference: true }, timeout: callTimeoutMs },
      ) as IvmModule.Reference<Record<string, unknown>>;
      const loadRef = runtime.getSync('load', { reference: true }) as IvmModule.Reference<
        (f: unknown) => string
      >;
      const invoke = runtime.getSync('invoke', { reference: true }) as IvmModule.Reference<
        (...args: unknown[]) => string
      >;
      const batch = runtime.getSync('invokeBatch', { reference: true }) as IvmModule.Reference<
        (...args: unknown[]) => string
      >;
      runtime.release();
      const script = iso.compileScriptSync(code, { filename: `contract:${key}` });
      const factory = script.runSync(context, {
        reference: true,
        timeout: callTimeoutMs,
      }) as IvmModule.Reference<unknown>;
      script.release();
      const error = loadRef.applySync(undefined, [factory.derefInto()], { timeout: callTimeoutMs });
      factory.release();
      loadRef.release();
      if (error === 'NATIVE_STACK')
        throw new VmFault('NATIVE_STACK', "V8's own stack overflowed while loading a contract", {});
      if (error !== '') {
        context.release();
        return error;
      }
      const slot: Slot = { key, handler: null, context, invoke, batch };
      slotRef.current = slot;
      slots.set(key, slot);
      while (slots.size > maxContexts) {
        const [oldest, old] = slots.entries().next().value!;
        slots.delete(oldest);
        old.context.release();
      }
      return slot;
    } catch (err) {
      if (err instanceof Error && err.name === 'SyntaxError' && !iso.isDisposed) {
        // V8 refused the instrumented code: deterministic, so the deploy fails with it.
        context?.release();
        return `SyntaxError: ${err.message}`;
      }
      return fail(err);
    }
  };

  /**
   * Enters a context through `entry` and returns the guest's result string. Anything else (an
   * isolate error, a catastrophe reported meanwhile, no string back) is a local fault: the
   * isolate is reset and VmFault thrown. A VmFault raised inside a host call passes through.
   */
  const enter = (
    entry: IvmModule.Reference<(...args: unknown[]) => string>,
    args: Array<string | number>,
    options: IvmModule.ReferenceApplyOptions | undefined,
  ): string => {
    let raw: string;
    try {
      raw = entry.applySync(undefined, args, options);
    } catch (err) {
      if (err instanceof VmFault) throw err;
      return fail(err);
    }
    if (catastrophe !== null)
      fail(new VmFault('ISOLATE', `isolate reported a catastrophic error: ${catastrophe}`, {}));
    if (typeof raw !== 'string') return fail(new VmFault('ISOLATE', 'guest returned no result', {}));
    return raw;
  };

  const invoke = (contract: LoadedContract, r: InvokeRequest, timeout: boolean): InvokeResult => {
    const slot = contract as Slot;
    // One packed string costs less to copy across than many separate arguments.
    const head = `${r.kind}\x01${r.method}\x01${r.contract}\x01${r.sender}\x01${r.origin}\x01${r.txHash}\x01${r.height}\x01${r.time}\x01${r.scheduled ? 1 : 0}`;
    const raw = enter(
      slot.invoke,
      [head, r.args, r.gas, r.stackUnits, r.cacheSession],
      timeout ? { timeout: callTimeoutMs } : undefined,
    );
    const reader = new EnvelopeReader(raw, 0);
    const result = parseResult(reader);
    if (!reader.done) throw new VmFault('ISOLATE', 'malformed envelope from the guest', {});
    return result;
  };

  /** Reads one result (see result() in vm/guestRuntime.js) at the reader's position. */
  const parseResult = (reader: EnvelopeReader): InvokeResult => {
    const status = reader.status();
    if (status < 0 || status > 3) return fail(new VmFault('ISOLATE', 'malformed result from the guest', {}));
    const gasLeft = reader.number();
    const ret = reader.field();
    const code = reader.field();
    const message = reader.field();
    return {
      status: status as 0 | 1 | 2 | 3,
      gasLeft,
      ret: ret === '' ? null : bytesOf(ret),
      flush: readFlush(reader),
      code,
      message,
    };
  };

  const invokeBatch = (contract: LoadedContract, r: BatchRequest): BatchResults => {
    const slot = contract as Slot;
    // One string in, one string out: copying across the boundary costs per call, not per byte.
    // Joined once (concatenating item by item built a tree of strings to flatten when copied).
    const parts = new Array<string>(r.items.length + 1);
    parts[0] = fld(r.contract) + fld(`${r.height}`) + fld(`${r.time}`) + fld(`${r.items.length}`);
    for (let i = 0; i < r.items.length; i++) parts[i + 1] = r.items[i]!;
    const input = parts.join('');
    const raw = enter(slot.batch, [input, r.stackUnits, r.cacheSession], { timeout: callTimeoutMs });
    return new BatchResults(raw, r.items.length);
  };

  return {
    load,
    invoke,
    invokeBatch,
    get size() {
      return slots.size;
    },
    reset,
    recycleIfLarge: () => {
      if (isolate === null || isolate.isDisposed) return;
      const heap = isolate.getHeapStatisticsSync();
      if (heap.used_heap_size + heap.externally_allocated_size > (memoryLimitMb * 1024 * 1024) / 2) reset();
    },
    dispose: reset,
  };
}

/**
 * Decodes canonical value bytes the guest runtime encoded (see {@link decodeGuestText}).
 */
export function decodeGuestValue(bytes: Uint8Array): Value {
  return decodeGuestText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'));
}

/**
 * Decodes canonical value bytes the guest runtime encoded, given as the latin1 text they crossed
 * the boundary in, straight into the form `canonicalValue` gives (core/codec.ts): integers as
 * numbers when safe and bigints beyond, byte strings as Buffers, plain objects with their keys in
 * canonical order. The runtime's encoder is byte-identical to core/codec.ts (property-tested in
 * test/vm/codec.test.ts, which also checks this decoder against core's), so this skips the
 * re-encoding check of `decodeValue`; anything outside the canonical value types (floats,
 * extension types, non-string keys, `__proto__`, trailing bytes, nesting beyond
 * {@link MAX_VALUE_DEPTH}) throws. Reading the text by slices is ~3x faster per event than
 * msgpackr plus `canonicalValue` (a byte-by-byte decoder was slower than both).
 */
export function decodeGuestText(text: string): Value {
  const d = new TextDecoderState(text);
  const v = d.value(0);
  if (d.pos !== text.length) throw new Error('trailing bytes after the value');
  return v;
}

const NON_ASCII = /[^\x00-\x7f]/;
/** Decoded object keys by their encoded text (keys repeat across values). Bounded. */
const keyStrings = new Map<string, string>();

class TextDecoderState {
  readonly s: string;
  pos = 0;
  constructor(s: string) {
    this.s = s;
  }
  private take(n: number): string {
    const end = this.pos + n;
    if (end > this.s.length) throw new Error('truncated value');
    const out = this.s.slice(this.pos, end);
    this.pos = end;
    return out;
  }
  private uint(n: number): number {
    const { s } = this;
    if (this.pos + n > s.length) throw new Error('truncated value');
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + s.charCodeAt(this.pos++);
    return v;
  }
  private int64(signed: boolean): number | bigint {
    const hi = this.uint(4);
    const lo = this.uint(4);
    let v = (BigInt(hi) << 32n) | BigInt(lo);
    if (signed) v = BigInt.asIntN(64, v);
    return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  }
  private str(n: number): string {
    const raw = this.take(n);
    return NON_ASCII.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
  }
  private key(depth: number): string {
    const t = this.s.charCodeAt(this.pos);
    let k: unknown;
    if (t >= 0xa0 && t < 0xc0) {
      this.pos++;
      const raw = this.take(t & 31);
      k = keyStrings.get(raw);
      if (k === undefined) {
        k = NON_ASCII.test(raw) ? Buffer.from(raw, 'latin1').toString('utf8') : raw;
        if (keyStrings.size >= 4096) keyStrings.clear();
        keyStrings.set(raw, k as string);
      }
    } else k = this.value(depth);
    if (typeof k !== 'string' || k === '__proto__') throw new Error('map key is not an allowed string');
    return k;
  }
  private array(n: number, depth: number): Value[] {
    const out = new Array<Value>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }
  private map(n: number, depth: number): { [key: string]: Value } {
    const out: { [key: string]: Value } = {};
    for (let i = 0; i < n; i++) {
      const k = this.key(depth + 1);
      out[k] = this.value(depth + 1);
    }
    return out;
  }
  value(depth: number): Value {
    if (depth > MAX_VALUE_DEPTH) throw new Error(`nested deeper than ${MAX_VALUE_DEPTH}`);
    if (this.pos >= this.s.length) throw new Error('truncated value');
    const t = this.s.charCodeAt(this.pos++);
    if (t < 0xc0) {
      if (t < 0x80) return t;
      if (t < 0x90) return this.map(t & 15, depth);
      return t < 0xa0 ? this.array(t & 15, depth) : this.str(t & 31);
    }
    if (t >= 0xe0) return t - 256;
    // The sized forms come in runs of 1-, 2- and 4-byte widths: 1 << (t - first of the run).
    if (t >= 0xcc && t <= 0xce) return this.uint(1 << (t - 0xcc));
    if (t >= 0xd0 && t <= 0xd2) {
      const shift = 32 - 8 * (1 << (t - 0xd0));
      return (this.uint(1 << (t - 0xd0)) << shift) >> shift;
    }
    if (t >= 0xd9 && t <= 0xdb) return this.str(this.uint(1 << (t - 0xd9)));
    if (t >= 0xc4 && t <= 0xc6) return Buffer.from(this.take(this.uint(1 << (t - 0xc4))), 'latin1');
    if (t === 0xdc || t === 0xdd) return this.array(this.uint(t === 0xdc ? 2 : 4), depth);
    if (t === 0xde || t === 0xdf) return this.map(this.uint(t === 0xde ? 2 : 4), depth);
    if (t === 0xcf || t === 0xd3) return this.int64(t === 0xd3);
    if (t === 0xc0) return null;
    if (t === 0xc2 || t === 0xc3) return t === 0xc3;
    throw new Error(`type byte 0x${t.toString(16)} is not part of a canonical value`);
  }
}

/**
 * Reads the guest's envelope: length-prefixed fields `<UTF-16 length>,<text>` (see takeFlush in
 * vm/guestRuntime.js). Anything malformed is a fault of the runtime, never of a contract.
 */
class EnvelopeReader {
  private readonly text: string;
  private pos: number;
  constructor(text: string, start: number) {
    this.text = text;
    this.pos = start;
  }
  field(): string {
    const { text } = this;
    const comma = text.indexOf(',', this.pos);
    const length = comma < 0 ? -1 : decimalAt(text, this.pos, comma);
    const end = comma + 1 + length;
    if (length < 0 || end > text.length) {
      throw new VmFault('ISOLATE', 'malformed envelope from the guest', {});
    }
    this.pos = end;
    return text.slice(comma + 1, end);
  }
  /** A field holding a non-negative decimal integer. */
  number(): number {
    const start = this.pos;
    this.field();
    const n = decimalAt(this.text, this.text.indexOf(',', start) + 1, this.pos);
    if (n < 0) throw new VmFault('ISOLATE', 'malformed envelope from the guest', {});
    return n;
  }
  count(max: number): number {
    const n = this.number();
    if (n > max) throw new VmFault('ISOLATE', 'malformed envelope from the guest', {});
    return n;
  }
  /** A one-digit status code (-1 at the end of the text). */
  status(): number {
    if (this.pos >= this.text.length) return -1;
    return this.text.charCodeAt(this.pos++) - 48;
  }
  get done(): boolean {
    return this.pos === this.text.length;
  }
}

/** A length-prefixed field (the guest's envelope format). */
function fld(s: string): string {
  return `${s.length},${s}`;
}

/**
 * Bytes of a latin1 string, in a fresh array of exactly their size (the state may keep it).
 * Short ones (balances, counters, canonical null) are copied by hand into an array V8 keeps on
 * its heap; nobody asks for their `.buffer`, which would move them off it (measured ~0.23 us per
 * value). Longer ones are written into their own ArrayBuffer through a Buffer view.
 */
function bytesOf(s: string): Uint8Array {
  const n = s.length;
  const out = new Uint8Array(n);
  if (n > 64) Buffer.from(out.buffer, 0, n).write(s, 0, n, 'latin1');
  else for (let i = 0; i < n; i++) out[i] = s.charCodeAt(i);
  return out;
}

function readFlush(r: EnvelopeReader): GuestFlush {
  const writes: Array<[string, Uint8Array | null]> = [];
  for (let n = r.count(VmLimits.maxWriteBytesPerCall); n > 0; n--) {
    const key = r.field();
    const value = r.field();
    writes.push([key, value === '' ? null : bytesOf(value)]);
  }
  const events: Array<[string, string]> = [];
  for (let n = r.count(1024); n > 0; n--) {
    const name = r.field();
    events.push([name, r.field()]);
  }
  const schedules: Array<[number, string, Uint8Array, number]> = [];
  for (let n = r.count(256); n > 0; n--) {
    const time = Number(r.field());
    const method = r.field();
    const args = bytesOf(r.field());
    schedules.push([time, method, args, Number(r.field())]);
  }
  return { writes, events, schedules };
}

/**
 * Reads a batch's envelope (see invokeBatch in vm/guestRuntime.js) in place: one result at a time
 * into this object's fields, then the batch's writes. Nothing is built per result but the strings
 * the caller keeps (event data, error texts): a result object, a flush object and arrays per
 * transaction cost more than the host's own work on a transfer (measured). Anything malformed is
 * a local fault (VmFault ISOLATE), never a contract's failure.
 */
export class BatchResults {
  /** Number of results. */
  readonly count: number;
  /** The current result (after {@link next}): 0 ok, 1 reverted, 2 out of gas, 3 local fault. */
  status: 0 | 1 | 2 | 3 = 0;
  gasLeft = 0;
  /** Canonical return value bytes as latin1 text ('' for none). */
  ret = '';
  code = '';
  message = '';
  /** Events of the current result; read each with {@link nextEvent}. */
  eventCount = 0;
  /** The current event's name (the same string object as the previous event's, when equal). */
  eventName = '';
  /** The current event's canonical data bytes as latin1 text. */
  eventData = '';
  private readonly text: string;
  private pos = 0;
  private read = 0;
  private eventsLeft = 0;
  constructor(text: string, max: number) {
    this.text = text;
    this.count = this.number();
    if (this.count > max) malformed();
  }
  /** Decimal digits up to the next comma, and past it. */
  private number(): number {
    const comma = this.text.indexOf(',', this.pos);
    const n = comma < 0 ? -1 : decimalAt(this.text, this.pos, comma);
    if (n < 0) malformed();
    this.pos = comma + 1;
    return n;
  }
  /** A length-prefixed field's bounds (decimal length): returns its start, leaves `pos` at its end. */
  private span(): number {
    const n = this.number();
    const start = this.pos;
    if (start + n > this.text.length) malformed();
    this.pos = start + n;
    return start;
  }
  private field(): string {
    const start = this.span();
    return this.text.slice(start, this.pos);
  }
  /** A short length (one char below 240, or \xff, decimal digits and a comma); checks room for it. */
  private shortLength(): number {
    const c = this.text.charCodeAt(this.pos++);
    const n = c < 240 ? c : c === 255 ? this.number() : malformed();
    if (this.pos + n > this.text.length) malformed();
    return n;
  }
  /** A short field's bounds: returns its start, leaves `pos` at its end. */
  private shortSpan(): number {
    const n = this.shortLength();
    const start = this.pos;
    this.pos = start + n;
    return start;
  }
  /** A short field's text ('' without a slice when empty). */
  private shortField(): string {
    const start = this.shortSpan();
    return this.pos === start ? '' : this.text.slice(start, this.pos);
  }
  /** Reads the next result's status, gas, return value, error and event count. */
  next(): void {
    if (this.read >= this.count || this.eventsLeft !== 0) malformed();
    this.read++;
    const { text } = this;
    const status = text.charCodeAt(this.pos) - 48;
    if (!(status >= 0 && status <= 3) || this.pos + 5 > text.length) malformed();
    this.status = status as 0 | 1 | 2 | 3;
    // gasLeft: four chars of one byte each, big-endian.
    const p = this.pos + 1;
    const a = text.charCodeAt(p);
    const b = text.charCodeAt(p + 1);
    const c = text.charCodeAt(p + 2);
    const d = text.charCodeAt(p + 3);
    if ((a | b | c | d) > 255) malformed();
    this.gasLeft = a * 16777216 + ((b << 16) | (c << 8) | d);
    this.pos = p + 4;
    const retStart = this.shortSpan();
    // Most calls return nothing: canonical null, one byte, compared rather than sliced.
    this.ret =
      this.pos - retStart === 1 && text.charCodeAt(retStart) === 0xc0
        ? '\xc0'
        : text.slice(retStart, this.pos);
    this.code = this.shortField();
    this.message = this.shortField();
    this.eventCount = this.eventsLeft = this.shortLength();
    if (this.eventCount > 1024) malformed();
  }
  /** Reads the current result's next event into eventName and eventData. */
  nextEvent(): void {
    if (this.eventsLeft === 0) malformed();
    this.eventsLeft--;
    const start = this.shortSpan();
    const n = this.pos - start;
    const last = this.eventName;
    if (!(n === last.length && n > 0 && this.text.startsWith(last, start)))
      this.eventName = this.text.slice(start, this.pos);
    const dataStart = this.shortSpan();
    this.eventData = this.text.slice(dataStart, this.pos);
  }
  /** The batch's writes, after the last result (an empty value is a deletion); checks the end. */
  writes(): Array<[string, Uint8Array | null]> {
    if (this.read !== this.count || this.eventsLeft !== 0) malformed();
    const out: Array<[string, Uint8Array | null]> = [];
    for (let n = this.number(); n > 0; n--) {
      const key = this.field();
      const value = this.field();
      out.push([key, value === '' ? null : bytesOf(value)]);
    }
    if (this.pos !== this.text.length) malformed();
    return out;
  }
}

/**
 * The decimal number written in `text[from, stop)` (the guest's envelopes), or -1 when that is
 * empty, longer than 15 digits or holds anything but digits.
 */
function decimalAt(text: string, from: number, stop: number): number {
  if (stop <= from || stop - from > 15) return -1;
  let n = 0;
  for (let i = from; i < stop; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function malformed(): never {
  throw new VmFault('ISOLATE', 'malformed batch result from the guest', {});
}

/** Decodes a flush string a guest sent with a nested call or range scan. */
export function decodeFlush(s: string): GuestFlush {
  if (s === '') return { writes: [], events: [], schedules: [] };
  const reader = new EnvelopeReader(s, 0);
  const flush = readFlush(reader);
  if (!reader.done) throw new VmFault('ISOLATE', 'malformed envelope from the guest', {});
  return flush;
}
