import { Packr } from 'msgpackr';
import { bytesEqual, type Bytes } from './bytes.ts';
import { CodecError } from './errors.ts';

/**
 * A canonical value: what may appear in anything hashed or signed (contract arguments, return
 * values, event data). No floats, no undefined, no maps with varying key order: objects are
 * encoded with their keys sorted. Integers have one representation each: a safe integer is a
 * number, an integer beyond 2^53 a bigint (within 64 bits), and every integer takes the shortest
 * MessagePack integer encoding (never a float).
 */
export type Value = null | boolean | number | bigint | string | Bytes | Value[] | { [key: string]: Value };

/** Limits that keep a decoded value from exhausting the stack or memory. */
export const MAX_VALUE_DEPTH = 64;

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: true,
  // 'auto': 64-bit integers decode to numbers when safe, bigints otherwise (msgpackr's types omit it).
  int64AsType: 'auto' as 'bigint',
  variableMapSize: true,
  bundleStrings: false,
  moreTypes: false,
  structuredClone: false,
});

const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;

/**
 * msgpackr writes numbers beyond 32 bits as float64; integers must stay integers, so those go
 * through as bigint (int64/uint64). Copies only the containers that hold such a number.
 */
function widenIntegers(v: unknown): unknown {
  if (typeof v === 'number') {
    return v >>> 0 === v || v >> 0 === v || !Number.isInteger(v) || Math.abs(v) > 2 ** 53 ? v : BigInt(v);
  }
  if (typeof v !== 'object' || v === null || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < v.length; i++) {
      const w = widenIntegers(v[i]);
      if (w !== v[i]) (out ??= v.slice())[i] = w;
    }
    return out ?? v;
  }
  let out: Record<string, unknown> | undefined;
  for (const k of Object.keys(v)) {
    const x = (v as Record<string, unknown>)[k];
    const w = widenIntegers(x);
    if (w !== x) (out ??= { ...(v as Record<string, unknown>) })[k] = w;
  }
  return out ?? v;
}

/** Encodes an already-canonical structure to MessagePack bytes. */
export function pack(value: unknown): Bytes {
  return packr.pack(widenIntegers(value));
}

/**
 * Decodes MessagePack bytes and insists they are canonical: exactly one value, no trailing bytes,
 * and re-encoding gives the same bytes (so one value has exactly one accepted encoding).
 */
export function unpackCanonical(bytes: Bytes, what: string): unknown {
  if (!(bytes instanceof Uint8Array)) {
    throw new CodecError('MALFORMED', `${what}: expected bytes`, { what });
  }
  let values: unknown[];
  try {
    values = packr.unpackMultiple(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) ?? [];
  } catch (err) {
    throw new CodecError('MALFORMED', `${what}: not valid MessagePack (${(err as Error).message})`, { what });
  }
  if (values.length !== 1) {
    throw new CodecError(
      values.length === 0 ? 'MALFORMED' : 'TRAILING_BYTES',
      values.length === 0 ? `${what}: empty input` : `${what}: trailing bytes after the encoded value`,
      { what },
    );
  }
  const value = values[0];
  const again = pack(value);
  if (!bytesEqual(again, bytes)) {
    throw new CodecError('NON_CANONICAL', `${what}: not the canonical encoding of its value`, { what });
  }
  return value;
}

function fail(path: string, expected: string, got: unknown): never {
  const kind = got === null ? 'null' : Array.isArray(got) ? 'array' : typeof got;
  throw new CodecError('WRONG_SHAPE', `${path}: expected ${expected}, got ${kind}`, { path, expected });
}

/**
 * Validates that `v` is a canonical Value and returns it with object keys in sorted order and
 * every object's prototype plain. Throws CodecError naming the path of the first bad part.
 */
