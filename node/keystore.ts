/**
 * Key files for validator and organisation-admin Ed25519 keys.
 *
 * An encrypted file stores the 32-byte seed under AES-256-GCM with a key derived from a passphrase
 * by scrypt; the scrypt parameters and salt are in the file so they can be raised later without
 * breaking old files. scrypt yields 64 bytes: the first half is the AES key, the second keys an
 * HMAC "check" value, so a wrong passphrase (check mismatch) is told apart from a damaged or
 * edited file (check matches, GCM authentication fails). The public key and address are bound
 * into GCM's additional data, so editing them is detected too.
 *
 * An unencrypted file exists for local development networks only: it says so in plain words, and
 * loading it requires `allowUnencrypted: true`.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  randomBytes,
  scrypt,
  timingSafeEqual,
} from 'node:crypto';
import { readFile, rename, rm, stat, writeFile, open } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { bytesEqual, fromHex, toHex, type Bytes } from '../core/bytes.ts';
import { TrellisError } from '../core/errors.ts';
import {
  addressHexOf,
  keyPairFromSecret,
  PUBLIC_KEY_BYTES,
  SECRET_KEY_BYTES,
  type KeyPair,
} from '../core/keys.ts';

/** Reasons a key file cannot be written or read. */
export type KeystoreErrorCode =
  /** The passphrase does not open this file. */
  | 'WRONG_PASSPHRASE'
  /** The file was damaged or edited: authentication failed or its keys do not match. */
  | 'TAMPERED'
  /** The file is not a Trellis key file (not JSON, wrong shape, bad hex). */
  | 'MALFORMED'
  /** A format version, KDF or cipher this build does not know, or KDF parameters out of bounds. */
  | 'UNSUPPORTED'
  /** The file is an unencrypted dev key and the caller did not allow that. */
  | 'UNENCRYPTED_NOT_ALLOWED'
  /** The file is encrypted and no passphrase was given. */
  | 'NO_PASSPHRASE'
  /** The passphrase is empty, or its file is unreadable or too large. */
  | 'BAD_PASSPHRASE'
  /** The target file exists and overwriting was not asked for. */
  | 'EXISTS'
  /** The file cannot be read or written. */
  | 'IO';

/** Raised by the keystore; `meta.path` names the file when there is one. */
export class KeystoreError extends TrellisError<KeystoreErrorCode> {}

/** The `format` field of every Trellis key file. */
export const KEYSTORE_FORMAT = 'trellis-keystore';
/** The current file version. */
export const KEYSTORE_VERSION = 1;
/** Environment variable a passphrase may come from. */
export const PASSPHRASE_ENV = 'TRELLIS_PASSPHRASE';

/** scrypt cost parameters. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelisation. */
  readonly p: number;
}

/**
 * Default scrypt cost: N = 2^17, r = 8, p = 1 uses 128 MiB and a few hundred milliseconds, the
 * interactive-login setting of the scrypt paper raised one step for long-lived signing keys.
 */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 17, r: 8, p: 1 };

/**
 * Bounds on parameters read from a file: a crafted file must not make loading take minutes or
 * gigabytes, nor be so weak that it is pointless.
 */
const SCRYPT_MIN_N = 2 ** 14;
const SCRYPT_MAX_N = 2 ** 20;
const SCRYPT_MAX_R = 16;
const SCRYPT_MAX_P = 4;
/** Largest key file read: real ones are under 1 KiB. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
/** Largest passphrase file read. */
const MAX_PASSPHRASE_BYTES = 4096;

const SALT_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const CHECK_LABEL = Buffer.from('trellis-keystore-v1 passphrase check');

/** The text an unencrypted file carries so nobody mistakes it for a protected key. */
export const UNENCRYPTED_WARNING =
  'UNENCRYPTED DEVELOPMENT KEY: anyone who can read this file can sign with it. Use only on a local development network.';

