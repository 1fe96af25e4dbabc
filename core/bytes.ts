import { CryptoError } from './errors.ts';

/** Raw bytes. Buffers are accepted wherever bytes are, since Buffer extends Uint8Array. */
export type Bytes = Uint8Array;

const HEX_RE = /^0x(?:[0-9a-fA-F]{2})*$/;

/** Encodes bytes as lowercase 0x-prefixed hex. */
export function toHex(bytes: Bytes): string {
  return '0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

/** Decodes 0x-prefixed hex; throws a CryptoError naming the field on anything else. */
export function fromHex(hex: string, field = 'hex', expectedLength?: number): Bytes {
  if (typeof hex !== 'string' || !HEX_RE.test(hex)) {
    throw new CryptoError('BAD_HEX', `${field}: expected 0x-prefixed hex with an even number of digits`, {
      field,
    });
  }
  const out = Buffer.from(hex.slice(2), 'hex');
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new CryptoError('BAD_HEX', `${field}: expected ${expectedLength} bytes, got ${out.length}`, {
      field,
      expectedLength,
      actualLength: out.length,
    });
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** True when both byte strings are equal. Not constant-time; use only on public data. */
export function bytesEqual(a: Bytes, b: Bytes): boolean {
  return Buffer.compare(a, b) === 0;
}

/** Lexicographic comparison of byte strings, for sorting. */
export function compareBytes(a: Bytes, b: Bytes): number {
  return Buffer.compare(a, b);
}

/** Concatenates byte strings. */
export function concatBytes(...parts: Bytes[]): Bytes {
  return Buffer.concat(parts);
}

/** UTF-8 encoding of a string. */
export function utf8(s: string): Bytes {
  return Buffer.from(s, 'utf8');
}
