/**
 * The JSON mapping of every RPC parameter and result, defined once per type and used both ways:
 * the server parses params and writes results with it, the SDK writes params and parses results
 * with the same definitions, and docs/rpc.md is generated from their descriptions.
 *
 * Conventions (documented in docs/rpc.md):
 * - bytes (hashes, keys, addresses, signed transactions) are 0x-prefixed lowercase hex;
 * - integers are JSON numbers only when they are safe integers (|n| ≤ 2^53-1); larger integers are
 *   decimal strings, inside contract values tagged as `{"$bigint": "…"}`;
 * - contract values (arguments, return values, event data) map bytes to `{"$bytes": "0x…"}` and
 *   bigints to `{"$bigint": "…"}`; an object whose only key starts with `$` is wrapped as
 *   `{"$object": {…}}`, so the mapping is a bijection.
 */
import { fromHex, toHex, type Bytes } from '../core/bytes.ts';
import { MAX_VALUE_DEPTH, canonicalValue, type Value } from '../core/codec.ts';
import { TrellisError } from '../core/errors.ts';
import { RpcError } from './errors.ts';

/** A JSON value as JSON.parse returns it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** How a type is described in the generated reference. */
export interface TypeDoc {
  /** Short type text, e.g. `uint`, `hex (32 bytes)`, `object`. */
  readonly type: string;
  /** The fields of an object type, in order. */
  readonly fields?: readonly FieldDoc[];
  /** The item type of an array. */
  readonly items?: TypeDoc;
}

/** One object field in the generated reference. */
export interface FieldDoc {
  readonly name: string;
  readonly optional: boolean;
  readonly description: string;
  readonly type: TypeDoc;
}

/** A type with its JSON mapping: parse (JSON → value, validating) and toJson (value → JSON). */
export interface WireType<T> {
  readonly doc: TypeDoc;
  /** Validates and converts; throws RpcError INVALID_PARAMS whose message names `path`. */
  parse(json: unknown, path: string): T;
  toJson(value: T): Json;
}

/** The value type of a WireType. */
export type Infer<W> = W extends WireType<infer T> ? T : never;

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? `number ${v}` : `non-integer number`;
  return typeof v;
}

/** Throws the INVALID_PARAMS error of a field: what was expected and what arrived. */
export function invalid(path: string, expected: string, got: unknown): never {
  throw new RpcError('INVALID_PARAMS', `${path}: expected ${expected}, got ${kindOf(got)}`, { path });
}

/** True for a JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-negative safe integer, at most `max`. */
export function uint(max = Number.MAX_SAFE_INTEGER): WireType<number> {
  const expected = max === Number.MAX_SAFE_INTEGER ? 'a non-negative integer' : `an integer 0..${max}`;
  return {
    doc: { type: max === Number.MAX_SAFE_INTEGER ? 'uint' : `uint ≤ ${max}` },
    parse(json, path) {
      if (typeof json !== 'number' || !Number.isSafeInteger(json) || json < 0 || json > max) {
        if (typeof json === 'number' && Number.isInteger(json) && !Number.isSafeInteger(json)) {
          throw new RpcError(
            'INVALID_PARAMS',
            `${path}: ${json} is beyond 2^53-1 and cannot be represented exactly; expected ${expected}`,
            { path },
          );
        }
        invalid(path, expected, json);
      }
      return json;
    },
    toJson: (v) => v,
  };
}

/** A boolean. */
export function bool(): WireType<boolean> {
  return {
    doc: { type: 'boolean' },
    parse(json, path) {
      if (typeof json !== 'boolean') invalid(path, 'a boolean', json);
      return json;
    },
    toJson: (v) => v,
  };
}

