import { bytesEqual, toHex, utf8, type Bytes } from '../core/bytes.ts';
import { encodeValue, pack, type Value } from '../core/codec.ts';
import { CodecError } from '../core/errors.ts';
import { sha256 } from '../core/hash.ts';
import { addressOf, verify } from '../core/keys.ts';
import type { StateReader, StateView } from '../core/stateView.ts';
import {
  Limits,
  NAME_RE,
  type BlockHeader,
  type Event,
  type Receipt,
  type ReceiptStatus,
  type SignedTransaction,
} from '../core/types.ts';
import { txArgsText } from './argsCodec.ts';
import { hexText, latin1Text } from './byteText.ts';
import { guestEvent, receiptsRoot as receiptsRootOf, rememberReturnData } from './receiptCodec.ts';
import { compileContract, decodeArtifact, type Artifact, type CompiledContract } from './compile.ts';
import { CompileError, ExecutorError, VmFault } from './errors.ts';
import { Gas, VmLimits } from './gasTable.ts';
import {
  HostOp,
  InvokeKind,
  createSandbox,
  decodeFlush,
  encodeBatchItem,
  type BatchResults,
  decodeGuestText,
  decodeGuestValue,
  type GuestFlush,
  type HostHandler,
  type InvokeKindCode,
  type LoadedContract,
  type Sandbox,
  type SandboxOptions,
} from './sandbox.ts';
import {
  SystemContract,
  addSchedule,
  dueSchedules,
  nameKey,
  pendingCount,
  readCodeEntry,
  readNonce,
  removeSchedule,
  writeCodeEntry,
  writeNonce,
  type CodeEntry,
} from './systemState.ts';

/**
 * The block executor: applies a block's due scheduled callbacks, then its transactions in order,
 * on a {@link StateView}, and returns receipts, events, the state root and the receipts root.
 *
 * It is a pure function of (prior state, block): warm contract contexts, compile caches and the
 * isolate's state never change a result (vm/guestRuntime.js explains why), which the determinism
 * tests check against a fresh process. Anything that depends on this machine (memory limit,
 * wall-clock timeout, V8's own stack) raises {@link VmFault}: the caller must not vote for the
 * block, and a proposer drops the transaction named in the fault.
 */

/** Lifecycle transaction kinds, decided by the policy hook. */
export type LifecycleKind = 'deploy' | 'upgrade' | 'freeze' | 'unfreeze';

/** What the policy hook is asked. */
export interface LifecycleRequest {
  readonly kind: LifecycleKind;
  /** 0x-hex address of the transaction's sender. */
  readonly sender: string;
  readonly contract: string;
  /** State as of this transaction (the governance contract will read approvals here). */
  readonly state: StateReader;
}

/** Decides who may deploy, upgrade, freeze and unfreeze. Must be deterministic. */
export type LifecyclePolicy = (request: LifecycleRequest) => boolean;

/** The header fields execution depends on (the roots are filled in after). */
export type ExecutionHeader = Pick<BlockHeader, 'chainId' | 'height' | 'timestamp'> &
  Partial<Pick<BlockHeader, 'proposer'>>;

/** A block to execute. */
export interface BlockInput {
  /** The state to execute on; the executor opens and closes its own checkpoints on it. */
  readonly state: StateView;
  readonly header: ExecutionHeader;
  /** Signatures already verified by the caller; chainId is checked here. */
  readonly txs: readonly SignedTransaction[];
  /** Overrides the executor's lifecycle policy for this block. */
  readonly policy?: LifecyclePolicy;
}

/** What executing a block produced. */
export interface BlockResult {
  /** Scheduled callbacks' receipts first (there are `scheduled` of them), then one per transaction. */
  readonly receipts: readonly Receipt[];
  readonly scheduled: number;
  /** Events of successful receipts, in order. */
  readonly events: readonly Event[];
  /** `state.root()` after the block. */
  readonly stateRoot: Bytes;
  /** Merkle root over the canonical receipt bytes (core/types.ts encodeReceipt). */
  readonly receiptsRoot: Bytes;
  readonly gasUsed: number;
}

/** A read-only call (RPC `contract_call`). */
export interface ViewRequest {
  readonly state: StateReader;
  readonly contract: string;
  readonly method: string;
  readonly args?: Value;
  readonly gasLimit?: number;
  readonly height: number;
  readonly time: number;
  /** Shown to the view as ctx.sender (default ''). */
  readonly sender?: string;
}

/** A view's outcome. */
export interface ViewResult {
  readonly status: Exclude<ReceiptStatus, 'rejected'>;
  readonly gasUsed: number;
  readonly returnValue: Value;
  readonly errorCode: string;
  readonly error: string;
}

/**
 * One contract call outside any transaction (no nonce, no receipt, no txBase): for tools, tests
 * and benchmarks. Writes are applied to `state` when the call succeeds. Consecutive direct calls on
 * the same state object share contexts' read caches: between them, change that state only through
 * this executor (or pass a different state object).
 */
export interface DirectCallRequest {
  readonly state: StateView;
  readonly contract: string;
  readonly method: string;
  readonly args?: Value;
  /** Shown to the contract as ctx.sender and ctx.origin. */
  readonly sender: string;
  readonly height: number;
  readonly time: number;
  readonly gasLimit?: number;
}

/** A direct call's outcome. */
export interface DirectCallResult extends ViewResult {
  readonly events: readonly Event[];
}

/** Options of {@link createExecutor}. */
export interface ExecutorOptions {
  /** Genesis admins (0x-hex addresses): the default policy lets exactly them run lifecycle transactions. */
  readonly admins?: Iterable<string>;
  /** Replaces the default policy. */
  readonly policy?: LifecyclePolicy;
  readonly sandbox?: SandboxOptions;
  /**
   * Runs consecutive call transactions of one contract in one entry into its context (default
   * true). Results are identical either way (the determinism tests compare them); false is for
   * those tests and for measuring.
   */
  readonly batchTransactions?: boolean;
}

/** The executor. */
export interface Executor {
  /** Executes a block. Throws VmFault on a local fault (state is rolled back to where it was). */
  executeBlock(input: BlockInput): BlockResult;
  /** Runs a view against committed state. Throws VmFault on a local fault. */
  view(request: ViewRequest): ViewResult;
  /** Runs one call outside any transaction (see {@link DirectCallRequest}). Throws VmFault on a local fault. */
  runCall(request: DirectCallRequest): DirectCallResult;
  /** Compiles a source as a deploy would (cached); throws CompileError. */
  compile(source: string): CompiledContract;
  /** Releases the isolate. */
  close(): void;
}

// ---------------------------------------------------------------------------------------------

interface Frame {
  readonly contract: string;
  readonly writable: boolean;
  /** Events of this frame and of its successful nested calls. */
  readonly events: Event[];
}

