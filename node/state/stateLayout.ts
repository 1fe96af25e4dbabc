import type { Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { StateError } from '../../core/stateProof.ts';

/**
 * Storage layout of the state store inside the node's one KvStore. Every state key starts with the
 * state bucket byte (0x20, `Bucket.state` of the block store's bucket table), then one sub-bucket
 * letter:
 *
 * - `v` contractLength(1) contract keyLength(2) key entry(8) → a value of (contract, key): the
 *   value it was given at version `entry / 2`, or, when `entry` is odd, a tombstone (deleted at that
 *   version; no value). Each key's entries lie together, oldest first (the key length comes before
 *   the key, so no key's entries fall between another's). A version's write never overwrites an
 *   entry: the values older versions need stay where they are, so a commit reads nothing.
 * - `s` version(8) → the stale record of that version: the root of the version before it, and for
 *   every key it wrote, the entry the write superseded (or none). Older versions' values, roots and
 *   trees are recovered from these; and when a version leaves the retention window, the entries its
 *   stale record lists (and its own tombstones) are deleted, with the record.
 * - `m` → metadata: format, latest committed version and its root, oldest readable version.
 *
 * Which entry holds a key's value at a version is known from the tree: a leaf records the version
 * at which its value was written (memoryTree.ts). Tree nodes are not stored: they live in memory
 * and are rebuilt from the latest entries when the store opens.
 */

/** First byte of every key the state store writes. Equal to `Bucket.state` in node/storage. */
export const STATE_BUCKET = 0x20;
const SUB_META = 0x6d; // 'm'
const SUB_STALE = 0x73; // 's'
const SUB_VALUE = 0x76; // 'v'

/** Largest version (block height): versions are stored as 8-byte big-endian numbers, and kept safe integers. */
export const MAX_VERSION = 2 ** 48 - 1;

/** Entry of a key with no entry (a stale record's mark for a key that was absent). */
export const NO_ENTRY = -1;

/** The entry of a value written at `version`. */
export function putEntry(version: number): number {
  return version * 2;
}

/** The entry of a delete at `version`. */
export function tombstoneEntry(version: number): number {
  return version * 2 + 1;
}

/** True when `entry` is a tombstone. */
export function isTombstone(entry: number): boolean {
  return entry % 2 === 1;
}

/** Key of the metadata record. */
export const META_KEY: Bytes = Uint8Array.of(STATE_BUCKET, SUB_META);
/** Bounds of the value entries, for scanning them. */
export const VALUE_START: Bytes = Uint8Array.of(STATE_BUCKET, SUB_VALUE);
export const VALUE_END: Bytes = Uint8Array.of(STATE_BUCKET, SUB_VALUE + 1);
/** Bounds of the stale records. */
export const STALE_START: Bytes = Uint8Array.of(STATE_BUCKET, SUB_STALE);
export const STALE_END: Bytes = Uint8Array.of(STATE_BUCKET, SUB_STALE + 1);

function writeUint64(buf: Buffer, offset: number, n: number): void {
  buf.writeUInt32BE(Math.floor(n / 0x1_0000_0000), offset);
  buf.writeUInt32BE(n >>> 0, offset + 4);
}

function readUint64(buf: Buffer, offset: number): number {
  return buf.readUInt32BE(offset) * 0x1_0000_0000 + buf.readUInt32BE(offset + 4);
}

/** Key of the stale record of `version`. */
export function staleKey(version: number): Buffer {
  const buf = Buffer.allocUnsafe(10);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_STALE;
  writeUint64(buf, 2, version);
  return buf;
}

/** The version of a stale record's key. */
export function parseStaleKey(k: Bytes): number {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  if (b.length !== 10 || b[0] !== STATE_BUCKET || b[1] !== SUB_STALE) {
    throw new StateError('CORRUPT', 'stale record: malformed key', { key: b.toString('hex') });
  }
  return readUint64(b, 2);
}

/**
 * The (contract, key) encoding core's writeStateKeyHash takes: the contract name's length, the
 * name, then the key.
 */
export function encodeStateKey(contract: string, key: Bytes): Buffer {
  const buf = Buffer.allocUnsafe(1 + contract.length + key.length);
  buf[0] = contract.length;
  buf.write(contract, 1, 'latin1');
  buf.set(key, 1 + contract.length);
  return buf;
}

/** Key of the entry `entry` of a (contract, key) given in its encoding ({@link encodeStateKey}). */
export function valueKey(encoded: Bytes, entry: number): Buffer {
  const cl = encoded[0]!;
  const kl = encoded.length - 1 - cl;
  const buf = Buffer.allocUnsafe(2 + encoded.length + 2 + 8);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_VALUE;
  buf.set(encoded.subarray(0, 1 + cl), 2);
  buf.writeUInt16BE(kl, 3 + cl);
  buf.set(encoded.subarray(1 + cl), 5 + cl);
  writeUint64(buf, 5 + cl + kl, entry);
  return buf;
}

/** A value entry's key, split. */
export interface ValueKey {
  readonly contract: string;
  /** The key as a latin1 string. */
  readonly keyStr: string;
  readonly entry: number;
}

/** Splits a value entry's key (see {@link valueKey}). */
export function parseValueKey(k: Bytes): ValueKey {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  const bad = (): never => {
    throw new StateError('CORRUPT', 'state value: malformed key', { key: b.toString('hex') });
  };
  if (b.length < 3 || b[0] !== STATE_BUCKET || b[1] !== SUB_VALUE) bad();
  const cl = b[2]!;
  if (b.length < 3 + cl + 2 + 8) bad();
  const kl = b.readUInt16BE(3 + cl);
  if (b.length !== 5 + cl + kl + 8) bad();
  return {
    contract: b.toString('latin1', 3, 3 + cl),
    keyStr: b.toString('latin1', 5 + cl, 5 + cl + kl),
    entry: readUint64(b, 5 + cl + kl),
  };
}

/** One entry of a stale record: a key the version wrote, and the entry the write superseded. */
export interface StaleEntry {
  readonly contract: string;
  readonly key: Bytes;
  /** The superseded entry, or {@link NO_ENTRY} when the key was absent. */
  readonly previous: number;
  /** True when the version deleted the key (its entry is a tombstone). */
  readonly deleted: boolean;
}

/** A stale record's entry as decoded, with the (contract, key) encoding its value keys take. */
export interface DecodedStaleEntry extends StaleEntry {
  readonly encoded: Buffer;
}

/** A decoded stale record. */
export interface StaleRecord {
  /** Root of the version before the record's version. */
  readonly previousRoot: Bytes;
  readonly entries: readonly DecodedStaleEntry[];
}

/**
 * Stale record bytes: the previous version's root (32 bytes), then per entry: contract length (1)
 * and name, key length (2) and key, 1 when the version deleted the key (else 0), then the
 * superseded entry (8; all ones for none).
 */
export function encodeStale(previousRoot: Bytes, entries: readonly StaleEntry[]): Buffer {
  let size = HASH_BYTES;
  for (const e of entries) size += 1 + e.contract.length + 2 + e.key.length + 1 + 8;
  const buf = Buffer.allocUnsafe(size);
  buf.set(previousRoot, 0);
  let o = HASH_BYTES;
  for (const e of entries) {
    buf[o++] = e.contract.length;
    o += buf.write(e.contract, o, 'latin1');
    buf.writeUInt16BE(e.key.length, o);
    buf.set(e.key, o + 2);
    o += 2 + e.key.length;
    buf[o++] = e.deleted ? 1 : 0;
    if (e.previous === NO_ENTRY) buf.fill(0xff, o, o + 8);
    else writeUint64(buf, o, e.previous);
    o += 8;
  }
  return buf;
}

/** Decodes the stale record of `version` (see {@link encodeStale}). */
export function decodeStale(bytes: Bytes, version: number): StaleRecord {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entries: DecodedStaleEntry[] = [];
  const bad = (): never => {
    throw new StateError('CORRUPT', `stale record of version ${version}: truncated`, { version });
  };
  if (b.length < HASH_BYTES) bad();
  let o = HASH_BYTES;
  while (o < b.length) {
    const cl = b[o]!;
    if (o + 1 + cl + 2 > b.length) bad();
    const kl = b.readUInt16BE(o + 1 + cl);
    const k = o + 3 + cl;
    if (k + kl + 9 > b.length) bad();
    const encoded = Buffer.allocUnsafe(1 + cl + kl);
    encoded[0] = cl;
    b.copy(encoded, 1, o + 1, o + 1 + cl);
    b.copy(encoded, 1 + cl, k, k + kl);
    const none = b.readUInt32BE(k + kl + 1) === 0xffff_ffff && b.readUInt32BE(k + kl + 5) === 0xffff_ffff;
    entries.push({
      contract: b.toString('latin1', o + 1, o + 1 + cl),
      key: encoded.subarray(1 + cl),
      encoded,
      previous: none ? NO_ENTRY : readUint64(b, k + kl + 1),
      deleted: b[k + kl] === 1,
    });
    o = k + kl + 9;
  }
  return { previousRoot: b.subarray(0, HASH_BYTES), entries };
}

/**
 * The value keys that are garbage once `version` leaves the retention window: the entries its
 * writes superseded, and its tombstones.
 */
export function staleGarbage(record: StaleRecord, version: number): Buffer[] {
  const out: Buffer[] = [];
  for (const e of record.entries) {
    if (e.previous !== NO_ENTRY) out.push(valueKey(e.encoded, e.previous));
    if (e.deleted) out.push(valueKey(e.encoded, tombstoneEntry(version)));
  }
  return out;
}