/** A string of at most `maxLength` characters, optionally matching a pattern. */
export function str(maxLength: number, pattern?: RegExp): WireType<string> {
  const expected =
    pattern === undefined
      ? `a string of at most ${maxLength} characters`
      : `a string matching ${pattern.source}`;
  return {
    doc: {
      type: pattern === undefined ? `string (≤ ${maxLength} chars)` : `string matching \`${pattern.source}\``,
    },
    parse(json, path) {
      if (
        typeof json !== 'string' ||
        json.length > maxLength ||
        (pattern !== undefined && !pattern.test(json))
      ) {
        if (typeof json === 'string') {
          throw new RpcError('INVALID_PARAMS', `${path}: expected ${expected}, got "${json.slice(0, 80)}"`, {
            path,
          });
        }
        invalid(path, expected, json);
      }
      return json;
    },
    toJson: (v) => v,
  };
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(values: readonly T[]): WireType<T> {
  return {
    doc: { type: values.map((v) => `"${v}"`).join(' \\| ') },
    parse(json, path) {
      if (typeof json !== 'string' || !(values as readonly string[]).includes(json)) {
        invalid(path, `one of ${values.join(', ')}`, json);
      }
      return json as T;
    },
    toJson: (v) => v,
  };
}

/** Bytes as 0x-hex: exactly `length` bytes when given, otherwise at most `maxBytes`. */
export function hex(options: { length?: number; maxBytes?: number } = {}): WireType<Bytes> {
  const { length, maxBytes = 1024 * 1024 } = options;
  const what = length === undefined ? `0x-hex of at most ${maxBytes} bytes` : `0x-hex of ${length} bytes`;
  return {
    doc: { type: length === undefined ? 'hex' : `hex (${length} bytes)` },
    parse(json, path) {
      if (typeof json !== 'string') invalid(path, what, json);
      // Length check before decoding, so an oversize string costs nothing to refuse.
      if (json.length > 2 + 2 * maxBytes) {
        throw new RpcError(
          'INVALID_PARAMS',
          `${path}: expected ${what}, got ${(json.length - 2) / 2} bytes`,
          {
            path,
          },
        );
      }
      let bytes: Bytes;
      try {
        bytes = fromHex(json, path, length);
      } catch (err) {
        throw new RpcError('INVALID_PARAMS', (err as Error).message, { path });
      }
      return bytes;
    },
    toJson: (v) => toHex(v),
  };
}

/** A 32-byte hash as 0x-hex. */
export function hash32(): WireType<Bytes> {
  return hex({ length: 32 });
}

const DECIMAL_RE = /^-?(?:0|[1-9][0-9]{0,19})$/;
const MIN_INT64 = -(2n ** 63n);
const MAX_UINT64 = 2n ** 64n - 1n;

function parseDecimal(json: unknown, path: string): bigint {
  if (typeof json !== 'string' || !DECIMAL_RE.test(json)) invalid(path, 'a decimal integer string', json);
  const n = BigInt(json);
  if (n < MIN_INT64 || n > MAX_UINT64) {
    throw new RpcError('INVALID_PARAMS', `${path}: integer out of the 64-bit range`, { path });
  }
  return n;
}

/** A 64-bit integer as a decimal string (JSON numbers cannot carry 64 bits exactly). */
export function bigDecimal(): WireType<bigint> {
  return {
    doc: { type: 'decimal string (64-bit integer)' },
    parse: parseDecimal,
    toJson: (v) => v.toString(10),
  };
}

function valueFromJson(json: unknown, path: string, depth: number): unknown {
  if (depth > MAX_VALUE_DEPTH) {
    throw new RpcError('INVALID_PARAMS', `${path}: nested deeper than ${MAX_VALUE_DEPTH}`, { path });
  }
  if (json === null || typeof json === 'boolean' || typeof json === 'string') return json;
  if (typeof json === 'number') {
    if (!Number.isSafeInteger(json)) {
      throw new RpcError(
        'INVALID_PARAMS',
        `${path}: numbers must be safe integers (|n| ≤ 2^53-1); write larger integers as {"$bigint": "<decimal>"}`,
        { path },
      );
    }
    return json;
  }
  if (Array.isArray(json)) return json.map((x, i) => valueFromJson(x, `${path}[${i}]`, depth + 1));
  if (!isJsonObject(json)) invalid(path, 'a JSON value', json);
  const keys = Object.keys(json);
  if (keys.length === 1 && keys[0]!.startsWith('$')) {
    const tag = keys[0]!;
    const inner = json[tag];
    if (tag === '$bytes') return hex().parse(inner, `${path}.$bytes`);
    if (tag === '$bigint') return parseDecimal(inner, `${path}.$bigint`);
    if (tag === '$object') {
      if (!isJsonObject(inner)) invalid(`${path}.$object`, 'an object', inner);
      return plainObject(inner, `${path}.$object`, depth);
    }
    throw new RpcError(
      'INVALID_PARAMS',
      `${path}: unknown tag "${tag}"; single-key objects starting with "$" are tags ($bytes, $bigint, $object)`,
      { path },
    );
  }
  return plainObject(json, path, depth);
}

function plainObject(json: Record<string, unknown>, path: string, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(json)) {
    if (k === '__proto__') {
      throw new RpcError('INVALID_PARAMS', `${path}: the key "__proto__" is not allowed`, { path });
    }
    out[k] = valueFromJson(json[k], `${path}.${k}`, depth + 1);
  }
  return out;
}

