import type { Bytes } from '../../core/bytes.ts';
import { HASH_BYTES } from '../../core/hash.ts';
import { StateError } from '../../core/stateProof.ts';

/**
 * Storage layout of the state store inside the node's one KvStore. Every state key starts with the
 * state bucket byte (0x20, `Bucket.state` of the block store's bucket table), then one sub-bucket
 * letter:
 *
 * - `f` contractLength(1) contract key → the latest value (the flat index: reads, range scans, and
 *   the source the tree is rebuilt from when the store opens);
 * - `u` version(8) → the undo record of that version: the root of the version before it and the
 *   previous value of every key it wrote, from which older versions' values, roots and trees are
 *   recovered;
 * - `m` → metadata: format, latest committed version and its root, oldest readable version.
 *
 * Tree nodes are not stored: they live in memory (memoryTree.ts) and are rebuilt from the flat
 * index when the store opens. Writing every version's changed nodes, as Jellyfish does, cost ~2 MiB
 * of LevelDB writes per 1,000-key block on a million-key tree (and as many deletes when pruned),
 * which LevelDB on a small machine cannot sustain at tens of thousands of updates per second; a
 * block's flat index writes and undo record are ~100 KiB.
 */

/** First byte of every key the state store writes. Equal to `Bucket.state` in node/storage. */
export const STATE_BUCKET = 0x20;
const SUB_FLAT = 0x66; // 'f'
const SUB_META = 0x6d; // 'm'
const SUB_UNDO = 0x75; // 'u'

/** Largest version (block height): versions are stored as 8-byte big-endian numbers, and kept safe integers. */
export const MAX_VERSION = 2 ** 48 - 1;

/** Key of the metadata record. */
export const META_KEY: Bytes = Uint8Array.of(STATE_BUCKET, SUB_META);
/** Bounds of the flat index, for scanning it. */
export const FLAT_START: Bytes = Uint8Array.of(STATE_BUCKET, SUB_FLAT);
export const FLAT_END: Bytes = Uint8Array.of(STATE_BUCKET, SUB_FLAT + 1);

function writeVersion(buf: Buffer, offset: number, version: number): void {
  buf.writeUInt32BE(Math.floor(version / 0x1_0000_0000), offset);
  buf.writeUInt32BE(version >>> 0, offset + 4);
}

/** Key of the undo record of `version`. */
export function undoKey(version: number): Buffer {
  const buf = Buffer.allocUnsafe(10);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_UNDO;
  writeVersion(buf, 2, version);
  return buf;
}

/** One entry of an undo record: the value (contract, key) had before the version, null if none. */
export interface UndoEntry {
  readonly contract: string;
  readonly key: Bytes;
  readonly previous: Bytes | null;
}

/** A decoded undo record. */
export interface UndoRecord {
  /** Root of the version before the record's version. */
  readonly previousRoot: Bytes;
  /** `contract + "\0" + latin1 key` → the value before the version, null if none. */
  readonly values: Map<string, Bytes | null>;
}

/**
 * Undo record bytes: the previous version's root (32 bytes), then per entry: contract length (1)
 * and name, key length (2) and key, then 0 for no previous value or 1, value length (4) and value.
 */
export function encodeUndo(previousRoot: Bytes, entries: readonly UndoEntry[]): Buffer {
  let size = HASH_BYTES;
  for (const e of entries)
    size += 1 + e.contract.length + 2 + e.key.length + 1 + (e.previous === null ? 0 : 4 + e.previous.length);
  const buf = Buffer.allocUnsafe(size);
  buf.set(previousRoot, 0);
  let o = HASH_BYTES;
  for (const e of entries) {
    buf[o++] = e.contract.length;
    o += buf.write(e.contract, o, 'latin1');
    buf.writeUInt16BE(e.key.length, o);
    buf.set(e.key, o + 2);
    o += 2 + e.key.length;
    if (e.previous === null) buf[o++] = 0;
    else {
      buf[o] = 1;
      buf.writeUInt32BE(e.previous.length, o + 1);
      buf.set(e.previous, o + 5);
      o += 5 + e.previous.length;
    }
  }
  return buf;
}

/** Decodes an undo record (see {@link encodeUndo}). */
export function decodeUndo(bytes: Bytes, version: number): UndoRecord {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Map<string, Bytes | null>();
  const bad = (): never => {
    throw new StateError('CORRUPT', `undo record of version ${version}: truncated`, { version });
  };
  if (b.length < HASH_BYTES) bad();
  let o = HASH_BYTES;
  while (o < b.length) {
    const cl = b[o]!;
    if (o + 1 + cl + 2 > b.length) bad();
    const contract = b.toString('latin1', o + 1, o + 1 + cl);
    o += 1 + cl;
    const kl = b.readUInt16BE(o);
    if (o + 2 + kl + 1 > b.length) bad();
    const keyStr = b.toString('latin1', o + 2, o + 2 + kl);
    o += 2 + kl;
    if (b[o] === 0) {
      out.set(contract + '\0' + keyStr, null);
      o += 1;
    } else {
      if (o + 5 > b.length) bad();
      const vl = b.readUInt32BE(o + 1);
      if (o + 5 + vl > b.length) bad();
      out.set(contract + '\0' + keyStr, b.subarray(o + 5, o + 5 + vl));
      o += 5 + vl;
    }
  }
  return { previousRoot: b.subarray(0, HASH_BYTES), values: out };
}

/**
 * Offset in a flat-index key of the (contract, key) encoding that core's writeStateKeyHash takes:
 * contract length, contract, key (what stateKeyHash hashes after its tag).
 */
export const FLAT_ENCODED_AT = 2;

/** Key of (contract, key) in the flat index. */
export function flatKey(contract: string, key: Bytes): Buffer {
  const buf = Buffer.allocUnsafe(3 + contract.length + key.length);
  buf[0] = STATE_BUCKET;
  buf[1] = SUB_FLAT;
  buf[2] = contract.length;
  buf.write(contract, 3, 'latin1');
  buf.set(key, 3 + contract.length);
  return buf;
}

/** Splits a flat-index key back into (contract, key as a latin1 string). */
export function parseFlatKey(k: Bytes): { contract: string; keyStr: string } {
  const b = Buffer.from(k.buffer, k.byteOffset, k.byteLength);
  if (b.length < 3 || b[0] !== STATE_BUCKET || b[1] !== SUB_FLAT || b.length < 3 + b[2]!) {
    throw new StateError('CORRUPT', 'flat index: malformed key', { key: b.toString('hex') });
  }
  const n = b[2]!;
  return { contract: b.toString('latin1', 3, 3 + n), keyStr: b.toString('latin1', 3 + n) };
}