/** An encrypted key file, as stored (JSON). */
export interface EncryptedKeyFile {
  readonly format: typeof KEYSTORE_FORMAT;
  readonly version: typeof KEYSTORE_VERSION;
  readonly encrypted: true;
  readonly address: string;
  readonly publicKey: string;
  readonly crypto: {
    readonly kdf: 'scrypt';
    readonly kdfParams: ScryptParams & { readonly salt: string };
    readonly cipher: 'aes-256-gcm';
    readonly iv: string;
    readonly ciphertext: string;
    readonly tag: string;
    readonly check: string;
  };
}

/** An unencrypted development key file, as stored (JSON). */
export interface UnencryptedKeyFile {
  readonly format: typeof KEYSTORE_FORMAT;
  readonly version: typeof KEYSTORE_VERSION;
  readonly encrypted: false;
  readonly warning: string;
  readonly address: string;
  readonly publicKey: string;
  readonly secretKey: string;
}

/** Either kind of key file. */
export type KeyFile = EncryptedKeyFile | UnencryptedKeyFile;

/** How a key is protected on disk. */
export type KeyProtection =
  { readonly passphrase: string; readonly scrypt?: ScryptParams } | { readonly unencrypted: true };

/** What can be read from a key file without its passphrase. */
export interface KeyFileInfo {
  readonly address: string;
  readonly publicKey: string;
  readonly encrypted: boolean;
}

/** Options of {@link loadKeyFile} and {@link openKeyFile}. */
export interface LoadKeyOptions {
  readonly passphrase?: string;
  /** Must be true to load an unencrypted development key. */
  readonly allowUnencrypted?: boolean;
}

function deriveKeys(passphrase: string, salt: Bytes, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      Buffer.from(passphrase.normalize('NFKC'), 'utf8'),
      salt,
      64,
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 1024 * 1024 },
      (err, key) => (err === null ? resolve(key) : reject(err)),
    );
  });
}

function checkValue(checkKey: Bytes): Buffer {
  return createHmac('sha256', checkKey).update(CHECK_LABEL).digest();
}

function additionalData(address: string, publicKey: string): Buffer {
  return Buffer.from(`${KEYSTORE_FORMAT}/${KEYSTORE_VERSION}/${address}/${publicKey}`, 'utf8');
}

function checkPassphrase(passphrase: unknown): string {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new KeystoreError('BAD_PASSPHRASE', 'passphrase: expected a non-empty string', {});
  }
  return passphrase;
}

function checkScrypt(params: ScryptParams, where: string): void {
  const { N, r, p } = params;
  const powerOfTwo = Number.isSafeInteger(N) && N > 0 && (N & (N - 1)) === 0;
  if (!powerOfTwo || N < SCRYPT_MIN_N || N > SCRYPT_MAX_N) {
    throw new KeystoreError(
      'UNSUPPORTED',
      `${where}.N: expected a power of two in [2^14, 2^20], got ${N}`,
      {},
    );
  }
  if (!Number.isInteger(r) || r < 1 || r > SCRYPT_MAX_R) {
    throw new KeystoreError(
      'UNSUPPORTED',
      `${where}.r: expected an integer in [1, ${SCRYPT_MAX_R}], got ${r}`,
      {},
    );
  }
  if (!Number.isInteger(p) || p < 1 || p > SCRYPT_MAX_P) {
    throw new KeystoreError(
      'UNSUPPORTED',
      `${where}.p: expected an integer in [1, ${SCRYPT_MAX_P}], got ${p}`,
      {},
    );
  }
}