/** Maps a contract value to JSON (see the module comment for the tags). */
export function valueToJson(v: Value): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string' || typeof v === 'number') return v;
  if (typeof v === 'bigint') return { $bigint: v.toString(10) };
  if (v instanceof Uint8Array) return { $bytes: toHex(v) };
  if (Array.isArray(v)) return v.map(valueToJson);
  const out: { [key: string]: Json } = {};
  const keys = Object.keys(v);
  for (const k of keys) out[k] = valueToJson(v[k]!);
  return keys.length === 1 && keys[0]!.startsWith('$') ? { $object: out } : out;
}

/** Parses the JSON form of a contract value; the result is canonical (core/codec.ts). */
export function valueFromJsonChecked(json: unknown, path: string): Value {
  const raw = valueFromJson(json, path, 0);
  try {
    return canonicalValue(raw, path);
  } catch (err) {
    if (err instanceof TrellisError) throw new RpcError('INVALID_PARAMS', err.message, { path });
    throw err;
  }
}

/** A contract value (arguments, return values, event data) in the tagged JSON mapping. */
export function value(): WireType<Value> {
  return {
    doc: { type: 'value' },
    parse: valueFromJsonChecked,
    toJson: valueToJson,
  };
}

/** Arbitrary JSON passed through as is (diagnostics), nesting bounded. */
export function anyJson(maxDepth = MAX_VALUE_DEPTH): WireType<Json> {
  function check(v: unknown, path: string, depth: number): Json {
    if (depth > maxDepth)
      throw new RpcError('INVALID_PARAMS', `${path}: nested deeper than ${maxDepth}`, { path });
    if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) invalid(path, 'a finite number', v);
      return v;
    }
    if (Array.isArray(v)) return v.map((x, i) => check(x, `${path}[${i}]`, depth + 1));
    if (!isJsonObject(v)) invalid(path, 'JSON', v);
    const out: { [key: string]: Json } = {};
    for (const k of Object.keys(v)) {
      if (k === '__proto__') continue;
      out[k] = check(v[k], `${path}.${k}`, depth + 1);
    }
    return out;
  }
  return { doc: { type: 'JSON' }, parse: (json, path) => check(json, path, 0), toJson: (v) => v };
}

/** A list of at most `max` items. */
export function array<T>(item: WireType<T>, max: number): WireType<T[]> {
  return {
    doc: { type: `array (≤ ${max})`, items: item.doc },
    parse(json, path) {
      if (!Array.isArray(json)) invalid(path, 'an array', json);
      if (json.length > max) {
        throw new RpcError('INVALID_PARAMS', `${path}: at most ${max} items, got ${json.length}`, { path });
      }
      return json.map((x, i) => item.parse(x, `${path}[${i}]`));
    },
    toJson: (v) => v.map((x) => item.toJson(x)),
  };
}