export function canonicalValue(v: unknown, path = 'value', depth = 0): Value {
  if (depth > MAX_VALUE_DEPTH) {
    throw new CodecError('TOO_LARGE', `${path}: nested deeper than ${MAX_VALUE_DEPTH}`, { path });
  }
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'bigint':
      if (v < MIN_INT64 || v > MAX_UINT64) {
        throw new CodecError('UNSUPPORTED_VALUE', `${path}: integers must fit in 64 bits`, { path });
      }
      return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
    case 'number':
      // 2^53 itself decodes as a number under int64AsType 'auto'; it belongs to the bigint range.
      if (Number.isInteger(v) && Math.abs(v) === 2 ** 53) return BigInt(v);
      if (!Number.isSafeInteger(v)) {
        throw new CodecError(
          'UNSUPPORTED_VALUE',
          `${path}: only safe integers are allowed (use minor units, or bigint beyond 2^53)`,
          { path },
        );
      }
      return Object.is(v, -0) ? 0 : v;
    case 'object': {
      if (v === null) return null;
      if (v instanceof Uint8Array) return v;
      if (Array.isArray(v)) {
        const out: Value[] = new Array<Value>(v.length);
        for (let i = 0; i < v.length; i++) out[i] = canonicalValue(v[i], `${path}[${i}]`, depth + 1);
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) fail(path, 'a plain object', v);
      const keys = Object.keys(v).sort();
      const out: Record<string, Value> = {};
      for (const k of keys) {
        if (k === '__proto__') {
          throw new CodecError('UNSUPPORTED_VALUE', `${path}: the key "__proto__" is not allowed`, { path });
        }
        out[k] = canonicalValue((v as Record<string, unknown>)[k], `${path}.${k}`, depth + 1);
      }
      return out;
    }
    default:
      throw new CodecError('UNSUPPORTED_VALUE', `${path}: ${typeof v} cannot be encoded`, { path });
  }
}

/** Canonical bytes of a Value. */
export function encodeValue(v: unknown): Bytes {
  return pack(canonicalValue(v));
}

/** Decodes canonical bytes of a Value. */
export function decodeValue(bytes: Bytes, what = 'value'): Value {
  return canonicalValue(unpackCanonical(bytes, what), what);
}

// Shape readers used by decoders: each names the field it rejects.

/** Reads a fixed-length array. */
export function readArray(v: unknown, length: number, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, `an array of ${length}`, v);
  if (v.length !== length) {
    throw new CodecError('WRONG_SHAPE', `${path}: expected ${length} fields, got ${v.length}`, { path });
  }
  return v;
}

/** Reads a variable-length array of at most `max` items. */
export function readList(v: unknown, max: number, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, 'an array', v);
  if (v.length > max) {
    throw new CodecError('TOO_LARGE', `${path}: at most ${max} items, got ${v.length}`, { path, max });
  }
  return v;
}

/** Reads a byte string, optionally of an exact length. */
export function readBytes(v: unknown, path: string, length?: number, maxLength = Infinity): Bytes {
  if (!(v instanceof Uint8Array)) fail(path, 'bytes', v);
  if (length !== undefined && v.length !== length) {
    throw new CodecError('WRONG_SHAPE', `${path}: expected ${length} bytes, got ${v.length}`, { path });
  }
  if (v.length > maxLength) {
    throw new CodecError('TOO_LARGE', `${path}: at most ${maxLength} bytes`, { path, maxLength });
  }
  return v;
}

/** Reads a non-negative safe integer. */
export function readUint(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(path, 'a non-negative integer', v);
  return v;
}

/** Reads a non-negative integer that may exceed 2^53 (as a bigint whatever its size). */
export function readBigUint(v: unknown, path: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v !== 'bigint' || v < 0n) fail(path, 'a non-negative 64-bit integer', v);
  return v;
}

/** Reads a string of at most `maxLength` UTF-16 code units. */
export function readString(v: unknown, path: string, maxLength = 1024): string {
  if (typeof v !== 'string') fail(path, 'a string', v);
  if (v.length > maxLength) {
    throw new CodecError('TOO_LARGE', `${path}: at most ${maxLength} characters`, { path, maxLength });
  }
  return v;
}

/** Reads one of a fixed set of strings. */
export function readEnum<T extends string>(v: unknown, allowed: readonly T[], path: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    fail(path, `one of ${allowed.join(', ')}`, v);
  }
  return v as T;
}