/** Encrypts a key pair under a passphrase. */
export async function encryptKey(
  keyPair: KeyPair,
  passphrase: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<EncryptedKeyFile> {
  checkPassphrase(passphrase);
  checkScrypt(params, 'scrypt');
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const derived = await deriveKeys(passphrase, salt, params);
  const address = addressHexOf(keyPair.publicKey);
  const publicKey = toHex(keyPair.publicKey);
  const cipher = createCipheriv('aes-256-gcm', derived.subarray(0, 32), iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(additionalData(address, publicKey));
  const ciphertext = Buffer.concat([cipher.update(keyPair.secretKey), cipher.final()]);
  return {
    format: KEYSTORE_FORMAT,
    version: KEYSTORE_VERSION,
    encrypted: true,
    address,
    publicKey,
    crypto: {
      kdf: 'scrypt',
      kdfParams: { N: params.N, r: params.r, p: params.p, salt: toHex(salt) },
      cipher: 'aes-256-gcm',
      iv: toHex(iv),
      ciphertext: toHex(ciphertext),
      tag: toHex(cipher.getAuthTag()),
      check: toHex(checkValue(derived.subarray(32))),
    },
  };
}

/** The unencrypted development file of a key pair. */
export function unencryptedKeyFile(keyPair: KeyPair): UnencryptedKeyFile {
  return {
    format: KEYSTORE_FORMAT,
    version: KEYSTORE_VERSION,
    encrypted: false,
    warning: UNENCRYPTED_WARNING,
    address: addressHexOf(keyPair.publicKey),
    publicKey: toHex(keyPair.publicKey),
    secretKey: toHex(keyPair.secretKey),
  };
}

// Parsing: every field is checked, and failures say which field.

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function field(obj: Record<string, unknown>, name: string, where: string): unknown {
  if (!(name in obj)) throw new KeystoreError('MALFORMED', `${where}.${name}: missing`, {});
  return obj[name];
}

function hexField(obj: Record<string, unknown>, name: string, where: string, length: number): Bytes {
  const v = field(obj, name, where);
  try {
    return fromHex(v as string, `${where}.${name}`, length);
  } catch {
    throw new KeystoreError('MALFORMED', `${where}.${name}: expected 0x-hex of ${length} bytes`, {});
  }
}

interface ParsedCommon {
  readonly address: string;
  readonly publicKey: Bytes;
}

function parseCommon(v: unknown): ParsedCommon & { readonly raw: Record<string, unknown> } {
  if (!isRecord(v)) throw new KeystoreError('MALFORMED', 'key file: expected a JSON object', {});
  if (v['format'] !== KEYSTORE_FORMAT) {
    throw new KeystoreError('MALFORMED', `key file.format: expected "${KEYSTORE_FORMAT}"`, {});
  }
  if (v['version'] !== KEYSTORE_VERSION) {
    throw new KeystoreError(
      'UNSUPPORTED',
      `key file.version: expected ${KEYSTORE_VERSION}, got ${String(v['version'])}`,
      {},
    );
  }
  if (typeof v['encrypted'] !== 'boolean') {
    throw new KeystoreError('MALFORMED', 'key file.encrypted: expected true or false', {});
  }
  const publicKey = hexField(v, 'publicKey', 'key file', PUBLIC_KEY_BYTES);
  const address = field(v, 'address', 'key file');
  let expected: string;
  try {
    expected = addressHexOf(publicKey);
  } catch {
    throw new KeystoreError('MALFORMED', 'key file.publicKey: not an Ed25519 public key', {});
  }
  if (address !== expected) {
    throw new KeystoreError('TAMPERED', 'key file.address: does not match its public key', {
      address,
      expected,
    });
  }
  return { address: expected, publicKey, raw: v };
}

/** What a key file says about itself, without its passphrase. Throws MALFORMED/TAMPERED/UNSUPPORTED. */
export function describeKeyFile(json: unknown): KeyFileInfo {
  const { address, publicKey, raw } = parseCommon(json);
  return { address, publicKey: toHex(publicKey), encrypted: raw['encrypted'] === true };
}

/**
 * Opens a parsed key file. Throws KeystoreError: NO_PASSPHRASE, WRONG_PASSPHRASE, TAMPERED,
 * MALFORMED, UNSUPPORTED, or UNENCRYPTED_NOT_ALLOWED.
 */
export async function openKeyFile(json: unknown, options: LoadKeyOptions = {}): Promise<KeyPair> {
  const { publicKey, address, raw } = parseCommon(json);
  let secretKey: Bytes;
  if (raw['encrypted'] === false) {
    if (options.allowUnencrypted !== true) {
      throw new KeystoreError(
        'UNENCRYPTED_NOT_ALLOWED',
        'key file is an UNENCRYPTED development key; refusing to load it without the explicit allowUnencrypted flag',
        { address },
      );
    }
    secretKey = hexField(raw, 'secretKey', 'key file', SECRET_KEY_BYTES);
  } else {
    if (options.passphrase === undefined) {
      throw new KeystoreError(
        'NO_PASSPHRASE',
        `key file is encrypted: give a passphrase (file or ${PASSPHRASE_ENV})`,
        {
          address,
        },
      );
    }
    const passphrase = checkPassphrase(options.passphrase);
    const c = field(raw, 'crypto', 'key file');
    if (!isRecord(c)) throw new KeystoreError('MALFORMED', 'key file.crypto: expected an object', {});
    if (c['kdf'] !== 'scrypt')
      throw new KeystoreError('UNSUPPORTED', 'key file.crypto.kdf: expected "scrypt"', {});
    if (c['cipher'] !== 'aes-256-gcm') {
      throw new KeystoreError('UNSUPPORTED', 'key file.crypto.cipher: expected "aes-256-gcm"', {});
    }
    const kp = field(c, 'kdfParams', 'key file.crypto');
    if (!isRecord(kp))
      throw new KeystoreError('MALFORMED', 'key file.crypto.kdfParams: expected an object', {});
    const params = { N: kp['N'] as number, r: kp['r'] as number, p: kp['p'] as number };
    checkScrypt(params, 'key file.crypto.kdfParams');
    const salt = hexField(kp, 'salt', 'key file.crypto.kdfParams', SALT_BYTES);
    const iv = hexField(c, 'iv', 'key file.crypto', IV_BYTES);
    const ciphertext = hexField(c, 'ciphertext', 'key file.crypto', SECRET_KEY_BYTES);
    const tag = hexField(c, 'tag', 'key file.crypto', TAG_BYTES);
    const check = hexField(c, 'check', 'key file.crypto', 32);

    const derived = await deriveKeys(passphrase, salt, params);
    if (!timingSafeEqual(checkValue(derived.subarray(32)), check)) {
      throw new KeystoreError(
        'WRONG_PASSPHRASE',
        'wrong passphrase for this key file (or its salt or scrypt parameters were altered)',
        { address },
      );
    }
    const decipher = createDecipheriv('aes-256-gcm', derived.subarray(0, 32), iv, {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(additionalData(address, toHex(publicKey)));
    decipher.setAuthTag(tag);
    try {
      secretKey = new Uint8Array(Buffer.concat([decipher.update(ciphertext), decipher.final()]));
    } catch {
      throw new KeystoreError(
        'TAMPERED',
        'key file failed authentication: the passphrase is right but the file was damaged or edited',
        { address },
      );
    }
  }
  const pair = keyPairFromSecret(secretKey);
  if (!bytesEqual(pair.publicKey, publicKey)) {
    throw new KeystoreError('TAMPERED', 'key file: the secret key does not match the stored public key', {
      address,
    });
  }
  return pair;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > MAX_KEY_FILE_BYTES) {
      throw new KeystoreError('MALFORMED', `${path}: ${st.size} bytes is too large for a key file`, { path });
    }
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (err instanceof KeystoreError) throw err;
    throw new KeystoreError('IO', `${path}: cannot read key file (${(err as Error).message})`, { path });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new KeystoreError('MALFORMED', `${path}: not valid JSON (damaged key file?)`, { path });
  }
}

/** The same error with the file's path in front, so the operator knows which file is wrong. */
function naming(path: string, err: unknown): unknown {
  return err instanceof KeystoreError
    ? new KeystoreError(err.code, `${path}: ${err.message}`, { ...err.meta, path })
    : err;
}

/** Reads a key file and opens it. Errors name the file. */
export async function loadKeyFile(path: string, options: LoadKeyOptions = {}): Promise<KeyPair> {
  const json = await readJson(path);
  try {
    return await openKeyFile(json, options);
  } catch (err) {
    throw naming(path, err);
  }
}

/** Reads what a key file says about itself (address, public key, encrypted?), without a passphrase. */
export async function readKeyFileInfo(path: string): Promise<KeyFileInfo> {
  const json = await readJson(path);
  try {
    return describeKeyFile(json);
  } catch (err) {
    throw naming(path, err);
  }
}

/** Options of {@link saveKeyFile}. */
export interface SaveKeyOptions {
  /** Replace an existing file; otherwise an existing file is an EXISTS error. */
  readonly overwrite?: boolean;
}

/** The JSON of a key file for a key pair under the given protection. */
export async function keyFileOf(keyPair: KeyPair, protection: KeyProtection): Promise<KeyFile> {
  return 'unencrypted' in protection
    ? unencryptedKeyFile(keyPair)
    : encryptKey(keyPair, protection.passphrase, protection.scrypt ?? DEFAULT_SCRYPT);
}

/**
 * Writes a key file readable by its owner only (mode 0600), atomically: a temporary file is
 * written, flushed and renamed, so a crash never leaves half a key.
 */
export async function saveKeyFile(
  path: string,
  keyPair: KeyPair,
  protection: KeyProtection,
  options: SaveKeyOptions = {},
): Promise<KeyFile> {
  const file = await keyFileOf(keyPair, protection);
  if (options.overwrite !== true) {
    const exists = await stat(path).then(
      () => true,
      () => false,
    );
    if (exists) {
      throw new KeystoreError('EXISTS', `${path}: a key file already exists; refusing to overwrite it`, {
        path,
      });
    }
  }
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await writeFile(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600, flag: 'w' });
    const fh = await open(tmp, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new KeystoreError('IO', `${path}: cannot write key file (${(err as Error).message})`, { path });
  }
  return file;
}

/** Where a passphrase comes from. */
export interface PassphraseSource {
  /** A file whose content (one trailing newline removed) is the passphrase. */
  readonly passphraseFile?: string;
  /** Environment to read {@link PASSPHRASE_ENV} from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The passphrase from a file (preferred, since environments leak into child processes and crash
 * reports) or from TRELLIS_PASSPHRASE; undefined when neither is given. An empty passphrase is
 * refused rather than silently used.
 */
export function resolvePassphrase(source: PassphraseSource = {}): string | undefined {
  if (source.passphraseFile !== undefined) {
    let text: string;
    try {
      const buf = readFileSync(source.passphraseFile);
      if (buf.length > MAX_PASSPHRASE_BYTES) {
        throw new KeystoreError(
          'BAD_PASSPHRASE',
          `${source.passphraseFile}: passphrase file larger than ${MAX_PASSPHRASE_BYTES} bytes`,
          {
            path: source.passphraseFile,
          },
        );
      }
      text = buf.toString('utf8');
    } catch (err) {
      if (err instanceof KeystoreError) throw err;
      throw new KeystoreError(
        'BAD_PASSPHRASE',
        `${source.passphraseFile}: cannot read passphrase file (${(err as Error).message})`,
        {
          path: source.passphraseFile,
        },
      );
    }
    const passphrase = text.replace(/\r?\n$/, '');
    if (passphrase.length === 0) {
      throw new KeystoreError('BAD_PASSPHRASE', `${source.passphraseFile}: passphrase file is empty`, {
        path: source.passphraseFile,
      });
    }
    return passphrase;
  }
  const fromEnv = (source.env ?? process.env)[PASSPHRASE_ENV];
  if (fromEnv === undefined) return undefined;
  if (fromEnv.length === 0)
    throw new KeystoreError('BAD_PASSPHRASE', `${PASSPHRASE_ENV} is set but empty`, {});
  return fromEnv;
}

/** The parts of a node config that say where its key is and how it is protected. */
export interface NodeKeySettings {
  readonly keyFile: string;
  readonly passphraseFile?: string;
  readonly allowUnencryptedKey: boolean;
}

/**
 * Loads a node's key as its config describes: the passphrase from `passphraseFile` or
 * TRELLIS_PASSPHRASE; an unencrypted key only when the config allows it.
 */
export async function loadNodeKey(
  settings: NodeKeySettings,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<KeyPair> {
  const passphrase = resolvePassphrase({
    ...(settings.passphraseFile === undefined ? {} : { passphraseFile: settings.passphraseFile }),
    env,
  });
  return loadKeyFile(settings.keyFile, {
    ...(passphrase === undefined ? {} : { passphrase }),
    allowUnencrypted: settings.allowUnencryptedKey,
  });
}
