import { concatBytes, type Bytes } from '../core/bytes.ts';
import {
  decodeValue,
  encodeValue,
  pack,
  readArray,
  readBytes,
  readString,
  readUint,
  unpackCanonical,
} from '../core/codec.ts';
import { sha256 } from '../core/hash.ts';
import type { StateReader, StateView } from '../core/stateView.ts';

/**
 * Where the VM keeps its own data: in contract state under reserved names that start with '$'
 * (user contract names cannot, see NAME_RE in core/types.ts), so the state root covers all of it.
 *
 * - `$code`     contract name (UTF-8) → registry entry {admin, artifactHash, frozen, height, sourceHash, version}
 * - `$artifact` artifact hash → artifact bytes (vm/compile.ts)
 * - `$source`   source hash → TypeScript source (UTF-8), for audit and `contract_getCode`-style queries
 * - `$nonce`    address (20 bytes) → next nonce of that account
 * - `$sched`    'e' ‖ time (8 bytes BE) ‖ seq (8 bytes BE) → [contract, method, args, gasLimit];
 *               'n' → next seq; 'c' ‖ contract → pending count. Byte order of the entry keys is
 *               (time, seq) order, so the due callbacks are a prefix scan.
 */
export const SystemContract = {
  code: '$code',
  artifact: '$artifact',
  source: '$source',
  nonce: '$nonce',
  schedule: '$sched',
} as const;

/** A contract's registry entry. */
export interface CodeEntry {
  /** 0x-hex address of the account that deployed it. */
  readonly admin: string;
  readonly artifactHash: Bytes;
  readonly sourceHash: Bytes;
  /** 1 at deploy, +1 per upgrade. */
  readonly version: number;
  readonly frozen: boolean;
  /** Height of the last deploy or upgrade. */
  readonly height: number;
}

const utf8Cache = new Map<string, Bytes>();
/** UTF-8 bytes of a contract name, cached (names are few and short; bounded below). */
export function nameKey(name: string): Bytes {
  let b = utf8Cache.get(name);
  if (b === undefined) {
    b = Buffer.from(name, 'utf8');
    if (utf8Cache.size >= 10_000) utf8Cache.clear();
    utf8Cache.set(name, b);
  }
  return b;
}

/** Decoded registry entries by their exact bytes: lookups happen on every call. Bounded. */
const entryCache = new Map<string, CodeEntry>();
/** The same, by the identity of the bytes object (in-memory states return the same one). */
const entryByObject = new WeakMap<Bytes, CodeEntry>();

/** Reads a contract's registry entry, or undefined when no such contract exists. */
export function readCodeEntry(state: StateReader, name: string): CodeEntry | undefined {
  const bytes = state.get(SystemContract.code, nameKey(name));
  if (bytes === undefined) return undefined;
  const same = entryByObject.get(bytes);
  if (same !== undefined) return same;
  const id = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const hit = entryCache.get(id);
  if (hit !== undefined) {
    entryByObject.set(bytes, hit);
    return hit;
  }
  const v = decodeValue(bytes, 'code entry') as Record<string, unknown>;
  const entry: CodeEntry = {
    admin: readString(v['admin'], 'code.admin', 64),
    artifactHash: readBytes(v['artifactHash'], 'code.artifactHash', 32),
    sourceHash: readBytes(v['sourceHash'], 'code.sourceHash', 32),
    version: readUint(v['version'], 'code.version'),
    frozen: v['frozen'] === true,
    height: readUint(v['height'], 'code.height'),
  };
  if (entryCache.size >= 4096) entryCache.clear();
  entryCache.set(id, entry);
  entryByObject.set(bytes, entry);
  return entry;
}

/** Writes a contract's registry entry. */
export function writeCodeEntry(state: StateView, name: string, e: CodeEntry): void {
  state.set(
    SystemContract.code,
    nameKey(name),
    encodeValue({
      admin: e.admin,
      artifactHash: e.artifactHash,
      frozen: e.frozen,
      height: e.height,
      sourceHash: e.sourceHash,
      version: e.version,
    }),
  );
}

