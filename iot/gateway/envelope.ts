/**
 * Per-recipient envelope encryption of a raw batch: one random AES-256-GCM data key encrypts the
 * batch; for each authorised lender the data key is wrapped under a key agreed by X25519 between
 * a fresh ephemeral key and the lender's public key, stretched by HKDF-SHA256. Only the holders of
 * the lenders' X25519 secret keys can open it; the batch is bound to its gateway, seqNo and root
 * by the GCM additional data, so a ciphertext cannot be passed off as another window's.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';
import { bytesEqual, concatBytes, type Bytes } from '../../core/bytes.ts';
import { pack, readArray, readBytes, readList, readString, unpackCanonical } from '../../core/codec.ts';
import { IotError } from './errors.ts';

/** Most recipients per envelope (the contract's lender bound). */
export const MAX_RECIPIENTS = 16;
const INFO = Buffer.from('trellis.iot.envelope.v1');

/** An encrypted batch. */
export interface Envelope {
  /** Binds the ciphertext to its window (e.g. `gw1:42:<root hex>`). */
  readonly context: string;
  readonly iv: Bytes;
  readonly ciphertext: Bytes;
  readonly tag: Bytes;
  readonly recipients: ReadonlyArray<{
    readonly id: string;
    readonly publicKey: Bytes;
    readonly ephemeral: Bytes;
    readonly iv: Bytes;
    readonly wrapped: Bytes;
    readonly tag: Bytes;
  }>;
}

/** An X25519 key pair for a lender. */
export function generateRecipientKey(): { secretKey: Bytes; publicKey: Bytes } {
  const secretKey = x25519.utils.randomSecretKey();
  return { secretKey, publicKey: x25519.getPublicKey(secretKey) };
}

function kek(shared: Bytes, ephemeral: Bytes, recipient: Bytes): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, concatBytes(ephemeral, recipient), INFO, 32));
}

function gcm(key: Bytes, iv: Bytes, data: Bytes, aad: Bytes): { ct: Bytes; tag: Bytes } {
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(data), c.final()]);
  return { ct, tag: c.getAuthTag() };
}

function ungcm(key: Bytes, iv: Bytes, ct: Bytes, tag: Bytes, aad: Bytes): Buffer {
  const d = createDecipheriv('aes-256-gcm', key, iv);
  d.setAAD(aad);
  d.setAuthTag(tag);
  try {
    return Buffer.concat([d.update(ct), d.final()]);
  } catch {
    throw new IotError('BAD_ENVELOPE', 'authentication failed: wrong key or tampered envelope', {});
  }
}

/** Encrypts `plaintext` for each recipient (`id` names the lender, `publicKey` its X25519 key). */
export function sealEnvelope(
  plaintext: Bytes,
  context: string,
  recipients: ReadonlyArray<{ id: string; publicKey: Bytes }>,
): Envelope {
  if (recipients.length > MAX_RECIPIENTS)
    throw new IotError('BAD_ENVELOPE', `at most ${MAX_RECIPIENTS} recipients`, {});
  const aad = Buffer.from(context, 'utf8');
  const dataKey = randomBytes(32);
  const iv = randomBytes(12);
  const body = gcm(dataKey, iv, plaintext, aad);
  const wrapped = recipients.map((r) => {
    const eph = x25519.utils.randomSecretKey();
    const ephemeral = x25519.getPublicKey(eph);
    const key = kek(x25519.getSharedSecret(eph, r.publicKey), ephemeral, r.publicKey);
    const wiv = randomBytes(12);
    const w = gcm(key, wiv, dataKey, aad);
    return { id: r.id, publicKey: r.publicKey, ephemeral, iv: wiv, wrapped: w.ct, tag: w.tag };
  });
  return { context, iv, ciphertext: body.ct, tag: body.tag, recipients: wrapped };
}

/** Opens an envelope with a recipient's X25519 secret key. */
export function openEnvelope(env: Envelope, secretKey: Bytes): Uint8Array {
  const publicKey = x25519.getPublicKey(secretKey);
  const r = env.recipients.find((x) => bytesEqual(x.publicKey, publicKey));
  if (r === undefined)
    throw new IotError('NOT_A_RECIPIENT', 'this key is not among the envelope recipients', {});
  const aad = Buffer.from(env.context, 'utf8');
  const dataKey = ungcm(
    kek(x25519.getSharedSecret(secretKey, r.ephemeral), r.ephemeral, publicKey),
    r.iv,
    r.wrapped,
    r.tag,
    aad,
  );
  return ungcm(dataKey, env.iv, env.ciphertext, env.tag, aad);
}

/** Canonical bytes of an envelope (what the anchor's batchHash covers). */
export function encodeEnvelope(e: Envelope): Bytes {
  return pack([
    e.context,
    e.iv,
    e.ciphertext,
    e.tag,
    e.recipients.map((r) => [r.id, r.publicKey, r.ephemeral, r.iv, r.wrapped, r.tag]),
  ]);
}

/** Decodes envelope bytes. */
export function decodeEnvelope(bytes: Bytes): Envelope {
  const a = readArray(unpackCanonical(bytes, 'envelope'), 5, 'envelope');
  return {
    context: readString(a[0], 'envelope.context'),
    iv: readBytes(a[1], 'envelope.iv', 12),
    ciphertext: readBytes(a[2], 'envelope.ciphertext'),
    tag: readBytes(a[3], 'envelope.tag', 16),
    recipients: readList(a[4], MAX_RECIPIENTS, 'envelope.recipients').map((x, i) => {
      const r = readArray(x, 6, `envelope.recipients[${i}]`);
      return {
        id: readString(r[0], 'id', 64),
        publicKey: readBytes(r[1], 'publicKey', 32),
        ephemeral: readBytes(r[2], 'ephemeral', 32),
        iv: readBytes(r[3], 'iv', 12),
        wrapped: readBytes(r[4], 'wrapped', 32),
        tag: readBytes(r[5], 'tag', 16),
      };
    }),
  };
}