interface TxRun {
  readonly state: StateView;
  readonly height: number;
  readonly time: number;
  readonly txHashHex: string;
  readonly origin: string;
  readonly scheduled: boolean;
  /** Contracts on the call stack, outermost first. */
  readonly stack: string[];
  liveEvents: number;
  /** A local fault raised inside a host call, rethrown once the guest has unwound. */
  fault: VmFault | null;
}

/** A fresh run of one transaction, callback or view: no events yet, no fault. */
function newRun(
  state: StateView,
  height: number,
  time: number,
  txHashHex: string,
  origin: string,
  scheduled: boolean,
  stack: string[],
): TxRun {
  return { state, height, time, txHashHex, origin, scheduled, stack, liveEvents: 0, fault: null };
}

interface CallOutcome {
  readonly status: Exclude<ReceiptStatus, 'rejected'>;
  readonly gasUsed: number;
  readonly ret: Bytes | null;
  readonly events: Event[];
  readonly code: string;
  readonly message: string;
}

const failed = (
  status: CallOutcome['status'],
  gasUsed: number,
  code: string,
  message: string,
): CallOutcome => ({
  status,
  gasUsed,
  ret: null,
  events: [],
  code,
  message,
});

/** Deploy arguments: `{ source: string, initArgs?: Value }` (upgrade: `migrateArgs`). */
function lifecycleArgs(
  args: Value,
  hook: 'initArgs' | 'migrateArgs',
): { source: string; hookArgs: Value } | null {
  if (args === null || typeof args !== 'object' || Array.isArray(args) || args instanceof Uint8Array)
    return null;
  const source = args['source'];
  if (typeof source !== 'string') return null;
  for (const k of Object.keys(args)) if (k !== 'source' && k !== hook) return null;
  return { source, hookArgs: args[hook] ?? null };
}

const ZERO_HASH_HEX = toHex(new Uint8Array(32));

/**
 * Sender addresses by public key: a SHA-256 and a hex conversion saved per transaction. A
 * direct-mapped cache indexed by a number read from the key's first bytes: a number hashes for
 * free where the key's latin1 text (the former index) cost a string and its hash (~0.3 us). Each
 * slot holds one key, compared in full, and a different key in the same slot replaces it: keys
 * crafted to share a slot only cost what no cache costs. Bounded: at most 100,000 slots.
 */
const senders = new Map<number, { key: Bytes; address: Bytes; hex: string }>();
function senderOf(publicKey: Bytes): { address: Bytes; hex: string } {
  const n = publicKey.length;
  const slot =
    n >= 4
      ? (publicKey[0]! | (publicKey[1]! << 8) | (publicKey[2]! << 16) | (publicKey[3]! << 24)) >>> 0
      : -1 - n;
  const hit = senders.get(slot);
  if (hit !== undefined && bytesEqual(hit.key, publicKey)) return hit;
  const address = addressOf(publicKey);
  const s = { key: Uint8Array.from(publicKey), address, hex: toHex(address) };
  if (hit === undefined && senders.size >= 100_000) senders.clear();
  senders.set(slot, s);
  return s;
}

/**
 * UTF-8 bytes of recently used state keys (contracts write and read the same few keys over and
 * over: balances, counters). The shared bytes are only ever read: StateView implementations copy
 * or stringify the keys they keep. A direct-mapped table indexed by a hash of the key's length and
 * a few of its characters computed here, the key then compared by content: every key arrives as a
 * new string, and a Map lookup hashes all of it through V8's runtime first (~0.15-0.2 us for a
 * 46-character key measured here). A slot holds one key; keys sharing a slot only miss it.
 * Bounded: 4,096 slots, keys of at most 128 characters.
 */
const KEY_SLOTS = 4096;
const slotKeys: Array<string | null> = new Array<string | null>(KEY_SLOTS).fill(null);
const slotBytes: Bytes[] = new Array<Bytes>(KEY_SLOTS).fill(new Uint8Array(0));

/** UTF-8 bytes of a state key. */
function keyBytes(k: string): Bytes {
  const n = k.length;
  let h = n;
  for (let i = n > 8 ? n - 8 : 0; i < n; i++) h = (h * 31 + k.charCodeAt(i)) | 0;
  if (n > 8) h = (h * 31 + k.charCodeAt(n >> 1)) | 0;
  const s = (h ^ (h >>> 12)) & (KEY_SLOTS - 1);
  if (slotKeys[s] === k) return slotBytes[s]!;
  const b = Buffer.from(k, 'utf8');
  if (n <= 128) {
    slotKeys[s] = k;
    slotBytes[s] = b;
  }
  return b;
}

function latin1(b: Bytes): string {
  return latin1Text(b);
}

function truncate(s: string, n: number): string {
  return s.length <= n ? s : s.slice(0, n);
}

/** Writes from the guest (an empty value deleted), checked as the guest should have made them. */
function applyWrites(
  state: StateView,
  contract: string,
  writes: ReadonlyArray<[string, Uint8Array | null]>,
): void {
  for (const [k, v] of writes) {
    if (typeof k !== 'string') throw new VmFault('HOST', 'malformed write from the guest', {});
    const key = keyBytes(k);
    if (key.length > VmLimits.maxKeyBytes) throw new VmFault('HOST', 'oversized key from the guest', {});
    if (v === null) state.delete(contract, key);
    // Values from the sandbox are fresh arrays of their exact size: the state keeps them as they are.
    else if (v instanceof Uint8Array && v.length <= VmLimits.maxValueBytes) state.set(contract, key, v);
    else throw new VmFault('HOST', 'malformed value from the guest', {});
  }
}

/** An event the guest emitted: its data decoded (checked canonical), its bytes kept for receipts. */
function eventOf(contract: string, name: string, text: string): Event {
  let value: Value;
  try {
    value = decodeGuestText(text);
  } catch (err) {
    throw new VmFault('HOST', `guest encoded a non-canonical event: ${(err as Error).message}`, {});
  }
  return guestEvent(contract, name, value, text);
}

/** The last event name found valid: names repeat, and the batch reader hands back the same string. */
let validName = '';

/**
 * The receipt of a successful batched call transaction: what txReceipt(stx, fromCall(...)) gives
 * for it, built directly. `gasUsed` includes txBase; `ret` is the canonical return value as latin1
 * text ('' for none).
 */
function okReceipt(stx: SignedTransaction, gasUsed: number, ret: string, events: Event[]): Receipt {
  let returnValue: Value = null;
  let returnBytes: Bytes | undefined;
  if (ret !== '' && ret !== '\xc0') {
    try {
      returnValue = decodeGuestText(ret);
    } catch (err) {
      throw new VmFault('HOST', `guest encoded a non-canonical return value: ${(err as Error).message}`, {});
    }
    returnBytes = Buffer.from(ret, 'latin1');
  }
  const r: Receipt = {
    txHash: stx.hash,
    status: 'ok',
    gasUsed: Math.min(stx.tx.gasLimit, gasUsed),
    returnValue,
    events,
    errorCode: '',
    error: '',
  };
  if (returnBytes !== undefined && returnValue !== null) rememberReturnData(r, returnBytes);
  return r;
}

