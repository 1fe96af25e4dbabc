import { toHex, type Bytes } from '../../core/bytes.ts';
import type { BatchOp, KvStore } from './kv.ts';
import { StorageError } from './errors.ts';

/** Turns values into bytes and back. `decode` throws on bytes it does not accept. */
export interface Codec<T> {
  encode(value: T): Bytes;
  decode(bytes: Bytes): T;
}

/**
 * One-byte key prefixes ("buckets") of everything Trellis keeps in its LevelDB. Declared in one
 * place so two stores sharing a database can never collide. The state store owns `state` (and
 * may sub-divide it); block-store buckets are below it.
 */
export const Bucket = {
  /** Chain metadata: head pointer, genesis binding. */
  meta: 0x00,
  /** height → block bytes. */
  blockByHeight: 0x01,
  /** block hash → height. */
  heightByHash: 0x02,
  /** height → commit certificate bytes. */
  certificate: 0x03,
  /** tx hash → [height, receiptIndex, txIndex]. */
  txLocation: 0x04,
  /** (height, receiptIndex) → receipt bytes. */
  receipt: 0x05,
  /** (height, receiptIndex, eventIndex) → event. */
  event: 0x06,
  /** (contract, height, receiptIndex, eventIndex) → empty: events of one contract in order. */
  eventByContract: 0x07,
  /** (contract, name, height, receiptIndex, eventIndex) → empty: events of one kind in order. */
  eventByContractName: 0x08,
  /** Reserved for the state store (authenticated tree nodes, contract key-values). */
  state: 0x20,
  /** Reserved for the chain engine's validator schedule: first height → the ordered set from it. */
  validators: 0x28,
  /** Reserved for the consensus safety module (what the validator last signed). */
  consensus: 0x30,
} as const;

/** A bucket's one-byte prefix. */
export type BucketId = (typeof Bucket)[keyof typeof Bucket];

/** Options of {@link Repository.entries}: bounds on the encoded key suffix (after the bucket byte). */
export interface RangeOptions {
  readonly gte?: Bytes;
  readonly lt?: Bytes;
  readonly reverse?: boolean;
  readonly limit?: number;
}

/**
 * A typed view of one bucket: keys and values go through codecs, writes are returned as batch
 * operations so a caller can commit many repositories in one atomic batch. Anything stored that
 * does not decode is reported as CORRUPT with the bucket and key, never returned half-read.
 * Modelled on lodestar's `packages/db/src/abstractRepository.ts`.
 */
export interface Repository<K, V> {
  readonly name: string;
  readonly bucket: BucketId;
  /** The full database key of `id` (bucket byte + encoded id). */
  key(id: K): Bytes;
  get(id: K): Promise<V | undefined>;
  /** Raw stored bytes of `id`, for serving exact bytes to peers. */
  getBytes(id: K): Promise<Bytes | undefined>;
  has(id: K): Promise<boolean>;
  putOp(id: K, value: V): BatchOp;
  delOp(id: K): BatchOp;
  /** Entries in key order, bounded by encoded key suffixes (see {@link RangeOptions}). */
  entries(range?: RangeOptions): AsyncIterable<[K, V]>;
}

/** Builds the database key of an id in a bucket. */
export function bucketKey(bucket: BucketId, suffix: Bytes): Bytes {
  const out = new Uint8Array(suffix.length + 1);
  out[0] = bucket;
  out.set(suffix, 1);
  return out;
}

/** The exclusive upper bound of every key that starts with `prefix` (undefined if none exists). */
export function prefixEnd(prefix: Bytes): Bytes | undefined {
  const end = Uint8Array.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return undefined;
}

function corrupt(name: string, key: Bytes, err: unknown): StorageError {
  return new StorageError(
    'CORRUPT',
    `${name} at key ${toHex(key)}: stored bytes do not decode (${String(err)})`,
    {
      repository: name,
      key: toHex(key),
      cause: err instanceof Error ? err.message : String(err),
    },
  );
}

/** Creates a typed repository over one bucket of `kv`. */
export function createRepository<K, V>(
  kv: KvStore,
  name: string,
  bucket: BucketId,
  keyCodec: Codec<K>,
  valueCodec: Codec<V>,
): Repository<K, V> {
  const key = (id: K): Bytes => bucketKey(bucket, keyCodec.encode(id));
  const decodeValue = (k: Bytes, bytes: Bytes): V => {
    try {
      return valueCodec.decode(bytes);
    } catch (err) {
      throw corrupt(name, k, err);
    }
  };
  const decodeKey = (k: Bytes): K => {
    try {
      return keyCodec.decode(k.subarray(1));
    } catch (err) {
      throw corrupt(name, k, err);
    }
  };
  return {
    name,
    bucket,
    key,
    async get(id) {
      const k = key(id);
      const bytes = await kv.get(k);
      return bytes === undefined ? undefined : decodeValue(k, bytes);
    },
    getBytes: (id) => kv.get(key(id)),
    async has(id) {
      return (await kv.get(key(id))) !== undefined;
    },
    putOp: (id, value) => ({ type: 'put', key: key(id), value: valueCodec.encode(value) }),
    delOp: (id) => ({ type: 'del', key: key(id) }),
    async *entries(range = {}) {
      const lower = bucketKey(bucket, range.gte ?? new Uint8Array(0));
      const upper = range.lt === undefined ? prefixEnd(Uint8Array.of(bucket)) : bucketKey(bucket, range.lt);
      for await (const [k, v] of kv.scan({
        gte: lower,
        ...(upper === undefined ? {} : { lt: upper }),
        ...(range.reverse === undefined ? {} : { reverse: range.reverse }),
        ...(range.limit === undefined ? {} : { limit: range.limit }),
      })) {
        yield [decodeKey(k), decodeValue(k, v)];
      }
    },
  };
}