/** The next nonce of an account (0 when it never sent a transaction). */
export function readNonce(state: StateReader, address: Bytes): number {
  const b = state.get(SystemContract.nonce, address);
  if (b === undefined) return 0;
  // The shortest unsigned forms below 2^32 (what encodeUint writes) read by hand; anything else,
  // canonical or not, through decodeValue and its checks.
  const n = b.length;
  const t = b[0]!;
  if (n === 1 && t < 0x80) return t;
  if (n === 2 && t === 0xcc && b[1]! >= 0x80) return b[1]!;
  if (n === 3 && t === 0xcd && b[1]! !== 0) return (b[1]! << 8) | b[2]!;
  if (n === 5 && t === 0xce && (b[1]! !== 0 || b[2]! !== 0))
    return ((b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!) >>> 0;
  return readUint(decodeValue(b, 'nonce'), 'nonce');
}

/**
 * Canonical bytes of a non-negative safe integer: the shortest unsigned MessagePack form below
 * 2^32 written directly (every transaction writes a nonce), `encodeValue` beyond. Byte-identical
 * to `encodeValue(n)` (test/vm/receiptCodec.test.ts).
 */
export function encodeUint(n: number): Bytes {
  if (n >= 0 && n < 128 && Number.isInteger(n)) return Uint8Array.of(n);
  if (n >= 128 && n < 2 ** 32 && Number.isInteger(n)) {
    if (n < 256) return Uint8Array.of(0xcc, n);
    if (n < 65536) return Uint8Array.of(0xcd, n >> 8, n & 255);
    return Uint8Array.of(0xce, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
  }
  return encodeValue(n);
}

/** Records an account's next nonce. */
export function writeNonce(state: StateView, address: Bytes, next: number): void {
  state.set(SystemContract.nonce, address, encodeUint(next));
}

// ---------------------------------------------------------------------------------------------
// Scheduled callbacks

const ENTRY_PREFIX = Buffer.from('e');
const SEQ_KEY = Buffer.from('n');
const COUNT_PREFIX = Buffer.from('c');

/** A recorded callback. */
export interface ScheduleEntry {
  readonly key: Bytes;
  readonly time: number;
  readonly seq: number;
  readonly contract: string;
  readonly method: string;
  /** Canonical argument bytes. */
  readonly args: Bytes;
  readonly gasLimit: number;
  /** SHA-256 of key ‖ value: the receipt's txHash. */
  readonly hash: Bytes;
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function countKey(contract: string): Bytes {
  return concatBytes(COUNT_PREFIX, nameKey(contract));
}

/** Pending callbacks of a contract. */
export function pendingCount(state: StateReader, contract: string): number {
  const b = state.get(SystemContract.schedule, countKey(contract));
  return b === undefined ? 0 : readUint(decodeValue(b), 'schedule count');
}

function setPendingCount(state: StateView, contract: string, n: number): void {
  if (n === 0) state.delete(SystemContract.schedule, countKey(contract));
  else state.set(SystemContract.schedule, countKey(contract), encodeValue(n));
}

/** Records a callback; returns its key. The caller checks the per-contract bound first. */
export function addSchedule(
  state: StateView,
  contract: string,
  time: number,
  method: string,
  args: Bytes,
  gasLimit: number,
): Bytes {
  const seqBytes = state.get(SystemContract.schedule, SEQ_KEY);
  const seq = seqBytes === undefined ? 0 : readUint(decodeValue(seqBytes), 'schedule seq');
  state.set(SystemContract.schedule, SEQ_KEY, encodeValue(seq + 1));
  const key = concatBytes(ENTRY_PREFIX, u64(time), u64(seq));
  state.set(SystemContract.schedule, key, pack([contract, method, args, gasLimit]));
  setPendingCount(state, contract, pendingCount(state, contract) + 1);
  return key;
}

/** The first `limit` callbacks due at `time`, in (time, seq) order. */
export function dueSchedules(state: StateReader, time: number, limit: number): ScheduleEntry[] {
  const out: ScheduleEntry[] = [];
  for (const [key, value] of state.range(SystemContract.schedule, ENTRY_PREFIX, limit)) {
    const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    if (k.length !== 17) throw new Error(`corrupt schedule key of ${k.length} bytes`);
    const at = Number(k.readBigUInt64BE(1));
    if (at > time) break;
    const f = readArray(unpackCanonical(value, 'schedule entry'), 4, 'schedule entry');
    out.push({
      key,
      time: at,
      seq: Number(k.readBigUInt64BE(9)),
      contract: readString(f[0], 'schedule.contract', 64),
      method: readString(f[1], 'schedule.method', 64),
      args: readBytes(f[2], 'schedule.args'),
      gasLimit: readUint(f[3], 'schedule.gasLimit'),
      hash: sha256(concatBytes(key, value)),
    });
  }
  return out;
}

/** Removes a callback that is about to run. */
export function removeSchedule(state: StateView, entry: ScheduleEntry): void {
  state.delete(SystemContract.schedule, entry.key);
  setPendingCount(state, entry.contract, Math.max(0, pendingCount(state, entry.contract) - 1));
}