/** A read-only StateView over a StateReader, for views. */
function readOnlyView(reader: StateReader): StateView {
  let depth = 0;
  const refuse = (): never => {
    throw new VmFault('HOST', 'a view tried to write state', {});
  };
  return {
    get: (c, k) => reader.get(c, k),
    has: (c, k) => reader.has(c, k),
    range: (c, p, l, a) => reader.range(c, p, l, a),
    set: refuse,
    delete: refuse,
    checkpoint: () => void depth++,
    commit: () => void depth--,
    revert: () => void depth--,
    get depth() {
      return depth;
    },
    root: () => {
      throw new ExecutorError('BAD_INPUT', 'a read-only view has no root', {});
    },
  };
}

/** Creates an executor with its own contract isolate. */
export function createExecutor(options: ExecutorOptions = {}): Executor {
  const admins = new Set([...(options.admins ?? [])].map((a) => a.toLowerCase()));
  const defaultPolicy: LifecyclePolicy = options.policy ?? ((r) => admins.has(r.sender));
  const sandbox: Sandbox = createSandbox(options.sandbox);
  const batching = options.batchTransactions ?? true;
  let closed = false;
  /**
   * Read-cache session. Each contract context keeps the values it read or wrote between calls
   * while this number stays the same (vm/guestRuntime.js). It changes whenever the executor is
   * entered (the state may be another one) and whenever it reverts a checkpoint (undoing writes a
   * context remembers). Between those, only a contract's own frames write its keys, so a cached
   * value is always the value in state. Gas is charged per read whether it hits or not.
   */
  let session = 0;
  const revertState = (state: StateView): void => {
    session++;
    state.revert();
  };
  /** The state of the previous runCall, if no other entry point ran since. */
  let lastDirectState: StateView | null = null;

  /** Compiled sources by source hash; bounded (least recently used first out). */
  const compiled = new Map<string, CompiledContract>();
  /** Decoded artifacts by artifact hash; bounded. */
  const artifacts = new Map<string, Artifact>();

  const remember = <T>(map: Map<string, T>, key: string, value: T): T => {
    map.delete(key);
    map.set(key, value);
    while (map.size > VmLimits.maxCachedArtifacts) map.delete(map.keys().next().value!);
    return value;
  };

  const compile = (source: string): CompiledContract => {
    const key = toHex(sha256(utf8(source)));
    const hit = compiled.get(key);
    if (hit !== undefined) return remember(compiled, key, hit);
    return remember(compiled, key, compileContract(source));
  };

  /** Artifacts by the identity of their (cached) hash bytes: no hex conversion per call. */
  const artifactByHash = new WeakMap<Bytes, Artifact>();
  const artifactOf = (state: StateReader, hash: Bytes): Artifact => {
    const same = artifactByHash.get(hash);
    if (same !== undefined) return same;
    const found = artifactByHex(state, hash);
    artifactByHash.set(hash, found);
    return found;
  };
  const artifactByHex = (state: StateReader, hash: Bytes): Artifact => {
    const key = toHex(hash);
    const hit = artifacts.get(key);
    if (hit !== undefined) return hit;
    const bytes = state.get(SystemContract.artifact, hash);
    if (bytes === undefined) throw new VmFault('STATE', `artifact ${key} is missing from state`, {});
    if (toHex(sha256(bytes)) !== key)
      throw new VmFault('STATE', `artifact ${key} does not match its hash`, {});
    return remember(artifacts, key, decodeArtifact(bytes));
  };

  /** Context keys by registry entry (entries are cached objects, so this hits on every call). */
  const contextKeys = new WeakMap<Bytes, string>();
  const loadContract = (name: string, hash: Bytes, artifact: Artifact): LoadedContract | string => {
    let key = contextKeys.get(hash);
    if (key === undefined || !key.startsWith(`${name}:`)) {
      key = `${name}:${toHex(hash)}`;
      contextKeys.set(hash, key);
    }
    return sandbox.load(key, artifact.code);
  };

  // -------------------------------------------------------------------------------------------
  // Calls

  /** Applies a frame's buffered writes, events and schedules; returns [code, message] on refusal. */
  const applyFlush = (run: TxRun, frame: Frame, flush: GuestFlush): [string, string] | null => {
    const { state } = run;
    if (
      !frame.writable &&
      (flush.writes.length > 0 || flush.events.length > 0 || flush.schedules.length > 0)
    ) {
      throw new VmFault('HOST', 'a read-only frame sent writes', { contract: frame.contract });
    }
    applyWrites(state, frame.contract, flush.writes);
    for (const [name, text] of flush.events) {
      if (typeof name !== 'string' || !NAME_RE.test(name) || typeof text !== 'string') {
        throw new VmFault('HOST', 'malformed event from the guest', {});
      }
      if (run.liveEvents >= Limits.maxEventsPerReceipt) {
        return ['TOO_MANY_EVENTS', `more than ${Limits.maxEventsPerReceipt} events in one receipt`];
      }
      frame.events.push(eventOf(frame.contract, name, text));
      run.liveEvents++;
    }
    for (const [time, method, args, gas] of flush.schedules) {
      if (
        typeof time !== 'number' ||
        typeof method !== 'string' ||
        !(args instanceof Uint8Array) ||
        typeof gas !== 'number'
      ) {
        throw new VmFault('HOST', 'malformed schedule from the guest', {});
      }
      if (pendingCount(state, frame.contract) >= VmLimits.maxPendingSchedules) {
        return [
          'SCHEDULE_LIMIT',
          `${frame.contract} already has ${VmLimits.maxPendingSchedules} pending callbacks`,
        ];
      }
      addSchedule(state, frame.contract, time, method, args, gas);
    }
    return null;
  };

  const handlerFor = (run: TxRun, frame: Frame): HostHandler => {
    const { state } = run;
    const contract = frame.contract;
    return (op, a, b, c, d, e, f, g) => {
      try {
        switch (op) {
          case HostOp.get: {
            const v = state.get(contract, keyBytes(a as string));
            return v === undefined ? null : latin1(v);
          }
          case HostOp.has:
            return state.has(contract, keyBytes(a as string));
          case HostOp.range: {
            if (frame.writable) {
              const refused = applyFlush(run, frame, decodeFlush(a as string));
              if (refused !== null) return ['abort', ...refused];
            }
            const limit = c as number;
            if (!Number.isSafeInteger(limit) || limit < 1 || limit > VmLimits.maxRangeLimit) return -1;
            const rows = state.range(
              contract,
              Buffer.from(b as string, 'utf8'),
              limit,
              d === null ? undefined : Buffer.from(d as string, 'utf8'),
            );
            return latin1(pack(rows.map(([k, v]) => [Buffer.from(k).toString('utf8'), v])));
          }
          case HostOp.call: {
            if (frame.writable) {
              const refused = applyFlush(run, frame, decodeFlush(a as string));
              if (refused !== null) return ['abort', ...refused];
            }
            const out = callContract(run, {
              contract: b as string,
              method: c as string,
              args: d as string,
              gas: e as number,
              stackUnits: f as number,
              sender: contract,
              readOnly: g === true || !frame.writable,
            });
            if (out.status === 'ok') frame.events.push(...out.events);
            return [
              out.status,
              out.gasUsed,
              out.ret === null ? null : latin1(out.ret),
              out.code,
              out.message,
            ];
          }
          case HostOp.hash:
            return latin1(sha256(Buffer.from(a as string, 'latin1')));
          case HostOp.verify:
            return verify(
              Buffer.from(a as string, 'latin1'),
              Buffer.from(b as string, 'latin1'),
              Buffer.from(c as string, 'latin1'),
            );
          default:
            return -1;
        }
      } catch (err) {
        // Never throw into the guest: remember the fault and let the guest unwind.
        run.fault ??=
          err instanceof VmFault
            ? err
            : new VmFault('STATE', `host call failed: ${(err as Error).message}`, {});
        return -1;
      }
    };
  };

  interface CallRequest {
    readonly contract: string;
    readonly method: string;
    /** Canonical argument bytes as latin1. */
    readonly args: string;
    readonly gas: number;
    readonly stackUnits: number;
    readonly sender: string;
    readonly readOnly: boolean;
    /** init or migrate: runs even when frozen; method names are not looked up. */
    readonly hook?: InvokeKindCode;
  }

  /** Runs one call frame in its own checkpoint. */
  const callContract = (run: TxRun, req: CallRequest): CallOutcome => {
    const { state } = run;
    if (!Number.isSafeInteger(req.gas) || req.gas < 0)
      return failed('out-of-gas', 0, 'OUT_OF_GAS', 'no gas for the call');
    const entry = NAME_RE.test(req.contract) ? readCodeEntry(state, req.contract) : undefined;
    if (entry === undefined)
      return failed('reverted', 0, 'NO_CONTRACT', `no contract named "${req.contract}"`);
    if (entry.frozen && req.hook === undefined)
      return failed('reverted', 0, 'FROZEN', `${req.contract} is frozen`);
    if (run.stack.includes(req.contract)) {
      return failed('reverted', 0, 'REENTRANCY', `${req.contract} is already on the call stack`);
    }
    if (run.stack.length >= VmLimits.maxCallDepth) {
      return failed('reverted', 0, 'CALL_DEPTH', `calls nest deeper than ${VmLimits.maxCallDepth}`);
    }
    const artifact = artifactOf(state, entry.artifactHash);
    let kind: InvokeKindCode;
    if (req.hook !== undefined) kind = req.hook;
    else if (artifact.views.includes(req.method)) kind = InvokeKind.view;
    else if (artifact.methods.includes(req.method)) {
      if (req.readOnly)
        return failed(
          'reverted',
          0,
          'READ_ONLY',
          `${req.contract}.${req.method} may write state; a view cannot call it`,
        );
      kind = InvokeKind.method;
    } else return failed('reverted', 0, 'NO_METHOD', `${req.contract} has no method or view "${req.method}"`);
    const loaded = loadContract(req.contract, entry.artifactHash, artifact);
    if (typeof loaded === 'string') {
      throw new VmFault('ISOLATE', `stored contract ${req.contract} failed to load: ${loaded}`, {});
    }
    const frame: Frame = { contract: req.contract, writable: kind !== InvokeKind.view, events: [] };
    const top = run.stack.length === 0;
    run.stack.push(req.contract);
    const previous = loaded.handler;
    loaded.handler = handlerFor(run, frame);
    state.checkpoint();
    let outcome: CallOutcome;
    try {
      const r = sandbox.invoke(
        loaded,
        {
          kind,
          method: req.method,
          args: req.args,
          contract: req.contract,
          sender: req.sender,
          origin: run.origin,
          txHash: run.txHashHex,
          height: run.height,
          time: run.time,
          scheduled: run.scheduled,
          gas: req.gas,
          stackUnits: req.stackUnits,
          cacheSession: session,
        },
        top,
      );
      if (run.fault !== null) throw run.fault;
      if (r.status === 3) {
        throw new VmFault(
          r.code === 'NATIVE_STACK' ? 'NATIVE_STACK' : 'ISOLATE',
          `local fault in ${req.contract}: ${r.code} ${r.message}`,
          {},
        );
      }
      const gasUsed = r.status === 2 ? req.gas : req.gas - Math.min(r.gasLeft, req.gas);
      if (r.status === 0) {
        const refused = applyFlush(run, frame, r.flush);
        outcome =
          refused === null
            ? { status: 'ok', gasUsed, ret: r.ret, events: frame.events, code: '', message: '' }
            : failed('reverted', gasUsed, refused[0], refused[1]);
      } else outcome = failed(r.status === 2 ? 'out-of-gas' : 'reverted', gasUsed, r.code, r.message);
    } finally {
      loaded.handler = previous;
      run.stack.pop();
    }
    if (outcome.status === 'ok') state.commit();
    else {
      revertState(state);
      run.liveEvents -= frame.events.length;
    }
    return outcome;
  };

  // -------------------------------------------------------------------------------------------
  // Transactions

  interface TxOutcome {
    readonly status: ReceiptStatus;
    readonly gasUsed: number;
    readonly returnValue: Value;
    /** The return value's canonical bytes as the guest sent them, when it came from a call. */
    readonly returnBytes?: Bytes | undefined;
    readonly events: readonly Event[];
    readonly code: string;
    readonly message: string;
  }

  /** A transaction part that failed before or without running contract code. */
  const txFailed = (status: ReceiptStatus, gasUsed: number, code: string, message: string): TxOutcome => ({
    status,
    gasUsed,
    returnValue: null,
    events: [],
    code,
    message,
  });

  const toReceipt = (txHash: Bytes, o: TxOutcome, gasUsed = o.gasUsed): Receipt => {
    const r: Receipt = {
      txHash,
      status: o.status,
      gasUsed,
      returnValue: o.returnValue,
      events: o.status === 'ok' ? o.events : [],
      errorCode: truncate(o.code, Limits.maxNameLength),
      error: truncate(o.message, Limits.maxErrorLength),
    };
    // receiptBytes needs no record for a null return value (most calls): it is one known byte.
    if (o.returnBytes !== undefined && o.status === 'ok' && o.returnValue !== null)
      rememberReturnData(r, o.returnBytes);
    return r;
  };

  const fromCall = (o: CallOutcome, baseGas: number): TxOutcome => {
    let returnValue: Value = null;
    let returnBytes: Bytes | undefined;
    if (o.status === 'ok' && o.ret !== null) {
      try {
        // Most calls return nothing: canonical null, one byte.
        returnValue = o.ret.length === 1 && o.ret[0] === 0xc0 ? null : decodeGuestValue(o.ret);
        returnBytes = o.ret;
      } catch (err) {
        throw new VmFault(
          'HOST',
          `guest encoded a non-canonical return value: ${(err as Error).message}`,
          {},
        );
      }
    }
    return {
      status: o.status,
      gasUsed: baseGas + o.gasUsed,
      returnValue,
      returnBytes,
      events: o.events,
      code: o.code,
      message: o.message,
    };
  };

  const lifecycle = (
    run: TxRun,
    kind: 'deploy' | 'upgrade',
    contract: string,
    sender: string,
    args: Value,
    gas: number,
    height: number,
    policy: LifecyclePolicy,
  ): TxOutcome => {
    const { state } = run;
    const parsed = lifecycleArgs(args, kind === 'deploy' ? 'initArgs' : 'migrateArgs');
    if (parsed === null) {
      return txFailed(
        'reverted',
        0,
        'BAD_ARGS',
        `${kind} arguments must be { source: string, ${kind === 'deploy' ? 'initArgs' : 'migrateArgs'}?: value }`,
      );
    }
    const existing = readCodeEntry(state, contract);
    if (kind === 'deploy' && existing !== undefined)
      return txFailed('reverted', 0, 'CONTRACT_EXISTS', `${contract} already exists`);
    if (kind === 'upgrade' && existing === undefined)
      return txFailed('reverted', 0, 'NO_CONTRACT', `no contract named "${contract}"`);
    if (!policy({ kind, sender, contract, state })) {
      return txFailed('reverted', 0, 'UNAUTHORIZED', `${sender} may not ${kind} ${contract}`);
    }
    const cost = Gas.deploy + Gas.deployPerByte * Buffer.byteLength(parsed.source, 'utf8');
    if (cost > gas) return txFailed('out-of-gas', gas, 'OUT_OF_GAS', `${kind} needs ${cost} gas`);
    let c: CompiledContract;
    try {
      c = compile(parsed.source);
    } catch (err) {
      if (err instanceof CompileError) return txFailed('reverted', cost, 'COMPILE_ERROR', err.message);
      throw err;
    }
    state.set(SystemContract.artifact, c.artifactHash, c.artifact);
    state.set(SystemContract.source, c.sourceHash, utf8(parsed.source));
    const entry: CodeEntry = {
      admin: existing?.admin ?? sender,
      artifactHash: c.artifactHash,
      sourceHash: c.sourceHash,
      version: (existing?.version ?? 0) + 1,
      frozen: existing?.frozen ?? false,
      height,
    };
    writeCodeEntry(state, contract, entry);
    const artifact = artifactOf(state, c.artifactHash);
    const loaded = loadContract(contract, c.artifactHash, artifact);
    if (typeof loaded === 'string')
      return txFailed('reverted', cost, 'LOAD_FAILED', `module failed to load: ${loaded}`);
    const returnValue: Value = {
      artifactHash: c.artifactHash,
      contract,
      sourceHash: c.sourceHash,
      version: entry.version,
    };
    const hook = kind === 'deploy' ? artifact.hasInit : artifact.hasMigrate;
    if (!hook) return { status: 'ok', gasUsed: cost, returnValue, events: [], code: '', message: '' };
    let hookArgs: string;
    try {
      hookArgs = latin1(encodeValue(parsed.hookArgs));
    } catch (err) {
      if (err instanceof CodecError) return txFailed('reverted', cost, 'BAD_ARGS', err.message);
      throw err;
    }
    const o = callContract(run, {
      contract,
      method: kind === 'deploy' ? 'init' : 'migrate',
      args: hookArgs,
      gas: gas - cost,
      stackUnits: VmLimits.stackUnits,
      sender,
      readOnly: false,
      hook: kind === 'deploy' ? InvokeKind.init : InvokeKind.migrate,
    });
    if (o.status !== 'ok') return txFailed(o.status, cost + o.gasUsed, o.code, o.message);
    return { status: 'ok', gasUsed: cost + o.gasUsed, returnValue, events: o.events, code: '', message: '' };
  };

  /** A rejected transaction's receipt. */
  const rejected = (stx: SignedTransaction, code: string, message: string): Receipt =>
    toReceipt(stx.hash, txFailed('rejected', 0, code, message));

  /**
   * Next nonces written in the block being applied, by sender address (hex): a sender's later
   * transactions in the block skip reading back what its earlier one wrote. Keyed by content, not
   * by the address object: senderOf's cache may hand out a new object for the same key (a slot
   * taken by another key in between, or the cache emptied at its bound), and which it does
   * depends on the node's history, so an object key could miss on one node and hit on another.
   * Only admit writes nonces, and nothing reverts them while a block is applied (transaction
   * checkpoints open after admission), so a remembered nonce is the one in state (or about to be:
   * see unwrittenNonces); emptied whenever applyBlock starts (a fault reruns the block from the
   * reverted state). Bounded: one entry per sender of the block, whose transactions executeBlock
   * bounds by Limits.maxBlockTxs.
   */
  const blockNonces = new Map<string, number>();
  /**
   * Next nonces of batched transactions not yet written to state, by sender address (hex, as
   * `blockNonces`), with the address bytes to write them under: a batch's transactions are
   * admitted before it runs, and nothing reads a nonce from state until the batch is flushed
   * (admission reads `blockNonces`; contracts cannot read the nonce namespace), so each sender's
   * nonce is written once per batch, with its last value, when the batch is flushed, before
   * anything else runs. Bounded like `blockNonces`.
   */
  const unwrittenNonces = new Map<string, { address: Bytes; next: number }>();
  const writeNonces = (state: StateView): void => {
    if (unwrittenNonces.size === 0) return;
    for (const { address, next } of unwrittenNonces.values()) writeNonce(state, address, next);
    unwrittenNonces.clear();
  };

  /** The 0x-hex sender of the transaction {@link admit} admitted last. */
  let admittedSender = '';

  /**
   * What every transaction goes through before it runs: chain, gas limit and nonce (consumed by
   * every transaction that is not rejected). Returns the receipt when that ends it, or the gas
   * left for the transaction itself, with its sender in `admittedSender` (no object per call).
   */
  const admit = (
    state: StateView,
    header: ExecutionHeader,
    stx: SignedTransaction,
    deferNonce = false,
  ): Receipt | number => {
    const { tx } = stx;
    if (tx.chainId !== header.chainId)
      return rejected(stx, 'WRONG_CHAIN', `chainId "${tx.chainId}", block is "${header.chainId}"`);
    if (!Number.isSafeInteger(tx.gasLimit) || tx.gasLimit > VmLimits.maxTxGas) {
      return rejected(stx, 'GAS_LIMIT', `gasLimit above the maximum of ${VmLimits.maxTxGas}`);
    }
    const from = senderOf(tx.from);
    const expected = blockNonces.get(from.hex) ?? readNonce(state, from.address);
    if (tx.nonce !== expected) return rejected(stx, 'BAD_NONCE', `nonce ${tx.nonce}, expected ${expected}`);
    // The nonce is consumed by every transaction that is not rejected, whatever its outcome.
    // A batched transaction's is written when its batch is flushed (see unwrittenNonces).
    if (deferNonce) unwrittenNonces.set(from.hex, { address: from.address, next: expected + 1 });
    else {
      unwrittenNonces.delete(from.hex);
      writeNonce(state, from.address, expected + 1);
    }
    blockNonces.set(from.hex, expected + 1);
    if (tx.gasLimit < Gas.txBase) {
      return toReceipt(
        stx.hash,
        txFailed(
          'out-of-gas',
          tx.gasLimit,
          'OUT_OF_GAS',
          `every transaction costs at least ${Gas.txBase} gas`,
        ),
      );
    }
    admittedSender = from.hex;
    return tx.gasLimit - Gas.txBase;
  };

  /** The receipt of an admitted transaction whose own part used `o.gasUsed` (txBase added here). */
  const txReceipt = (stx: SignedTransaction, o: TxOutcome): Receipt =>
    toReceipt(stx.hash, o, Math.min(stx.tx.gasLimit, Gas.txBase + o.gasUsed));

  /** The receipt of an admitted transaction refused before it ran. */
  const refused = (stx: SignedTransaction, code: string, message: string): Receipt =>
    txReceipt(stx, txFailed('reverted', 0, code, message));

  const badArgs = (err: unknown): TxOutcome => {
    if (!(err instanceof CodecError)) throw err;
    return txFailed('reverted', 0, 'BAD_ARGS', err.message);
  };

  /**
   * Runs the body of an admitted transaction in its own checkpoint: kept when it succeeds,
   * reverted when it fails or throws. Returns its receipt.
   */
  const settle = (
    state: StateView,
    header: ExecutionHeader,
    stx: SignedTransaction,
    sender: string,
    body: (run: TxRun) => TxOutcome,
  ): Receipt => {
    const run = newRun(state, header.height, header.timestamp, toHex(stx.hash), sender, false, []);
    state.checkpoint();
    let o: TxOutcome;
    try {
      o = body(run);
    } catch (err) {
      revertState(state);
      throw err;
    }
    if (o.status === 'ok') state.commit();
    else revertState(state);
    return txReceipt(stx, o);
  };

  /** Runs an admitted call transaction on its own, in its own checkpoint. */
  const runCallTx = (
    state: StateView,
    header: ExecutionHeader,
    stx: SignedTransaction,
    sender: string,
    gas: number,
    args: string,
  ): Receipt =>
    settle(state, header, stx, sender, (run) =>
      fromCall(
        callContract(run, {
          contract: stx.tx.contract,
          method: stx.tx.method,
          args,
          gas,
          stackUnits: VmLimits.stackUnits,
          sender,
          readOnly: false,
        }),
        0,
      ),
    );

  const executeTx = (
    state: StateView,
    header: ExecutionHeader,
    stx: SignedTransaction,
    policy: LifecyclePolicy,
  ): Receipt => {
    const { tx } = stx;
    const gas = admit(state, header, stx);
    if (typeof gas !== 'number') return gas;
    const sender = admittedSender;
    if (tx.kind === 'call') {
      let args: string;
      try {
        args = txArgsText(stx);
      } catch (err) {
        return txReceipt(stx, badArgs(err));
      }
      return runCallTx(state, header, stx, sender, gas, args);
    }
    const kind = tx.kind;
    return settle(state, header, stx, sender, (run): TxOutcome => {
      if (kind === 'deploy' || kind === 'upgrade')
        return lifecycle(run, kind, tx.contract, sender, tx.args, gas, header.height, policy);
      const entry = readCodeEntry(state, tx.contract);
      if (entry === undefined)
        return txFailed('reverted', 0, 'NO_CONTRACT', `no contract named "${tx.contract}"`);
      if (!policy({ kind, sender, contract: tx.contract, state }))
        return txFailed('reverted', 0, 'UNAUTHORIZED', `${sender} may not ${kind} ${tx.contract}`);
      if (gas < Gas.lifecycle)
        return txFailed('out-of-gas', gas, 'OUT_OF_GAS', `${kind} needs ${Gas.lifecycle} gas`);
      writeCodeEntry(state, tx.contract, { ...entry, frozen: kind === 'freeze' });
      return {
        status: 'ok',
        gasUsed: Gas.lifecycle,
        returnValue: { contract: tx.contract, frozen: kind === 'freeze' },
        events: [],
        code: '',
        message: '',
      };
    });
  };

  // -------------------------------------------------------------------------------------------
  // Batches: consecutive call transactions of one contract run in one entry into its context.

  /** An admitted call transaction that may run in a batch. */
  interface Prepared {
    /** Index of its receipt in the block's receipts. */
    readonly index: number;
    readonly stx: SignedTransaction;
    readonly sender: string;
    readonly gas: number;
    readonly args: string;
    readonly kind: 0 | 1;
    readonly entry: CodeEntry;
    readonly artifact: Artifact;
    readonly loaded: LoadedContract;
    /** The transaction as a batch item (sandbox encodeBatchItem). */
    readonly item: string;
  }

  /**
   * Admits a call transaction and makes every check callContract would make before entering the
   * guest, with the same receipts. None of these depend on what earlier transactions of a batch
   * do: registry entries and nonces are written only by the executor, never by contract code, and
   * a batch holds call transactions only (a lifecycle transaction ends the batch before it).
   */
  const prepare = (
    state: StateView,
    header: ExecutionHeader,
    stx: SignedTransaction,
    index: number,
    previous: Prepared | undefined,
  ): Receipt | Prepared => {
    const gas = admit(state, header, stx, true);
    if (typeof gas !== 'number') return gas;
    const sender = admittedSender;
    const { tx } = stx;
    let args: string;
    try {
      args = txArgsText(stx);
    } catch (err) {
      return txReceipt(stx, badArgs(err));
    }
    // The same contract as the batch's previous transaction: the same registry entry (nothing
    // between the two writes the registry, see above), artifact and context, not read again.
    const same = previous !== undefined && previous.stx.tx.contract === tx.contract;
    const entry = same
      ? previous.entry
      : NAME_RE.test(tx.contract)
        ? readCodeEntry(state, tx.contract)
        : undefined;
    if (entry === undefined) return refused(stx, 'NO_CONTRACT', `no contract named "${tx.contract}"`);
    if (entry.frozen) return refused(stx, 'FROZEN', `${tx.contract} is frozen`);
    const artifact = same ? previous.artifact : artifactOf(state, entry.artifactHash);
    let kind: 0 | 1;
    if (artifact.views.includes(tx.method)) kind = InvokeKind.view;
    else if (artifact.methods.includes(tx.method)) kind = InvokeKind.method;
    else return refused(stx, 'NO_METHOD', `${tx.contract} has no method or view "${tx.method}"`);
    const loaded = same ? previous.loaded : loadContract(tx.contract, entry.artifactHash, artifact);
    if (typeof loaded === 'string') {
      throw new VmFault('ISOLATE', `stored contract ${tx.contract} failed to load: ${loaded}`, {});
    }
    const item = encodeBatchItem({ kind, method: tx.method, sender, txHash: hexText(stx.hash), args, gas });
    return { index, stx, sender, gas, args, kind, entry, artifact, loaded, item };
  };

  /**
   * Runs a batch of prepared transactions of one contract and writes their receipts into
   * `receipts`. Each transaction's outcome is what it would be on its own (the guest runs each
   * with its own gas and drops a failed one's writes). The successful ones' writes arrive as
   * their net effect, each key once with its last value, and are applied here when the batch
   * returns: nothing reads the contract's state on the host between its transactions (the guest
   * answers their reads), so only the state after the batch can depend on them, and it is the
   * same. One the guest gives back (it needs the host mid-call) runs on its own, after them.
   */
  const runBatch = (
    state: StateView,
    header: ExecutionHeader,
    batch: Prepared[],
    receipts: Receipt[],
  ): void => {
    const { entry, artifact } = batch[0]!;
    const contract = batch[0]!.stx.tx.contract;
    let start = 0;
    while (start < batch.length) {
      // Loaded again for every part: a transaction run on its own in between may have loaded
      // other contracts and evicted this context.
      const loaded = loadContract(contract, entry.artifactHash, artifact);
      if (typeof loaded === 'string') {
        throw new VmFault('ISOLATE', `stored contract ${contract} failed to load: ${loaded}`, {});
      }
      const run = newRun(state, header.height, header.timestamp, ZERO_HASH_HEX, '', false, [contract]);
      const items = batch.slice(start);
      const previous = loaded.handler;
      // The guest asks only for reads and hashes mid-batch (anything else ends the transaction).
      loaded.handler = handlerFor(run, { contract, writable: false, events: [] });
      let results: BatchResults;
      try {
        results = sandbox.invokeBatch(loaded, {
          contract,
          height: header.height,
          time: header.timestamp,
          items: items.map((p) => p.item),
          stackUnits: VmLimits.stackUnits,
          cacheSession: session,
        });
      } finally {
        loaded.handler = previous;
      }
      if (run.fault !== null) throw run.fault;
      let wrote = false;
      for (let i = 0; i < results.count; i++) {
        results.next();
        const p = items[i]!;
        const status = results.status;
        if (status === 3) {
          throw new VmFault(
            results.code === 'NATIVE_STACK' ? 'NATIVE_STACK' : 'ISOLATE',
            `local fault in ${contract}: ${results.code} ${results.message}`,
            { txHash: toHex(p.stx.hash) },
          );
        }
        const gasUsed = status === 2 ? p.gas : p.gas - Math.min(results.gasLeft, p.gas);
        if (status !== 0) {
          receipts[p.index] = txReceipt(
            p.stx,
            txFailed(status === 2 ? 'out-of-gas' : 'reverted', gasUsed, results.code, results.message),
          );
          continue;
        }
        // The guest's own limits keep a top-level call that made no nested calls and no
        // schedules within what applying it accepts; a refusal here would mean a broken runtime.
        const n = results.eventCount;
        if (n > 0 && p.kind !== InvokeKind.method)
          throw new VmFault('HOST', 'a read-only frame sent writes', { contract });
        if (n > Limits.maxEventsPerReceipt)
          throw new VmFault('HOST', 'a batched transaction was refused after it ran', {});
        wrote ||= p.kind === InvokeKind.method;
        const events: Event[] = new Array<Event>(n);
        for (let e = 0; e < n; e++) {
          results.nextEvent();
          const name = results.eventName;
          if (name !== validName) {
            if (!NAME_RE.test(name)) throw new VmFault('HOST', 'malformed event from the guest', {});
            validName = name;
          }
          events[e] = eventOf(contract, name, results.eventData);
        }
        receipts[p.index] = okReceipt(p.stx, Gas.txBase + gasUsed, results.ret, events);
      }
      // The batch's writes: the net effect of its successful transactions' writes.
      const writes = results.writes();
      if (writes.length > 0) {
        if (!wrote) throw new VmFault('HOST', 'a read-only frame sent writes', { contract });
        applyWrites(state, contract, writes);
      }
      start += results.count;
      if (start < batch.length) {
        const p = batch[start]!;
        // Gave back: this method reaches the host mid-call (nested call, range, schedule). Later
        // ones run on their own from the start instead of entering a batch only to leave it.
        if (hostBound.size < MAX_HOST_BOUND) hostBound.add(`${contract}.${p.stx.tx.method}`);
        receipts[p.index] = runCallTx(state, header, p.stx, p.sender, p.gas, p.args);
        start++;
      }
    }
  };

  /** Largest batch (transactions) and its total gas: one batch runs under one call's backstop. */
  const MAX_BATCH = 256;
  /**
   * `contract.method` names a batch gave back because they needed the host mid-call. Only where
   * a transaction runs (in a batch or alone) depends on it, never its receipt (batched and
   * single runs give identical receipts), so it may differ between nodes. Bounded: past the
   * bound, other methods keep being tried in batches.
   */
  const hostBound = new Set<string>();
  const MAX_HOST_BOUND = 4096;

  /** Applies the block's callbacks and transactions; the receipts in block order. */
  const applyBlock = (
    state: StateView,
    header: ExecutionHeader,
    txs: readonly SignedTransaction[],
    policy: LifecyclePolicy,
    batched: boolean,
    onTx: (hash: Bytes | null) => void,
  ): { receipts: Receipt[]; scheduled: number } => {
    blockNonces.clear();
    unwrittenNonces.clear();
    const receipts = executeScheduled(state, header);
    const scheduled = receipts.length;
    let batch: Prepared[] = [];
    let batchGas = 0;
    const flush = (): void => {
      // First the admitted transactions' nonces: what runs next may read state.
      writeNonces(state);
      if (batch.length > 0) runBatch(state, header, batch, receipts);
      batch = [];
      batchGas = 0;
    };
    for (let i = 0; i < txs.length; i++) {
      const stx = txs[i]!;
      const index = scheduled + i;
      onTx(stx.hash);
      if (!batched || stx.tx.kind !== 'call') {
        flush();
        receipts[index] = executeTx(state, header, stx, policy);
        continue;
      }
      const p = prepare(state, header, stx, index, batch[batch.length - 1]);
      if (!('loaded' in p)) {
        receipts[index] = p;
        continue;
      }
      // (Checked for emptiness first: hashing a freshly built name costs ~0.4 us per transaction.)
      if (hostBound.size > 0 && hostBound.has(`${p.stx.tx.contract}.${p.stx.tx.method}`)) {
        flush();
        receipts[index] = runCallTx(state, header, p.stx, p.sender, p.gas, p.args);
        continue;
      }
      if (
        batch.length > 0 &&
        (batch[0]!.entry !== p.entry ||
          batch[0]!.stx.tx.contract !== p.stx.tx.contract ||
          batch.length >= MAX_BATCH ||
          batchGas + p.gas > VmLimits.maxTxGas)
      ) {
        flush();
      }
      batch.push(p);
      batchGas += p.gas;
    }
    flush();
    onTx(null);
    return { receipts, scheduled };
  };

  const executeScheduled = (state: StateView, header: ExecutionHeader): Receipt[] => {
    const receipts: Receipt[] = [];
    for (const entry of dueSchedules(state, header.timestamp, VmLimits.maxScheduledPerBlock)) {
      // The entry is consumed whatever the callback does.
      removeSchedule(state, entry);
      const run = newRun(state, header.height, header.timestamp, toHex(entry.hash), '', true, []);
      const o = callContract(run, {
        contract: entry.contract,
        method: entry.method,
        args: latin1(entry.args),
        gas: entry.gasLimit,
        stackUnits: VmLimits.stackUnits,
        sender: entry.contract,
        readOnly: false,
      });
      receipts.push(toReceipt(entry.hash, fromCall(o, 0)));
    }
    return receipts;
  };

  const withTxHash = (err: unknown, hash: Bytes | null): never => {
    if (err instanceof VmFault && hash !== null && err.meta['txHash'] === undefined) {
      throw new VmFault(err.code, err.message, { ...err.meta, txHash: toHex(hash) });
    }
    throw err;
  };

  return {
    executeBlock(input) {
      if (closed) throw new ExecutorError('CLOSED', 'executor is closed', {});
      const { state, header, txs } = input;
      if (
        !Number.isSafeInteger(header.height) ||
        !Number.isSafeInteger(header.timestamp) ||
        header.timestamp < 0
      ) {
        throw new ExecutorError('BAD_INPUT', 'header height and timestamp must be non-negative integers', {});
      }
      if (txs.length > Limits.maxBlockTxs) {
        throw new ExecutorError('BAD_INPUT', `at most ${Limits.maxBlockTxs} transactions per block`, {});
      }
      const policy = input.policy ?? defaultPolicy;
      const depth = state.depth;
      session++;
      lastDirectState = null;
      let current: Bytes | null = null;
      const onTx = (hash: Bytes | null): void => {
        current = hash;
      };
      const finish = (applied: { receipts: Receipt[]; scheduled: number }): BlockResult => {
        const { receipts, scheduled } = applied;
        const events: Event[] = [];
        let gasUsed = 0;
        for (const r of receipts) {
          gasUsed += r.gasUsed;
          // A loop, not push(...r.events): spreading costs an iterator per receipt.
          if (r.status === 'ok') for (let i = 0; i < r.events.length; i++) events.push(r.events[i]!);
        }
        const receiptsRoot = receiptsRootOf(receipts);
        sandbox.recycleIfLarge();
        return { receipts, scheduled, events, stateRoot: state.root(), receiptsRoot, gasUsed };
      };
      if (batching) {
        // Batched first, in a checkpoint: a local fault inside a batch cannot name its
        // transaction, so the block is undone and run again one transaction at a time, which
        // names it (or succeeds with the same result, if the fault does not recur).
        state.checkpoint();
        try {
          const applied = applyBlock(state, header, txs, policy, true, onTx);
          state.commit();
          return finish(applied);
        } catch (err) {
          while (state.depth > depth) revertState(state);
          if (!(err instanceof VmFault)) throw err;
        }
      }
      try {
        return finish(applyBlock(state, header, txs, policy, false, onTx));
      } catch (err) {
        while (state.depth > depth) revertState(state);
        return withTxHash(err, current);
      }
    },

    view(req) {
      if (closed) throw new ExecutorError('CLOSED', 'executor is closed', {});
      const gas = Math.min(req.gasLimit ?? VmLimits.maxTxGas, VmLimits.maxTxGas);
      let args: string;
      try {
        args = latin1(encodeValue(req.args ?? null));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        return {
          status: 'reverted',
          gasUsed: 0,
          returnValue: null,
          errorCode: 'BAD_ARGS',
          error: err.message,
        };
      }
      const state = readOnlyView(req.state);
      session++;
      lastDirectState = null;
      const run = newRun(state, req.height, req.time, ZERO_HASH_HEX, req.sender ?? '', false, []);
      const entry = NAME_RE.test(req.contract) ? readCodeEntry(state, req.contract) : undefined;
      if (entry !== undefined && !artifactOf(state, entry.artifactHash).views.includes(req.method)) {
        return {
          status: 'reverted',
          gasUsed: 0,
          returnValue: null,
          errorCode: 'NO_VIEW',
          error: `${req.contract} has no view "${req.method}"`,
        };
      }
      const o = fromCall(
        callContract(run, {
          contract: req.contract,
          method: req.method,
          args,
          gas,
          stackUnits: VmLimits.stackUnits,
          sender: req.sender ?? '',
          readOnly: true,
        }),
        0,
      );
      return {
        status: o.status as ViewResult['status'],
        gasUsed: o.gasUsed,
        returnValue: o.returnValue,
        errorCode: o.code,
        error: truncate(o.message, Limits.maxErrorLength),
      };
    },

    runCall(req) {
      if (closed) throw new ExecutorError('CLOSED', 'executor is closed', {});
      let args: string;
      try {
        args = latin1(encodeValue(req.args ?? null));
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        return {
          status: 'reverted',
          gasUsed: 0,
          returnValue: null,
          events: [],
          errorCode: 'BAD_ARGS',
          error: err.message,
        };
      }
      const run = newRun(req.state, req.height, req.time, ZERO_HASH_HEX, req.sender, false, []);
      const depth = req.state.depth;
      // Consecutive direct calls on the same state share a read-cache session (the caller changes
      // that state only through the executor in between, see DirectCallRequest).
      if (req.state !== lastDirectState) session++;
      lastDirectState = req.state;
      try {
        const o = fromCall(
          callContract(run, {
            contract: req.contract,
            method: req.method,
            args,
            gas: Math.min(req.gasLimit ?? VmLimits.maxTxGas, VmLimits.maxTxGas),
            stackUnits: VmLimits.stackUnits,
            sender: req.sender,
            readOnly: false,
          }),
          0,
        );
        return {
          status: o.status as DirectCallResult['status'],
          gasUsed: o.gasUsed,
          returnValue: o.returnValue,
          events: o.status === 'ok' ? o.events : [],
          errorCode: o.code,
          error: truncate(o.message, Limits.maxErrorLength),
        };
      } catch (err) {
        while (req.state.depth > depth) revertState(req.state);
        throw err;
      }
    },

    compile,

    close() {
      closed = true;
      sandbox.dispose();
    },
  };
}

/** Name of the system contract that holds registry entries (for RPC queries of code). */
export const CODE_REGISTRY = SystemContract.code;
export { nameKey };