// Key codecs. Heights and indexes are big-endian and fixed-width so byte order is numeric order.

/** Largest height the 8-byte key encoding accepts: every safe integer. */
const MAX_HEIGHT = Number.MAX_SAFE_INTEGER;
/** Largest receipt or event index the 4-byte key encoding accepts. */
const MAX_INDEX = 0xffff_ffff;

function checkWidth(bytes: Bytes, length: number, what: string): void {
  if (bytes.length !== length) throw new Error(`${what}: expected ${length} key bytes, got ${bytes.length}`);
}

/** Writes a height as 8 big-endian bytes at `offset`. */
export function writeHeight(out: Uint8Array, offset: number, height: number): void {
  if (!Number.isSafeInteger(height) || height < 0 || height > MAX_HEIGHT) {
    throw new StorageError('BAD_QUERY', `height ${height}: expected a non-negative safe integer`, { height });
  }
  // Byte writes rather than a DataView per call: keys are built for every index of every block.
  const hi = Math.floor(height / 0x1_0000_0000);
  const lo = height >>> 0;
  out[offset] = hi >>> 24;
  out[offset + 1] = (hi >>> 16) & 0xff;
  out[offset + 2] = (hi >>> 8) & 0xff;
  out[offset + 3] = hi & 0xff;
  out[offset + 4] = lo >>> 24;
  out[offset + 5] = (lo >>> 16) & 0xff;
  out[offset + 6] = (lo >>> 8) & 0xff;
  out[offset + 7] = lo & 0xff;
}

/** Reads an 8-byte big-endian height at `offset`. */
export function readHeight(bytes: Bytes, offset: number): number {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const value = view.getUint32(offset) * 0x1_0000_0000 + view.getUint32(offset + 4);
  if (!Number.isSafeInteger(value)) throw new Error(`height at ${offset} exceeds 2^53`);
  return value;
}

/** Writes a 4-byte big-endian index at `offset`. */
export function writeIndex(out: Uint8Array, offset: number, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX) {
    throw new StorageError('BAD_QUERY', `index ${index}: expected an integer in [0, ${MAX_INDEX}]`, {
      index,
    });
  }
  out[offset] = index >>> 24;
  out[offset + 1] = (index >>> 16) & 0xff;
  out[offset + 2] = (index >>> 8) & 0xff;
  out[offset + 3] = index & 0xff;
}

/** Reads a 4-byte big-endian index at `offset`. */
export function readIndex(bytes: Bytes, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset);
}

/** Key codec of a height: 8 bytes big-endian. */
export const heightKey: Codec<number> = {
  encode(height) {
    const out = new Uint8Array(8);
    writeHeight(out, 0, height);
    return out;
  },
  decode(bytes) {
    checkWidth(bytes, 8, 'height key');
    return readHeight(bytes, 0);
  },
};

/** Key codec of a fixed-length byte string (a hash). */
export function fixedBytesKey(length: number): Codec<Bytes> {
  return {
    encode(bytes) {
      if (bytes.length !== length) {
        throw new StorageError('BAD_QUERY', `key: expected ${length} bytes, got ${bytes.length}`, { length });
      }
      return bytes;
    },
    decode(bytes) {
      checkWidth(bytes, length, 'hash key');
      return Uint8Array.from(bytes);
    },
  };
}

/** Position of a receipt in the chain. */
export interface ReceiptPosition {
  readonly height: number;
  readonly receiptIndex: number;
}

/** Key codec of a receipt position: height (8 bytes) + receipt index (4 bytes). */
export const receiptPositionKey: Codec<ReceiptPosition> = {
  encode(p) {
    const out = new Uint8Array(12);
    writeHeight(out, 0, p.height);
    writeIndex(out, 8, p.receiptIndex);
    return out;
  },
  decode(bytes) {
    checkWidth(bytes, 12, 'receipt key');
    return { height: readHeight(bytes, 0), receiptIndex: readIndex(bytes, 8) };
  },
};

/** Position of an event in the chain; it orders events and serves as a query cursor. */
export interface EventPosition {
  readonly height: number;
  /** Index of the receipt (transaction or scheduled callback) in its block. */
  readonly receiptIndex: number;
  /** Index of the event within its receipt. */
  readonly eventIndex: number;
}

/** Encoded width of an {@link EventPosition}. */
export const EVENT_POSITION_BYTES = 16;

/** Key codec of an event position: height (8) + receipt index (4) + event index (4). */
export const eventPositionKey: Codec<EventPosition> = {
  encode(p) {
    const out = new Uint8Array(EVENT_POSITION_BYTES);
    writeHeight(out, 0, p.height);
    writeIndex(out, 8, p.receiptIndex);
    writeIndex(out, 12, p.eventIndex);
    return out;
  },
  decode(bytes) {
    checkWidth(bytes, EVENT_POSITION_BYTES, 'event key');
    return {
      height: readHeight(bytes, 0),
      receiptIndex: readIndex(bytes, 8),
      eventIndex: readIndex(bytes, 12),
    };
  },
};
