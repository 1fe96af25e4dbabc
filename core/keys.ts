import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign as nodeSign,
  verify as nodeVerify,
  type KeyObject,
} from 'node:crypto';
import { toHex, type Bytes } from './bytes.ts';
import { CryptoError } from './errors.ts';
import { sha256 } from './hash.ts';

/** Ed25519 public key length in bytes. */
export const PUBLIC_KEY_BYTES = 32;
/** Ed25519 private key (seed) length in bytes. */
export const SECRET_KEY_BYTES = 32;
/** Ed25519 signature length in bytes. */
export const SIGNATURE_BYTES = 64;
/** Address length in bytes: the first 20 bytes of SHA-256 of the public key. */
export const ADDRESS_BYTES = 20;

// DER prefixes that wrap a raw Ed25519 key as PKCS#8 / SPKI (RFC 8410).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** An Ed25519 key pair: the 32-byte seed and the 32-byte public key. */
export interface KeyPair {
  readonly secretKey: Bytes;
  readonly publicKey: Bytes;
}

/**
 * Verifier key objects, cached per public key: building a KeyObject costs more than a verify.
 * Bounded because peers and clients choose which keys arrive; the oldest entry goes first.
 */
const MAX_CACHED_PUBLIC_KEYS = 100_000;
const publicKeyCache = new Map<string, KeyObject>();
const privateKeyCache = new WeakMap<Bytes, KeyObject>();

function assertLength(bytes: Bytes, length: number, what: string): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new CryptoError('BAD_KEY', `${what}: expected ${length} bytes`, {
      expected: length,
      actual: bytes instanceof Uint8Array ? bytes.length : typeof bytes,
    });
  }
}

function publicKeyObject(publicKey: Bytes): KeyObject {
  const id = Buffer.from(publicKey).toString('latin1');
  let key = publicKeyCache.get(id);
  if (key === undefined) {
    assertLength(publicKey, PUBLIC_KEY_BYTES, 'public key');
    try {
      key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' });
    } catch (err) {
      throw new CryptoError('BAD_KEY', 'public key: not a valid Ed25519 point', { cause: String(err) });
    }
    if (publicKeyCache.size >= MAX_CACHED_PUBLIC_KEYS) {
      const oldest = publicKeyCache.keys().next().value;
      if (oldest !== undefined) publicKeyCache.delete(oldest);
    }
    publicKeyCache.set(id, key);
  }
  return key;
}

function privateKeyObject(secretKey: Bytes): KeyObject {
  let key = privateKeyCache.get(secretKey);
  if (key === undefined) {
    assertLength(secretKey, SECRET_KEY_BYTES, 'secret key');
    key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, secretKey]), format: 'der', type: 'pkcs8' });
    privateKeyCache.set(secretKey, key);
  }
  return key;
}

/** Generates a fresh Ed25519 key pair from the operating system's CSPRNG. */
export function generateKeyPair(): KeyPair {
  const { privateKey } = generateKeyPairSync('ed25519');
  const der = privateKey.export({ format: 'der', type: 'pkcs8' });
  return keyPairFromSecret(new Uint8Array(der.subarray(der.length - SECRET_KEY_BYTES)));
}

/** Derives the key pair of a 32-byte Ed25519 seed. */
export function keyPairFromSecret(secretKey: Bytes): KeyPair {
  const priv = privateKeyObject(secretKey);
  const spki = createPublicKey(priv).export({ format: 'der', type: 'spki' });
  return { secretKey, publicKey: new Uint8Array(spki.subarray(spki.length - PUBLIC_KEY_BYTES)) };
}

/** Signs a message with Ed25519 (RFC 8032, deterministic). */
export function sign(message: Bytes, secretKey: Bytes): Bytes {
  return nodeSign(null, message, privateKeyObject(secretKey));
}

/**
 * Verifies an Ed25519 signature. Returns false for a wrong signature, a malformed signature or a
 * public key that is not a curve point; never throws on peer-supplied bytes.
 */
export function verify(signature: Bytes, message: Bytes, publicKey: Bytes): boolean {
  if (signature.length !== SIGNATURE_BYTES || publicKey.length !== PUBLIC_KEY_BYTES) return false;
  let key: KeyObject;
  try {
    key = publicKeyObject(publicKey);
  } catch {
    return false;
  }
  return nodeVerify(null, message, key, signature);
}

/** The address of a public key: the first 20 bytes of its SHA-256. */
export function addressOf(publicKey: Bytes): Bytes {
  assertLength(publicKey, PUBLIC_KEY_BYTES, 'public key');
  return sha256(publicKey).subarray(0, ADDRESS_BYTES);
}

/** The 0x-hex address of a public key. */
export function addressHexOf(publicKey: Bytes): string {
  return toHex(addressOf(publicKey));
}