/** T or null. */
export function nullable<T>(inner: WireType<T>): WireType<T | null> {
  return {
    doc: { ...inner.doc, type: `${inner.doc.type} \\| null` },
    parse: (json, path) => (json === null ? null : inner.parse(json, path)),
    toJson: (v) => (v === null ? null : inner.toJson(v)),
  };
}

/** An object field: its type, whether it may be absent, and what it means. */
export interface Field<T, Optional extends boolean> {
  readonly type: WireType<T>;
  readonly optional: Optional;
  readonly description: string;
}

/** A required field. */
export function req<T>(type: WireType<T>, description: string): Field<T, false> {
  return { type, optional: false, description };
}

/** An optional field: absent or null in JSON, absent in the value. */
export function opt<T>(type: WireType<T>, description: string): Field<T, true> {
  return { type, optional: true, description };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyField = Field<any, boolean>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type FieldValue<F> = F extends Field<infer T, boolean> ? T : never;

/** The value type of an object with the given fields. */
export type ObjectOf<F extends Record<string, AnyField>> = Simplify<
  { readonly [K in keyof F as F[K]['optional'] extends false ? K : never]: FieldValue<F[K]> } & {
    readonly [K in keyof F as F[K]['optional'] extends true ? K : never]?: FieldValue<F[K]>;
  }
>;

/**
 * An object with exactly these fields: unknown keys (including `__proto__` and `constructor`)
 * are refused, so nothing a client sends can reach a prototype. `check` adds a rule across
 * fields and returns the message of a violation.
 */
export function object<F extends Record<string, AnyField>>(
  fields: F,
  check?: (v: ObjectOf<F>) => string | undefined,
): WireType<ObjectOf<F>> {
  const names = Object.keys(fields);
  const known = new Set(names);
  return {
    doc: {
      type: 'object',
      fields: names.map((name) => ({
        name,
        optional: fields[name]!.optional,
        description: fields[name]!.description,
        type: fields[name]!.type.doc,
      })),
    },
    parse(json, path) {
      if (!isJsonObject(json)) invalid(path, 'an object', json);
      for (const k of Object.keys(json)) {
        if (!known.has(k)) {
          const allowed = names.length === 0 ? 'none' : names.join(', ');
          throw new RpcError(
            'INVALID_PARAMS',
            `${path}: unknown field "${k.slice(0, 64)}" (allowed: ${allowed})`,
            {
              path: `${path}.${k.slice(0, 64)}`,
            },
          );
        }
      }
      const out: Record<string, unknown> = {};
      for (const name of names) {
        const f = fields[name]!;
        const raw = json[name];
        if (raw === undefined || (raw === null && f.optional)) {
          if (!f.optional)
            throw new RpcError('INVALID_PARAMS', `${path}.${name}: required`, { path: `${path}.${name}` });
          continue;
        }
        out[name] = f.type.parse(raw, `${path}.${name}`);
      }
      const value = out as ObjectOf<F>;
      const problem = check?.(value);
      if (problem !== undefined) throw new RpcError('INVALID_PARAMS', `${path}: ${problem}`, { path });
      return value;
    },
    toJson(v) {
      const out: { [key: string]: Json } = {};
      const rec = v as Record<string, unknown>;
      for (const name of names) {
        const x = rec[name];
        if (x === undefined) continue;
        out[name] = fields[name]!.type.toJson(x);
      }
      return out;
    },
  };
}

/** A type defined by hand over another JSON shape (e.g. a cursor string over a position). */
export function mapped<T, J>(
  base: WireType<J>,
  type: string,
  from: (j: J, path: string) => T,
  to: (v: T) => J,
): WireType<T> {
  return {
    doc: { ...base.doc, type },
    parse: (json, path) => from(base.parse(json, path), path),
    toJson: (v) => base.toJson(to(v)),
  };
}
