import { encodeValue } from '../core/codec.ts';
import { latin1Text } from './byteText.ts';

/**
 * Canonical bytes of a transaction's arguments as the latin1 string the guest takes, written
 * directly (the same rules as the guest's encoder in vm/guestRuntime.js, which is byte-identical to
 * core/codec.ts): every call transaction needs its arguments encoded, and going through msgpackr,
 * `canonicalValue` and a Buffer costs more than the call's own host work.
 *
 * Anything unusual (a value core/codec.ts would refuse, a lone surrogate, nesting beyond 64, a
 * class instance) goes through `encodeValue`, so errors and their messages are core's own.
 * Byte-identical to `encodeValue` (test/vm/receiptCodec.test.ts).
 */
export function argsText(v: unknown): string {
  const out = enc(v, 0);
  if (out !== null) return out;
  const b = encodeValue(v);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

const MAX_DEPTH = 64;

function u16(n: number): string {
  return String.fromCharCode((n >>> 8) & 255, n & 255);
}
function u32(n: number): string {
  return String.fromCharCode((n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255);
}
function i64(v: bigint): string {
  const u = BigInt.asUintN(64, v);
  return u32(Number(u >> 32n)) + u32(Number(u & 0xffffffffn));
}

function int(n: number): string {
  if (n >= 0) {
    if (n < 128) return String.fromCharCode(n);
    if (n < 256) return '\xcc' + String.fromCharCode(n);
    if (n < 65536) return '\xcd' + u16(n);
    if (n < 4294967296) return '\xce' + u32(n);
    return '\xd3' + i64(BigInt(n));
  }
  if (n >= -32) return String.fromCharCode(256 + n);
  if (n >= -128) return '\xd0' + String.fromCharCode(n & 255);
  if (n >= -32768) return '\xd1' + u16(n & 65535);
  if (n >= -2147483648) return '\xd2' + u32(n >>> 0);
  return '\xd3' + i64(BigInt(n));
}

function str(s: string): string | null {
  let b = s;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) > 127) {
      if (!s.isWellFormed()) return null;
      b = Buffer.from(s, 'utf8').toString('latin1');
      break;
    }
  }
  const n = b.length;
  if (n < 32) return String.fromCharCode(160 | n) + b;
  if (n < 256) return '\xd9' + String.fromCharCode(n) + b;
  if (n < 65536) return '\xda' + u16(n) + b;
  return '\xdb' + u32(n) + b;
}

function isIndexKey(k: string): boolean {
  const n = k.length;
  if (n === 0 || n > 10) return false;
  for (let i = 0; i < n; i++) {
    const c = k.charCodeAt(i);
    if (c < 48 || c > 57 || (i === 0 && c === 48 && n > 1)) return false;
  }
  return Number(k) <= 4294967294;
}

/** The encoding, or null when `encodeValue` must decide. */
function enc(v: unknown, depth: number): string | null {
  if (depth > MAX_DEPTH) return null;
  switch (typeof v) {
    case 'boolean':
      return v ? '\xc3' : '\xc2';
    case 'number':
      if (!Number.isSafeInteger(v)) return null;
      return int(v === 0 ? 0 : v);
    case 'bigint':
      if (v < -9223372036854775808n || v > 18446744073709551615n) return null;
      if (v >= -9007199254740991n && v <= 9007199254740991n) return int(Number(v));
      return (v >= 9223372036854775808n ? '\xcf' : '\xd3') + i64(v);
    case 'string':
      return str(v);
    case 'object': {
      if (v === null) return '\xc0';
      if (v instanceof Uint8Array) {
        const n = v.length;
        const b = Buffer.from(v.buffer, v.byteOffset, n).toString('latin1');
        return (
          (n < 256 ? '\xc4' + String.fromCharCode(n) : n < 65536 ? '\xc5' + u16(n) : '\xc6' + u32(n)) + b
        );
      }
      if (Array.isArray(v)) {
        const n = v.length;
        let out = n < 16 ? String.fromCharCode(144 | n) : n < 65536 ? '\xdc' + u16(n) : '\xdd' + u32(n);
        for (let i = 0; i < n; i++) {
          const e = enc(v[i], depth + 1);
          if (e === null) return null;
          out += e;
        }
        return out;
      }
      const proto: unknown = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return null;
      // Key order of core/codec.ts: integer-like keys first (JavaScript enumerates them first,
      // ascending), then the others by UTF-16 code units.
      const keys = Object.keys(v);
      let j = 0;
      while (j < keys.length && isIndexKey(keys[j]!)) j++;
      const tail = keys.slice(j).sort();
      const n = keys.length;
      let out = n < 16 ? String.fromCharCode(128 | n) : n < 65536 ? '\xde' + u16(n) : '\xdf' + u32(n);
      for (let i = 0; i < n; i++) {
        const k = i < j ? keys[i]! : tail[i - j]!;
        if (k === '__proto__') return null;
        const ks = str(k);
        const e = enc((v as Record<string, unknown>)[k], depth + 1);
        if (ks === null || e === null) return null;
        out += ks + e;
      }
      return out;
    }
    default:
      return null;
  }
}

/**
 * The canonical bytes of a call transaction's arguments as latin1, read out of its signed body
 * where they already are (`encodeTxBody` packs tag, chainId, from, nonce, kind, contract, method,
 * args, gasLimit, each in its canonical form, and a decoded body is canonical): skipping the seven
 * fields before them by their headers costs far less than encoding `tx.args` again (~0.5 us per
 * transfer measured). Anything unexpected in the body falls back to {@link argsText}, so the
 * result is always `argsText(stx.tx.args)` (tested in test/vm/receiptCodec.test.ts).
 */
export function txArgsText(stx: {
  readonly tx: { readonly args: unknown; readonly gasLimit: number };
  readonly body: Uint8Array;
}): string {
  const b = stx.body;
  const g = stx.tx.gasLimit;
  // The shortest unsigned form of gasLimit ends the body.
  const gasLength = g < 128 ? 1 : g < 256 ? 2 : g < 65536 ? 3 : g < 4294967296 ? 5 : 9;
  let p = 1;
  if (b.length < 10 || b[0] !== 0x99) return argsText(stx.tx.args);
  for (let field = 0; field < 7 && p < b.length; field++) {
    const t = b[p]!;
    if (t < 0x80) p += 1;
    else if (t >= 0xa0 && t < 0xc0) p += 1 + (t & 31);
    else if (t === 0xcc) p += 2;
    else if (t === 0xcd) p += 3;
    else if (t === 0xce) p += 5;
    else if (t === 0xcf) p += 9;
    else if ((t === 0xd9 || t === 0xc4) && p + 1 < b.length) p += 2 + b[p + 1]!;
    else if ((t === 0xda || t === 0xc5) && p + 2 < b.length) p += 3 + ((b[p + 1]! << 8) | b[p + 2]!);
    else return argsText(stx.tx.args);
  }
  const end = b.length - gasLength;
  const gasHead = gasLength === 1 ? b[end]! : [0, 0, 0xcc, 0xcd, 0, 0xce, 0, 0, 0, 0xcf][gasLength];
  if (p >= end || b[end] !== gasHead) return argsText(stx.tx.args);
  return latin1Text(b, p, end);
}
