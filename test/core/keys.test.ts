// Goal: node:crypto Ed25519 and @noble/curves agree: a signature made by one verifies in the other.
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../core/bytes.ts';
import { sha256 } from '../../core/hash.ts';
import { addressOf, generateKeyPair, keyPairFromSecret, sign, verify } from '../../core/keys.ts';

describe('Ed25519 through node:crypto', () => {
  it('derives the same public key as @noble/curves', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (seed) => {
        expect(toHex(keyPairFromSecret(seed).publicKey)).toBe(toHex(ed25519.getPublicKey(seed)));
      }),
      { numRuns: 200 },
    );
  });

  it('signatures cross-verify in both directions', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 512 }),
        (seed, msg) => {
          const kp = keyPairFromSecret(seed);
          const ours = sign(msg, kp.secretKey);
          const theirs = ed25519.sign(msg, seed);
          expect(toHex(ours)).toBe(toHex(theirs)); // RFC 8032 signatures are deterministic
          expect(ed25519.verify(ours, msg, kp.publicKey)).toBe(true);
          expect(verify(theirs, msg, kp.publicKey)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rejects a flipped bit in message, signature or key, and malformed inputs, without throwing', () => {
    const kp = generateKeyPair();
    const msg = Buffer.from('confirm RCV-1');
    const sig = sign(msg, kp.secretKey);
    expect(verify(sig, msg, kp.publicKey)).toBe(true);
    const badSig = Uint8Array.from(sig);
    badSig[5]! ^= 1;
    expect(verify(badSig, msg, kp.publicKey)).toBe(false);
    expect(verify(sig, Buffer.from('confirm RCV-2'), kp.publicKey)).toBe(false);
    const otherKey = generateKeyPair().publicKey;
    expect(verify(sig, msg, otherKey)).toBe(false);
    expect(verify(sig.subarray(0, 63), msg, kp.publicKey)).toBe(false);
    expect(verify(sig, msg, kp.publicKey.subarray(0, 31))).toBe(false);
    expect(verify(sig, msg, new Uint8Array(32).fill(0xff))).toBe(false);
  });

  it('rejects a malleated signature (S + L) that lenient verifiers might accept', () => {
    const kp = generateKeyPair();
    const msg = Buffer.from('pay 100');
    const sig = Buffer.from(sign(msg, kp.secretKey));
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = BigInt('0x' + Buffer.from(sig.subarray(32)).reverse().toString('hex'));
    const malleated = Buffer.from((s + L).toString(16).padStart(64, '0'), 'hex').reverse();
    const forged = Buffer.concat([sig.subarray(0, 32), malleated]);
    expect(verify(forged, msg, kp.publicKey)).toBe(false);
  });

  it('hashes like @noble/hashes and derives addresses as the first 20 bytes of SHA-256(publicKey)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1000 }), (data) => {
        expect(toHex(sha256(data))).toBe(toHex(nobleSha256(data)));
      }),
    );
    const kp = generateKeyPair();
    expect(toHex(addressOf(kp.publicKey))).toBe(toHex(nobleSha256(kp.publicKey).subarray(0, 20)));
    expect(() => addressOf(new Uint8Array(31))).toThrow(/32 bytes/);
  });
});
