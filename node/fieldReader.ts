/**
 * Readers for operator-written JSON (genesis, node config). Every check names the field it
 * rejects, as a path from the document root (`genesis.validators[2].publicKey`), and says what
 * was expected, so an operator can fix a hand-edited file without reading our code.
 */
import { fromHex, type Bytes } from '../core/bytes.ts';

/** Builds the module's error for a bad field; the reader throws what it returns. */
export type FieldErrorFactory = (field: string, message: string) => Error;

/** Typed readers that throw the module's error naming the field. */
export interface FieldReader {
  /** Fails with `${path}: ${message}`. */
  fail(path: string, message: string): never;
  /** A plain object with only `allowed` keys and every `required` one. */
  object(
    v: unknown,
    path: string,
    allowed: readonly string[],
    required: readonly string[],
  ): Record<string, unknown>;
  /** A string of `minLength`..`maxLength` characters, matching `pattern` when given. */
  string(
    v: unknown,
    path: string,
    opts?: { minLength?: number; maxLength?: number; pattern?: RegExp; describe?: string },
  ): string;
  /** An integer in [min, max]. */
  integer(v: unknown, path: string, min: number, max: number): number;
  /** A finite number in [min, max]. */
  number(v: unknown, path: string, min: number, max: number): number;
  /** An array of `min`..`max` items. */
  array(v: unknown, path: string, min: number, max: number): unknown[];
  /** 0x-hex of exactly `length` bytes. */
  hex(v: unknown, path: string, length: number): Bytes;
  /** One of the allowed strings. */
  oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T;
  /** A boolean. */
  boolean(v: unknown, path: string): boolean;
}

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** Creates a reader that throws errors made by `makeError`. */
export function createFieldReader(makeError: FieldErrorFactory): FieldReader {
  const fail = (path: string, message: string): never => {
    throw makeError(path, `${path}: ${message}`);
  };
  const expected = (path: string, what: string, got: unknown): never =>
    fail(path, `expected ${what}, got ${kind(got)}`);

  return {
    fail,
    object(v, path, allowed, required) {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return expected(path, 'an object', v);
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return expected(path, 'a plain object', v);
      const obj = v as Record<string, unknown>;
      for (const k of Object.keys(obj)) {
        if (!allowed.includes(k)) fail(`${path}.${k}`, `unknown field (allowed: ${allowed.join(', ')})`);
      }
      for (const k of required) {
        if (obj[k] === undefined) fail(`${path}.${k}`, 'missing');
      }
      return obj;
    },
    string(v, path, opts = {}) {
      const { minLength = 1, maxLength = 1024, pattern, describe } = opts;
      const what =
        describe ??
        (pattern === undefined
          ? `a string of ${minLength}..${maxLength} characters`
          : `a string matching ${pattern.source}`);
      if (typeof v !== 'string') return expected(path, what, v);
      if (v.length < minLength || v.length > maxLength) return expected(path, what, v);
      if (pattern !== undefined && !pattern.test(v)) return expected(path, what, v);
      return v;
    },
    integer(v, path, min, max) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
        return expected(path, `an integer in [${min}, ${max}]`, v);
      }
      return v;
    },
    number(v, path, min, max) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
        return expected(path, `a number in [${min}, ${max}]`, v);
      }
      return v;
    },
    array(v, path, min, max) {
      if (!Array.isArray(v)) return expected(path, `an array of ${min}..${max} items`, v);
      const items = v as unknown[];
      if (items.length < min || items.length > max)
        fail(path, `expected ${min}..${max} items, got ${items.length}`);
      return items;
    },
    hex(v, path, length) {
      try {
        return fromHex(v as string, path, length);
      } catch {
        return expected(path, `0x-hex of ${length} bytes`, v);
      }
    },
    oneOf(v, path, allowed) {
      if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
        return expected(path, `one of ${allowed.join(', ')}`, v);
      }
      return v as (typeof allowed)[number];
    },
    boolean(v, path) {
      if (typeof v !== 'boolean') return expected(path, 'true or false', v);
      return v;
    },
  };
}
